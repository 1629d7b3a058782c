/*
 * large.c — large objects: above the size classes and up to LARGE_MAX, a run of whole slices of
 * one of the heap's superblocks, served as a block of capacity one (the free path and its checks
 * are the small objects'). Bigger objects are huge (huge.c).
 *
 * Owns: taking a large object's run and resizing it in place.
 * Must never: be called by a thread that does not own the heap; grow a run past its superblock or
 * into a slice that is not free.
 */
#include "internal.h"

/* An object too big for the size classes gets a run of whole slices to itself: a block of
 * capacity one, so frees (local or remote) and double-free checks follow the common path. */
apex_noinline void *heap_malloc_large(heap_t *heap, size_t size, size_t alignment) {
  purger_defer(true);                    /* the notified stack is walked; ends at a clean point */
  heap_collect_notified(heap);
  size_t slices = size == 0 ? 1 : (size + SLICE_SIZE - 1) >> SLICE_SHIFT;
  size_t align_slices = alignment > SLICE_SIZE ? alignment >> SLICE_SHIFT : 1;
  block_t *b = superblock_take_slices(heap, slices, align_slices);
  purger_defer(false);
  if (b == NULL) return NULL;
  uint8_t fresh = b->flags & BLOCK_FRESH;
  block_init(b, heap, CLASS_LARGE, slices << SLICE_SHIFT);
  b->flags = fresh;
  b->carved = 1;
  /* Always full: its one remote free must reach the owner through the notified stack. */
  atomic_store_explicit(&b->remote, (uintptr_t)BLOCK_FULL, memory_order_relaxed);
  chunk_t *c = (chunk_t *)b->start;
  if (tag_load(c) != 0) tag_store(c, 0);   /* a stale tag from an earlier chunk here; fresh runs stay untouched */
  count_add(&heap->block_counts.large_live, 1);
  count_add(&heap->block_counts.large_bytes, (ptrdiff_t)b->chunk_size);
  return chunk_hand_out(heap, b, c);
}

/* Resizes a large object in place, on its owner thread: grows into the free slices right behind
 * its run, or gives the tail slices back. Returns false when it cannot (the caller copies). */
bool heap_resize_large(heap_t *heap, superblock_t *sb, block_t *b, size_t size) {
  block_verify(b);
  size_t want = size == 0 ? 1 : (size + SLICE_SIZE - 1) >> SLICE_SHIFT;
  size_t have = b->slices;
  if (want == have) return true;
  size_t end = (size_t)b->index + want;
  if (want > have) {
    if (end > SLICES_PER_SB) return false;
    uint64_t extra = slice_run_mask((size_t)b->index + have, want - have);
    if ((sb->free_slices & extra) != extra) return false;
    heap_dirty_sub(heap, (size_t)__builtin_popcountll(extra & sb->dirty_slices & ~sb->lazy_slices));
    sb->free_slices &= ~extra;
    stats_dirty_changed(heap, sb->dirty_slices, sb->dirty_slices | extra);
    sb->dirty_slices |= extra;
    sb->lazy_slices &= ~extra;
    sb->used_slices += (uint32_t)(want - have);
    heap->active_slices += want - have;
    for (size_t i = b->index + have; i < end; i++) slice_map_set(sb, i, b->index);
  } else {
    uint64_t tail = slice_run_mask(end, have - want);
    sb->free_slices |= tail;
    sb->used_slices -= (uint32_t)(have - want);
    heap->active_slices -= have - want;
    heap->dirty_free += have - want;
  }
  counter_add(&heap->counters.free_bytes, b->chunk_size);
  count_add(&heap->block_counts.large_bytes, (ptrdiff_t)(want << SLICE_SHIFT) - (ptrdiff_t)b->chunk_size);
  b->slices = (uint8_t)want;
  b->chunk_size = (uint32_t)(want << SLICE_SHIFT);
  block_set_limit(b, b->chunk_size);
  b->div_magic = UINT64_MAX / b->chunk_size + 1;
  block_seal(b);
  counter_add(&heap->counters.alloc_bytes, b->chunk_size);
  return true;
}
