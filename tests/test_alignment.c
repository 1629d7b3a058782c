/*
 * Pins the aligned allocation functions:
 *   apex_aligned_alloc, apex_posix_memalign, aligned_alloc, posix_memalign, memalign, valloc, pvalloc
 * for every power-of-two alignment from 1 (where legal) to 4 MiB (and beyond, up to 32 MiB, for the
 * apex_* API, which accepts any power of two) and several sizes: the result is aligned, its usable size
 * covers the request and can be written, the blocks of a batch do not overlap, and every one is freeable.
 * Invalid alignments: apex_aligned_alloc / aligned_alloc return NULL with errno EINVAL;
 * apex_posix_memalign / posix_memalign return EINVAL and leave *out untouched (and the apex_ one leaves
 * errno unchanged). An alignment or size that cannot be satisfied gives NULL/ENOMEM, never a crash.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "apexalloc.h"
#include "testutil.h"

#define MAX_LIVE 32

typedef enum { F_APEX_ALIGNED, F_APEX_POSIX, F_ALIGNED_ALLOC, F_POSIX, F_MEMALIGN, F_VALLOC, F_PVALLOC, F_COUNT } fn_t;

static const char *const fn_name[F_COUNT] = {"apex_aligned_alloc", "apex_posix_memalign", "aligned_alloc",
                                             "posix_memalign", "memalign", "valloc", "pvalloc"};

static size_t page;

static int is_apex(fn_t f) { return f == F_APEX_ALIGNED || f == F_APEX_POSIX; }

/* Smallest alignment the function must give for a request of `align`. */
static size_t want_align(fn_t f, size_t align) {
  if (f == F_VALLOC || f == F_PVALLOC) return page;
  if (is_apex(f) || !APEX_TEST_FOREIGN_MALLOC) return align < APEX_MIN_ALIGN ? APEX_MIN_ALIGN : align;
  return align;
}

static int legal(fn_t f, size_t align) {
  if (f == F_APEX_POSIX || f == F_POSIX) return align >= sizeof(void *);
  return 1;
}

static void *call(fn_t f, size_t align, size_t size) {
  void *p = NULL;
  int rc;
  switch (f) {
    case F_APEX_ALIGNED: return apex_aligned_alloc(align, size);
    case F_APEX_POSIX:
      errno = 4242;
      rc = apex_posix_memalign(&p, align, size);
      CHECK(rc == 0, "apex_posix_memalign(align %zu, size %zu) returned %d", align, size, rc);
      CHECK(errno == 4242, "apex_posix_memalign(align %zu, size %zu) changed errno to %d", align, size, errno);
      return p;
    case F_ALIGNED_ALLOC: return aligned_alloc(align, size);
    case F_POSIX:
      rc = posix_memalign(&p, align, size);
      CHECK(rc == 0, "posix_memalign(align %zu, size %zu) returned %d", align, size, rc);
      return p;
    case F_MEMALIGN: return memalign(align, size);
    case F_VALLOC: return valloc(size);
    case F_PVALLOC: return pvalloc(size);
    default: return NULL;
  }
}

static size_t usable_of(fn_t f, void *p) { return is_apex(f) ? apex_usable_size(p) : malloc_usable_size(p); }

static void release(fn_t f, void *p, size_t size, unsigned i) {
  if (!is_apex(f)) {
    free(p);
  } else if (i % 2) {
    apex_free_sized(p, size);
  } else {
    apex_free(p);
  }
}

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* Allocates every size of sizes[] with function f and alignment `align`, all live at once; checks them;
 * frees them. */
