/*
 * visit.c — walking a heap's live objects for a program's callback (apex_heap_visit), and
 * apex_collect, which gives back at once everything that can be given back.
 *
 * Owns: the visit walk and its snapshots.
 * Must never: call a callback with an allocator lock held, or keep a pointer into the heap's
 * structure across one; take its scratch memory from the heap being walked.
 */
#include "internal.h"

#include <errno.h>

/* ---- Visiting --------------------------------------------------------------------------------
 * Callbacks run with no allocator lock held and no pointer into the heap's structure kept across
 * them, so a callback may allocate (from the same heap too, with or without a limit), read
 * statistics and free objects, the visited one included (docs/API.md states what a walk then
 * sees). The walk covers the superblocks and huge objects the heap had when it started (so it
 * ends, even when its callbacks keep allocating), a batch at a time:
 *   - blocks: the live chunks of one superblock, in address order from a cursor, are copied into
 *     a small array on the stack; before each callback the batch is re-checked. While the heap's
 *     retired_blocks count has not moved, no block of it was retired (so none of its superblocks
 *     was released) and reading the chunk's free tag is safe; when it has moved, the batch is
 *     taken again from the cursor, after checking that the superblock is still the heap's.
 *   - huge objects: (pointer, size) of each are copied under huge_lock into a scratch mapping
 *     (os_map, never the visited heap); before each callback, under huge_lock, the object must
 *     still be on the heap's list (checked by pointer only when something was unlinked since).
 * The shared sub-heap's structure is changed by non-owner threads under shared_lock, so its
 * snapshots and checks take that lock for a moment; the callback itself runs without it. */
#define VISIT_BATCH 128

typedef struct { void *p; size_t size; } visit_item_t;

typedef struct {
  heap_t *heap;                /* the handle's own part, or its shared sub-heap */
  pthread_mutex_t *lock;       /* the sub-heap's shared_lock; NULL for the owner's own part */
  apex_visit_fn visit;
  void *arg;
} walk_t;

static void walk_lock(const walk_t *w)   { if (w->lock != NULL) pthread_mutex_lock(w->lock); }
static void walk_unlock(const walk_t *w) { if (w->lock != NULL) pthread_mutex_unlock(w->lock); }

static size_t retired_blocks(const heap_t *heap) {
  return atomic_load_explicit(&heap->retired_blocks, memory_order_relaxed);
}

static bool heap_holds_superblock(const heap_t *heap, const superblock_t *sb) {
  for (const superblock_t *s = heap->superblocks; s != NULL; s = s->next)
    if (s == sb) return true;
  return false;
}

/* Live chunks of sb at addresses >= cursor, in address order, at most VISIT_BATCH. */
APEX_RACY_READER static size_t snapshot_chunks(superblock_t *sb, uintptr_t cursor, visit_item_t *out) {
  size_t n = 0;
  for (size_t i = 1; i < SLICES_PER_SB && n < VISIT_BATCH; i++) {
    if (((sb->free_slices >> i) & 1) || sb->slice_head[i] != i) continue;
    block_t *b = &sb->blocks[i];
    if (block_limit(b) == 0) continue;
    size_t size = b->chunk_size, k = 0;
    if (cursor > (uintptr_t)b->start) k = (cursor - (uintptr_t)b->start + size - 1) / size;
    for (; k < b->carved && n < VISIT_BATCH; k++) {
      chunk_t *c = (chunk_t *)(b->start + k * size);
      if (!chunk_is_free(c)) out[n++] = (visit_item_t){ c, size };
    }
  }
  return n;
}

static int walk_superblock(const walk_t *w, superblock_t *sb) {
  visit_item_t items[VISIT_BATCH];
  uintptr_t cursor = 0;
  size_t checked_at = (size_t)-1;      /* retired_blocks when sb was last found in the heap */
  for (;;) {
    walk_lock(w);
    size_t epoch = retired_blocks(w->heap);
    size_t n = 0;
    if (epoch == checked_at || heap_holds_superblock(w->heap, sb)) {
      checked_at = epoch;
      n = snapshot_chunks(sb, cursor, items);
    }
    walk_unlock(w);
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
      /* Item 0 is fresh. Later ones: a retired block (a free by an earlier callback, or by a
       * shared allocation) may have taken the superblock away; take the batch again. */
      bool live = true;
      if (i > 0) {
        walk_lock(w);
        bool moved = retired_blocks(w->heap) != epoch;
        live = !moved && !chunk_is_free(items[i].p);
        walk_unlock(w);
        if (moved) break;
      }
      cursor = (uintptr_t)items[i].p + 1;
      if (!live) continue;             /* freed since the snapshot */
      int r = w->visit(items[i].p, items[i].size, w->arg);
      if (r != 0) return r;
    }
  }
}

