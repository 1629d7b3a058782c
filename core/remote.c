/*
 * remote.c — frees that cross threads. A chunk freed by a thread that does not own its superblock
 * is tagged remote at once and gathered in the freeing thread's batch for its block; the batch is
 * pushed onto the block's lock-free `remote` list as one chain (one CAS on a line the owner rarely
 * touches), with the header and descriptor checks paid once per batch. The owner collects a block's list when it needs that block — when the block's local free list
 * runs dry in the allocation slow path — so the chunks it reuses are the ones it just touched. A
 * block that left its class queue because it was full tells its owner about its first remote free
 * through the heap's `notified` stack, so it can come back into the queue.
 * (This is mimalloc's thread-free list with its delayed-free flag.)
 *
 * Owns: the remote lists, each thread's batches of unpublished remote frees, the full-block
 *       notification protocol, collection.
 * Must never: touch another heap's local free lists or queues; lock (except claiming an abandoned
 * heap with a trylock, which never waits); touch a block after publishing a chunk in it, unless
 * that same CAS moved the block to NOTIFIED; hold back a chunk of a heap that can be destroyed.
 *
 * The protocol. The list head and the notify state (QUEUED / FULL / NOTIFIED) share one word,
 * `b->remote`, so the freer's single CAS both publishes the chunk (or a chain head..tail of a batch,
 * exactly the same way) and decides whether to notify:
 *   freer:  CAS remote: (head | s) -> (c | s'), where s' = NOTIFIED if s == FULL, else s.
 *           Only if s was FULL: push b on owner->notified. Otherwise b is never touched again.
 *   owner:  collects by clearing the head bits only (the state bits stay);
 *           parks a full block with one CAS (NULL | QUEUED) -> (NULL | FULL), which fails, and
 *           the block stays queued, when a remote free is already there;
 *           never retires a NOTIFIED block (block_retire): it is retired, if empty, only after
 *           it was popped from `notified`, which happens after the freer's push.
 * Once the CAS succeeds, the owner may collect the chunk, empty, retire and unmap the block at
 * any moment; that is why the freer must decide everything in that CAS. With the state in a
 * separate byte, read after the CAS, a large block (always FULL) could be collected and retired
 * by the owner, then notified by the late freer and retired a second time (tests/model/
 * remote_free.pml shows that trace; tests/test_remote_free_window.c forces it).
 *
 * Memory ordering: the freer writes the link, then publishes with the CAS (release); the owner's
 * clearing RMW acquires it. The owner's notified-stack exchange acquires the freer's push.
 * Abandoned heaps: the freer reads `abandoned` again after its CAS (both sequentially
 * consistent) and then raises `remote_pending`; heap_abandon publishes `abandoned`, then scans
 * every block once more. So either that scan finds the chunk, or the flag tells a collector.
 */
#include "internal.h"

#if defined(APEX_DEBUG) && APEX_DEBUG
void (*volatile apex_debug_pause_hook)(int point);
#endif

/* The CAS that published the chunk moved b from FULL to NOTIFIED: b cannot be retired until the
 * owner pops it from `notified`, so it is safe to link it there. */
static apex_noinline void notify_owner(heap_t *owner, block_t *b) {
  block_t *top = atomic_load_explicit(&owner->notified, memory_order_relaxed);
  do {
    b->notify_next = top;
  } while (!atomic_compare_exchange_weak(&owner->notified, &top, b));   /* seq_cst: see heap_abandon */
}

/* Publishes a chain of chunks of b (head -> ... -> tail, every one tagged remote, linked with b's
 * key) to b's remote list: one CAS, whatever the chain's length. The superblock header (whose
 * owner pointer is followed) and the block descriptor (which the CAS and the owner's collection
 * trust) are verified here, once per chain. When the owner thread has exited and the heap can be
 * claimed without waiting, the chain is collected on the spot (block_collect checks each chunk as
 * the owner would), so memory freed after its thread died is reusable at once. */
static apex_noinline void remote_publish(block_t *b, chunk_t *head, chunk_t *tail) {
  superblock_t *sb = superblock_of_block(b);
  if (apex_unlikely(sb->check != superblock_check(sb))) superblock_corrupted(sb);   /* kind: free_checked */
  heap_t *owner = atomic_load_explicit(&sb->heap, memory_order_relaxed);
  block_verify(b);
  bool claimed = apex_unlikely(atomic_load_explicit(&owner->abandoned, memory_order_relaxed)) &&
                 heap_try_claim_abandoned(owner);
  if (!claimed) apex_debug_pause(APEX_PAUSE_BEFORE_REMOTE_PUBLISH);   /* `abandoned` read, not yet pushed */
  uintptr_t word = atomic_load_explicit(&b->remote, memory_order_relaxed), next;
  do {
    tail->next_enc = link_encode(b, tail, remote_chunks(word));   /* encoded like local links: see block_collect */
    next = (uintptr_t)head | (remote_state(word) == BLOCK_FULL ? BLOCK_NOTIFIED : remote_state(word));
  } while (!atomic_compare_exchange_weak(&b->remote, &word, next));
  /* From here on b may be gone, unless this CAS made it NOTIFIED or this thread holds the
   * abandoned heap (then nobody else can retire b). */
  if (claimed) {
    bool retired;
    if (remote_state(word) == BLOCK_FULL) {
      notify_owner(owner, b);
      heap_collect_notified(owner);
    } else {
      block_collect(owner, sb, b, &retired);
    }
    heaps_unlock();
    purger_defer(false);
    return;
  }
  apex_debug_pause(APEX_PAUSE_AFTER_REMOTE_PUBLISH);
  if (apex_unlikely(remote_state(word) == BLOCK_FULL)) notify_owner(owner, b);
  /* After the push, so a collector that clears the flag and then scans cannot miss the chunk. */
  if (apex_unlikely(atomic_load(&owner->abandoned)))
    atomic_store_explicit(&owner->remote_pending, true, memory_order_release);
}

