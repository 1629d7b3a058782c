/*
 * Pins when realloc keeps an object where it is, and how much a move copies (docs/API.md,
 * "Realloc: in place or moved"):
 *   - every small class: a realloc to any size from half the usable size (or 0 for chunks of 64
 *     bytes and less) up to the usable size returns the same pointer, contents intact; a shrink
 *     below half moves to a smaller chunk (memory goes back) and keeps the prefix;
 *   - a growing realloc that crosses classes copies the old object's usable size and no more: the
 *     new object's bytes past it are not taken from the old object's neighbours;
 *   - a large object of the caller's heap grows and shrinks in place by whole slices;
 *   - a shrink never fails: in a heap at its limit, where the smaller copy would not fit, the
 *     object stays (failed on the old code: NULL with ENOMEM);
 *   - apex_heap_realloc growing an over-aligned object within its slack (old_size <= new_size <=
 *     usable) stays in place (failed on the old code: it moved, as a shrink to below half would).
 * In hardened mode (APEX_SECURE=2, the label hardened reruns this) realloc always moves and the
 * usable size is the size asked for: there the test checks that it moves and what the move copies.
 */
#include <apexalloc.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

static int g_hardened;

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7);
}

static size_t first_diff(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(seed + i * 7)) return i;
  return SIZE_MAX;
}

/* Each small class, through one object asked for with the class's exact size. */
static void small_classes_in_place(void) {
  size_t size = 16;
  while (size <= 128 * 1024) {
    unsigned char *p = apex_malloc(size);
    CHECK(p != NULL, "apex_malloc(%zu) failed", size);
    size_t usable = apex_usable_size(p);
    CHECK(usable == size, "class sizes are exact: asked %zu, got %zu", size, usable);
    fill(p, usable, 3);
    size_t low = usable <= 64 ? 0 : (usable + 1) / 2;
    const size_t tries[] = { usable, usable - 1, (usable + low) / 2, low };
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
      unsigned char *q = apex_realloc(p, tries[i]);
      CHECK(q == p, "class %zu: realloc to %zu moved (%p -> %p)", usable, tries[i], (void *)p, (void *)q);
      CHECK(apex_usable_size(q) == usable, "class %zu: usable size changed in place", usable);
    }
    CHECK(first_diff(p, usable, 3) == SIZE_MAX, "class %zu: contents changed in place", usable);
    if (usable > 64) {
      size_t shrink = usable / 2 - 1;
      unsigned char *q = apex_realloc(p, shrink);
      CHECK(q != NULL && q != p, "class %zu: a shrink to %zu stayed (wastes more than half)", usable, shrink);
      CHECK(apex_usable_size(q) < usable, "class %zu: the shrink did not give memory back", usable);
      CHECK(first_diff(q, shrink, 3) == SIZE_MAX, "class %zu: the shrink lost the prefix", usable);
      p = q;
    }
    apex_free(p);
    size = usable + 1;
    unsigned char *next = apex_malloc(size);            /* the next class's exact size */
    CHECK(next != NULL, "apex_malloc(%zu) failed", size);
    size = apex_usable_size(next);
    apex_free(next);
  }
}

/* 100 bytes (a 112-byte chunk) grown to 5000: the first 112 bytes come along, nothing more. */
static void growth_copies_the_old_size(void) {
  enum { NEIGHBOURS = 64, NEW_SIZE = 5000 };
  unsigned char *reused = apex_malloc(NEW_SIZE);        /* freed below: the next 5000-byte object */
  CHECK(reused != NULL, "apex_malloc(%d) failed", NEW_SIZE);
  size_t reused_usable = apex_usable_size(reused);
  memset(reused, 0x5C, reused_usable);
  unsigned char *around[NEIGHBOURS];
  for (int i = 0; i < NEIGHBOURS; i++) {
    around[i] = apex_malloc(100);
    CHECK(around[i] != NULL, "apex_malloc(100) failed");
    memset(around[i], 0xEE, apex_usable_size(around[i]));
  }
  unsigned char *p = around[NEIGHBOURS / 2];            /* neighbours on both sides */
  size_t old_usable = apex_usable_size(p);
  CHECK(old_usable == (g_hardened ? 100 : 112), "100 bytes got a %zu-byte chunk", old_usable);
  fill(p, old_usable, 9);                               /* the slack too: the caller may write it */
  apex_free(reused);
  unsigned char *q = apex_realloc(p, NEW_SIZE);
  CHECK(q != NULL, "apex_realloc(100 -> %d) failed", NEW_SIZE);
  CHECK(first_diff(q, old_usable, 9) == SIZE_MAX, "the old object's %zu bytes were not all kept", old_usable);
  size_t taken = 0;
  for (size_t i = old_usable; i < NEW_SIZE; i++) taken += q[i] == 0xEE;
  CHECK(taken < 8, "%zu bytes past the old object's end look copied from its neighbours", taken);
  if (q == reused) {                                    /* the usual case: the copy left the rest alone */
    for (size_t i = old_usable; i < NEW_SIZE; i++)
      CHECK(q[i] == 0x5C, "byte %zu past the old object's %zu was written by the move", i, old_usable);
  }
  apex_free(q);
  for (int i = 0; i < NEIGHBOURS; i++)
    if (i != NEIGHBOURS / 2) apex_free(around[i]);
}

