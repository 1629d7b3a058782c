/*
 * Pins realloc (apex_realloc and the standard realloc, and the reallocarray variants):
 *   - contents are preserved (the first min(old, new) bytes) growing and shrinking step by step across
 *     the small size classes, into the large path (> 1 MiB, > 4 MiB, up to 17 MiB) and back down;
 *   - the same for direct jumps between small and large and between large sizes, with other blocks live;
 *   - growing within the usable size happens in place (the header: "resizing within the same size
 *     class happens in place"), except in hardened mode (APEX_SECURE=2), where realloc always moves
 *     (the header and docs/SECURITY.md);
 *   - realloc(NULL, n) behaves as malloc(n);
 *   - realloc(p, 0) returns a pointer to free (never NULL unless out of memory), per the header;
 *   - an impossible size returns NULL with errno ENOMEM and leaves the old block valid and unchanged;
 *   - reallocarray overflow returns NULL / ENOMEM and leaves the block unchanged;
 *   - blocks allocated by a thread that has exited can be resized and freed by another thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "apexalloc.h"
#include "testutil.h"

typedef struct {
  const char *name;
  int is_std;
  void *(*alloc)(size_t);
  void *(*resize)(void *, size_t);
  void *(*resize_array)(void *, size_t, size_t);
  void (*release)(void *);
  size_t (*usable)(void *);
} api_t;

static size_t apex_usable(void *p) { return apex_usable_size(p); }
static size_t std_usable(void *p) { return malloc_usable_size(p); }
static void *std_malloc(size_t n) { return malloc(n); }
static void *std_realloc(void *p, size_t n) { return realloc(p, n); }
static void *std_reallocarray(void *p, size_t c, size_t n) { return reallocarray(p, c, n); }
static void std_free(void *p) { free(p); }

static const api_t apis[] = {
    {"apex_realloc", 0, apex_malloc, apex_realloc, apex_reallocarray, apex_free, apex_usable},
    {"realloc", 1, std_malloc, std_realloc, std_reallocarray, std_free, std_usable},
};

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Resizes the block p (holding `old` bytes of the pattern `old_seed`) to `size`; checks the result and
 * the preserved prefix; refills the new block with `new_seed`. */
