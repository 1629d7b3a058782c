/*
 * abandon.c — heaps losing and regaining an owner. When its thread exits (or apex_heap_delete
 * runs) a heap frees what it can, then goes onto the abandoned list with whatever is still live
 * in it; a new thread adopts an abandoned heap wholesale before making a new one. Meanwhile,
 * whoever holds the heaps lock acts as its owner: a thread that needs a fresh superblock first
 * collects remote frees stranded in abandoned heaps, the purge thread collects and purges them,
 * a remote freer may claim one for a moment. So objects freed after their thread died are reused
 * rather than leaked.
 *
 * Owns: the abandoned list and its count, giving back a heap's empty blocks and free slices on
 *       its owner's behalf, claiming an abandoned heap.
 * Must never: touch an abandoned heap without the heaps lock (docs/ARCHITECTURE.md, "Who owns
 * what"); wait for that lock on a helping path (its caller may hold a shared_lock, which ranks
 * after it); hand a deleted explicit heap to a new thread.
 */
#include "internal.h"

static heap_t *g_abandoned;
static _Atomic size_t g_abandoned_count;

/* Retires every empty block of a heap and releases empty superblocks (all of them when the heap
 * is abandoned). */
static void heap_retire_empty(heap_t *heap) {
  superblock_t *sb = heap->superblocks;
  while (sb != NULL) {
    superblock_t *next = sb->next;
    if (sb->used_slices == 0) {
      if (heap->retire_all) superblock_release(heap, sb);
      sb = next;
      continue;
    }
    for (size_t i = 1; i < SLICES_PER_SB; i++) {
      if (((sb->free_slices >> i) & 1) || sb->slice_head[i] != i) continue;
      block_t *b = &sb->blocks[i];
      if (b->used != 0) continue;
      /* Retiring the last block may release (even unmap) the superblock: stop touching it. */
      bool last = sb->used_slices == b->slices;
      block_retire_if_empty(heap, sb, b);
      if (last) break;
    }
    sb = next;
  }
}

/* The free slices of the heap's superblocks that blocks have used go back to the OS. Only ever on
 * the owner's behalf (its thread, or someone holding an abandoned heap under the heaps lock): the
 * owner may reuse a free slice at any moment, so the purge thread never does this. */
static void heap_purge_free(heap_t *heap) {
  for (superblock_t *sb = heap->superblocks; sb != NULL; sb = sb->next) superblock_purge_free(heap, sb);
}

/* Collects every remote free of a heap and gives back what is empty (apex_collect, on the
 * owner's behalf). */
void heap_collect_now(heap_t *heap) {
  purger_defer(true);
  bool keep = heap->retire_all;
  heap->retire_all = true;
  heap_collect_all_remote(heap);
  heap_retire_empty(heap);
  heap_purge_free(heap);
  heap->retire_all = keep;
  purger_defer(false);
}

/* The heap loses its owner (thread exit, apex_heap_delete): free what can be freed, then put it
 * on the abandoned list with whatever is still live in it, for a new thread to adopt. */
void heap_abandon(heap_t *heap) {
  purger_defer(true);
  heap->retire_all = true;
  heap_collect_all_remote(heap);
  heap_retire_empty(heap);
  /* Its free slices are purged by the purge thread once the heap has been abandoned for
   * opt.decay_ms (under the heaps lock, which makes it the owner): a thread pool that replaces
   * its threads adopts the heap warm instead of faulting its pages in again. */
  heap->abandoned_ns = os_now_ns();
  heap->idle_purged = false;
  atomic_store_explicit(&heap->thread_id, 0, memory_order_relaxed);
  heaps_lock();
  heap->magic = 0;                      /* the handle is gone; the memory lives on */
  heap->is_default = false;
  atomic_store(&heap->abandoned, true);
  heap->abandoned_next = g_abandoned;
  g_abandoned = heap;
  atomic_fetch_add_explicit(&g_abandoned_count, 1, memory_order_relaxed);
  /* A remote free that read `abandoned` as false after its push (remote.c) raised no flag: its
   * chunk was published before the store above, so this scan (as owner: we hold the heaps lock
   * and the heap is on the list) finds it. Without it such a chunk waited for adoption. */
  purger_defer(true);
  heap_collect_all_remote(heap);
  heap_retire_empty(heap);
  heaps_unlock();
  purger_defer(false);
  purger_kick();
  /* A clean point, even at thread exit: a late calloc of pthread_create is served by
   * heap_alloc_late, never by adopting this heap back. */
  purger_defer(false);
}

