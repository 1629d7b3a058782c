/*
 * Pins the error results of impossible requests and the zero-size rules:
 *   - malloc/apex_malloc of SIZE_MAX, SIZE_MAX - small, PTRDIFF_MAX + 1, PTRDIFF_MAX, and sizes no address
 *     space holds return NULL with errno ENOMEM (and do not abort);
 *   - calloc / apex_calloc whose count*size overflows (SIZE_MAX/2+1 x 2, 2^32 x 2^32, ...) or is
 *     impossible returns NULL with errno ENOMEM;
 *   - reallocarray / apex_reallocarray(NULL, ...) overflow returns NULL with errno ENOMEM;
 *   - realloc(NULL, SIZE_MAX) returns NULL with errno ENOMEM;
 *   - free(NULL), apex_free(NULL), apex_free_sized(NULL, 0) are no-ops;
 *   - malloc(0) / apex_malloc(0) return unique, non-NULL, aligned, freeable pointers (1000 live at once);
 *   - the allocator keeps working after all of the failures above.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "apexalloc.h"
#include "testutil.h"

/* The standard family is checked too when it is ApexAlloc's (not under ThreadSanitizer). */
#define STD (!APEX_TEST_FOREIGN_MALLOC)

static const size_t impossible[] = {
    SIZE_MAX,
    SIZE_MAX - 1,
    SIZE_MAX - 15,
    SIZE_MAX - 4095,
    SIZE_MAX - 4 * TU_MIB,
    SIZE_MAX / 2 + 1, /* PTRDIFF_MAX + 1 */
    SIZE_MAX / 2,     /* PTRDIFF_MAX */
    (size_t)1 << 62,
    (size_t)1 << 56,
    (size_t)1 << 50, /* 1 PiB: more than the x86-64/aarch64 user address space */
};

#define EXPECT_ENOMEM(call, desc, arg)                                                             \
  do {                                                                                             \
    errno = 0;                                                                                     \
    void *r_ = (call);                                                                             \
    CHECK(r_ == NULL, "%s(%zu) = %p, want NULL", desc, (size_t)(arg), r_);                         \
    CHECK(errno == ENOMEM, "%s(%zu): errno %d, want ENOMEM (%d)", desc, (size_t)(arg), errno, ENOMEM); \
  } while (0)

static void impossible_sizes(void) {
  for (size_t i = 0; i < sizeof impossible / sizeof impossible[0]; i++) {
    size_t n = tu_opaque(impossible[i]);
    EXPECT_ENOMEM(apex_malloc(n), "apex_malloc", n);
    if (STD) EXPECT_ENOMEM(malloc(n), "malloc", n);
    EXPECT_ENOMEM(apex_calloc(1, n), "apex_calloc(1, n)", n);
    if (STD) EXPECT_ENOMEM(calloc(n, 1), "calloc(n, 1)", n);
    EXPECT_ENOMEM(apex_realloc(NULL, n), "apex_realloc(NULL, n)", n);
    if (STD) EXPECT_ENOMEM(realloc(NULL, n), "realloc(NULL, n)", n);
    EXPECT_ENOMEM(apex_reallocarray(NULL, 1, n), "apex_reallocarray(NULL, 1, n)", n);
    if (STD) EXPECT_ENOMEM(reallocarray(NULL, n, 1), "reallocarray(NULL, n, 1)", n);
    EXPECT_ENOMEM(apex_aligned_alloc(64, n), "apex_aligned_alloc(64, n)", n);
  }
}

static void overflowing_products(void) {
  const size_t pairs[][2] = {
      {SIZE_MAX / 2 + 1, 2}, {2, SIZE_MAX / 2 + 1},
      {(size_t)1 << 32, (size_t)1 << 32}, {SIZE_MAX, SIZE_MAX},
      {SIZE_MAX, 2}, {3, SIZE_MAX / 3 + 1},
      {SIZE_MAX / 16 + 1, 16}, {(size_t)1 << 33, (size_t)1 << 31},
  };
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    size_t a = tu_opaque(pairs[i][0]), b = tu_opaque(pairs[i][1]);
    errno = 0;
    void *p = apex_calloc(a, b);
    CHECK(p == NULL && errno == ENOMEM, "apex_calloc(%zu, %zu) = %p, errno %d; want NULL, ENOMEM", a, b, p, errno);
    if (STD) {
      errno = 0;
      p = calloc(a, b);
      CHECK(p == NULL && errno == ENOMEM, "calloc(%zu, %zu) = %p, errno %d; want NULL, ENOMEM", a, b, p, errno);
    }
    errno = 0;
    p = apex_reallocarray(NULL, a, b);
    CHECK(p == NULL && errno == ENOMEM, "apex_reallocarray(NULL, %zu, %zu) = %p, errno %d; want NULL, ENOMEM", a, b,
          p, errno);
    if (STD) {
      errno = 0;
      p = reallocarray(NULL, a, b);
      CHECK(p == NULL && errno == ENOMEM, "reallocarray(NULL, %zu, %zu) = %p, errno %d; want NULL, ENOMEM", a, b, p,
            errno);
    }
  }
}

static void free_null(void) {
  errno = 0;
  free(NULL);
  apex_free(NULL);
  apex_free_sized(NULL, 0);
  CHECK(apex_usable_size(NULL) == 0, "apex_usable_size(NULL) = %zu, want 0", apex_usable_size(NULL));
  if (STD) CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu, want 0", malloc_usable_size(NULL));
}

static void zero_size_unique(const char *name, void *(*alloc)(size_t), void (*release)(void *)) {
  enum { N = 1000 };
  static void *p[N];
  static tu_range r[N];
  for (size_t i = 0; i < N; i++) {
    p[i] = alloc(0);
    CHECK(p[i] != NULL, "%s(0) #%zu returned NULL", name, i);
    CHECK(tu_aligned(p[i], 16), "%s(0) = %p is not 16-byte aligned", name, p[i]);
    r[i].lo = (uintptr_t)p[i];
    r[i].hi = (uintptr_t)p[i] + 1;
    r[i].index = i;
  }
  TU_CHECK_DISJOINT(r, N, name);
  for (size_t i = 0; i < N; i++) release(p[i]);
}

static void *std_malloc(size_t n) { return malloc(n); }
static void std_free(void *p) { free(p); }

static void still_works(void) {
  for (size_t s = 1; s < 100000; s = s * 3 + 1) {
    void *p = apex_malloc(s), *q = STD ? malloc(s) : apex_malloc(s);
    CHECK(p && q, "allocation of %zu bytes failed after the error cases", s);
    tu_fill(p, s, s);
    tu_fill(q, s, s + 1);
    CHECK(tu_verify(p, s, s) == SIZE_MAX && tu_verify(q, s, s + 1) == SIZE_MAX, "blocks of %zu bytes clobbered", s);
    apex_free(p);
    apex_free(q);
  }
}

int main(void) {
  impossible_sizes();
  overflowing_products();
  free_null();
  zero_size_unique("apex_malloc", apex_malloc, apex_free);
  if (STD) zero_size_unique("malloc", std_malloc, std_free);
  still_works();
  printf("errno: OK\n");
  return 0;
}
