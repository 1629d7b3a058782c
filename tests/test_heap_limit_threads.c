/*
 * A heap with a limit near its live size, used by its owner and by two other threads at once for
 * about a second: every allocation that fits under the limit succeeds. Each thread keeps what it
 * holds (in usable bytes, counting an object until its free has returned) under a third of the
 * limit and only asks for what fits in its share, measured by an upper bound of the usable size
 * the request will get; so the heap's live bytes never exceed the limit, and a NULL is a spurious
 * ENOMEM (a torn read of the counters, or frees that crossed threads and were not collected).
 * Then: a huge object of the heap cannot grow past the limit by realloc (ENOMEM, p intact).
 */
#define _GNU_SOURCE
#include <apexalloc.h>
#include <stdatomic.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "testutil.h"

#define LIMIT ((size_t)6 << 20)
#define THREADS 3
#define SLOTS 256

static apex_heap_t *g_heap;
static _Atomic int g_stop;
static size_t g_hardened;

/* The most a request of `size` bytes can be given: its class (at most 1/8 above, plus 16) or its
 * run of 64 KiB slices. */
static size_t usable_bound(size_t size) {
  if (size <= 128 * 1024) return size + size / 8 + 16;
  return (size + 65535) & ~(size_t)65535;
}

typedef struct { int index; size_t allocs, refused_fitting; } worker_t;

static void *worker(void *arg) {
  worker_t *w = arg;
  tu_rng rng;
  tu_rng_seed(&rng, 0x51A7 + (uint64_t)w->index);
  void *slot[SLOTS] = {0};
  size_t held[SLOTS] = {0};
  size_t live = 0, share = LIMIT / THREADS;
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    size_t k = tu_rng_range(&rng, 0, SLOTS - 1);
    if (slot[k] != NULL) {
      apex_free(slot[k]);
      live -= held[k];
      slot[k] = NULL;
      continue;
    }
    size_t size = tu_rng_range(&rng, 0, 15) == 0 ? tu_rng_range(&rng, 130000, 400000) : tu_rng_range(&rng, 1, 4000);
    if (live + usable_bound(size) > share) continue;               /* would not fit: not asked */
    void *p = apex_heap_alloc(g_heap, size, 0);
    if (p == NULL) {
      CHECK(errno == ENOMEM, "apex_heap_alloc: NULL with errno %d", errno);
      w->refused_fitting++;
      continue;
    }
    memset(p, 0x3c, size < 64 ? size : 64);
    held[k] = apex_usable_size(p);
    CHECK(held[k] <= usable_bound(size), "usable %zu above the test's bound for %zu", held[k], size);
    live += held[k];
    slot[k] = p;
    __atomic_store_n(&w->allocs, w->allocs + 1, __ATOMIC_RELAXED);
  }
  for (size_t k = 0; k < SLOTS; k++) apex_free(slot[k]);
  return NULL;
}

static worker_t g_workers[THREADS];

/* Stops the workers after `seconds`, and once each has made some allocations (a loaded machine or
 * a sanitizer may start a thread late), but after 30 s at most. */
static void *stop_later(void *arg) {
  double seconds = *(double *)arg;
  struct timespec ts = { .tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9) };
  nanosleep(&ts, NULL);
  for (int waited = 0; waited < 3000; waited++) {
    int ready = 1;
    for (int i = 0; i < THREADS; i++) ready &= __atomic_load_n(&g_workers[i].allocs, __ATOMIC_RELAXED) >= 200;
    if (ready) break;
    struct timespec tick = { 0, 10000000 };
    nanosleep(&tick, NULL);
  }
  atomic_store_explicit(&g_stop, 1, memory_order_relaxed);
  return NULL;
}

int main(void) {
  size_t level = 0, len = sizeof level;
  if (apex_ctl("opt.secure", &level, &len, NULL, 0) == 0) g_hardened = level >= 2;
  apex_heap_options_t o = { .size = sizeof o, .limit = LIMIT };
  g_heap = apex_heap_new_ex(&o);
  CHECK(g_heap != NULL, "apex_heap_new_ex failed");
  worker_t *w = g_workers;
  pthread_t t[THREADS], timer;
  double seconds = tu_scale() < 1.0 ? tu_scale() : 1.0;
  for (int i = 0; i < THREADS; i++) w[i] = (worker_t){ .index = i };
  CHECK(pthread_create(&timer, NULL, stop_later, &seconds) == 0, "pthread_create");
  for (int i = 1; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, &w[i]) == 0, "pthread_create");
  worker(&w[0]);                                   /* the owner, on the thread that made the heap */
  for (int i = 1; i < THREADS; i++) pthread_join(t[i], NULL);
  pthread_join(timer, NULL);
  /* Hardened mode holds freed chunks in each thread's quarantine (up to 4 MiB), where they still
   * count as live: the premise of the test does not hold there, only that nothing breaks. */
  for (int i = 0; i < THREADS && !g_hardened; i++) {
    CHECK(w[i].allocs > 100, "thread %d made only %zu allocations", i, w[i].allocs);
    CHECK(w[i].refused_fitting == 0, "thread %d (%s): %zu of %zu allocations that fit under the limit failed", i,
            i == 0 ? "owner" : "not the owner", w[i].refused_fitting, w[i].allocs + w[i].refused_fitting);
  }

  /* A huge object cannot grow past the limit, in place or not. */
  if (g_hardened) apex_collect();                  /* the quarantine lets its chunks go */
  char *p = apex_heap_alloc(g_heap, (size_t)5 << 20, 0);
  CHECK(p != NULL, "apex_heap_alloc(5 MiB) under a 6 MiB limit failed");
  p[0] = 7;
  errno = 0;
  void *q = apex_realloc(p, (size_t)7 << 20);
  CHECK(q == NULL && errno == ENOMEM, "apex_realloc(5 MiB -> 7 MiB) under a 6 MiB limit = %p, errno %d", q, errno);
  CHECK(apex_owns(p) == 1 && p[0] == 7, "the refused realloc did not leave p intact");
  apex_heap_destroy(g_heap);
  return 0;
}