static void batch(fn_t f, size_t align, const size_t *sizes, size_t n) {
  void *ptr[MAX_LIVE];
  size_t req[MAX_LIVE], use[MAX_LIVE];
  uint64_t seed[MAX_LIVE];
  tu_range r[MAX_LIVE];
  size_t k = 0;
  CHECK(n <= MAX_LIVE, "batch too large");
  for (size_t i = 0; i < n; i++) {
    size_t size = sizes[i];
    /* C11 aligned_alloc is only defined for sizes that are a multiple of the alignment. */
    if (f == F_ALIGNED_ALLOC) size = round_up(size ? size : 1, align);
    if (size > 40 * TU_MIB) continue;
    errno = 0;
    void *p = call(f, align, size);
    if (p == NULL && size == 0) continue; /* POSIX allows NULL for size 0 */
    CHECK(p != NULL, "%s(align %zu, size %zu) returned NULL (errno %d)", fn_name[f], align, size, errno);
    size_t wa = want_align(f, align);
    CHECK(tu_aligned(p, wa), "%s(align %zu, size %zu) = %p is not %zu-byte aligned", fn_name[f], align, size, p, wa);
    size_t need = f == F_PVALLOC ? round_up(size ? size : 1, page) : size;
    size_t u = usable_of(f, p);
    CHECK(u >= need, "%s(align %zu, size %zu) = %p: usable size %zu < %zu", fn_name[f], align, size, p, u, need);
    seed[k] = tu_mix64(((uint64_t)f << 40) ^ ((uint64_t)align << 8) ^ i);
    tu_fill(p, u, seed[k]);
    ptr[k] = p;
    req[k] = size;
    use[k] = u;
    r[k].lo = (uintptr_t)p;
    r[k].hi = (uintptr_t)p + (u ? u : 1);
    r[k].index = k;
    k++;
  }
  TU_CHECK_DISJOINT(r, k, fn_name[f]);
  for (size_t i = 0; i < k; i++) {
    size_t bad = tu_verify(ptr[i], use[i], seed[i]);
    CHECK(bad == SIZE_MAX, "%s(align %zu, size %zu) = %p: byte %zu overwritten while live", fn_name[f], align,
          req[i], ptr[i], bad);
    release(f, ptr[i], req[i], (unsigned)i);
  }
}

static void check_einval(void) {
  const size_t bad[] = {0,    3,    5,     6,     12,           24,         48,          100,
                        1000, 4097, 12288, 65535, (1u << 20) + 1, 3u << 20, SIZE_MAX / 2, SIZE_MAX};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t a = tu_opaque(bad[i]);
    errno = 0;
    void *p = apex_aligned_alloc(a, 64);
    CHECK(p == NULL && errno == EINVAL, "apex_aligned_alloc(%zu, 64) = %p, errno %d; want NULL, EINVAL", a, p, errno);
    if (!APEX_TEST_FOREIGN_MALLOC) {
      errno = 0;
      p = aligned_alloc(a, 64);
      CHECK(p == NULL && errno == EINVAL, "aligned_alloc(%zu, 64) = %p, errno %d; want NULL, EINVAL", a, p, errno);
    }

    void *out = (void *)(uintptr_t)0x5EED;
    errno = 4242;
    int rc = apex_posix_memalign(&out, a, 64);
    CHECK(rc == EINVAL, "apex_posix_memalign(align %zu) returned %d, want EINVAL", a, rc);
    CHECK(out == (void *)(uintptr_t)0x5EED, "apex_posix_memalign(align %zu) changed *out on error", a);
    CHECK(errno == 4242, "apex_posix_memalign(align %zu) changed errno to %d", a, errno);
    if (!APEX_TEST_FOREIGN_MALLOC) {
      rc = posix_memalign(&out, a, 64);
      CHECK(rc == EINVAL, "posix_memalign(align %zu) returned %d, want EINVAL", a, rc);
      CHECK(out == (void *)(uintptr_t)0x5EED, "posix_memalign(align %zu) changed *out on error", a);
    }
  }
  /* Powers of two below sizeof(void *) are not legal for posix_memalign. */
  for (size_t a = 1; a < sizeof(void *); a *= 2) {
    void *out = (void *)(uintptr_t)0x5EED;
    errno = 4242;
    int rc = apex_posix_memalign(&out, a, 64);
    CHECK(rc == EINVAL && out == (void *)(uintptr_t)0x5EED && errno == 4242,
          "apex_posix_memalign(align %zu): rc %d, out %p, errno %d; want EINVAL, untouched, unchanged", a, rc, out,
          errno);
    if (!APEX_TEST_FOREIGN_MALLOC) {
      rc = posix_memalign(&out, a, 64);
      CHECK(rc == EINVAL && out == (void *)(uintptr_t)0x5EED, "posix_memalign(align %zu): rc %d, out %p", a, rc,
            out);
    }
  }
}

