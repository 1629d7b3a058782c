/*
 * heap.c — thread-local heaps: one per thread, owning superblocks and a queue of blocks with free
 * chunks per size class. The allocation slow path, large (multi-slice) objects, thread exit and
 * the adoption of heaps whose thread is gone.
 *
 * Owns: the class queues, heap creation/adoption/abandonment, the global heap lists and lock.
 * Must never: touch a heap it does not own, except an abandoned heap taken under g_heaps_lock.
 *
 * Thread exit: the heap frees what it can, then goes onto the abandoned list with whatever is
 * still live in it. A new thread adopts an abandoned heap wholesale before making a new one, and
 * a thread that needs a fresh superblock first collects remote frees stranded in abandoned heaps, so
 * objects freed after their thread died are reused rather than leaked.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

block_t g_empty_block;                  /* free == NULL: the fast path always falls through */
heap_t g_empty_heap = { .current = { [0 ... CLASS_COUNT - 1] = &g_empty_block } };
APEX_TLS heap_t *tls_heap = &g_empty_heap;

static pthread_mutex_t g_heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static heap_t *g_all_heaps;             /* every heap ever made; heaps are never unmapped */
static heap_t *g_abandoned;
static _Atomic size_t g_abandoned_count;
static uint8_t *g_heap_arena;           /* heap structs are carved from small mappings */
static size_t g_heap_arena_left;

void heaps_lock(void)   { pthread_mutex_lock(&g_heaps_lock); }
void heaps_unlock(void) { pthread_mutex_unlock(&g_heaps_lock); }
heap_t *heaps_first(void) { return g_all_heaps; }

void heaps_after_fork_child(void) {
  /* Only the forking thread survives. Other threads' heaps may have been mid-update when the
   * fork happened, so they are left untouched (never adopted); their memory stays reserved in
   * the child. The locks are re-created because their holders may not exist in the child. */
  pthread_mutex_init(&g_heaps_lock, NULL);
  /* A thread created in the child may reuse a dead thread's stack and so its thread pointer:
   * forget those owners so nobody mistakes such a heap for its own. */
  for (heap_t *heap = g_all_heaps; heap != NULL; heap = heap->all_next)
    if (heap != tls_heap) atomic_store_explicit(&heap->thread_id, 0, memory_order_relaxed);
}

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
apex_noinline void *heap_malloc_slow(heap_t *heap, size_t size, size_t cls) {
  (void)size;
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

/* An object too big for the size classes gets a run of whole slices to itself: a block of
 * capacity one, so frees (local or remote) and double-free checks follow the common path. */
apex_noinline void *heap_malloc_large(heap_t *heap, size_t size, size_t alignment) {
  heap_collect_notified(heap);
  size_t slices = size == 0 ? 1 : (size + SLICE_SIZE - 1) >> SLICE_SHIFT;
  size_t align_slices = alignment > SLICE_SIZE ? alignment >> SLICE_SHIFT : 1;
  block_t *b = superblock_take_slices(heap, slices, align_slices);
  if (b == NULL) return NULL;
  uint8_t fresh = b->flags & BLOCK_FRESH;
  block_init(b, heap, CLASS_LARGE, slices << SLICE_SHIFT);
  b->flags = fresh;
  b->carved = 1;
  /* Always full: its one remote free must reach the owner through the notified stack. */
  atomic_store(&b->full_state, BLOCK_FULL);
  chunk_t *c = (chunk_t *)b->start;
  if (tag_load(c) != 0) tag_store(c, 0);   /* a stale tag from an earlier chunk here; fresh runs stay untouched */
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
    sb->dirty_slices |= extra;
    sb->lazy_slices &= ~extra;
    sb->used_slices += (uint32_t)(want - have);
    heap->active_slices += want - have;
    for (size_t i = b->index + have; i < end; i++) sb->slice_head[i] = b->index;
  } else {
    uint64_t tail = slice_run_mask(end, have - want);
    sb->free_slices |= tail;
    sb->used_slices -= (uint32_t)(have - want);
    heap->active_slices -= have - want;
    heap->dirty_free += have - want;
  }
  counter_add(&heap->counters.free_bytes, b->chunk_size);
  b->slices = (uint8_t)want;
  b->chunk_size = (uint32_t)(want << SLICE_SHIFT);
  block_set_limit(b, b->chunk_size);
  b->div_magic = UINT64_MAX / b->chunk_size + 1;
  block_seal(b);
  counter_add(&heap->counters.alloc_bytes, b->chunk_size);
  return true;
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
}

