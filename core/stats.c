/*
 * stats.c — statistics: process-wide counters kept off the fast paths (bytes mapped, superblocks,
 * dirty slices, huge bytes alive), the snapshots that sum each heap's counters (and read its
 * class queues), and the walk over all mapped memory that only the heap map uses.
 *
 * Owns: the global statistics counters, superblocks_walk, apex_*stats_get.
 * Must never: be updated on an allocation or free fast path (per-heap counters are kept on slow
 * paths, or owner-written and only summed here); walk every superblock for a snapshot; allocate
 * while holding the walk lock.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

_Atomic size_t g_mapped_bytes;
_Atomic size_t g_mapped_peak;
_Atomic size_t g_superblocks_live;
_Atomic size_t g_huge_live_bytes;
_Atomic size_t g_heap_metadata;
_Atomic size_t g_dirty_slices;

void stats_mapped(ptrdiff_t delta) {
  size_t now = atomic_fetch_add_explicit(&g_mapped_bytes, (size_t)delta, memory_order_relaxed) + (size_t)delta;
  size_t peak = atomic_load_explicit(&g_mapped_peak, memory_order_relaxed);
  while (delta > 0 && now > peak &&
         !atomic_compare_exchange_weak_explicit(&g_mapped_peak, &peak, now, memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* A superblock's dirty bits change (slices touched, purged; mapped or unmapped with owner NULL;
 * joining or leaving a heap is counted by superblock.c with before or now 0). Slow paths only. */
void stats_dirty_changed(heap_t *owner, uint64_t before, uint64_t now) {
  ptrdiff_t delta = (ptrdiff_t)__builtin_popcountll(now) - (ptrdiff_t)__builtin_popcountll(before);
  if (delta == 0) return;
  count_add(&g_dirty_slices, delta);
  if (owner != NULL) count_add(&owner->block_counts.dirty_slices, delta);
}

/* ---- The walk ------------------------------------------------------------------------------
 * Only the heap map (report.c) walks every superblock: it draws each of them. The snapshots below
 * never do; a debug build counts walks so that a test can hold them to it. */
#if defined(APEX_DEBUG) && APEX_DEBUG
_Atomic size_t apex_debug_superblock_walks;
#endif

void superblocks_walk(superblock_walk_fn blocks_fn, huge_walk_fn huge_fn, void *arg) {
  apex_ensure_init();
#if defined(APEX_DEBUG) && APEX_DEBUG
  atomic_fetch_add_explicit(&apex_debug_superblock_walks, 1, memory_order_relaxed);
#endif
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

/* ---- Snapshots ------------------------------------------------------------------------------
 * A snapshot costs O(heaps x classes + blocks that are neither full nor retired), whatever the
 * number of superblocks: each heap's figures come from counters its slow paths keep (blocks per
 * class, blocks parked full, large objects, dirty slices, huge objects), and the live chunks of a
 * class are the parked-full blocks' capacity (every chunk of such a block is live, and its count
 * changes only on slow paths) plus the `used` of each block in the class's queue, read where it
 * is. Nothing is added to the malloc and free fast paths. */
typedef struct {
  const heap_t *only;                   /* NULL: every heap; else this heap and its shared part */
  apex_stats_t *s;
  apex_bin_stats_t *bins;               /* NULL or APEX_BIN_COUNT entries */
  size_t bin;                           /* APEX_BIN_COUNT: every class; else only this one */
  size_t dirty_slices;                  /* of the selected heaps' superblocks */
} gather_t;

static bool heap_selected(const gather_t *g, const heap_t *heap) {
  return g->only == NULL || heap == g->only || (heap != NULL && heap == g->only->shared);
}

static size_t class_capacity(size_t cls) {
  return ((size_t)g_class_slices[cls] << SLICE_SHIFT) / g_class_size[cls];
}

/* One class of one heap: its queue is walked as it stands (its owner may be changing it: the
 * blocks are read racily on purpose, and the walk lock keeps every superblock mapped, so a block
 * reached through a link is always readable). A queue holds at most the heap's blocks of the class:
 * the walk stops there, so a queue reshuffled under it cannot keep it going. */
APEX_RACY_READER static void gather_class(gather_t *g, const heap_t *h, size_t cls) {
  const heap_block_counts_t *k = &h->block_counts;
  size_t blocks = atomic_load_explicit(&k->blocks[cls], memory_order_relaxed);
  size_t full = atomic_load_explicit(&k->full[cls], memory_order_relaxed);
  if (blocks == 0) return;
  size_t capacity = class_capacity(cls), size = g_class_size[cls];
  size_t live = full * capacity, partial = 0, steps = blocks;
  for (const block_t *b = h->current[cls]; b != NULL && b != &g_empty_block && steps != 0; b = b->next, steps--) {
    size_t used = b->used;
    if (used > capacity) continue;                         /* caught mid-change */
    live += used;
    partial += used != 0 && used != capacity;
  }
  if (live > blocks * capacity) live = blocks * capacity;
  size_t free_bytes = (blocks * capacity - live) * size;
  apex_stats_t *s = g->s;
  s->blocks += blocks;
  s->blocks_partial += partial;
  s->free_in_blocks += free_bytes;
  s->active += blocks * ((size_t)g_class_slices[cls] << SLICE_SHIFT);
  if (g->bins != NULL) {
    apex_bin_stats_t *bin = &g->bins[cls];
    bin->count += live;
    bin->blocks += blocks;
    bin->blocks_partial += partial;
    bin->free_bytes += free_bytes;
  }
}

/* A heap's block figures; the caller holds the heaps lock and the walk lock. */
static void gather_heap(gather_t *g, heap_t *h) {
  const heap_block_counts_t *k = &h->block_counts;
  apex_stats_t *s = g->s;
  if (g->bin == APEX_BIN_COUNT || g->bin == CLASS_LARGE) {
    size_t blocks = atomic_load_explicit(&k->blocks[CLASS_LARGE], memory_order_relaxed);
    size_t live = atomic_load_explicit(&k->large_live, memory_order_relaxed);
    size_t bytes = atomic_load_explicit(&k->large_bytes, memory_order_relaxed);
    s->large_count += live;
    s->large_allocated += bytes;
    s->blocks += blocks;
    s->active += bytes;            /* a freed large block not yet retired: its slices count no more */
    if (g->bins != NULL) {
      g->bins[CLASS_LARGE].count += live;
      g->bins[CLASS_LARGE].blocks += blocks;
    }
  }
  if (g->bin == APEX_BIN_COUNT) {
    for (size_t cls = 1; cls < CLASS_COUNT; cls++) gather_class(g, h, cls);
  } else if (g->bin != CLASS_LARGE) {
    gather_class(g, h, g->bin);
  }
  g->dirty_slices += atomic_load_explicit(&k->dirty_slices, memory_order_relaxed);
}

/* Every heap's counters, under the heaps lock (heap structs are never unmapped, and the list only
 * grows), then its blocks under the walk lock as well (no superblock is unmapped meanwhile). The
 * walk lock is never held while a huge_lock is taken: fork_prepare takes every huge_lock first. */
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
    s->huge_count += h->huge_count;
    s->active += h->huge_mapped;
    s->resident += h->huge_mapped;
    s->metadata += h->huge_count * HUGE_HEADER;
    pthread_mutex_unlock(&h->huge_lock);
  }
  superblock_walk_lock();
  for (heap_t *h = heaps_first(); h != NULL; h = h->all_next)
    if (heap_selected(g, h)) gather_heap(g, h);
  superblock_walk_unlock();
  heaps_unlock();
  s->allocated = (alloc > freed ? alloc - freed : 0) + s->allocated_huge;
  s->thread_allocated += alloc;
  s->thread_deallocated += freed;
  s->requested_usable = s->thread_allocated;
}

