/*
 * queue.c — a heap's class queues and the small-object allocation slow path. Each size class has
 * a queue of the heap's blocks that may have a free chunk; the fast path pops from the head block
 * (heap->current[cls]) and comes here when that block is dry. The slow path walks the queue for
 * chunks freed before, parks full blocks out of it (BLOCK_IN_FULL) and starts a new block only as
 * a last resort.
 *
 * Owns: heap->current / heap->last and the blocks' queue links, the slow path's walk.
 * Must never: be called by a thread that does not own the heap (the queues are owner-private and
 * unlocked); let anything re-enter the heap during the walk (see heap_malloc_slow).
 */
#include "internal.h"

/* ---- Class queues ---------------------------------------------------------------------------- */
void heap_queue_push_front(heap_t *heap, block_t *b) {
  size_t cls = b->cls;
  block_t *first = heap->current[cls];
  b->prev = NULL;
  if (first == &g_empty_block) {
    b->next = NULL;
    heap->last[cls] = b;
  } else {
    b->next = first;
    first->prev = b;
  }
  heap->current[cls] = b;
}

void heap_queue_push_back(heap_t *heap, block_t *b) {
  size_t cls = b->cls;
  block_t *last = heap->last[cls];
  b->next = NULL;
  b->prev = last;
  if (last == NULL) heap->current[cls] = b; else last->next = b;
  heap->last[cls] = b;
}

block_t *heap_queue_to_front(heap_t *heap, block_t *b) {
  if (heap->current[b->cls] != b) {
    heap_queue_remove(heap, b);
    heap_queue_push_front(heap, b);
  }
  return b;
}

void heap_queue_remove(heap_t *heap, block_t *b) {
  size_t cls = b->cls;
  if (b->prev) b->prev->next = b->next; else heap->current[cls] = b->next ? b->next : &g_empty_block;
  if (b->next) b->next->prev = b->prev; else heap->last[cls] = b->prev;
  b->next = b->prev = NULL;
}

/* ---- Allocation slow paths ------------------------------------------------------------------- */

/* The class queue's head had no free chunk. Bring back full blocks that received remote frees;
 * then walk the queue preferring chunks freed before (collecting a block's remote frees when its
 * local list is dry) over carving fresh memory; park full blocks; start a new block only as a
 * last resort. */
static void *malloc_from_queue(heap_t *heap, size_t cls) {
  heap_collect_notified(heap);
  block_t *carvable = NULL;
  block_t *b = heap->current[cls];
  while (b != &g_empty_block && b != NULL) {
    block_t *next = b->next;
    superblock_t *sb = superblock_of_block(b);
    bool retired = false;
    if (b->free == NULL) block_collect(heap, sb, b, &retired);
    if (retired) { b = next; continue; }               /* collecting emptied it: gone */
    if (b->free != NULL) return block_pop(heap, heap_queue_to_front(heap, b), b->free);
    if (b->carved < b->capacity) {
      if (carvable == NULL) carvable = b;
    } else if (block_arm_full(b)) {
      block_collect(heap, sb, b, &retired);
      if (!retired && b->free != NULL) return block_pop(heap, heap_queue_to_front(heap, b), b->free);
    } else {
      heap_queue_remove(heap, b);
      b->flags |= BLOCK_IN_FULL;
      count_add(&heap->block_counts.full[cls], 1);
    }
    b = next;
  }
  if (carvable == NULL) {
    carvable = superblock_take_slices(heap, g_class_slices[cls], 1);
    if (carvable == NULL) return NULL;
    block_init(carvable, heap, cls, g_class_size[cls]);
    heap_queue_push_front(heap, carvable);
  } else {
    heap_queue_to_front(heap, carvable);
  }
  block_extend(carvable);
  return block_pop(heap, carvable, carvable->free);
}

/* The walk above holds `next` pointers into the queue: nothing may re-enter this heap meanwhile
 * (the purge thread's pthread_create would, through calloc). The bracket ends at a clean point. */
apex_noinline void *heap_malloc_slow(heap_t *heap, size_t size, size_t cls) {
  (void)size;
  purger_defer(true);
  if (apex_unlikely(heap->outgoing->open != 0)) remote_flush_all(heap);   /* this thread's remote frees */
  void *p = malloc_from_queue(heap, cls);
  purger_defer(false);
  return p;
}
