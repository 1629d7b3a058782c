/*
 * Pins: calloc (apex_calloc and calloc) returns zero-filled memory even when it recycles blocks that
 * were dirtied: blocks of many sizes are filled with 0xAA and freed, then the same sizes are calloc'ed
 * (as 1 x n, n x 1 and k x n/k) many times and every requested byte must be zero. Also large callocs
 * (fresh and recycled, up to 64 MiB), calloc of a block freed by another thread, and calloc(0, n) /
 * calloc(n, 0) returning a pointer that can be freed.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apexalloc.h"
#include "testutil.h"

typedef struct {
  const char *name;
  void *(*alloc)(size_t);
  void *(*zalloc)(size_t, size_t);
  void (*release)(void *);
  size_t (*usable)(void *);
} api_t;

static size_t apex_usable(void *p) { return apex_usable_size(p); }
static size_t std_usable(void *p) { return malloc_usable_size(p); }
static void *std_malloc(size_t n) { return malloc(n); }
static void *std_calloc(size_t c, size_t n) { return calloc(c, n); }
static void std_free(void *p) { free(p); }

static const api_t apis[] = {
    {"apex_calloc", apex_malloc, apex_calloc, apex_free, apex_usable},
    {"calloc", std_malloc, std_calloc, std_free, std_usable},
};

enum { PER_SIZE = 24 };

static void check_zero(const api_t *api, void *p, size_t count, size_t size) {
  CHECK(p != NULL, "%s(%zu, %zu) returned NULL", api->name, count, size);
  CHECK(tu_aligned(p, 16), "%s(%zu, %zu) = %p is not 16-byte aligned", api->name, count, size, p);
  size_t n = count * size;
  CHECK(api->usable(p) >= n, "%s(%zu, %zu): usable size %zu", api->name, count, size, api->usable(p));
  size_t bad = tu_first_nonzero(p, n);
  CHECK(bad == SIZE_MAX, "%s(%zu, %zu) = %p: byte %zu of %zu is 0x%02x, not zero (recycled dirty memory?)",
        api->name, count, size, p, bad, n, ((unsigned char *)p)[bad]);
}

static void dirty_then_calloc(const api_t *api, size_t size, unsigned rounds) {
  void *blocks[PER_SIZE];
  for (unsigned r = 0; r < rounds; r++) {
    for (size_t i = 0; i < PER_SIZE; i++) {
      blocks[i] = api->alloc(size);
      CHECK(blocks[i] != NULL, "%s: malloc(%zu) failed", api->name, size);
      memset(blocks[i], 0xAA, api->usable(blocks[i]));
    }
    for (size_t i = 0; i < PER_SIZE; i++) api->release(blocks[i]);
    for (size_t i = 0; i < PER_SIZE; i++) {
      size_t count = 1, each = size;
      if (i % 3 == 1) {
        count = size;
        each = 1;
      } else if (i % 3 == 2 && size >= 8) {
        count = 8;
        each = size / 8; /* 8 x size/8 <= size: still dirty memory of this size class */
      }
      blocks[i] = api->zalloc(count, each);
      check_zero(api, blocks[i], count, each);
      memset(blocks[i], 0xAA, count * each); /* dirty again for the next round */
    }
    for (size_t i = 0; i < PER_SIZE; i++) api->release(blocks[i]);
  }
}

/* ---- a thread dirties and frees, the main thread callocs --------------------------------------- */

typedef struct {
  const api_t *api;
  void **blocks;
  size_t n, size;
} remote_arg;

static void *dirty_and_free(void *arg) {
  remote_arg *a = (remote_arg *)arg;
  for (size_t i = 0; i < a->n; i++) {
    memset(a->blocks[i], 0xAA, a->api->usable(a->blocks[i]));
    a->api->release(a->blocks[i]);
  }
  return NULL;
}

static void remote_dirty_then_calloc(const api_t *api) {
  enum { N = 2000 };
  static void *blocks[N];
  const size_t sizes[] = {16, 48, 200, 1024, 5000};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    for (int round = 0; round < 3; round++) {
      for (size_t i = 0; i < N; i++) {
        blocks[i] = api->alloc(sizes[s]);
        CHECK(blocks[i] != NULL, "%s: malloc failed", api->name);
      }
      remote_arg a = {api, blocks, N, sizes[s]};
      pthread_t t;
      CHECK(pthread_create(&t, NULL, dirty_and_free, &a) == 0, "pthread_create failed");
      CHECK(pthread_join(t, NULL) == 0, "pthread_join failed");
      for (size_t i = 0; i < N; i++) {
        blocks[i] = api->zalloc(1, sizes[s]);
        check_zero(api, blocks[i], 1, sizes[s]);
      }
      for (size_t i = 0; i < N; i++) api->release(blocks[i]);
    }
  }
}

int main(void) {
  unsigned rounds = (unsigned)tu_scaled(12, 2);
  for (size_t a = 0; a < TU_NUM_APIS(apis); a++) {
    const api_t *api = &apis[a];
    for (size_t s = 1; s <= 2048; s += (s < 256 ? 1 : 13)) dirty_then_calloc(api, s, s <= 256 ? rounds : 2);
    const size_t mid[] = {4096, 8000, 16384, 40000, 65536, 100000, 262144, TU_MIB - 8, TU_MIB + 8};
    for (size_t i = 0; i < sizeof mid / sizeof mid[0]; i++) dirty_then_calloc(api, mid[i], 2);
    /* Large: fresh and recycled. */
    const size_t large[] = {2 * TU_MIB, 4 * TU_MIB + 1, 8 * TU_MIB, 20 * TU_MIB};
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
      void *p = api->alloc(large[i]);
      CHECK(p != NULL, "%s: malloc(%zu) failed", api->name, large[i]);
      memset(p, 0xAA, large[i]);
      api->release(p);
      p = api->zalloc(1, large[i]);
      check_zero(api, p, 1, large[i]);
      api->release(p);
      p = api->zalloc(large[i] / 16, 16);
      check_zero(api, p, large[i] / 16, 16);
      api->release(p);
    }
    void *big = api->zalloc(64, TU_MIB);
    check_zero(api, big, 64, TU_MIB);
    api->release(big);
    remote_dirty_then_calloc(api);
    /* calloc with a zero count or size: a unique pointer to free. */
    void *z1 = api->zalloc(0, 8), *z2 = api->zalloc(8, 0), *z3 = api->zalloc(0, 0);
    CHECK(z1 && z2 && z3, "%s with a zero count or size returned NULL (%p %p %p)", api->name, z1, z2, z3);
    CHECK(z1 != z2 && z2 != z3 && z1 != z3, "%s zero-size results are not distinct", api->name);
    api->release(z1);
    api->release(z2);
    api->release(z3);
  }
  printf("calloc_zeroes: OK\n");
  return 0;
}
