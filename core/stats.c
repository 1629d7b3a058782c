/*
 * stats.c — statistics: process-wide counters kept off the fast paths (bytes mapped, superblocks,
 * huge bytes alive), the walk over all mapped memory, and the snapshots that merge per-heap
 * counters with what the walk sees.
 *
 * Owns: the global statistics counters, superblocks_walk, apex_*stats_get.
 * Must never: be updated on an allocation or free fast path with a shared atomic (per-heap
 * counters are owner-written and only summed here); allocate while walking.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

_Atomic size_t g_mapped_bytes;
_Atomic size_t g_mapped_peak;
_Atomic size_t g_superblocks_live;
_Atomic size_t g_huge_live_bytes;
_Atomic size_t g_heap_metadata;

void stats_mapped(ptrdiff_t delta) {
  size_t now = atomic_fetch_add_explicit(&g_mapped_bytes, (size_t)delta, memory_order_relaxed) + (size_t)delta;
  size_t peak = atomic_load_explicit(&g_mapped_peak, memory_order_relaxed);
  while (delta > 0 && now > peak &&
         !atomic_compare_exchange_weak_explicit(&g_mapped_peak, &peak, now, memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* ---- The walk ------------------------------------------------------------------------------ */
void superblocks_walk(superblock_walk_fn blocks_fn, huge_walk_fn huge_fn, void *arg) {
  apex_ensure_init();
  if (blocks_fn != NULL) {
    superblock_walk_lock();
    for (superblock_t *sb = superblocks_first(); sb != NULL; sb = sb->all_next) blocks_fn(sb, arg);
    superblock_walk_unlock();
  }
  if (huge_fn != NULL) {
    heaps_lock();
    for (heap_t *heap = heaps_first(); heap != NULL; heap = heap->all_next) {
      pthread_mutex_lock(&heap->huge_lock);
      for (huge_t *h = heap->huge_list; h != NULL; h = h->all_next) huge_fn(h, arg);
      pthread_mutex_unlock(&heap->huge_lock);
    }
    heaps_unlock();
  }
}

/* ---- Snapshots ------------------------------------------------------------------------------ */
typedef struct {
  const heap_t *only;                   /* NULL: every heap; else this heap and its shared part */
  apex_stats_t *s;
  apex_bin_stats_t *bins;               /* NULL or APEX_BIN_COUNT entries */
} gather_t;

static bool heap_selected(const gather_t *g, const heap_t *heap) {
  return g->only == NULL || heap == g->only || (heap != NULL && heap == g->only->shared);
}

/* Reads block descriptors that their owners may be changing: each figure is a snapshot of one
 * moment, good enough for statistics (see the header's note on approximation). */
APEX_RACY_READER static void gather_blocks(superblock_t *sb, void *arg) {
  gather_t *g = arg;
  heap_t *owner = atomic_load_explicit(&sb->heap, memory_order_relaxed);
  if (g->only != NULL && !heap_selected(g, owner)) return;
  apex_stats_t *s = g->s;
  s->resident += (size_t)__builtin_popcountll(sb->dirty_slices) * SLICE_SIZE;
  for (size_t i = 1; i < SLICES_PER_SB; i++) {
    if (((sb->free_slices >> i) & 1) || sb->slice_head[i] != i) continue;
    block_t *b = &sb->blocks[i];
    if (block_limit(b) == 0) continue;
    size_t used = b->used, capacity = b->capacity, size = b->chunk_size, cls = b->cls;
    if (cls >= CLASS_COUNT || used > capacity) continue;    /* caught mid-change */
    s->active += (size_t)b->slices << SLICE_SHIFT;
    s->blocks++;
    bool partial = used != 0 && used != capacity;
    s->blocks_partial += partial;
    size_t free_bytes = (capacity - used) * size;
    if (cls == CLASS_LARGE) {
      s->large_count += used;
      s->large_allocated += used * size;
    } else {
      s->free_in_blocks += free_bytes;
    }
    if (g->bins != NULL) {
      apex_bin_stats_t *bin = &g->bins[cls];
      bin->count += used;
      bin->blocks++;
      bin->blocks_partial += partial;
      bin->free_bytes += cls == CLASS_LARGE ? 0 : free_bytes;
    }
  }
}