static void *resize_checked(const api_t *api, void *p, size_t old, uint64_t old_seed, size_t size,
                            uint64_t new_seed) {
  size_t old_usable = api->usable(p);
  void *q = api->resize(p, size);
  CHECK(q != NULL, "%s(%p, %zu -> %zu) returned NULL (errno %d)", api->name, p, old, size, errno);
  CHECK(tu_aligned(q, 16), "%s(%zu -> %zu) = %p is not 16-byte aligned", api->name, old, size, q);
  size_t u = api->usable(q);
  CHECK(u >= size, "%s(%zu -> %zu) = %p: usable size %zu < %zu", api->name, old, size, q, u, size);
  size_t keep = min_sz(old, size);
  size_t bad = tu_verify(q, keep, old_seed);
  CHECK(bad == SIZE_MAX, "%s(%zu -> %zu): byte %zu of the %zu preserved bytes differs (old %p, new %p)", api->name,
        old, size, bad, keep, p, q);
  if (size <= old_usable && size >= old && old_usable <= 32 * TU_KIB && (!api->is_std || !APEX_TEST_FOREIGN_MALLOC))
    CHECK(q == p, "%s(%zu -> %zu): growing within the usable size %zu moved the block %p -> %p", api->name, old,
          size, old_usable, p, q);
  tu_fill(q, size, new_seed);
  return q;
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

static void chain_up_and_down(const api_t *api) {
  size_t steps[512];
  size_t n = 0;
  const size_t fixed[] = {1,         7,         8,         9,           15,          16,         17,
                          24,        31,        32,        33,          48,          64,         100,
                          128,       255,       256,       257,         1000,        1024,       1025,
                          4095,      4096,      4097,      16383,       16384,       16385,      65535,
                          65536,     65537,     262144,    TU_MIB - 1,  TU_MIB,      TU_MIB + 1, 2 * TU_MIB,
                          4 * TU_MIB - 1, 4 * TU_MIB, 4 * TU_MIB + 1, 6 * TU_MIB, 17 * TU_MIB};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) steps[n++] = fixed[i];
  /* Plus a geometric schedule with jitter, merged in sorted order. */
  tu_rng rng;
  tu_rng_seed(&rng, 99);
  double ratio = tu_scale() >= 1.0 ? 1.25 : 1.8;
  for (double d = 2; d < (double)(17 * TU_MIB); d *= ratio) {
    CHECK(n < sizeof steps / sizeof steps[0], "schedule too long");
    steps[n++] = (size_t)d + tu_rng_range(&rng, 0, (size_t)d / 8);
  }
  qsort(steps, n, sizeof steps[0], cmp_size);
  size_t m = 1;
  for (size_t i = 1; i < n; i++)
    if (steps[i] != steps[m - 1] && steps[i] <= 17 * TU_MIB) steps[m++] = steps[i];
  n = m;
  uint64_t seed = tu_mix64(1);
  size_t cur = steps[0];
  void *p = api->alloc(cur);
  CHECK(p != NULL, "%s: first allocation failed", api->name);
  tu_fill(p, cur, seed);
  for (size_t i = 1; i < n; i++) { /* up */
    uint64_t ns = tu_mix64(seed + i);
    p = resize_checked(api, p, cur, seed, steps[i], ns);
    cur = steps[i];
    seed = ns;
  }
  for (size_t i = n - 1; i-- > 0;) { /* and down */
    uint64_t ns = tu_mix64(seed + i + 1000);
    p = resize_checked(api, p, cur, seed, steps[i], ns);
    cur = steps[i];
    seed = ns;
  }
  api->release(p);
}

static void jumps(const api_t *api) {
  static const size_t pairs[][2] = {
      {100, 2 * TU_MIB},           {2 * TU_MIB, 100},         {100, 5 * TU_MIB},         {5 * TU_MIB, 100},
      {TU_MIB + 1, 4 * TU_MIB + 1}, {4 * TU_MIB + 1, TU_MIB + 1}, {16 * TU_MIB, 8 * TU_MIB}, {8 * TU_MIB, 16 * TU_MIB},
      {64 * TU_KIB, 64 * TU_KIB + 1}, {64 * TU_KIB + 1, 64 * TU_KIB}, {3000, 3001},          {3001, 24},
      {24, 70000},                 {70000, 1100 * TU_KIB},    {1100 * TU_KIB, 5000},     {1, 12 * TU_MIB},
  };
  void *blockers[16];
  for (size_t r = 0; r < 2; r++) {
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
      size_t from = pairs[i][0], to = pairs[i][1];
      uint64_t s1 = tu_mix64(i * 7 + r), s2 = tu_mix64(i * 7 + r + 3);
      void *p = api->alloc(from);
      CHECK(p != NULL, "%s: alloc(%zu) failed", api->name, from);
      tu_fill(p, from, s1);
      /* On the second round, neighbours are allocated right after p, so that growing in place is
       * harder and the copying path is taken. */
      if (r == 1)
        for (size_t b = 0; b < 16; b++) {
          blockers[b] = api->alloc(from);
          CHECK(blockers[b] != NULL, "%s: alloc(%zu) failed", api->name, from);
          tu_fill(blockers[b], from, s1 ^ b);
        }
      p = resize_checked(api, p, from, s1, to, s2);
      CHECK(tu_verify(p, to, s2) == SIZE_MAX, "%s: refill check failed", api->name);
      if (r == 1)
        for (size_t b = 0; b < 16; b++) {
          CHECK(tu_verify(blockers[b], from, s1 ^ b) == SIZE_MAX,
                "%s(%zu -> %zu) overwrote a neighbouring block of size %zu", api->name, from, to, from);
          api->release(blockers[b]);
        }
      api->release(p);
    }
  }
}