/* Never written: every heap points here until it holds its first batch (then it maps a table of
 * its own), so the fast case below needs no test for a missing table. */
remote_batches_t g_no_batches;

/* Publishes one batch and empties its slot. */
static apex_noinline void batch_publish(remote_batches_t *out, remote_batch_t *batch) {
  remote_publish(batch->block, batch->head, batch->tail);
  out->open &= ~((uint64_t)1 << (batch - out->slot));
  *batch = (remote_batch_t){ NULL, NULL, NULL, 0 };
}

/* Publishes every batch of this thread: on its allocation slow path, apex_collect, thread exit. */
void remote_flush_all(heap_t *mine) {
  remote_batches_t *out = mine->outgoing;
  while (out->open != 0) batch_publish(out, &out->slot[__builtin_ctzll(out->open)]);
}

/* The slot a block's frees gather in: the class spreads one owner's current blocks (often in one
 * superblock) over the slots, the superblock's address different owners' blocks of one class. */
apex_inline remote_batch_t *batch_slot(remote_batches_t *out, const block_t *b) {
  uint64_t sb_mix = ((uint64_t)(uintptr_t)b >> SB_SHIFT) * 0x9E3779B97F4A7C15ULL;
  return &out->slot[(b->cls + (sb_mix >> 58)) & (REMOTE_BATCH_SLOTS - 1)];
}

/* A free that does not join an open batch: it opens one for b (publishing what held the slot) or,
 * where holding frees back is not allowed, is published at once. */
static apex_noinline void remote_free_slow(heap_t *owner, heap_t *mine, remote_batch_t *batch, block_t *b, chunk_t *c) {
  if (mine == &g_empty_heap) {
    /* A thread without a heap (it never allocated, or is past its exit): this free is published
     * at once, and the thread gets a heap to hold its next ones (heap_for_thread registers its
     * exit, which flushes them; it refuses past that exit and during start-up). */
    remote_publish(b, c, c);
    (void)heap_for_thread();
    return;
  }
  if (b->chunk_size > REMOTE_BATCH_CHUNK_MAX || !atomic_load_explicit(&owner->is_default, memory_order_relaxed)) {
    remote_publish(b, c, c);
    return;
  }
  remote_batches_t *out = mine->outgoing;
  if (out == &g_no_batches) {
    /* Kept for the heap's life (heap structs are never unmapped; an adopter reuses it). */
    out = os_map(sizeof *out);
    if (out == NULL) { remote_publish(b, c, c); return; }
    atomic_fetch_add_explicit(&g_heap_metadata, sizeof *out, memory_order_relaxed);
    mine->outgoing = out;
    batch = batch_slot(out, b);
  }
  if (batch->block != NULL) batch_publish(out, batch);
  c->next_enc = link_encode(b, c, NULL);
  *batch = (remote_batch_t){ b, c, c, 1 };
  out->open |= (uint64_t)1 << (batch - out->slot);
}

/* A free from a thread that does not own the chunk's superblock (free_checked has checked that c
 * is a live chunk start of b). The chunk is tagged remote at once, so a second free of it aborts
 * as a double free wherever it waits. Then it joins this thread's batch for b, published when a
 * free for another block needs the batch's slot, when it holds REMOTE_BATCH_MAX chunks, or at the
 * latest on this thread's next allocation slow path, apex_collect or exit (remote_flush_all). A
 * chunk in a batch still counts as used, so b cannot be retired meanwhile. (Batching the messages
 * to one owner is snmalloc's remote cache; holding frees back until a convenient moment, mimalloc's
 * delayed free.) Only a default heap's chunks are held: no thread can destroy such a heap (nor
 * one that was ever a default heap: abandoned, it is no valid handle), while an explicit heap may
 * be destroyed, or refuse allocations over its limit, while its chunks wait. Large chunks are
 * published at once, and so is a thread's first remote free before it has a heap.
 * The fast case (b's batch is open) touches one slot; g_no_batches's slots are never open. */
