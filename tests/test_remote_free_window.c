/*
 * Pins: a thread freeing into another thread's block never uses the block after the CAS that
 * published its chunk, unless that CAS made it responsible for notifying the owner
 * (core/remote.c). The window between the two is one instruction wide in practice; a debug-build
 * pause point (apex_debug_pause, APEX_PAUSE_AFTER_REMOTE_PUBLISH) holds the freer in it while the
 * owner collects and retires everything it can with apex_collect().
 *
 * Built against apexalloc_debug (the core with APEX_DEBUG=1: the pause point and the internal
 * checks). Each case is a CTest test of its own (remote_free_window_<case>):
 *   large_beside_live_block  a large object freed remotely, its superblock kept alive by another
 *                            block: before the fix the owner retired the large block on collection
 *                            and again after the freer's late notify (internal check
 *                            "(sb->free_slices & mask) == 0", or later two objects overlapping);
 *   large_alone              the same with nothing else in the superblock, which apex_collect then
 *                            unmaps: before the fix the freer read the block's state there (SIGSEGV);
 *   small_alone              the last chunk of a small block: the same unmapping under the freer;
 *   abandoned_not_stranded   (pause point before the CAS) a freer that read `abandoned` as false
 *                            pushes its chunk after the owner thread exited: the next collection
 *                            of abandoned heaps must find it. Before the fix no flag told it to
 *                            (review #11), and the chunk waited for an adopter or apex_collect.
 *   batch_at_exit_abandoned  the same for a batch: a freer with a heap of its own holds the chunk
 *                            in its batch (core/remote.c) and publishes it at its exit, held before
 *                            the CAS while the owner thread exits. (The old code had no batches: it
 *                            published at the free and never reached the pause point at exit.)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "apexalloc.h"
#include "check.h"
#include "internal.h"      /* apex_debug_pause_hook, APEX_PAUSE_AFTER_REMOTE_PUBLISH (debug builds) */
#include "testutil.h"

static _Atomic int g_paused, g_release;
static _Atomic int g_pause_point = APEX_PAUSE_AFTER_REMOTE_PUBLISH;
static _Thread_local int tls_pause_here;   /* only the freer under test stops */

static void pause_hook(int point) {
  if (point != atomic_load(&g_pause_point) || !tls_pause_here) return;
  tls_pause_here = 0;
  atomic_store(&g_paused, 1);
  while (!atomic_load(&g_release)) sched_yield();
}

static void *freer(void *p) {
  tls_pause_here = 1;
  apex_free(p);
  CHECK(tls_pause_here == 0, "the free of %p never reached the pause point", p);
  return NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Starts a thread running fn(p) and returns once it is held at the pause point. */
static pthread_t start_paused(void *(*fn)(void *), void *p) {
  atomic_store(&g_paused, 0);
  atomic_store(&g_release, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fn, p) == 0, "pthread_create");
  double deadline = now_s() + 30;
  while (!atomic_load(&g_paused)) {
    CHECK(now_s() < deadline, "the freer did not reach the pause point within 30 s");
    sched_yield();
  }
  return t;
}

static pthread_t start_paused_free(void *p) { return start_paused(freer, p); }

static void finish_paused_free(pthread_t t) {
  atomic_store(&g_release, 1);
  CHECK(pthread_join(t, NULL) == 0, "pthread_join");
}

/* Frees p on another thread, held just after its publishing CAS while this (owning) thread
 * collects; then lets it finish and collects again. */
static void free_remotely_across_collect(void *p) {
  pthread_t t = start_paused_free(p);
  apex_collect();                  /* collects the published chunk: the block is empty now */
  finish_paused_free(t);
  apex_collect();                  /* whatever the freer left to do is done by now */
}

/* Live objects must stay intact and apart: what a double retire breaks. */
static void check_fresh_objects(size_t size, size_t count) {
  void *objs[8];
  tu_range r[8];
  for (size_t i = 0; i < count; i++) {
    objs[i] = apex_malloc(size);
    CHECK(objs[i] != NULL, "apex_malloc(%zu)", size);
    tu_fill(objs[i], size, 1000 + i);
    r[i] = (tu_range){ (uintptr_t)objs[i], (uintptr_t)objs[i] + size, i };
  }
  for (size_t i = 0; i < count; i++)
    CHECK(tu_verify(objs[i], size, 1000 + i) == SIZE_MAX, "object %zu of %zu bytes was overwritten", i, size);
  TU_CHECK_DISJOINT(r, count, "after the remote free");
  for (size_t i = 0; i < count; i++) apex_free(objs[i]);
}

enum { LARGE_SIZE = 256 * 1024, SMALL_SIZE = 48 };

