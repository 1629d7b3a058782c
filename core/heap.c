/*
 * heap.c — a heap's life: thread-local heaps (one per thread, made or adopted on its first
 * allocation, abandoned at its exit), the list of every heap ever made, the arena heap structs are
 * carved from and the recycling of destroyed ones, and what fork does to all of them.
 *
 * Owns: g_empty_block, g_empty_heap and tls_heap, the heaps lock, the list of all heaps, the
 *       heap-struct arena and the list of recycled structs, the fork handlers.
 * Must never: unmap a heap struct (a remote free may still read one); touch a heap it does not own
 * (owners: docs/ARCHITECTURE.md, "Who owns what"); wait for the heaps lock while holding a
 * shared_lock (the lock order is in docs/ARCHITECTURE.md, "Locks").
 *
 * Thread exit: the heap frees what it can, then goes onto the abandoned list with whatever is
 * still live in it (abandon.c). A new thread adopts an abandoned heap wholesale before making a
 * new one.
 */
#include "internal.h"

#include <string.h>

block_t g_empty_block;                  /* free == NULL: the fast path always falls through */
heap_t g_empty_heap = { .current = { [0 ... CLASS_COUNT - 1] = &g_empty_block }, .outgoing = &g_no_batches };
APEX_TLS heap_t *tls_heap = &g_empty_heap;
APEX_TLS heap_t *tls_fast_heap = &g_empty_heap;

static pthread_mutex_t g_heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static heap_t *g_all_heaps;             /* every heap ever made; heaps are never unmapped */
static uint8_t *g_heap_arena;           /* heap structs are carved from small mappings */
static size_t g_heap_arena_left;

void heaps_lock(void)   { pthread_mutex_lock(&g_heaps_lock); }
void heaps_unlock(void) { pthread_mutex_unlock(&g_heaps_lock); }
heap_t *heaps_first(void) { return g_all_heaps; }
bool heaps_trylock(void) { return pthread_mutex_trylock(&g_heaps_lock) == 0; }

/* ---- Fork ------------------------------------------------------------------------------------
 * Every lock a heap has is held across fork, so the child never inherits one held by a thread
 * that does not exist there. Lock order (docs/ARCHITECTURE.md, "Locks"): the heaps lock, then
 * shared_locks, then huge_locks. Nobody waits for the heaps lock while holding a shared_lock (the
 * shared sub-heap is made before that lock is taken, and a slow path under it only tries the
 * heaps lock), and a huge_lock is only ever the innermost lock, so taking them all in this order
 * cannot deadlock with any other thread. The list of heaps only grows, under the heaps lock. */
void heaps_fork_prepare(void) {
  pthread_mutex_lock(&g_heaps_lock);
  for (heap_t *heap = g_all_heaps; heap != NULL; heap = heap->all_next) pthread_mutex_lock(&heap->shared_lock);
  for (heap_t *heap = g_all_heaps; heap != NULL; heap = heap->all_next) pthread_mutex_lock(&heap->huge_lock);
}

void heaps_fork_parent(void) {
  for (heap_t *heap = g_all_heaps; heap != NULL; heap = heap->all_next) pthread_mutex_unlock(&heap->huge_lock);
  for (heap_t *heap = g_all_heaps; heap != NULL; heap = heap->all_next) pthread_mutex_unlock(&heap->shared_lock);
  pthread_mutex_unlock(&g_heaps_lock);
}

void heaps_after_fork_child(void) {
  /* Only the forking thread survives. Other threads' heaps may have been mid-update when the
   * fork happened, so they are left untouched (never adopted); their memory stays reserved in
   * the child. The locks are re-created because their holders may not exist in the child. */
  pthread_mutex_init(&g_heaps_lock, NULL);
  /* A thread created in the child may reuse a dead thread's stack and so its thread pointer:
   * forget those owners so nobody mistakes such a heap for its own. */
  for (heap_t *heap = g_all_heaps; heap != NULL; heap = heap->all_next) {
    pthread_mutex_init(&heap->shared_lock, NULL);
    pthread_mutex_init(&heap->huge_lock, NULL);
    if (heap != tls_heap) atomic_store_explicit(&heap->thread_id, 0, memory_order_relaxed);
  }
}

/* ---- Heap life cycle ------------------------------------------------------------------------- */
static heap_t *g_free_heaps;            /* destroyed heap structs, reused before carving new ones */

static void heap_init_fields(heap_t *heap) {
  for (size_t cls = 0; cls < CLASS_COUNT; cls++) {
    heap->current[cls] = &g_empty_block;
    heap->last[cls] = NULL;
  }
  os_random(&heap->rng, sizeof heap->rng);
  heap->rng |= 1;
  pthread_mutex_init(&heap->shared_lock, NULL);
  pthread_mutex_init(&heap->huge_lock, NULL);
  heap->magic = HEAP_MAGIC ^ (uintptr_t)heap;
  heap->outgoing = &g_no_batches;       /* a table is mapped on its first remote-free batch */
}

/* The words of a destroyed heap's struct that other threads keep using at any time: a thread
 * releasing an old quarantine entry of the heap pins the struct and compares its destroy count
 * (security.c). Reuse must leave them as they are, not even clear them for an instant: an eviction
 * reading a cleared count of 0 would take a new struct's first entries for live ones and free
 * chunks of memory the heap gave away (the count must only ever grow), and a cleared pin count
 * would go below zero at that thread's unpin and hang the next destroy. */