static void large_in_place(void) {
  apex_heap_t *h = apex_heap_new();                     /* a fresh superblock: free slices behind */
  CHECK(h != NULL, "apex_heap_new failed");
  unsigned char *p = apex_heap_alloc(h, 200 * 1024, 0);
  CHECK(p != NULL, "apex_heap_alloc(200 KiB) failed");
  size_t usable = apex_usable_size(p);
  fill(p, usable, 5);
  unsigned char *q = apex_realloc(p, usable);           /* within its slack */
  CHECK(q == p, "a large object moved growing into its own slack");
  q = apex_realloc(p, 400 * 1024);                      /* into the free slices behind it */
  CHECK(q == p && apex_usable_size(q) >= 400 * 1024, "a large object moved growing into free slices");
  CHECK(first_diff(q, usable, 5) == SIZE_MAX, "growing in place changed the contents");
  q = apex_realloc(p, 130 * 1024);                      /* still large: gives its tail back */
  CHECK(q == p && apex_usable_size(q) == 192 * 1024, "a large shrink moved (usable %zu)", apex_usable_size(q));
  CHECK(first_diff(q, 130 * 1024, 5) == SIZE_MAX, "shrinking in place changed the contents");
  CHECK(apex_heap_destroy(h) == 0, "apex_heap_destroy failed");
}

static void shrink_never_fails(void) {
  apex_heap_options_t o = { .size = sizeof o, .limit = 10000 };
  apex_heap_t *h = apex_heap_new_ex(&o);
  CHECK(h != NULL, "apex_heap_new_ex failed");
  unsigned char *p = apex_heap_alloc(h, 8192, 0);
  unsigned char *fillup = apex_heap_alloc(h, 1792, 0);  /* 9984 of 10000 bytes live */
  CHECK(p != NULL && fillup != NULL, "allocations under the limit failed");
  fill(p, 8192, 11);
  errno = 1234;
  unsigned char *q = apex_realloc(p, 100);              /* a 112-byte copy would pass the limit */
  CHECK(q == p, "a shrink at the heap's limit gave %p (errno %d), want the object itself", (void *)q, errno);
  CHECK(errno == 1234, "a shrink that stayed changed errno to %d", errno);
  CHECK(first_diff(p, 8192, 11) == SIZE_MAX, "the object changed");
  q = apex_realloc(p, 9000);                            /* a growth past the limit still fails */
  CHECK(q == NULL && errno == ENOMEM, "a growth past the limit gave %p errno %d", (void *)q, errno);
  CHECK(apex_heap_destroy(h) == 0, "apex_heap_destroy failed");
}

static void heap_realloc_grows_over_aligned(void) {
  apex_heap_t *h = apex_heap_new();
  CHECK(h != NULL, "apex_heap_new failed");
  unsigned char *p = apex_heap_alloc(h, 100, 4096);
  CHECK(p != NULL && ((uintptr_t)p & 4095) == 0, "a 4096-aligned allocation failed");
  size_t usable = apex_usable_size(p);
  CHECK(usable >= 4096, "a 4096-aligned chunk of %zu bytes", usable);
  fill(p, 100, 13);
  unsigned char *q = apex_heap_realloc(h, p, 100, 300, 4096);
  CHECK(q == p, "growing 100 -> 300 bytes inside a %zu-byte chunk moved it", usable);
  q = apex_heap_realloc(h, p, 300, usable, 4096);
  CHECK(q == p, "growing to the usable size moved it");
  CHECK(first_diff(q, 100, 13) == SIZE_MAX, "contents changed in place");
  q = apex_heap_realloc(h, p, usable, 100, 4096);        /* a shrink to below half: may move */
  CHECK(q != NULL && ((uintptr_t)q & 4095) == 0 && first_diff(q, 100, 13) == SIZE_MAX, "the shrink failed");
  CHECK(apex_heap_destroy(h) == 0, "apex_heap_destroy failed");
}

int main(void) {
  size_t level = 0, len = sizeof level;
  CHECK(apex_ctl("opt.secure", &level, &len, NULL, 0) == 0, "opt.secure");
  g_hardened = level == 2;
  growth_copies_the_old_size();
  if (g_hardened) {
    unsigned char *p = apex_malloc(100), *q = apex_realloc(p, 100);
    CHECK(p != NULL && q != NULL && q != p, "hardened realloc stayed in place");
    apex_free(q);
    return 0;
  }
  small_classes_in_place();
  large_in_place();
  shrink_never_fails();
  heap_realloc_grows_over_aligned();
  return 0;
}
