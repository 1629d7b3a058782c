/*
 * apex_realloc of an object of an explicit heap keeps it in that heap, however it moves (small to
 * large to huge and back, from the owner or another thread), so apex_heap_visit and
 * apex_heap_destroy still cover it and the heap's limit still holds: a growth past the limit
 * fails with ENOMEM (p intact), including the in-place growth of a huge object. apex_heap_realloc's
 * shrink that cannot move (over the limit) keeps p and leaves errno alone.
 */
#include <apexalloc.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

static int find_it(void *ptr, size_t usable, void *arg) {
  (void)usable;
  return ptr == arg ? 1 : 0;
}

static int in_heap(apex_heap_t *h, void *p) { return apex_heap_visit(h, find_it, p) == 1; }

static apex_heap_t *g_heap;
static void *g_obj;

static void *realloc_elsewhere(void *arg) {
  (void)arg;
  g_obj = apex_realloc(g_obj, 3000);
  return NULL;
}

static apex_heap_t *heap_with_limit(size_t limit) {
  apex_heap_options_t o = { .size = sizeof o, .limit = limit };
  apex_heap_t *h = apex_heap_new_ex(&o);
  CHECK(h != NULL, "apex_heap_new_ex(limit %zu) failed", limit);
  return h;
}

int main(void) {
  /* Moves stay in the heap. */
  g_heap = apex_heap_new();
  CHECK(g_heap != NULL, "apex_heap_new failed");
  unsigned char *p = apex_heap_alloc(g_heap, 100, 0);
  CHECK(p != NULL, "apex_heap_alloc(100) failed");
  memset(p, 0x11, 100);
  const size_t steps[] = {1000, 200000, 900000, (size_t)8 << 20, (size_t)12 << 20, 300000, 50};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    p = apex_realloc(p, steps[i]);
    CHECK(p != NULL, "apex_realloc(..., %zu) failed", steps[i]);
    CHECK(p[0] == 0x11 && p[49] == 0x11, "apex_realloc(..., %zu) lost the contents", steps[i]);
    CHECK(in_heap(g_heap, p), "after apex_realloc(..., %zu) the object %p is not in its heap", steps[i], (void *)p);
  }
  /* From another thread: still the same heap (through its shared part). */
  g_obj = p;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, realloc_elsewhere, NULL) == 0, "pthread_create");
  pthread_join(t, NULL);
  CHECK(g_obj != NULL && in_heap(g_heap, g_obj), "realloc by another thread moved the object out of its heap");
  CHECK(apex_heap_destroy(g_heap) == 0, "apex_heap_destroy");

  /* Limits hold for the moved object, and for a huge object growing in place. */
  apex_heap_t *h = heap_with_limit((size_t)1 << 20);
  p = apex_heap_alloc(h, 100, 0);
  CHECK(p != NULL, "apex_heap_alloc(100) under a 1 MiB limit failed");
  errno = 0;
  void *q = apex_realloc(p, (size_t)2 << 20);
  CHECK(q == NULL && errno == ENOMEM, "apex_realloc past a 1 MiB limit = %p, errno %d; want NULL, ENOMEM", q, errno);
  CHECK(apex_owns(p) == 1 && in_heap(h, p), "the failed realloc did not leave p in place");
  apex_heap_destroy(h);

  h = heap_with_limit((size_t)12 << 20);
  p = apex_heap_alloc(h, (size_t)8 << 20, 0);
  CHECK(p != NULL, "apex_heap_alloc(8 MiB) under a 12 MiB limit failed");
  errno = 0;
  q = apex_realloc(p, (size_t)16 << 20);
  CHECK(q == NULL && errno == ENOMEM, "huge apex_realloc past a 12 MiB limit = %p, errno %d; want NULL, ENOMEM", q, errno);
  errno = 0;
  q = apex_heap_realloc(h, p, 0, (size_t)16 << 20, 0);
  CHECK(q == NULL && errno == ENOMEM, "huge apex_heap_realloc past a 12 MiB limit = %p, errno %d", q, errno);
  /* Within the limit: fine at level 1, where it grows in place. (Hardened mode always moves, and
   * the old and the new object then do not fit under the limit together.) */
  size_t level = 0, len = sizeof level;
  bool hardened = apex_ctl("opt.secure", &level, &len, NULL, 0) == 0 && level >= 2;
  if (!hardened) {
    q = apex_realloc(p, (size_t)10 << 20);
    CHECK(q != NULL && in_heap(h, q), "huge apex_realloc within the limit failed");
  }
  apex_heap_destroy(h);

  /* A shrink that cannot move keeps p, and errno. */
  h = heap_with_limit((size_t)64 << 10);
  void *big = apex_heap_alloc(h, 1000, 0);
  CHECK(big != NULL, "apex_heap_alloc(1000) failed");
  size_t n = 0;
  while (apex_heap_alloc(h, 1000, 0) != NULL) CHECK(++n < 1000, "the 64 KiB limit never refused");
  errno = 4242;
  q = apex_heap_realloc(h, big, 1000, 100, 0);
  CHECK(q == big, "a shrink at the limit moved or failed: %p, want %p", q, big);
  CHECK(errno == 4242, "a shrink at the limit that kept p set errno to %d", errno);
  apex_heap_destroy(h);
  return 0;
}