/* A scratch array from the OS (never from the heap being walked): n entries of `each` bytes. */
static void *scratch_map(size_t n, size_t each, size_t *bytes) {
  size_t page = os_page_size();
  *bytes = (n * each + page - 1) & ~(page - 1);
  return *bytes == 0 ? NULL : os_map(*bytes);
}

static int walk_blocks(const walk_t *w) {
  superblock_t *on_stack[64];
  superblock_t **set = on_stack;
  size_t cap = 64, n = 0, mapped = 0;
  for (;;) {
    walk_lock(w);
    size_t count = w->heap->superblock_count;
    if (count <= cap) {
      for (superblock_t *sb = w->heap->superblocks; sb != NULL && n < cap; sb = sb->next) set[n++] = sb;
      walk_unlock(w);
      break;
    }
    walk_unlock(w);
    if (mapped != 0) os_unmap(set, mapped);
    cap = count + 16;
    set = scratch_map(cap, sizeof *set, &mapped);
    if (set == NULL) return ENOMEM;
  }
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++) r = walk_superblock(w, set[i]);
  if (mapped != 0) os_unmap(set, mapped);
  return r;
}

/* Still on the heap's list (huge_lock held)? Then it is live and mapped; its size may have
 * changed (an in-place realloc). */
static bool huge_still_listed(const heap_t *heap, visit_item_t *item) {
  for (huge_t *h = heap->huge_list; h != NULL; h = h->all_next) {
    if ((uint8_t *)h + h->huge_offset == item->p) {
      item->size = h->huge_size;
      return true;
    }
  }
  return false;
}

static int walk_huge(const walk_t *w) {
  heap_t *heap = w->heap;
  visit_item_t *items = NULL;
  size_t cap = 0, n = 0, mapped = 0, unlinked = 0;
  for (;;) {
    pthread_mutex_lock(&heap->huge_lock);
    if (heap->huge_count <= cap) {
      for (huge_t *h = heap->huge_list; h != NULL && n < cap; h = h->all_next)
        items[n++] = (visit_item_t){ (uint8_t *)h + h->huge_offset, h->huge_size };
      unlinked = heap->huge_total_out;
      pthread_mutex_unlock(&heap->huge_lock);
      break;
    }
    size_t want = heap->huge_count + 16;
    pthread_mutex_unlock(&heap->huge_lock);
    if (mapped != 0) os_unmap(items, mapped);
    cap = want;
    items = scratch_map(cap, sizeof *items, &mapped);
    if (items == NULL) return ENOMEM;
  }
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++) {
    pthread_mutex_lock(&heap->huge_lock);
    bool live = heap->huge_total_out == unlinked || huge_still_listed(heap, &items[i]);
    pthread_mutex_unlock(&heap->huge_lock);
    if (live) r = w->visit(items[i].p, items[i].size, w->arg);
  }
  if (mapped != 0) os_unmap(items, mapped);
  return r;
}

apex_export int apex_heap_visit(apex_heap_t *heap, apex_visit_fn visit, void *arg) {
  if (!heap_handle_ok(heap) || visit == NULL) return EINVAL;
  atomic_fetch_add_explicit(&heap->visiting, 1, memory_order_acq_rel);
  walk_t own = { heap, NULL, visit, arg };
  int r = walk_blocks(&own);
  if (r == 0) r = walk_huge(&own);
  heap_t *shared = __atomic_load_n(&heap->shared, __ATOMIC_ACQUIRE);
  if (r == 0 && shared != NULL) {
    walk_t part = { shared, &heap->shared_lock, visit, arg };
    r = walk_blocks(&part);
    if (r == 0) r = walk_huge(&part);
  }
  atomic_fetch_sub_explicit(&heap->visiting, 1, memory_order_acq_rel);
  return r;
}

/* ---- Collecting ------------------------------------------------------------------------------ */
apex_export void apex_collect(void) {
  apex_ensure_init();
  heap_t *mine = tls_heap;
  if (mine != &g_empty_heap) heap_collect_now(mine);
  if (mine != &g_empty_heap) quarantine_flush(mine);
  if (mine != &g_empty_heap) remote_flush_all(mine);   /* before the sweep of abandoned heaps */
  heap_collect_abandoned_all();
  superblock_cache_flush();
  huge_cache_flush();
}