apex_noinline void remote_free(heap_t *owner, block_t *b, chunk_t *c) {
  apex_assert(((uintptr_t)c & REMOTE_STATE_MASK) == 0);   /* the state bits are free */
  tag_store(c, chunk_tag_free(c) ^ TAG_REMOTE);
  heap_t *mine = tls_heap;
  remote_batches_t *out = mine->outgoing;
  remote_batch_t *batch = batch_slot(out, b);
  if (apex_unlikely(batch->block != b)) {
    remote_free_slow(owner, mine, batch, b, c);
    return;
  }
  c->next_enc = link_encode(b, c, batch->head);
  batch->head = c;
  if (apex_unlikely(++batch->count == REMOTE_BATCH_MAX)) batch_publish(out, batch);
}

/* Moves every chunk of b's remote list to its local free list. Each chunk's tag is tested before
 * anything else: it must say "remote". A chunk pushed twice (two threads freeing it at once) says
 * "local" on its second appearance, since the first one re-tagged it, and is caught instead of
 * corrupting a list. Afterwards a block that was full returns to
 * its queue, and an empty one may be retired (the caller must then not use b). */
size_t block_collect(heap_t *heap, superblock_t *sb, block_t *b, bool *retired) {
  *retired = false;
  if (remote_chunks(atomic_load_explicit(&b->remote, memory_order_relaxed)) == NULL) return 0;
  block_verify(b);
  /* Takes the list and keeps the notify state: a NOTIFIED block stays pinned until popped. */
  chunk_t *c = remote_chunks(atomic_fetch_and_explicit(&b->remote, REMOTE_STATE_MASK, memory_order_acquire));
  chunk_t *first = c, *last = NULL;
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
    last = c;
    c = next;
    n++;
  }
  /* Remote links are encoded as local ones (link_encode with b's key): the checked chain becomes
   * the front of the local list as it is, with only its last link re-encoded. */
  if (last != NULL) {
    last->next_enc = link_encode(b, last, b->free);
    b->free = first;
  }
  b->used -= (uint32_t)n;
  counter_add(&heap->counters.free_bytes, n * b->chunk_size);
  counter_add(&heap->counters.remote_free_count, n);
  if (b->used == 0 || (b->flags & BLOCK_IN_FULL)) *retired = block_free_slow(heap, sb, b);
  return n;
}

/* Before a block leaves its queue as full: FULL, in one CAS that fails when a remote free is
 * already there. Returns true then (the caller collects instead of parking the block). A NOTIFIED
 * block is already on the stack and is left as it is: popping it brings it back. */
bool block_arm_full(block_t *b) {
  uintptr_t word = atomic_load_explicit(&b->remote, memory_order_relaxed);
  while (remote_chunks(word) == NULL) {
    if (remote_state(word) != BLOCK_QUEUED) return false;
    /* Release: the freer whose CAS finds this FULL will write b->notify_next, which this owner
     * read when it last popped b from `notified`; the release orders that read before the write. */
    if (atomic_compare_exchange_weak_explicit(&b->remote, &word, (uintptr_t)BLOCK_FULL,
                                              memory_order_release, memory_order_relaxed))
      return false;
  }
  return true;
}

/* The owner has popped b from `notified`: later remote frees need not notify (until b is parked
 * again), and an empty b may be retired from now on. The list is left as it is. */
void block_set_queued(block_t *b) {
  atomic_fetch_and_explicit(&b->remote, ~REMOTE_STATE_MASK, memory_order_relaxed);
}

/* A parked block comes back into its queue: FULL -> QUEUED. A NOTIFIED one stays NOTIFIED, as it
 * is on the stack (or about to be); popping it sets QUEUED. */
void block_unarm_full(block_t *b) {
  uintptr_t word = atomic_load_explicit(&b->remote, memory_order_relaxed);
  while (remote_state(word) == BLOCK_FULL &&
         !atomic_compare_exchange_weak_explicit(&b->remote, &word, word & ~REMOTE_STATE_MASK,
                                                memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* Brings back the full blocks that other threads freed into. */
void heap_collect_notified(heap_t *heap) {
  if (atomic_load(&heap->notified) == NULL) return;             /* seq_cst: see heap_abandon */
  block_t *b = atomic_exchange_explicit(&heap->notified, NULL, memory_order_acquire);
  while (b != NULL) {
    block_t *next = b->notify_next;           /* read before b can be notified again */
    superblock_t *sb = superblock_of_block(b);
    block_set_queued(b);                      /* NOTIFIED -> QUEUED: retirable from here on */
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
      if (remote_chunks(atomic_load(&b->remote)) == NULL) continue;   /* seq_cst: see heap_abandon */
      /* Collecting may retire the block and even release the superblock: stop after the last. */
      bool last = sb->used_slices == b->slices, retired;
      block_collect(heap, sb, b, &retired);
      if (retired && last) break;                 /* the superblock may be gone */
    }
    sb = next;
  }
}
