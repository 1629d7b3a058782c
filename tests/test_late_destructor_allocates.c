/*
 * Pins: a thread-specific-data destructor that runs after ApexAlloc's own (at thread exit) may
 * allocate and free, and that never leaks the thread's heap. The test's key is created after
 * ApexAlloc's, so glibc runs its destructor after ApexAlloc's in every round; it allocates, frees
 * some of what it allocated, and sets its value again so that all PTHREAD_DESTRUCTOR_ITERATIONS
 * rounds run. A heap adopted again in the last round would never be abandoned: it would keep the
 * dead thread's id as its owner, and every such thread would leave one heap behind. So, over 40
 * threads run one after another:
 *   - stats.heaps grows by at most a few (the threads' heaps are reused, not leaked);
 *   - stats.heaps_abandoned is at least 1 once they are gone (the last one's heap was abandoned);
 *   - every object the destructors kept is intact and can be freed by the main thread.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "apexalloc.h"
#include "testutil.h"

#ifndef PTHREAD_DESTRUCTOR_ITERATIONS
#define PTHREAD_DESTRUCTOR_ITERATIONS 4
#endif

/* Under ThreadSanitizer only the rounds before the last: TSan finishes the thread in the last
 * round from a key destructor of its own, and instrumented code running after that crashes in
 * the sanitizer runtime (not in the allocator). */
#define ROUNDS (APEX_TEST_TSAN ? PTHREAD_DESTRUCTOR_ITERATIONS - 1 : PTHREAD_DESTRUCTOR_ITERATIONS)

enum { THREADS = 40, KEPT_PER_THREAD = PTHREAD_DESTRUCTOR_ITERATIONS };

static pthread_key_t late_key;
static void *kept[THREADS * KEPT_PER_THREAD + 16];
static size_t kept_count;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static void late_destructor(void *value) {
  uintptr_t round = (uintptr_t)value;
  void *scratch = apex_malloc(3000);
  CHECK(scratch != NULL, "apex_malloc in a late destructor (round %zu)", (size_t)round);
  memset(scratch, 0x11, 3000);
  size_t size = 100 + round;
  void *p = apex_malloc(size);
  CHECK(p != NULL, "apex_malloc in a late destructor (round %zu)", (size_t)round);
  tu_fill(p, size, (uint64_t)(uintptr_t)p);
  apex_free(scratch);
  pthread_mutex_lock(&kept_lock);
  kept[kept_count++] = p;
  pthread_mutex_unlock(&kept_lock);
  if (round < ROUNDS) pthread_setspecific(late_key, (void *)(round + 1));
}

static void *worker(void *arg) {
  (void)arg;
  void *objs[200];
  for (int i = 0; i < 200; i++) objs[i] = apex_malloc((size_t)(16 + i * 13));
  for (int i = 0; i < 200; i += 2) apex_free(objs[i]);
  for (int i = 1; i < 200; i += 2) apex_free(objs[i]);
  pthread_setspecific(late_key, (void *)1);
  return NULL;
}

static size_t stat_of(const char *name) {
  size_t v = 0, len = sizeof v;
  CHECK(apex_ctl(name, &v, &len, NULL, 0) == 0, "apex_ctl(%s)", name);
  return v;
}

static void run_one(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, NULL) == 0, "pthread_create");
  CHECK(pthread_join(t, NULL) == 0, "pthread_join");
}

int main(void) {
  apex_free(apex_malloc(1));                            /* ApexAlloc's key exists before ours */
  CHECK(pthread_key_create(&late_key, late_destructor) == 0, "pthread_key_create");
  run_one();                                            /* warm up: the heaps a thread needs */
  size_t heaps_before = stat_of("stats.heaps");
  for (int i = 1; i < THREADS; i++) run_one();
  size_t heaps_after = stat_of("stats.heaps"), abandoned = stat_of("stats.heaps_abandoned");
  printf("late_destructor_allocates: %d threads; heaps %zu -> %zu, abandoned %zu; %zu objects kept by destructors\n",
         THREADS, heaps_before, heaps_after, abandoned, kept_count);
  CHECK(kept_count == (size_t)THREADS * ROUNDS, "the destructors ran %zu times, expected %d", kept_count,
        THREADS * ROUNDS);
  CHECK(heaps_after <= heaps_before + 2, "heaps grew from %zu to %zu over %d threads: exiting threads' heaps leak",
        heaps_before, heaps_after, THREADS - 1);
  CHECK(abandoned >= 1, "no heap is abandoned after the threads exited");
  for (size_t i = 0; i < kept_count; i++) {
    size_t size = apex_usable_size(kept[i]);
    CHECK(size >= 101, "object %zu has usable size %zu", i, size);
    size_t asked = 0;
    for (size_t s = 101; s <= 100 + PTHREAD_DESTRUCTOR_ITERATIONS; s++)
      if (tu_verify(kept[i], s, (uint64_t)(uintptr_t)kept[i]) == SIZE_MAX) asked = s;
    CHECK(asked != 0, "object %p kept by a late destructor was overwritten", kept[i]);
    apex_free(kept[i]);
  }
  apex_collect();
  printf("late_destructor_allocates: OK\n");
  return 0;
}
