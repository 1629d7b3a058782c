/*
 * apex_owns of pointers other threads are freeing, unmapping and remapping, for about a second:
 *   - an "unmapper" allocates and frees huge objects and destroys heaps of large objects, with both
 *     caches off, so every free gives its mapping back to the OS at once; it checks that each live
 *     object it holds is owned (a registry bit cleared by someone else would say 0);
 *   - a "mover" grows and shrinks a huge object with realloc (mremap moves it), checking after each
 *     step that the result is owned;
 *   - a "reader" asks apex_owns about every pointer the others published, live or long freed: the
 *     answer may be 0 or 1, but the call must return (before, a header read could fault when the
 *     mapping went away between the registry test and the read).
 */
#define _GNU_SOURCE
#include <apexalloc.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "testutil.h"

#define RING 64
static _Atomic(uintptr_t) g_ring[RING];
static _Atomic size_t g_ring_next;
static _Atomic int g_stop;
static _Atomic size_t g_reads;

static void publish(void *p) {
  size_t i = atomic_fetch_add(&g_ring_next, 1) % RING;
  atomic_store(&g_ring[i], (uintptr_t)p);
}

static void *unmapper(void *arg) {
  (void)arg;
  size_t rounds = 0;
  while (!atomic_load(&g_stop)) {
    char *h = apex_malloc(((size_t)5 << 20) + (rounds % 7) * 4096);
    CHECK(h != NULL, "huge malloc failed");
    CHECK(apex_owns(h) == 1, "a live huge object %p is not owned (round %zu)", (void *)h, rounds);
    publish(h);
    publish(h + 4096);
    apex_free(h);
    apex_heap_t *heap = apex_heap_new();
    CHECK(heap != NULL, "apex_heap_new failed");
    void *objs[4];
    for (int i = 0; i < 4; i++) {
      objs[i] = apex_heap_alloc(heap, 600000, 0);
      CHECK(objs[i] != NULL && apex_owns(objs[i]) == 1, "a live large object is not owned");
      publish(objs[i]);
    }
    void *small = apex_heap_alloc(heap, 48, 0);
    publish(small);
    apex_heap_destroy(heap);                       /* its superblocks are unmapped at once */
    rounds++;
  }
  return NULL;
}

static void *mover(void *arg) {
  (void)arg;
  char *p = apex_malloc((size_t)5 << 20);
  CHECK(p != NULL, "huge malloc failed");
  size_t step = 0;
  while (!atomic_load(&g_stop)) {
    size_t size = ((size_t)5 << 20) + (step % 5) * ((size_t)3 << 20);
    char *q = apex_realloc(p, size);
    CHECK(q != NULL, "realloc to %zu failed", size);
    CHECK(apex_owns(q) == 1, "after realloc to %zu the object %p is not owned", size, (void *)q);
    p = q;
    publish(p);
    step++;
  }
  apex_free(p);
  return NULL;
}

static void *reader(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
    for (size_t i = 0; i < RING; i++) {
      int r = apex_owns((const void *)atomic_load(&g_ring[i]));
      CHECK(r == 0 || r == 1, "apex_owns returned %d", r);
    }
    atomic_fetch_add(&g_reads, RING);
  }
  return NULL;
}

int main(void) {
  size_t zero = 0;
  CHECK(apex_ctl("opt.superblock_cache", NULL, NULL, &zero, sizeof zero) == 0, "opt.superblock_cache");
  CHECK(apex_ctl("opt.huge_cache_bytes", NULL, NULL, &zero, sizeof zero) == 0, "opt.huge_cache_bytes");
  pthread_t t[4];
  void *(*fn[4])(void *) = { unmapper, mover, reader, reader };
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, fn[i], NULL) == 0, "pthread_create");
  double seconds = tu_scale() < 1.0 ? tu_scale() : 1.0;
  struct timespec ts = { .tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9) };
  nanosleep(&ts, NULL);
  /* A loaded machine or a sanitizer may start the readers late: give them up to 30 s more. */
  for (int waited = 0; waited < 3000 && atomic_load(&g_reads) <= 1000; waited++) {
    struct timespec tick = { 0, 10000000 };
    nanosleep(&tick, NULL);
  }
  atomic_store(&g_stop, 1);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  CHECK(atomic_load(&g_reads) > 1000, "the readers made only %zu calls", atomic_load(&g_reads));
  return 0;
}