/* A zeroed heap struct: a destroyed one, or carved from a small mapping. Heap structs are never
 * unmapped (a remote free may still be reading one), so they are reused instead. */
static heap_t *heap_new_locked(void) {
  heap_t *heap = g_free_heaps;
  if (heap != NULL) {
    g_free_heaps = heap->free_next;
    heap_t *keep_all_next = heap->all_next;
    memset(heap, 0, sizeof *heap);
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

static heap_t *heap_adopt_or_new(void) {
  pthread_mutex_lock(&g_heaps_lock);
  heap_t *heap = g_abandoned;
  if (heap != NULL) {
    g_abandoned = heap->abandoned_next;
    atomic_fetch_sub_explicit(&g_abandoned_count, 1, memory_order_relaxed);
    heap->abandoned_next = NULL;
    heap->retire_all = false;
    heap->limit = 0;
    heap->parent = NULL;
    heap->magic = HEAP_MAGIC ^ (uintptr_t)heap;
    atomic_store_explicit(&heap->abandoned, false, memory_order_relaxed);
  } else {
    heap = heap_new_locked();
  }
  pthread_mutex_unlock(&g_heaps_lock);
  if (heap) atomic_store_explicit(&heap->thread_id, current_thread_id(), memory_order_relaxed);
  return heap;
}

/* The calling thread's heap, created (or adopted) on first use. NULL while the allocator is
 * still initializing on this very thread: the caller then serves the request from the
 * bootstrap area. */
apex_noinline heap_t *heap_for_thread(void) {
  heap_t *heap = tls_heap;
  if (heap != &g_empty_heap) return heap;
  apex_ensure_init();
  if (atomic_load_explicit(&g_init_state, memory_order_acquire) != 2) return NULL;
  heap = heap_adopt_or_new();
  if (heap == NULL) return NULL;
  heap->is_default = true;
  tls_heap = heap;
  thread_register(heap);
  return heap;
}

bool heap_handle_ok(const heap_t *heap) {
  return heap != NULL && heap->magic == (HEAP_MAGIC ^ (uintptr_t)heap);
}

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
  bool keep = heap->retire_all;
  heap->retire_all = true;
  heap_collect_all_remote(heap);
  heap_retire_empty(heap);
  heap_purge_free(heap);
  heap->retire_all = keep;
}

/* The heap loses its owner (thread exit, apex_heap_delete): free what can be freed, then put it
 * on the abandoned list with whatever is still live in it, for a new thread to adopt. */
static void heap_abandon(heap_t *heap) {
  heap->retire_all = true;
  heap_collect_all_remote(heap);
  heap_retire_empty(heap);
  /* Its free slices are purged by the purge thread once the heap has been abandoned for
   * opt.decay_ms (under the heaps lock, which makes it the owner): a thread pool that replaces
   * its threads adopts the heap warm instead of faulting its pages in again. */
  heap->abandoned_ns = os_now_ns();
  heap->idle_purged = false;
  atomic_store_explicit(&heap->thread_id, 0, memory_order_relaxed);
  pthread_mutex_lock(&g_heaps_lock);
  heap->magic = 0;                      /* the handle is gone; the memory lives on */
  heap->is_default = false;
  atomic_store_explicit(&heap->abandoned, true, memory_order_relaxed);
  heap->abandoned_next = g_abandoned;
  g_abandoned = heap;
  atomic_fetch_add_explicit(&g_abandoned_count, 1, memory_order_relaxed);
  pthread_mutex_unlock(&g_heaps_lock);
  purger_kick();
}

/* The thread owning `heap` is exiting. Its explicit heaps lose their owner too: the next thread
 * that allocates from one of them takes it over (see heap_claim_orphan). */
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
  /* From here on this thread's frees take the remote path, so the heap can change hands. */
  tls_heap = &g_empty_heap;
  heap_abandon(heap);
}