static void null_and_zero(const api_t *api) {
  const size_t sizes[] = {0, 1, 100, 5000, 70000, 2 * TU_MIB, 5 * TU_MIB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = api->resize(NULL, n);
    CHECK(p != NULL, "%s(NULL, %zu) returned NULL", api->name, n);
    CHECK(tu_aligned(p, 16), "%s(NULL, %zu) = %p is not 16-byte aligned", api->name, n, p);
    CHECK(api->usable(p) >= n, "%s(NULL, %zu): usable size %zu", api->name, n, api->usable(p));
    tu_fill(p, n, 5);
    /* realloc(p, 0) frees p and returns a fresh minimal allocation, to be freed. */
    errno = 0;
    void *z = api->resize(p, 0);
    if (!api->is_std || !APEX_TEST_FOREIGN_MALLOC)
      CHECK(z != NULL, "%s(p of %zu bytes, 0) returned NULL (errno %d); the header promises a pointer to free",
            api->name, n, errno);
    if (z) {
      CHECK(tu_aligned(z, 16), "%s(p, 0) = %p is not 16-byte aligned", api->name, z);
      api->release(z);
    }
  }
  /* Many realloc(p, 0) results live at once are distinct. */
  enum { N = 256 };
  void *zs[N];
  tu_range r[N];
  size_t k = 0;
  for (size_t i = 0; i < N; i++) {
    void *p = api->alloc(32);
    CHECK(p != NULL, "%s: alloc(32) failed", api->name);
    zs[i] = api->resize(p, 0);
    if (!zs[i]) continue;
    r[k].lo = (uintptr_t)zs[i];
    r[k].hi = (uintptr_t)zs[i] + 1;
    r[k].index = i;
    k++;
  }
  TU_CHECK_DISJOINT(r, k, "realloc(p, 0) results");
  for (size_t i = 0; i < N; i++) api->release(zs[i]);
}

static void in_place(const api_t *api) {
  size_t level = 0, len = sizeof level;
  CHECK(apex_ctl("opt.secure", &level, &len, NULL, 0) == 0, "opt.secure");
  for (size_t s = 1; s <= 4096; s += 7) {
    void *p = api->alloc(s);
    CHECK(p != NULL, "%s: alloc(%zu) failed", api->name, s);
    size_t u = api->usable(p);
    tu_fill(p, s, s);
    void *q = api->resize(p, u);
    if (level == 2)
      CHECK(q != NULL && q != p, "%s(%p of %zu, %zu): hardened realloc stayed in place", api->name, p, s, u);
    else
      CHECK(q == p, "%s(%p of %zu, %zu = its usable size) moved the block to %p", api->name, p, s, u, q);
    CHECK(tu_verify(q, s, s) == SIZE_MAX, "%s(%zu -> usable %zu) lost contents", api->name, s, u);
    api->release(q);
  }
}

