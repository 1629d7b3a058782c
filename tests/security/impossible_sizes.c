/*
 * Bad input through the API is not heap corruption: impossible sizes, overflowing products and
 * invalid alignments must get a defined error result (NULL with the documented errno, or an error
 * code), never an abort. This program must exit normally with status 0.
 *
 *   malloc / apex_malloc(SIZE_MAX and other sizes no address space holds)   NULL, ENOMEM
 *   calloc / apex_calloc / apex_heap_calloc with count*size overflowing      NULL, ENOMEM
 *   realloc / apex_realloc(p, SIZE_MAX) of a live p                          NULL, ENOMEM, p intact
 *   reallocarray / apex_reallocarray overflowing                             NULL, ENOMEM, p intact
 *   aligned_alloc / apex_aligned_alloc(alignment 0, 3, 24, 48, SIZE_MAX)     NULL, EINVAL
 *   apex_aligned_alloc(2^62, 16)                                             NULL, ENOMEM
 *   posix_memalign with alignment 0, 4, 24 (not a power-of-two multiple of sizeof(void *))
 *                                                                            EINVAL, *out untouched
 *   apex_heap_alloc(NULL heap, ...) and bad alignments                       NULL, EINVAL
 *   apex_heap_alloc(h, SIZE_MAX, 0)                                          NULL, ENOMEM
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apexalloc.h"
#include "check.h"
#include "sec.h"

static size_t opaque(size_t x) {
  volatile size_t v = x;
  return v;
}

#define EXPECT_NULL_ERRNO(call, want_errno)                                                   \
  do {                                                                                        \
    errno = 0;                                                                                \
    void *r_ = (call);                                                                        \
    CHECK(r_ == NULL, "%s = %p, want NULL", #call, r_);                                       \
    CHECK(errno == (want_errno), "%s: errno %d (%s), want %d (%s)", #call, errno, strerror(errno), \
          (want_errno), strerror(want_errno));                                                \
  } while (0)

static const size_t impossible[] = {
    SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4095, SIZE_MAX / 2 + 1, SIZE_MAX / 2,
    (size_t)1 << 62, (size_t)1 << 50,
};

int main(void) {
  char *live = apex_malloc(100);
  CHECK(live != NULL, "apex_malloc(100) failed");
  memset(live, 0x5a, 100);
  apex_heap_t *heap = apex_heap_new();
  CHECK(heap != NULL, "apex_heap_new failed");

  for (size_t i = 0; i < sizeof impossible / sizeof impossible[0]; i++) {
    size_t n = opaque(impossible[i]);
    EXPECT_NULL_ERRNO(apex_malloc(n), ENOMEM);
    EXPECT_NULL_ERRNO(malloc(n), ENOMEM);
    EXPECT_NULL_ERRNO(apex_calloc(1, n), ENOMEM);
    EXPECT_NULL_ERRNO(apex_aligned_alloc(64, n), ENOMEM);
    EXPECT_NULL_ERRNO(apex_heap_alloc(heap, n, 0), ENOMEM);
    EXPECT_NULL_ERRNO(apex_heap_alloc(heap, n, 4096), ENOMEM);
    EXPECT_NULL_ERRNO(apex_realloc(live, n), ENOMEM);
    EXPECT_NULL_ERRNO(realloc(live, n), ENOMEM);
    EXPECT_NULL_ERRNO(apex_heap_realloc(heap, live, 100, n, 0), ENOMEM);
    void *out = &out;
    CHECK(apex_posix_memalign(&out, 64, n) == ENOMEM && out == &out, "posix_memalign(64, %zu)", n);
  }

  const size_t big = opaque(SIZE_MAX / 2 + 1);
  EXPECT_NULL_ERRNO(apex_calloc(big, 2), ENOMEM);
  EXPECT_NULL_ERRNO(calloc(2, big), ENOMEM);
  EXPECT_NULL_ERRNO(apex_calloc(opaque((size_t)1 << 32), opaque((size_t)1 << 32)), ENOMEM);
  EXPECT_NULL_ERRNO(apex_heap_calloc(heap, big, 2, 0), ENOMEM);
  EXPECT_NULL_ERRNO(apex_reallocarray(live, big, 2), ENOMEM);
  EXPECT_NULL_ERRNO(reallocarray(live, 2, big), ENOMEM);

  const size_t bad_alignments[] = {0, 3, 24, 48, 100, SIZE_MAX};
  for (size_t i = 0; i < sizeof bad_alignments / sizeof bad_alignments[0]; i++) {
    size_t a = opaque(bad_alignments[i]);
    EXPECT_NULL_ERRNO(apex_aligned_alloc(a, 64), EINVAL);
    EXPECT_NULL_ERRNO(aligned_alloc(a, 64), EINVAL);
    if (a != 0) EXPECT_NULL_ERRNO(apex_heap_alloc(heap, 64, a), EINVAL);
    void *out = &out;
    int saved = errno = 1234;
    CHECK(apex_posix_memalign(&out, a, 64) == EINVAL && out == &out, "apex_posix_memalign(%zu)", a);
    CHECK(errno == saved, "apex_posix_memalign changed errno");
  }
  void *out = &out;
  CHECK(apex_posix_memalign(&out, opaque(4), 64) == EINVAL && out == &out, "posix_memalign(4)");
  CHECK(posix_memalign(&out, opaque(2), 64) == EINVAL && out == &out, "posix_memalign(2)");
  EXPECT_NULL_ERRNO(apex_aligned_alloc(opaque((size_t)1 << 62), 16), ENOMEM);
  EXPECT_NULL_ERRNO(apex_heap_alloc(NULL, 64, 0), EINVAL);
  EXPECT_NULL_ERRNO(apex_heap_calloc(NULL, 1, 64, 0), EINVAL);
  EXPECT_NULL_ERRNO(apex_heap_realloc(NULL, live, 100, 200, 0), EINVAL);

  /* The live object survived every failed call, and the allocator still works. */
  for (int i = 0; i < 100; i++) CHECK((unsigned char)live[i] == 0x5a, "live object changed at %d", i);
  apex_free(NULL);
  apex_free_sized(NULL, 0);
  free(NULL);
  void *q = apex_malloc(100);
  CHECK(q != NULL, "allocation after the failures");
  apex_free(q);
  apex_free(live);
  CHECK(apex_heap_destroy(heap) == 0, "apex_heap_destroy");
  printf("impossible sizes: NULL with the documented errno, no abort\n");
  return 0;
}
