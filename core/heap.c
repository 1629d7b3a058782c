/*
 * heap.c — thread-local heaps: one per thread, owning superblocks and a queue of blocks with free
 * chunks per size class. The allocation slow path, large (multi-slice) objects, thread exit and
 * the adoption of heaps whose thread is gone.
 *
 * Owns: the class queues, heap creation/adoption/abandonment, the global heap lists and lock, the
 *       explicit-heap API (shared sub-heaps, the late heap for exiting threads), visiting.
 * Must never: touch a heap it does not own, except an abandoned heap taken under g_heaps_lock;
 * call user code (a visit callback) with a lock held; wait for the heaps lock while holding a
 * shared_lock (the lock order is in docs/ARCHITECTURE.md, "Locks").
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
  void *p = malloc_from_queue(heap, cls);
  purger_defer(false);
  return p;
}

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
    uint64_t keep_destroyed = atomic_load_explicit(&heap->destroyed, memory_order_relaxed);
    memset(heap, 0, sizeof *heap);
    heap->all_next = keep_all_next;
    atomic_store_explicit(&heap->destroyed, keep_destroyed, memory_order_relaxed);   /* see security.c */
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

/* A new thread's default heap: an abandoned one if there is one, else a new one. A deleted
 * explicit heap is never adopted: its struct is the handle the program had, and adopting it would
 * make that stale handle valid again, an alias of this thread's default heap. It stays abandoned
 * (swept and purged like any other) until its objects are gone. */