/* A thread freeing into an abandoned heap may act as its owner for a moment: with the heaps lock
 * held and the heap still on the abandoned list, nobody else can touch it. Returns true with the
 * lock held. Never waits: a busy lock means the caller queues the chunk instead. */
bool heap_try_claim_abandoned(heap_t *heap) {
  if (pthread_mutex_trylock(&g_heaps_lock) != 0) return false;
  if (atomic_load_explicit(&heap->abandoned, memory_order_relaxed)) {
    purger_defer(true);                 /* released by the caller: purger_defer(false) */
    return true;
  }
  pthread_mutex_unlock(&g_heaps_lock);
  return false;
}

/* Frees what other threads returned to abandoned heaps, so their memory can be reused. With
 * `all`, every abandoned heap is swept (apex_collect), not only those with pending frees. */
static void collect_abandoned(bool all) {
  if (atomic_load_explicit(&g_abandoned_count, memory_order_relaxed) == 0) return;
  pthread_mutex_lock(&g_heaps_lock);
  purger_defer(true);
  for (heap_t *heap = g_abandoned; heap != NULL; heap = heap->abandoned_next) {
    if (!all && !atomic_load_explicit(&heap->remote_pending, memory_order_relaxed) &&
        atomic_load_explicit(&heap->notified, memory_order_relaxed) == NULL)
      continue;
    atomic_store_explicit(&heap->remote_pending, false, memory_order_relaxed);
    heap_collect_all_remote(heap);
    heap_retire_empty(heap);
    heap->idle_purged = false;
    if (all) heap_purge_free(heap);     /* apex_collect: at once (we own it under the heaps lock) */
  }
  pthread_mutex_unlock(&g_heaps_lock);
  purger_defer(false);
}

void heap_collect_abandoned(heap_t *helper) {
  (void)helper;
  collect_abandoned(false);
}

/* The purge thread: frees that other threads queued into abandoned heaps (their claim lost a race)
 * are collected, so the blocks they empty go back too. Heaps with no owner thread only, under the
 * heaps lock (which makes the holder their owner), and never waiting for that lock. */
void heap_collect_abandoned_idle(uint64_t now_ns, uint64_t decay_ns) {
  if (atomic_load_explicit(&g_abandoned_count, memory_order_relaxed) == 0) return;
  if (pthread_mutex_trylock(&g_heaps_lock) != 0) return;
  purger_defer(true);
  for (heap_t *heap = g_abandoned; heap != NULL; heap = heap->abandoned_next) {
    bool due = now_ns - heap->abandoned_ns >= decay_ns;
    if (atomic_load_explicit(&heap->remote_pending, memory_order_relaxed) ||
        atomic_load_explicit(&heap->notified, memory_order_relaxed) != NULL) {
      atomic_store_explicit(&heap->remote_pending, false, memory_order_relaxed);
      heap_collect_all_remote(heap);
      heap_retire_empty(heap);
      heap->idle_purged = false;
    }
    if (due && !heap->idle_purged) {
      heap_purge_free(heap);
      heap->idle_purged = true;
    }
  }
  pthread_mutex_unlock(&g_heaps_lock);
  purger_defer(false);
}