static void gather_huge(huge_t *h, void *arg) {
  gather_t *g = arg;
  if (!heap_selected(g, atomic_load_explicit(&h->heap, memory_order_relaxed))) return;
  g->s->huge_count++;
  g->s->active += h->map_size;
  g->s->resident += h->map_size;
  g->s->metadata += HUGE_HEADER;
}

static void sum_counters(gather_t *g) {
  apex_stats_t *s = g->s;
  size_t alloc = 0, freed = 0;
  heaps_lock();
  for (heap_t *h = heaps_first(); h != NULL; h = h->all_next) {
    s->heaps++;
    if (atomic_load_explicit(&h->abandoned, memory_order_relaxed)) s->heaps_abandoned++;
    if (!heap_selected(g, h)) continue;
    alloc += atomic_load_explicit(&h->counters.alloc_bytes, memory_order_relaxed);
    freed += atomic_load_explicit(&h->counters.free_bytes, memory_order_relaxed);
    s->requested += atomic_load_explicit(&h->counters.requested, memory_order_relaxed);
    s->remote_frees += atomic_load_explicit(&h->counters.remote_free_count, memory_order_relaxed);
    pthread_mutex_lock(&h->huge_lock);
    s->allocated_huge += h->huge_bytes;
    s->thread_allocated += h->huge_total_in;
    s->thread_deallocated += h->huge_total_out;
    pthread_mutex_unlock(&h->huge_lock);
  }
  heaps_unlock();
  s->allocated = (alloc > freed ? alloc - freed : 0) + s->allocated_huge;
  s->thread_allocated += alloc;
  s->thread_deallocated += freed;
  s->requested_usable = s->thread_allocated;
}

static int snapshot(const heap_t *only, apex_stats_t *out, size_t size, apex_bin_stats_t *bins) {
  if (out == NULL || size < sizeof(size_t) || size > sizeof(apex_stats_t)) return EINVAL;
  apex_stats_t s;
  memset(&s, 0, sizeof s);
  gather_t g = { only, &s, bins };
  sum_counters(&g);
  superblocks_walk(gather_blocks, gather_huge, &g);
  size_t superblocks = atomic_load_explicit(&g_superblocks_live, memory_order_relaxed);
  s.mapped = atomic_load_explicit(&g_mapped_bytes, memory_order_relaxed);
  s.mapped_peak = atomic_load_explicit(&g_mapped_peak, memory_order_relaxed);
  s.superblocks = superblocks;
  if (only == NULL) {
    size_t page = os_page_size();
    size_t header = (sizeof(superblock_t) + page - 1) & ~(page - 1);
    s.metadata += superblocks * header + atomic_load_explicit(&g_heap_metadata, memory_order_relaxed);
    s.resident += atomic_load_explicit(&g_heap_metadata, memory_order_relaxed);
  }
  s.size = size;
  memcpy(out, &s, size);
  return 0;
}

apex_export int apex_stats_get(apex_stats_t *out, size_t size) {
  return snapshot(NULL, out, size, NULL);
}

apex_export int apex_heap_stats_get(apex_heap_t *heap, apex_stats_t *out, size_t size) {
  if (!heap_handle_ok(heap)) return EINVAL;
  return snapshot(heap, out, size, NULL);
}

apex_export int apex_thread_stats_get(apex_stats_t *out, size_t size) {
  heap_t *heap = heap_for_thread();
  if (heap == NULL) return EINVAL;
  return snapshot(heap, out, size, NULL);
}

apex_export int apex_bin_stats_get(size_t bin, apex_bin_stats_t *out, size_t size) {
  if (bin >= APEX_BIN_COUNT || out == NULL || size < sizeof(size_t) || size > sizeof(apex_bin_stats_t))
    return EINVAL;
  apex_ensure_init();
  apex_bin_stats_t bins[APEX_BIN_COUNT];
  memset(bins, 0, sizeof bins);
  apex_stats_t s;
  memset(&s, 0, sizeof s);
  gather_t g = { NULL, &s, bins };
  superblocks_walk(gather_blocks, NULL, &g);
  apex_bin_stats_t b = bins[bin];
  b.chunk_size = bin == CLASS_LARGE ? 0 : g_class_size[bin];
  b.size = size;
  memcpy(out, &b, size);
  return 0;
}
