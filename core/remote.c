/*
 * remote.c — frees that cross threads. A chunk freed by a thread that does not own its superblock
 * is pushed onto its block's lock-free `remote` list (one CAS on a line the owner rarely touches).
 * The owner collects a block's list with one exchange when it needs that block — when the block's
 * local free list runs dry in the allocation slow path — so the chunks it reuses are the ones it
 * just touched. A block that left its class queue because it was full tells its owner about its
 * first remote free through the heap's `notified` stack, so it can come back into the queue.
 * (This is mimalloc's thread-free / delayed-free design.)
 *
 * Owns: the remote lists, the full-block notification protocol, collection.
 * Must never: touch another heap's local free lists or queues; lock (except claiming an abandoned
 * heap with a trylock, which never waits).
 *
 * Memory ordering: the freer writes the link, then publishes with a CAS; the owner's exchange
 * acquires it. `full_state` and `remote` are accessed sequentially consistently so that of a freer
 * (push, then read state) and an owner marking a block full (set state, then read remote) at least
 * one sees the other: either the owner finds the chunk, or the freer sees FULL and notifies.
 * A chunk in a remote list still counts as used in its block, so the block (and its superblock)
 * cannot be retired while the chunk is in flight.
 */
#include "internal.h"

static void notify_owner(heap_t *owner, block_t *b) {
  uint8_t expected = BLOCK_FULL;
  if (!atomic_compare_exchange_strong(&b->full_state, &expected, BLOCK_NOTIFIED)) return;
  block_t *top = atomic_load_explicit(&owner->notified, memory_order_relaxed);
  do {
    b->notify_next = top;
  } while (!atomic_compare_exchange_weak_explicit(&owner->notified, &top, b,
                                                  memory_order_release, memory_order_relaxed));
}

/* A free from a thread that does not own the chunk's superblock. When the owner thread has exited,
 * the chunk is freed on the spot if the heap can be claimed without waiting, so memory freed
 * after its thread died is reusable at once. */
apex_noinline void remote_free(heap_t *owner, superblock_t *sb, block_t *b, chunk_t *c) {
  block_verify(b);                      /* the push and the owner's collection trust it */
  if (apex_unlikely(atomic_load_explicit(&owner->abandoned, memory_order_relaxed))) {
    if (heap_try_claim_abandoned(owner)) {
      heap_free_local(owner, sb, b, c);      /* the caller checked c is not free */
      heaps_unlock();
      purger_defer(false);
      return;
    }
    atomic_store_explicit(&owner->remote_pending, true, memory_order_relaxed);
  }
  tag_store(c, chunk_tag_free(c) ^ TAG_REMOTE);
  chunk_t *head = atomic_load_explicit(&b->remote, memory_order_relaxed);
  do {
    c->next_enc = link_encode(b, c, head);      /* encoded like local links: see block_collect */
  } while (!atomic_compare_exchange_weak(&b->remote, &head, c));
  if (apex_unlikely(atomic_load(&b->full_state) == BLOCK_FULL)) notify_owner(owner, b);
}

/* Moves every chunk of b's remote list to its local free list. Each chunk's tag is tested before
 * anything else: it must say "remote". A chunk pushed twice (two threads freeing it at once) says
 * "local" on its second appearance, since the first one re-tagged it, and is caught instead of
 * corrupting a list. Afterwards a block that was full returns to
 * its queue, and an empty one may be retired (the caller must then not use b). */
size_t block_collect(heap_t *heap, superblock_t *sb, block_t *b, bool *retired) {
  *retired = false;
  if (atomic_load_explicit(&b->remote, memory_order_relaxed) == NULL) return 0;
  block_verify(b);
  chunk_t *c = atomic_exchange_explicit(&b->remote, NULL, memory_order_acquire);
  chunk_t *local = b->free;
  size_t n = 0;
  link_bounds_t bounds = link_bounds(b);
  while (c != NULL) {
    /* The link must be a chunk start of the block's carved part before it is followed: an
     * overwritten link must not send the owner into memory it does not own, nor into the middle
     * of a live chunk. */
    chunk_t *next = link_decode(b, c);
    if (apex_unlikely(!link_ok_in(bounds, next)))
      apex_fatal("corrupted free list", c, b->cls);
    if (apex_unlikely(tag_load(c) != (chunk_tag_free(c) ^ TAG_REMOTE)))
      apex_fatal(tag_load(c) == chunk_tag_free(c) ? "double free" : "write after free", c, b->cls);
    tag_store(c, chunk_tag_free(c));
    c->next_enc = link_encode(b, c, local);
    local = c;
    c = next;
    n++;
  }
  b->free = local;
  b->used -= (uint32_t)n;
  counter_add(&heap->counters.free_bytes, n * b->chunk_size);
  counter_add(&heap->counters.remote_free_count, n);
  if (b->used == 0 || (b->flags & BLOCK_IN_FULL)) *retired = block_free_slow(heap, sb, b);
  return n;
}

/* Before a block leaves its queue as full: announce FULL, then look once more for remote frees.
 * Returns true when some raced in (the caller collects them instead of parking the block). A
 * NOTIFIED block is already on the stack and is left as it is. */
bool block_arm_full(block_t *b) {
  uint8_t expected = BLOCK_QUEUED;
  atomic_compare_exchange_strong(&b->full_state, &expected, BLOCK_FULL);
  if (atomic_load(&b->remote) == NULL) return false;
  expected = BLOCK_FULL;
  atomic_compare_exchange_strong(&b->full_state, &expected, BLOCK_QUEUED);
  return true;
}

/* Brings back the full blocks that other threads freed into. */
void heap_collect_notified(heap_t *heap) {
  if (atomic_load_explicit(&heap->notified, memory_order_relaxed) == NULL) return;
  block_t *b = atomic_exchange_explicit(&heap->notified, NULL, memory_order_acquire);
  while (b != NULL) {
    block_t *next = b->notify_next;           /* read before b can be notified again */
    superblock_t *sb = superblock_of_block(b);
    atomic_store(&b->full_state, BLOCK_QUEUED);
    bool retired;
    if (block_collect(heap, sb, b, &retired) == 0) {
      if (b->used == 0) {
        block_free_slow(heap, sb, b);         /* retirement was deferred while on the stack */
      } else if ((b->flags & BLOCK_IN_FULL) && block_arm_full(b)) {
        block_collect(heap, sb, b, &retired);
      }
    }
    b = next;
  }
}

/* Collects every remote free of a heap: at thread exit and for abandoned heaps. */
void heap_collect_all_remote(heap_t *heap) {
  heap_collect_notified(heap);
  superblock_t *sb = heap->superblocks;
  while (sb != NULL) {
    superblock_t *next = sb->next;
    for (size_t i = 1; i < SLICES_PER_SB; i++) {
      if (((sb->free_slices >> i) & 1) || sb->slice_head[i] != i) continue;
      block_t *b = &sb->blocks[i];
      if (atomic_load_explicit(&b->remote, memory_order_relaxed) == NULL) continue;
      /* Collecting may retire the block and even release the superblock: stop after the last. */
      bool last = sb->used_slices == b->slices, retired;
      block_collect(heap, sb, b, &retired);
      if (retired && last) break;                 /* the superblock may be gone */
    }
    sb = next;
  }
}
