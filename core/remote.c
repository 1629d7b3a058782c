/*
 * remote.c — frees that cross threads. A chunk freed by a thread that does not own its
 * superblock is pushed onto the owning heap's lock-free stack (one CAS); the owner takes the whole
 * stack with one exchange and frees the batch locally when its allocation slow path runs.
 *
 * Owns: the remote stack protocol.
 * Must never: touch another heap's blocks or free lists (only the owner does that), or lock.
 *
 * Memory ordering: the pusher writes the link, then publishes with a release CAS; the owner's
 * acquire exchange makes the links visible. A chunk in a remote stack still counts as used in
 * its block, so the block (and its superblock) cannot be retired while the chunk is in flight.
 */
#include "internal.h"

void remote_push(heap_t *owner, chunk_t *c) {
  chunk_t *head = atomic_load_explicit(&owner->remote, memory_order_relaxed);
  do {
    c->next_enc = (uintptr_t)head;
  } while (!atomic_compare_exchange_weak_explicit(&owner->remote, &head, c,
                                                  memory_order_release, memory_order_relaxed));
}

/* A free from a thread that does not own the chunk's superblock. Normally one push; when the
 * owner thread has exited, the chunk is freed on the spot (if the heap can be claimed without
 * waiting), so memory freed after its thread died is reusable at once. */
apex_noinline void remote_free(heap_t *owner, superblock_t *sb, block_t *b, chunk_t *c) {
  if (apex_unlikely(atomic_load_explicit(&owner->abandoned, memory_order_relaxed)) &&
      heap_try_claim_abandoned(owner)) {
    _Atomic(uint64_t) *word = live_word(sb, c);
    uint64_t w = atomic_load_explicit(word, memory_order_relaxed);
    if (apex_unlikely(!(w & live_bit(c)))) {
      heaps_unlock();
      apex_fatal("double free", c, b->cls);
    }
    atomic_store_explicit(word, w & ~live_bit(c), memory_order_relaxed);
    heap_free_local(owner, sb, b, c);
    heaps_unlock();
    return;
  }
  remote_push(owner, c);
}

/* Frees every chunk waiting in the heap's remote stack. Each is checked against its live bit
 * before anything else, so a chunk pushed twice (a double free from other threads) is caught on
 * its second appearance instead of corrupting a free list. */
apex_noinline bool remote_drain(heap_t *heap) {
  if (atomic_load_explicit(&heap->remote, memory_order_relaxed) == NULL) return false;
  chunk_t *c = atomic_exchange_explicit(&heap->remote, NULL, memory_order_acquire);
  size_t n = 0;
  while (c != NULL) {
    chunk_t *next = (chunk_t *)c->next_enc;
    superblock_t *sb = superblock_base(c);
    block_t *b = block_of(sb, c);
    apex_assert(atomic_load_explicit(&sb->heap, memory_order_relaxed) == heap);
    _Atomic(uint64_t) *word = live_word(sb, c);
    uint64_t bit = live_bit(c);
    uint64_t w = atomic_load_explicit(word, memory_order_relaxed);
    if (apex_unlikely(!(w & bit))) apex_fatal("double free", c, b->cls);
    atomic_store_explicit(word, w & ~bit, memory_order_relaxed);
    heap_free_local(heap, sb, b, c);
    c = next;
    n++;
  }
  counter_add(&heap->counters.remote_free_count, n);
  return true;
}