static void large_beside_live_block(void) {
  void *keep = apex_malloc(SMALL_SIZE);           /* a block that keeps the superblock in use */
  tu_fill(keep, SMALL_SIZE, 7);
  void *p = apex_malloc(LARGE_SIZE);
  CHECK(p != NULL && keep != NULL, "apex_malloc");
  CHECK(((uintptr_t)p >> 22) == ((uintptr_t)keep >> 22), "test setup: both objects in one superblock");
  tu_fill(p, LARGE_SIZE, 8);
  free_remotely_across_collect(p);
  check_fresh_objects(LARGE_SIZE, 8);
  CHECK(tu_verify(keep, SMALL_SIZE, 7) == SIZE_MAX, "the live small object was overwritten");
  apex_free(keep);
}

static void large_alone(void) {
  void *p = apex_malloc(LARGE_SIZE);
  CHECK(p != NULL, "apex_malloc");
  tu_fill(p, LARGE_SIZE, 9);
  free_remotely_across_collect(p);
  check_fresh_objects(LARGE_SIZE, 8);
}

static void small_alone(void) {
  void *p = apex_malloc(SMALL_SIZE);
  CHECK(p != NULL, "apex_malloc");
  free_remotely_across_collect(p);
  check_fresh_objects(SMALL_SIZE, 8);
}

static _Atomic int g_owner_may_exit;
static _Atomic(void *) g_owned;

static void *allocate_then_exit(void *arg) {
  (void)arg;
  atomic_store(&g_owned, apex_malloc(SMALL_SIZE));
  while (!atomic_load(&g_owner_may_exit)) sched_yield();
  return NULL;                     /* its heap is abandoned with the object in it */
}

static size_t remote_frees_collected(void) {
  apex_stats_t s;
  CHECK(apex_stats_get(&s, sizeof s) == 0, "apex_stats_get");
  return s.remote_frees;
}

/* A freer started with `freer_fn` publishes into a heap whose owner exits while the freer is held
 * before its CAS (it has read `abandoned`: false), so the push lands in an abandoned heap. Before
 * the next superblock any thread maps, the abandoned heaps with pending remote frees are collected
 * (superblock_acquire); with no cached superblocks, that is the next large allocation. */
static void published_into_abandoned_heap(void *(*freer_fn)(void *), const char *what) {
  size_t zero = 0;
  CHECK(apex_ctl("opt.superblock_cache", NULL, NULL, &zero, sizeof zero) == 0, "opt.superblock_cache");
  void *mine = apex_malloc(SMALL_SIZE);              /* this thread has its own heap already */
  CHECK(mine != NULL, "apex_malloc");
  pthread_t owner;
  CHECK(pthread_create(&owner, NULL, allocate_then_exit, NULL) == 0, "pthread_create");
  while (atomic_load(&g_owned) == NULL) sched_yield();
  size_t before = remote_frees_collected();
  atomic_store(&g_pause_point, APEX_PAUSE_BEFORE_REMOTE_PUBLISH);
  pthread_t t = start_paused(freer_fn, atomic_load(&g_owned));
  atomic_store(&g_owner_may_exit, 1);
  CHECK(pthread_join(owner, NULL) == 0, "pthread_join");   /* heap_abandon has run */
  finish_paused_free(t);
  void *big = apex_malloc(LARGE_MAX);              /* 63 slices: a new superblock */
  CHECK(big != NULL, "apex_malloc(LARGE_MAX)");
  size_t after = remote_frees_collected();
  CHECK(after == before + 1, "%s was not collected before a new superblock was mapped (remote frees "
        "collected: %zu before, %zu after)", what, before, after);
  apex_free(big);
  apex_free(mine);
}

static void abandoned_not_stranded(void) {
  published_into_abandoned_heap(freer, "the remote free into the abandoned heap");
}

/* A freer with a heap: its free of p joins a batch, published (and paused) at its exit. */
static void *batch_then_exit(void *p) {
  void *own = apex_malloc(SMALL_SIZE);
  CHECK(own != NULL, "apex_malloc");
  apex_free(own);
  apex_free(p);
  CHECK(tls_pause_here == 0, "test setup: the free of %p was published at once, not batched", p);
  tls_pause_here = 1;                   /* the pause comes in heap_thread_done's flush */
  return NULL;
}

static void batch_at_exit_abandoned(void) {
  published_into_abandoned_heap(batch_then_exit, "the batch published into the abandoned heap at the freer's exit");
}

static const tu_case g_cases[] = {
  { "large_beside_live_block", large_beside_live_block },
  { "large_alone", large_alone },
  { "small_alone", small_alone },
  { "abandoned_not_stranded", abandoned_not_stranded },
  { "batch_at_exit_abandoned", batch_at_exit_abandoned },
};

/* One case per process (CTest runs each as its own test), so each starts from a fresh allocator
 * and a crash names its case. */
int main(int argc, char **argv) {
  apex_debug_pause_hook = pause_hook;
  return tu_run_case(argc, argv, g_cases, sizeof g_cases / sizeof g_cases[0]);
}