static void failure_keeps_block(const api_t *api) {
  const size_t sizes[] = {100, 70000, 2 * TU_MIB, 6 * TU_MIB};
  const size_t huge[] = {SIZE_MAX,     SIZE_MAX - 4096, SIZE_MAX - 4 * TU_MIB, (size_t)PTRDIFF_MAX + 1,
                         (size_t)1 << 62, (size_t)1 << 50};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = api->alloc(n);
    CHECK(p != NULL, "%s: alloc(%zu) failed", api->name, n);
    size_t u = api->usable(p);
    tu_fill(p, n, 77 + i);
    for (size_t j = 0; j < sizeof huge / sizeof huge[0]; j++) {
      size_t h = tu_opaque(huge[j]);
      errno = 0;
      void *q = api->resize(p, h);
      CHECK(q == NULL, "%s(%p of %zu bytes, %zu) = %p, want NULL", api->name, p, n, h, q);
      CHECK(errno == ENOMEM, "%s(%p of %zu bytes, %zu): errno %d, want ENOMEM", api->name, p, n, h, errno);
      CHECK(api->usable(p) == u, "%s(p, %zu) failed but changed the usable size of p from %zu to %zu", api->name, h,
            u, api->usable(p));
      CHECK(tu_verify(p, n, 77 + i) == SIZE_MAX, "%s(p of %zu bytes, %zu) failed but changed the contents of p",
            api->name, n, h);
    }
    /* reallocarray: overflowing products. */
    const size_t ov[][2] = {{SIZE_MAX / 2 + 1, 2}, {2, SIZE_MAX / 2 + 1}, {(size_t)1 << 32, (size_t)1 << 32},
                            {SIZE_MAX, SIZE_MAX}};
    for (size_t j = 0; j < sizeof ov / sizeof ov[0]; j++) {
      size_t a = tu_opaque(ov[j][0]), b = tu_opaque(ov[j][1]);
      errno = 0;
      void *q = api->resize_array(p, a, b);
      CHECK(q == NULL && errno == ENOMEM, "%sarray(p, %zu, %zu) = %p, errno %d; want NULL, ENOMEM", api->name, a, b,
            q, errno);
      CHECK(tu_verify(p, n, 77 + i) == SIZE_MAX, "%sarray overflow changed the contents of p", api->name);
    }
    /* reallocarray that fits: grows and keeps the contents. */
    void *q = api->resize_array(p, n / 4 + 1, 8);
    CHECK(q != NULL, "%sarray(p, %zu, 8) failed", api->name, n / 4 + 1);
    CHECK(tu_verify(q, n, 77 + i) == SIZE_MAX, "%sarray(p, %zu, 8) lost contents", api->name, n / 4 + 1);
    api->release(q);
  }
}

/* ---- blocks of a thread that has exited, resized by another thread -------------------------- */

enum { DEAD_N = 600 };
static void *dead_blocks[DEAD_N];
static size_t dead_sizes[DEAD_N];

static void *dead_thread(void *arg) {
  const api_t *api = (const api_t *)arg;
  tu_rng rng;
  tu_rng_seed(&rng, 4242);
  for (size_t i = 0; i < DEAD_N; i++) {
    size_t s = i % 50 == 0 ? tu_rng_range(&rng, 64 * TU_KIB, 2 * TU_MIB) : tu_rng_range(&rng, 1, 3000);
    dead_sizes[i] = s;
    dead_blocks[i] = api->alloc(s);
    CHECK(dead_blocks[i] != NULL, "%s: alloc(%zu) failed in thread", api->name, s);
    tu_fill(dead_blocks[i], s, 1000 + i);
  }
  return NULL;
}

static void resize_blocks_of_dead_thread(const api_t *api) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, dead_thread, (void *)api) == 0, "pthread_create failed");
  CHECK(pthread_join(t, NULL) == 0, "pthread_join failed");
  for (size_t i = 0; i < DEAD_N; i++) {
    size_t to = i % 3 == 0 ? dead_sizes[i] / 2 + 1 : i % 3 == 1 ? dead_sizes[i] * 3 : dead_sizes[i] + 1;
    void *q = resize_checked(api, dead_blocks[i], dead_sizes[i], 1000 + i, to, 5000 + i);
    api->release(q);
  }
}

int main(void) {
  for (size_t a = 0; a < TU_NUM_APIS(apis); a++) {
    const api_t *api = &apis[a];
    chain_up_and_down(api);
    jumps(api);
    null_and_zero(api);
    if (!api->is_std || !APEX_TEST_FOREIGN_MALLOC) in_place(api);
    failure_keeps_block(api);
    resize_blocks_of_dead_thread(api);
  }
  printf("realloc_preserves: OK\n");
  return 0;
}