/* Takes a heap off the abandoned list for a new thread to adopt (heaps lock held); NULL when
 * there is none. A deleted explicit heap is never adopted: its struct is the handle the program
 * had, and adopting it would make that stale handle valid again, an alias of this thread's default
 * heap. It stays abandoned (swept and purged like any other) until its objects are gone. */
heap_t *heap_take_abandoned_locked(void) {
  heap_t **link = &g_abandoned;
  while (*link != NULL && (*link)->explicit_handle) link = &(*link)->abandoned_next;
  heap_t *heap = *link;
  if (heap != NULL) {
    *link = heap->abandoned_next;
    atomic_fetch_sub_explicit(&g_abandoned_count, 1, memory_order_relaxed);
    heap->abandoned_next = NULL;
    heap->retire_all = false;
    heap->limit = 0;
    heap->parent = NULL;
    heap->magic = HEAP_MAGIC ^ (uintptr_t)heap;
    atomic_store_explicit(&heap->abandoned, false, memory_order_relaxed);
  }
  return heap;
}

/* A thread freeing into an abandoned heap may act as its owner for a moment: with the heaps lock
 * held and the heap still on the abandoned list, nobody else can touch it. Returns true with the
 * lock held. Never waits: a busy lock means the caller queues the chunk instead. */
bool heap_try_claim_abandoned(heap_t *heap) {
  if (!heaps_trylock()) return false;
  if (atomic_load_explicit(&heap->abandoned, memory_order_relaxed)) {
    purger_defer(true);                 /* released by the caller: purger_defer(false) */
    return true;
  }
  heaps_unlock();
  return false;
}

/* Frees what other threads returned to abandoned heaps, so their memory can be reused. With
 * `all`, every abandoned heap is swept (apex_collect), not only those with pending frees. */
static void collect_abandoned(bool all) {
  if (atomic_load_explicit(&g_abandoned_count, memory_order_relaxed) == 0) return;
  /* Helping (a slow path that wants a superblock) never waits: it may hold a shared_lock, which
   * ranks after the heaps lock. apex_collect waits. */
  if (all) heaps_lock();
  else if (!heaps_trylock()) return;
  purger_defer(true);
  for (heap_t *heap = g_abandoned; heap != NULL; heap = heap->abandoned_next) {
    if (!all && !atomic_load_explicit(&heap->remote_pending, memory_order_relaxed) &&
        atomic_load_explicit(&heap->notified, memory_order_relaxed) == NULL)
      continue;
    atomic_exchange_explicit(&heap->remote_pending, false, memory_order_acq_rel);  /* then scan: see remote.c */
    heap_collect_all_remote(heap);
    heap_retire_empty(heap);
    heap->idle_purged = false;
    if (all) heap_purge_free(heap);     /* apex_collect: at once (we own it under the heaps lock) */
  }
  heaps_unlock();
  purger_defer(false);
}

void heap_collect_abandoned(heap_t *helper) {
  (void)helper;
  collect_abandoned(false);
}

void heap_collect_abandoned_all(void) { collect_abandoned(true); }   /* apex_collect */

/* The purge thread: frees that other threads queued into abandoned heaps (their claim lost a race)
 * are collected, so the blocks they empty go back too. Heaps with no owner thread only, under the
 * heaps lock (which makes the holder their owner), and never waiting for that lock. */
void heap_collect_abandoned_idle(uint64_t now_ns, uint64_t decay_ns) {
  if (atomic_load_explicit(&g_abandoned_count, memory_order_relaxed) == 0) return;
  if (!heaps_trylock()) return;
  purger_defer(true);
  for (heap_t *heap = g_abandoned; heap != NULL; heap = heap->abandoned_next) {
    bool due = now_ns - heap->abandoned_ns >= decay_ns;
    if (atomic_load_explicit(&heap->remote_pending, memory_order_relaxed) ||
        atomic_load_explicit(&heap->notified, memory_order_relaxed) != NULL) {
      atomic_exchange_explicit(&heap->remote_pending, false, memory_order_acq_rel);  /* then scan: see remote.c */
      heap_collect_all_remote(heap);
      heap_retire_empty(heap);
      heap->idle_purged = false;
    }
    if (due && !heap->idle_purged) {
      heap_purge_free(heap);
      heap->idle_purged = true;
    }
  }
  heaps_unlock();
  purger_defer(false);
}