static int snapshot(const heap_t *only, apex_stats_t *out, size_t size, apex_bin_stats_t *bins) {
  if (out == NULL || size < sizeof(size_t) || size > sizeof(apex_stats_t)) return EINVAL;
  apex_ensure_init();
  apex_stats_t s;
  memset(&s, 0, sizeof s);
  gather_t g = { only, &s, bins, APEX_BIN_COUNT, 0 };
  sum_counters(&g);
  size_t superblocks = atomic_load_explicit(&g_superblocks_live, memory_order_relaxed);
  s.mapped = atomic_load_explicit(&g_mapped_bytes, memory_order_relaxed);
  s.mapped_peak = atomic_load_explicit(&g_mapped_peak, memory_order_relaxed);
  s.superblocks = superblocks;
  if (only == NULL) {
    size_t page = os_page_size();
    size_t header = (sizeof(superblock_t) + page - 1) & ~(page - 1);
    s.metadata += superblocks * header + atomic_load_explicit(&g_heap_metadata, memory_order_relaxed);
    /* Every superblock's touched slices, cached ones (owned by no heap) included. */
    g.dirty_slices = atomic_load_explicit(&g_dirty_slices, memory_order_relaxed);
    s.resident += atomic_load_explicit(&g_heap_metadata, memory_order_relaxed);
  }
  s.resident += g.dirty_slices * SLICE_SIZE;
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

/* One class: the same sums as a snapshot, over that class's counters and queues only. */
apex_export int apex_bin_stats_get(size_t bin, apex_bin_stats_t *out, size_t size) {
  if (bin >= APEX_BIN_COUNT || out == NULL || size < sizeof(size_t) || size > sizeof(apex_bin_stats_t))
    return EINVAL;
  apex_ensure_init();
  apex_bin_stats_t bins[APEX_BIN_COUNT];
  memset(bins, 0, sizeof bins);
  apex_stats_t s;
  memset(&s, 0, sizeof s);
  gather_t g = { NULL, &s, bins, bin, 0 };
  heaps_lock();
  superblock_walk_lock();
  for (heap_t *h = heaps_first(); h != NULL; h = h->all_next) gather_heap(&g, h);
  superblock_walk_unlock();
  heaps_unlock();
  apex_bin_stats_t b = bins[bin];
  b.chunk_size = bin == CLASS_LARGE ? 0 : g_class_size[bin];
  b.size = size;
  memcpy(out, &b, size);
  return 0;
}
