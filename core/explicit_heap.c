/*
 * explicit_heap.c — the explicit-heap API: heaps a program makes with apex_heap_new, owned by the
 * thread that made them. Another thread allocates from one through its shared sub-heap, under the
 * heap's shared_lock. Also the late heap, which serves a thread past its heap destructor, and
 * destroying or deleting a heap.
 *
 * Owns: apex_heap_new_ex / new / default / destroy / delete, the shared sub-heap, the late heap.
 * Must never: wait for the heaps lock while holding a shared_lock (a shared sub-heap is made
 * before that lock is taken); destroy or delete a default heap, a sub-heap or a heap being
 * visited; let a thread that does not own a heap delete it.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

/* ---- Heap handles (the public API) ----------------------------------------------------------- */
apex_export apex_heap_t *apex_heap_new_ex(const apex_heap_options_t *opts) {
  if (opts == NULL || opts->size < sizeof(size_t) || opts->size > sizeof(apex_heap_options_t)) {
    errno = EINVAL;
    return NULL;
  }
  apex_heap_options_t o = { .size = sizeof o };
  memcpy(&o, opts, opts->size);
  /* Initializes the allocator (a thread past its heap destructor has none, and needs none). */
  if (heap_for_thread() == NULL && !heap_thread_exited()) { errno = ENOMEM; return NULL; }
  heaps_lock();
  heap_t *heap = heap_new_locked();
  heaps_unlock();
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
  heaps_lock();
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
  heaps_unlock();
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
    heaps_lock();
    late = g_late_heap;
    if (late == NULL && (late = heap_new_locked()) != NULL) {
      late->magic = 0;                  /* not a handle */
      __atomic_store_n(&g_late_heap, late, __ATOMIC_RELEASE);
    }
    heaps_unlock();
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
  /* Its blocks went without being retired one by one (their superblocks' dirty slices were
   * counted out as they left). */
  for (size_t cls = 0; cls < CLASS_COUNT; cls++) {
    atomic_store_explicit(&heap->block_counts.blocks[cls], 0, memory_order_relaxed);
    atomic_store_explicit(&heap->block_counts.full[cls], 0, memory_order_relaxed);
  }
  atomic_store_explicit(&heap->block_counts.large_live, 0, memory_order_relaxed);
  atomic_store_explicit(&heap->block_counts.large_bytes, 0, memory_order_relaxed);
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
  heaps_lock();
  for (int i = 0; i < 2; i++) {
    if (parts[i] == NULL) continue;
    parts[i]->magic = 0;
    heap_recycle_locked(parts[i]);
  }
  heaps_unlock();
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
