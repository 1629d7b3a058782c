/*
 * Pins: remote frees a thread holds back in its batches (core/remote.c) are all published, and so
 * collected by the owner, at each of the points the design promises, and none is lost when the
 * owner thread exits while a batch for its heap is pending.
 *
 * Each case: the main thread (or an owner thread) allocates OBJECTS small objects of many size
 * classes; a freer thread that has a heap of its own (so its remote frees are batched, not
 * published one by one) frees them all, then does the one thing under test while staying alive,
 * and the owner checks, with apex_collect(), that every one of them was collected
 * (stats.remote_frees counts collected chunks):
 *   exit_flushes        the freer exits (heap_thread_done publishes its batches)
 *   collect_flushes     the freer calls apex_collect()
 *   slow_path_flushes   the freer allocates in a size class it never used (heap_malloc_slow)
 *   owner_exits_pending the owner thread exits, its heap is abandoned, while the freer holds
 *                       batches for it; then the freer adds to them and exits (the main thread
 *                       frees the rest). Every object must be gone: stats.allocated returns to
 *                       what it was before the owner started.
 * Without the publication under test, up to 64 blocks x 31 chunks stay in the freer's batches:
 * with OBJECTS spread over 24 classes, most of them.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "apexalloc.h"
#include "check.h"
#include "testutil.h"

enum { OBJECTS = 1200, CLASSES = 24, PENDING = CLASSES * 20 };   /* 20 a class: below a full batch */

static void *g_objs[OBJECTS];
static _Atomic int g_step;          /* handshakes between the threads, one value per step */

static size_t object_size(size_t i) { return 16 + (i % CLASSES) * 40; }   /* 16 .. 936 bytes */

static void allocate_all(void) {
  for (size_t i = 0; i < OBJECTS; i++) {
    g_objs[i] = apex_malloc(object_size(i));
    CHECK(g_objs[i] != NULL, "apex_malloc(%zu)", object_size(i));
    memset(g_objs[i], (int)(i & 0xff), object_size(i));
  }
}

static void free_range(size_t from, size_t to) {
  for (size_t i = from; i < to; i++) {
    const unsigned char *p = g_objs[i];
    CHECK(p[0] == (unsigned char)(i & 0xff), "object %zu was overwritten", i);
    apex_free(g_objs[i]);
  }
}

static void wait_step(int step) {
  while (atomic_load(&g_step) < step) sched_yield();
}

static apex_stats_t stats(void) {
  apex_stats_t s;
  CHECK(apex_stats_get(&s, sizeof s) == 0, "apex_stats_get");
  return s;
}

/* A heap of its own, so that the remote frees that follow are batched. */
static void own_heap(void) {
  void *p = apex_malloc(24);
  CHECK(p != NULL, "apex_malloc");
  apex_free(p);
}

enum { EXIT, COLLECT, SLOW_PATH };
static int g_mode;

static void *freer(void *arg) {
  (void)arg;
  own_heap();
  free_range(0, OBJECTS);
  if (g_mode == COLLECT) apex_collect();
  if (g_mode == SLOW_PATH) {
    void *p = apex_malloc(3000);        /* a class this thread never used: its slow path */
    CHECK(p != NULL, "apex_malloc(3000)");
    apex_free(p);
  }
  atomic_store(&g_step, 1);
  if (g_mode != EXIT) wait_step(2);     /* stays alive until the owner has looked */
  return NULL;
}

static void check_flushed_by(int mode, const char *what) {
  g_mode = mode;
  allocate_all();
  size_t before = stats().remote_frees;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, freer, NULL) == 0, "pthread_create");
  wait_step(1);
  if (mode == EXIT) CHECK(pthread_join(t, NULL) == 0, "pthread_join");
  apex_collect();
  size_t after = stats().remote_frees;
  CHECK(after - before == OBJECTS, "%s: %zu of %d remote frees reached the owner", what, after - before,
        (int)OBJECTS);
  atomic_store(&g_step, 2);
  if (mode != EXIT) CHECK(pthread_join(t, NULL) == 0, "pthread_join");
}

static void exit_flushes(void) { check_flushed_by(EXIT, "after the freer exited"); }
static void collect_flushes(void) { check_flushed_by(COLLECT, "after the freer's apex_collect"); }
static void slow_path_flushes(void) { check_flushed_by(SLOW_PATH, "after the freer's allocation slow path"); }

/* owner_exits_pending: the owner thread allocates, hands over, and exits on request. */
static void *owner(void *arg) {
  (void)arg;
  allocate_all();
  atomic_store(&g_step, 1);
  wait_step(2);
  return NULL;                          /* its heap is abandoned with the objects in it */
}

static void *freer_across_owner_exit(void *arg) {
  pthread_t *owner_thread = arg;
  own_heap();
  wait_step(1);
  free_range(0, PENDING / 2);           /* held in batches for the owner's heap */
  atomic_store(&g_step, 2);
  CHECK(pthread_join(*owner_thread, NULL) == 0, "pthread_join(owner)");   /* abandoned now */
  free_range(PENDING / 2, PENDING);     /* joins the open batches: none fills up */
  return NULL;                          /* exit: the pending batches are published */
}

static void *warm_up(void *arg) {
  (void)arg;
  own_heap();
  return NULL;
}

static void owner_exits_pending(void) {
  /* What making and ending two threads leaves allocated (the C library's own), before counting. */
  pthread_t o, f;
  CHECK(pthread_create(&o, NULL, warm_up, NULL) == 0 && pthread_create(&f, NULL, warm_up, NULL) == 0,
        "pthread_create");
  CHECK(pthread_join(o, NULL) == 0 && pthread_join(f, NULL) == 0, "pthread_join");
  size_t baseline = stats().allocated;
  CHECK(pthread_create(&o, NULL, owner, NULL) == 0, "pthread_create");
  CHECK(pthread_create(&f, NULL, freer_across_owner_exit, &o) == 0, "pthread_create");
  CHECK(pthread_join(f, NULL) == 0, "pthread_join");
  free_range(PENDING, OBJECTS);         /* the rest, from here */
  apex_collect();                       /* publishes those, sweeps the abandoned heaps */
  size_t after = stats().allocated;
  CHECK(after <= baseline, "%zu bytes of the exited owner's objects are still allocated after every "
        "one was freed (%zu before, %zu after)", after - baseline, baseline, after);
}

static const tu_case g_cases[] = {
  { "exit_flushes", exit_flushes },
  { "collect_flushes", collect_flushes },
  { "slow_path_flushes", slow_path_flushes },
  { "owner_exits_pending", owner_exits_pending },
};

int main(int argc, char **argv) {
  return tu_run_case(argc, argv, g_cases, sizeof g_cases / sizeof g_cases[0]);
}