/* ---- Heap handles (the public API) ----------------------------------------------------------- */
apex_export apex_heap_t *apex_heap_new_ex(const apex_heap_options_t *opts) {
  if (opts == NULL || opts->size < sizeof(size_t) || opts->size > sizeof(apex_heap_options_t)) {
    errno = EINVAL;
    return NULL;
  }
  apex_heap_options_t o = { .size = sizeof o };
  memcpy(&o, opts, opts->size);
  if (heap_for_thread() == NULL) { errno = ENOMEM; return NULL; }   /* initializes the allocator */
  pthread_mutex_lock(&g_heaps_lock);
  heap_t *heap = heap_new_locked();
  pthread_mutex_unlock(&g_heaps_lock);
  if (heap == NULL) { errno = ENOMEM; return NULL; }
  heap->limit = o.size >= offsetof(apex_heap_options_t, limit) + sizeof o.limit ? o.limit : 0;
  atomic_store_explicit(&heap->explicit_root, heap, memory_order_relaxed);
  atomic_store_explicit(&heap->thread_id, current_thread_id(), memory_order_release);
  return heap;
}

apex_export apex_heap_t *apex_heap_new(void) {
  apex_heap_options_t o = { .size = sizeof o };
  return apex_heap_new_ex(&o);
}

apex_export apex_heap_t *apex_heap_default(void) {
  heap_t *heap = heap_for_thread();
  if (heap == NULL) errno = ENOMEM;
  return heap;
}

/* The sub-heap that serves allocations from threads other than the owner, made on first use. */
static heap_t *heap_shared_of(heap_t *heap) {
  if (heap->shared != NULL) return heap->shared;
  pthread_mutex_lock(&g_heaps_lock);
  heap_t *shared = heap_new_locked();
  pthread_mutex_unlock(&g_heaps_lock);
  if (shared == NULL) return NULL;
  shared->parent = heap;
  shared->magic = 0;                   /* not a handle of its own */
  atomic_store_explicit(&shared->explicit_root, heap, memory_order_relaxed);
  __atomic_store_n(&heap->shared, shared, __ATOMIC_RELEASE);   /* the owner reads it unlocked (limits) */
  return shared;
}

/* Allocation from a heap by a thread that does not own it: under the heap's mutex, from its
 * shared sub-heap, which the caller owns for the duration (frees into it from other threads
 * meanwhile take the remote path, and are collected by the next such allocation). */
apex_noinline void *heap_alloc_shared(heap_t *heap, size_t size, size_t alignment, bool zero) {
  pthread_mutex_lock(&heap->shared_lock);
  heap_t *shared = heap_shared_of(heap);
  void *p = NULL;
  if (shared != NULL) {
    atomic_store_explicit(&shared->thread_id, current_thread_id(), memory_order_relaxed);
    p = heap_alloc(shared, size, alignment, zero);
    atomic_store_explicit(&shared->thread_id, 0, memory_order_relaxed);
  } else {
    errno = ENOMEM;
  }
  pthread_mutex_unlock(&heap->shared_lock);
  return p;
}

/* Releases everything a heap holds at once: blocks with live objects included. */
static void heap_discard(heap_t *heap) {
  while (heap->superblocks != NULL) superblock_discard(heap, heap->superblocks);
  huge_discard_all(heap);
  for (size_t cls = 0; cls < CLASS_COUNT; cls++) {
    heap->current[cls] = &g_empty_block;
    heap->last[cls] = NULL;
  }
  atomic_store_explicit(&heap->notified, NULL, memory_order_relaxed);
  /* What was live is gone: count it as returned so the totals stay true. */
  atomic_store_explicit(&heap->counters.free_bytes,
                        atomic_load_explicit(&heap->counters.alloc_bytes, memory_order_relaxed),
                        memory_order_relaxed);
}