_Static_assert(offsetof(heap_t, quarantine_pins) == offsetof(heap_t, destroyed) + sizeof(uint64_t),
               "heap_new_locked keeps destroyed and quarantine_pins as one range");
#define HEAP_KEPT_BEGIN offsetof(heap_t, destroyed)
#define HEAP_KEPT_END   (offsetof(heap_t, quarantine_pins) + sizeof(size_t))

/* A zeroed heap struct (but for its destroy count and pins): a destroyed one, or carved from a
 * small mapping. Heap structs are never unmapped (a remote free may still be reading one), so
 * they are reused instead. */
heap_t *heap_new_locked(void) {
  heap_t *heap = g_free_heaps;
  if (heap != NULL) {
    g_free_heaps = heap->free_next;
    heap_t *keep_all_next = heap->all_next;           /* only read under the heaps lock */
    memset(heap, 0, HEAP_KEPT_BEGIN);
    memset((char *)heap + HEAP_KEPT_END, 0, sizeof *heap - HEAP_KEPT_END);
    apex_debug_pause(APEX_PAUSE_HEAP_STRUCT_CLEARED);
    heap->all_next = keep_all_next;
    heap_init_fields(heap);
    return heap;
  }
  size_t step = (sizeof(heap_t) + 63) & ~(size_t)63;
  if (g_heap_arena_left < step) {
    size_t size = 64 * 1024;
    g_heap_arena = os_map(size);
    if (g_heap_arena == NULL) return NULL;
    g_heap_arena_left = size;
    atomic_fetch_add_explicit(&g_heap_metadata, size, memory_order_relaxed);
  }
  heap = (heap_t *)g_heap_arena;
  g_heap_arena += step;
  g_heap_arena_left -= step;
  heap_init_fields(heap);
  heap->all_next = g_all_heaps;
  g_all_heaps = heap;
  return heap;
}

/* A destroyed heap's struct goes onto the list heap_new_locked reuses first (heaps lock held). */
void heap_recycle_locked(heap_t *heap) {
  heap->free_next = g_free_heaps;
  g_free_heaps = heap;
}

/* A new thread's default heap: an abandoned one if there is one (abandon.c), else a new one. */
static heap_t *heap_adopt_or_new(void) {
  pthread_mutex_lock(&g_heaps_lock);
  heap_t *heap = heap_take_abandoned_locked();
  if (heap == NULL) heap = heap_new_locked();
  pthread_mutex_unlock(&g_heaps_lock);
  if (heap) atomic_store_explicit(&heap->thread_id, current_thread_id(), memory_order_relaxed);
  return heap;
}

/* Set once this thread's heap destructor has run (thread exit). A key destructor that runs after
 * ours and allocates must not adopt a heap: nothing would abandon it again (the destructor rounds
 * may be over), and it would keep the dead thread's id as its owner. */
static APEX_TLS bool tls_heap_done;

bool heap_thread_exited(void) { return tls_heap_done; }

/* The calling thread's heap, created (or adopted) on first use. NULL while the allocator is
 * still initializing on this very thread: the caller then serves the request from the
 * bootstrap area. */
apex_noinline heap_t *heap_for_thread(void) {
  heap_t *heap = tls_heap;
  if (heap != &g_empty_heap) return heap;
  if (apex_unlikely(tls_heap_done)) return NULL;   /* exiting: see heap_alloc_late */
  apex_ensure_init();
  if (atomic_load_explicit(&g_init_state, memory_order_acquire) != 2) return NULL;
  heap = heap_adopt_or_new();
  if (heap == NULL) return NULL;
  heap->is_default = true;
  tls_heap = heap;
  if (!g_hardened) tls_fast_heap = heap;           /* hardened: every allocation takes its path */
  thread_register(heap);
  return heap;
}

bool heap_handle_ok(const heap_t *heap) {
  return heap != NULL && heap->magic == (HEAP_MAGIC ^ (uintptr_t)heap);
}

/* The thread owning `heap` is exiting. Its explicit heaps lose their owner too: the next thread
 * that allocates from one of them takes it over (heap_owned_by_caller in alloc.c). */
void heap_thread_done(heap_t *heap) {
  if (heap == &g_empty_heap || heap == NULL) return;
  uintptr_t me = current_thread_id();
  pthread_mutex_lock(&g_heaps_lock);
  for (heap_t *h = g_all_heaps; h != NULL; h = h->all_next) {
    uintptr_t expected = me;
    if (h != heap) atomic_compare_exchange_strong(&h->thread_id, &expected, (uintptr_t)0);
  }
  pthread_mutex_unlock(&g_heaps_lock);
  quarantine_flush(heap);
  remote_flush_all(heap);              /* after the quarantine, whose evictions may add to it */
  /* From here on this thread's frees take the remote path, so the heap can change hands, and its
   * allocations (later key destructors) are served by heap_alloc_late. */
  tls_heap = tls_fast_heap = &g_empty_heap;
  tls_heap_done = true;
  heap_abandon(heap);
}
