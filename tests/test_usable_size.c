/*
 * Pins apex_usable_size and apex_free_sized:
 *   - apex_usable_size(NULL) == 0; for every allocation function the usable size is >= the request, is
 *     stable while the block lives, and all of it can be written without disturbing other blocks;
 *   - apex_free_sized(p, n) works for n = the size asked for, n = the usable size, and any n between,
 *     for blocks from apex_malloc, apex_calloc, apex_aligned_alloc and apex_realloc, small and large,
 *     on the allocating thread and on another thread; the freed memory is reused correctly afterwards.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "apexalloc.h"
#include "testutil.h"

enum { MAXB = 4096 };

typedef struct {
  void *p;
  size_t req, usable;
  uint64_t seed;
  int how; /* which size to pass to apex_free_sized: 0 requested, 1 usable, 2 between */
} blk_t;

static blk_t blocks[MAXB];
static size_t nblocks;

static size_t free_size_of(const blk_t *b) {
  switch (b->how) {
    case 0: return b->req;
    case 1: return b->usable;
    default: return b->req + (b->usable - b->req) / 2;
  }
}

static void add(void *p, size_t req, const char *what) {
  CHECK(nblocks < MAXB, "too many blocks");
  CHECK(p != NULL, "%s(%zu) returned NULL", what, req);
  size_t u = apex_usable_size(p);
  CHECK(u >= req, "%s(%zu) = %p: usable size %zu < request", what, req, p, u);
  blk_t *b = &blocks[nblocks];
  b->p = p;
  b->req = req;
  b->usable = u;
  b->seed = tu_mix64(nblocks * 31 + req);
  b->how = (int)(nblocks % 3);
  tu_fill(p, u, b->seed);
  nblocks++;
}

static void verify_all(void) {
  for (size_t i = 0; i < nblocks; i++) {
    blk_t *b = &blocks[i];
    CHECK(apex_usable_size(b->p) == b->usable, "usable size of %p (request %zu) changed from %zu to %zu", b->p,
          b->req, b->usable, apex_usable_size(b->p));
    size_t bad = tu_verify(b->p, b->usable, b->seed);
    CHECK(bad == SIZE_MAX, "block %p (request %zu, usable %zu): byte %zu was overwritten by another block", b->p,
          b->req, b->usable, bad);
  }
}

static void free_range(size_t from, size_t to) {
  for (size_t i = from; i < to; i++) apex_free_sized(blocks[i].p, free_size_of(&blocks[i]));
}

typedef struct {
  size_t from, to;
} span_t;

static void *free_range_thread(void *arg) {
  span_t *s = (span_t *)arg;
  free_range(s->from, s->to);
  return NULL;
}

static void allocate_set(tu_rng *rng) {
  nblocks = 0;
  for (size_t s = 0; s <= 1100; s += 1) add(apex_malloc(s), s, "apex_malloc");
  for (size_t s = 1101; s <= 300000; s = s * 9 / 8 + tu_rng_range(rng, 0, 64)) add(apex_malloc(s), s, "apex_malloc");
  const size_t large[] = {TU_MIB - 1, TU_MIB + 1, 3 * TU_MIB, 4 * TU_MIB + 100, 9 * TU_MIB};
  for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) add(apex_malloc(large[i]), large[i], "apex_malloc");
  for (size_t s = 1; s <= 40000; s = s * 3 + 5) {
    size_t count = s % 7 + 1;
    add(apex_calloc(count, s), count * s, "apex_calloc");
  }
  for (size_t a = 1; a <= 4 * TU_MIB; a *= 4)
    for (size_t s = 1; s <= 3 * a + 1; s = s * 5 + 3) add(apex_aligned_alloc(a, s), s, "apex_aligned_alloc");
  for (size_t s = 10; s <= 2 * TU_MIB; s = s * 4 + 1) {
    void *p = apex_malloc(s / 2);
    CHECK(p != NULL, "apex_malloc failed");
    add(apex_realloc(p, s), s, "apex_realloc");
    p = apex_malloc(s * 2);
    CHECK(p != NULL, "apex_malloc failed");
    add(apex_realloc(p, s), s, "apex_realloc (shrink)");
  }
}

int main(void) {
  CHECK(apex_usable_size(NULL) == 0, "apex_usable_size(NULL) = %zu", apex_usable_size(NULL));
  tu_rng rng;
  tu_rng_seed(&rng, 3);
  unsigned rounds = (unsigned)tu_scaled(4, 1);
  for (unsigned r = 0; r < rounds; r++) {
    /* Freed on the allocating thread. */
    allocate_set(&rng);
    verify_all();
    free_range(0, nblocks);
    /* Freed by two other threads, each half of the blocks. */
    allocate_set(&rng);
    verify_all();
    span_t a = {0, nblocks / 2}, b = {nblocks / 2, nblocks};
    pthread_t t1, t2;
    CHECK(pthread_create(&t1, NULL, free_range_thread, &a) == 0, "pthread_create failed");
    CHECK(pthread_create(&t2, NULL, free_range_thread, &b) == 0, "pthread_create failed");
    CHECK(pthread_join(t1, NULL) == 0 && pthread_join(t2, NULL) == 0, "pthread_join failed");
  }
  /* The memory released by apex_free_sized is reused without overlap. */
  allocate_set(&rng);
  verify_all();
  free_range(0, nblocks);
  printf("usable_size: OK (%zu blocks per set)\n", nblocks);
  return 0;
}