apex_export int apex_heap_destroy(apex_heap_t *heap) {
  if (!heap_handle_ok(heap) || heap->is_default || heap->parent != NULL) return EINVAL;
  atomic_store_explicit(&heap->explicit_root, NULL, memory_order_relaxed);
  if (heap->shared != NULL) atomic_store_explicit(&heap->shared->explicit_root, NULL, memory_order_relaxed);
  /* Hardened mode: chunks this thread freed wait in its quarantine; let them go first (the
   * contract already forbids other threads from holding objects of a heap being destroyed). */
  if (tls_heap != &g_empty_heap) quarantine_flush(tls_heap);
  heap_t *parts[2] = { heap, heap->shared };
  for (int i = 0; i < 2; i++) {
    if (parts[i] == NULL) continue;
    heap_discard(parts[i]);
    atomic_store_explicit(&parts[i]->thread_id, 0, memory_order_relaxed);
  }
  pthread_mutex_lock(&g_heaps_lock);
  for (int i = 0; i < 2; i++) {
    if (parts[i] == NULL) continue;
    parts[i]->magic = 0;
    parts[i]->free_next = g_free_heaps;
    g_free_heaps = parts[i];
  }
  pthread_mutex_unlock(&g_heaps_lock);
  return 0;
}

apex_export int apex_heap_delete(apex_heap_t *heap) {
  if (!heap_handle_ok(heap) || heap->is_default || heap->parent != NULL) return EINVAL;
  atomic_store_explicit(&heap->explicit_root, NULL, memory_order_relaxed);   /* its objects: default */
  if (heap->shared != NULL) atomic_store_explicit(&heap->shared->explicit_root, NULL, memory_order_relaxed);
  heap_t *shared = heap->shared;
  heap->shared = NULL;
  atomic_store_explicit(&heap->thread_id, current_thread_id(), memory_order_relaxed);
  heap_abandon(heap);
  if (shared != NULL) {
    shared->parent = NULL;
    atomic_store_explicit(&shared->thread_id, current_thread_id(), memory_order_relaxed);
    heap_abandon(shared);
  }
  return 0;
}

/* ---- Visiting -------------------------------------------------------------------------------- */
static int visit_one(heap_t *heap, apex_visit_fn visit, void *arg) {
  for (superblock_t *sb = heap->superblocks; sb != NULL; sb = sb->next) {
    for (size_t i = 1; i < SLICES_PER_SB; i++) {
      if (((sb->free_slices >> i) & 1) || sb->slice_head[i] != i) continue;
      block_t *b = &sb->blocks[i];
      if (block_limit(b) == 0) continue;
      for (size_t k = 0; k < b->carved; k++) {
        chunk_t *c = (chunk_t *)(b->start + k * b->chunk_size);
        if (chunk_is_free(c)) continue;
        int r = visit(c, b->chunk_size, arg);
        if (r != 0) return r;
      }
    }
  }
  pthread_mutex_lock(&heap->huge_lock);
  int r = 0;
  for (huge_t *h = heap->huge_list; h != NULL && r == 0; h = h->all_next)
    r = visit((uint8_t *)h + h->huge_offset, h->huge_size, arg);
  pthread_mutex_unlock(&heap->huge_lock);
  return r;
}

apex_export int apex_heap_visit(apex_heap_t *heap, apex_visit_fn visit, void *arg) {
  if (!heap_handle_ok(heap) || visit == NULL) return EINVAL;
  int r = visit_one(heap, visit, arg);
  if (r == 0 && heap->shared != NULL) {
    pthread_mutex_lock(&heap->shared_lock);
    r = visit_one(heap->shared, visit, arg);
    pthread_mutex_unlock(&heap->shared_lock);
  }
  return r;
}

/* ---- Collecting ------------------------------------------------------------------------------ */
apex_export void apex_collect(void) {
  apex_ensure_init();
  heap_t *mine = tls_heap;
  if (mine != &g_empty_heap) heap_collect_now(mine);
  if (mine != &g_empty_heap) quarantine_flush(mine);
  collect_abandoned(true);
  superblock_cache_flush();
  huge_cache_flush();
}