static void check_enomem(void) {
  /* Legal alignment, impossible size: ENOMEM, never a wrapped-around small block. */
  const size_t big[] = {SIZE_MAX, SIZE_MAX - 100, SIZE_MAX - 4 * TU_MIB, (size_t)PTRDIFF_MAX + 1};
  const size_t aligns[] = {16, 4096, 4 * TU_MIB};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
    for (size_t j = 0; j < sizeof aligns / sizeof aligns[0]; j++) {
      size_t s = tu_opaque(big[i]), a = aligns[j];
      errno = 0;
      void *p = apex_aligned_alloc(a, s);
      CHECK(p == NULL && errno == ENOMEM, "apex_aligned_alloc(%zu, %zu) = %p, errno %d; want NULL, ENOMEM", a, s, p,
            errno);
      void *out = (void *)(uintptr_t)0x5EED;
      errno = 4242;
      int rc = apex_posix_memalign(&out, a, s);
      CHECK(rc == ENOMEM && out == (void *)(uintptr_t)0x5EED && errno == 4242,
            "apex_posix_memalign(align %zu, size %zu): rc %d, out %p, errno %d; want ENOMEM, untouched, unchanged", a,
            s, rc, out, errno);
      if (!APEX_TEST_FOREIGN_MALLOC) {
        out = (void *)(uintptr_t)0x5EED;
        rc = posix_memalign(&out, a, s);
        CHECK(rc == ENOMEM && out == (void *)(uintptr_t)0x5EED,
              "posix_memalign(align %zu, size %zu): rc %d, out %p", a, s, rc, out);
      }
    }
  }
  /* Any power of two is accepted; ones that no address space can satisfy fail with ENOMEM. */
  for (unsigned k = 56; k < 64; k++) {
    size_t a = tu_opaque((size_t)1 << k);
    errno = 0;
    void *p = apex_aligned_alloc(a, 16);
    CHECK(p == NULL && errno == ENOMEM, "apex_aligned_alloc(1<<%u, 16) = %p, errno %d; want NULL, ENOMEM", k, p,
          errno);
  }
}

/* memalign is glibc's, not C's: an alignment that is not a power of two is rounded up to the
 * next one (0 and small ones give the minimum alignment); only one above SIZE_MAX/2 + 1 fails, with
 * EINVAL. (aligned_alloc rejects all of them: check_einval.) */
static void check_memalign_rounds_up(void) {
  if (APEX_TEST_FOREIGN_MALLOC) return;
  const size_t odd[] = {0, 3, 5, 6, 12, 24, 48, 100, 1000, 4097, 12288, 65535, (1u << 20) + 1, 3u << 20};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    size_t a = tu_opaque(odd[i]);
    size_t want = 16;
    while (want < a) want *= 2;
    errno = 4242;
    void *p = memalign(a, 100);
    CHECK(p != NULL, "memalign(%zu, 100) = NULL, errno %d; glibc rounds the alignment up to %zu", a, errno, want);
    CHECK(tu_aligned(p, want), "memalign(%zu, 100) = %p is not %zu-byte aligned", a, p, want);
    CHECK(apex_owns(p) == 1, "memalign(%zu, 100) = %p is not ApexAlloc's", a, p);
    memset(p, 0x5a, 100);
    free(p);
  }
  errno = 0;
  void *p = memalign(tu_opaque(SIZE_MAX / 2 + 2), 16);
  CHECK(p == NULL && errno == EINVAL, "memalign(SIZE_MAX/2 + 2, 16) = %p, errno %d; want NULL, EINVAL", p, errno);
}

int main(void) {
  page = tu_page_size();
  size_t max_align = 4 * TU_MIB;
  for (fn_t f = 0; f < F_COUNT; f++) {
    if (APEX_TEST_FOREIGN_MALLOC && !is_apex(f)) continue; /* the sanitizer's own functions */
    size_t top = is_apex(f) ? 32 * TU_MIB : max_align;
    for (size_t align = 1; align <= top; align *= 2) {
      if (!legal(f, align)) continue;
      if ((f == F_VALLOC || f == F_PVALLOC) && align > 1) break; /* no alignment argument */
      size_t sizes[] = {0, 1, 24, 100, 1000, align - 1, align, align + 1, 3 * align + 5, 70000, TU_MIB + 3};
      size_t n = sizeof sizes / sizeof sizes[0];
      if (align > max_align) n = 4; /* beyond 4 MiB: a few small sizes only */
      if (tu_scale() < 1.0 && n > 10) n = 10; /* scaled down: drop the 1 MiB block of every alignment */
      batch(f, align, sizes, n);
    }
  }
  check_einval();
  check_enomem();
  check_memalign_rounds_up();
  printf("alignment: OK\n");
  return 0;
}