static heap_t *heap_adopt_or_new(void) {
  pthread_mutex_lock(&g_heaps_lock);
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
  } else {
    heap = heap_new_locked();
  }
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
static void heap_abandon(heap_t *heap) {
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
  pthread_mutex_lock(&g_heaps_lock);
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
  pthread_mutex_unlock(&g_heaps_lock);
  purger_defer(false);
  purger_kick();
  /* A clean point, even at thread exit: a late calloc of pthread_create is served by
   * heap_alloc_late, never by adopting this heap back. */
  purger_defer(false);
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
  /* From here on this thread's frees take the remote path, so the heap can change hands, and its
   * allocations (later key destructors) are served by heap_alloc_late. */
  tls_heap = &g_empty_heap;
  tls_heap_done = true;
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
  /* Helping (a slow path that wants a superblock) never waits: it may hold a shared_lock, which
   * ranks after the heaps lock. apex_collect waits. */
  if (all) pthread_mutex_lock(&g_heaps_lock);
  else if (pthread_mutex_trylock(&g_heaps_lock) != 0) return;
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
  /* Initializes the allocator (a thread past its heap destructor has none, and needs none). */
  if (heap_for_thread() == NULL && !tls_heap_done) { errno = ENOMEM; return NULL; }
  pthread_mutex_lock(&g_heaps_lock);
  heap_t *heap = heap_new_locked();
  pthread_mutex_unlock(&g_heaps_lock);
  if (heap == NULL) { errno = ENOMEM; return NULL; }
  heap->explicit_handle = true;
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

/* The sub-heap that serves allocations from threads other than the owner, made on first use,
 * before the caller takes shared_lock (the heaps lock ranks before it). */
static heap_t *heap_shared_of(heap_t *heap) {
  heap_t *shared = __atomic_load_n(&heap->shared, __ATOMIC_ACQUIRE);
  if (shared != NULL) return shared;
  pthread_mutex_lock(&g_heaps_lock);
  shared = heap->shared;
  if (shared == NULL) {
    shared = heap_new_locked();
    if (shared != NULL) {
      shared->parent = heap;
      shared->magic = 0;               /* not a handle of its own */
      atomic_store_explicit(&shared->explicit_root, heap, memory_order_relaxed);
      __atomic_store_n(&heap->shared, shared, __ATOMIC_RELEASE);   /* the owner reads it unlocked (limits) */
    }
  }
  pthread_mutex_unlock(&g_heaps_lock);
  return shared;
}

/* Allocation from a heap by a thread that does not own it: under the heap's mutex, from its
 * shared sub-heap, which the caller owns for the duration (frees into it from other threads
 * meanwhile take the remote path, and are collected by the next such allocation). */
apex_noinline void *heap_alloc_shared(heap_t *heap, size_t size, size_t alignment, bool zero) {
  purger_defer(true);                   /* a lock is held: no purge thread start inside */
  heap_t *shared = heap_shared_of(heap);
  void *p = NULL;
  if (shared != NULL) {
    pthread_mutex_lock(&heap->shared_lock);
    atomic_store_explicit(&shared->thread_id, current_thread_id(), memory_order_relaxed);
    p = heap_alloc(shared, size, alignment, zero);
    atomic_store_explicit(&shared->thread_id, 0, memory_order_relaxed);
    pthread_mutex_unlock(&heap->shared_lock);
  } else {
    errno = ENOMEM;
  }
  purger_defer(false);
  return p;
}

/* Serves a thread past its heap destructor (a later key destructor allocating): it has no heap
 * and must not get one, so it allocates like a non-owner from one process-wide heap that no
 * thread owns. Its objects are freed like any others (remote frees, collected by the next such
 * allocation). */
static heap_t *g_late_heap;

void *heap_alloc_late(size_t size, size_t alignment, bool zero) {
  heap_t *late = __atomic_load_n(&g_late_heap, __ATOMIC_ACQUIRE);
  if (late == NULL) {
    pthread_mutex_lock(&g_heaps_lock);
    late = g_late_heap;
    if (late == NULL && (late = heap_new_locked()) != NULL) {
      late->magic = 0;                  /* not a handle */
      __atomic_store_n(&g_late_heap, late, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&g_heaps_lock);
    if (late == NULL) { errno = ENOMEM; return NULL; }
  }
  return heap_alloc_shared(late, size, alignment, zero);
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
  if (atomic_load_explicit(&heap->visiting, memory_order_acquire) != 0) return EBUSY;
  purger_defer(true);
  atomic_store_explicit(&heap->explicit_root, NULL, memory_order_relaxed);
  if (heap->shared != NULL) atomic_store_explicit(&heap->shared->explicit_root, NULL, memory_order_relaxed);
  heap_t *parts[2] = { heap, heap->shared };
  for (int i = 0; i < 2; i++) {
    if (parts[i] == NULL) continue;
    /* Hardened mode: chunks of the heap that any thread freed may still wait in that thread's
     * quarantine; from here they are dropped there without being touched (security.c). */
    quarantine_heap_destroyed(parts[i]);
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
  purger_defer(false);
  return 0;
}

/* Only the owner may delete a heap: another thread's abandon would race with the owner's own
 * frees, which take the lock-free local path. A heap whose owner has exited (no owner) is taken
 * over with a CAS first, as an allocation would. */
apex_export int apex_heap_delete(apex_heap_t *heap) {
  if (!heap_handle_ok(heap) || heap->is_default || heap->parent != NULL) return EINVAL;
  if (atomic_load_explicit(&heap->visiting, memory_order_acquire) != 0) return EBUSY;
  uintptr_t me = current_thread_id();
  uintptr_t owner = atomic_load_explicit(&heap->thread_id, memory_order_relaxed);
  if (owner != me && (owner != 0 || !atomic_compare_exchange_strong(&heap->thread_id, &owner, me)))
    return EPERM;
  pthread_mutex_lock(&heap->shared_lock);      /* no non-owner allocation is using it any more */
  atomic_store_explicit(&heap->explicit_root, NULL, memory_order_relaxed);   /* its objects: default */
  if (heap->shared != NULL) atomic_store_explicit(&heap->shared->explicit_root, NULL, memory_order_relaxed);
  heap_t *shared = heap->shared;
  heap->shared = NULL;
  pthread_mutex_unlock(&heap->shared_lock);
  heap_abandon(heap);
  if (shared != NULL) {
    shared->parent = NULL;
    atomic_store_explicit(&shared->thread_id, current_thread_id(), memory_order_relaxed);
    heap_abandon(shared);
  }
  return 0;
}

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
  collect_abandoned(true);
  superblock_cache_flush();
  huge_cache_flush();
}
