/*
 * Pins: for every size 0..4100 and for sizes up to 16 MiB (geometric schedule with jitter, plus
 * every power of two +-1), apex_malloc and malloc return a 16-byte aligned pointer whose usable
 * size is at least the size asked for, the whole usable size can be written, and the live blocks
 * of a batch never overlap (sorted range check, and each block keeps its own pattern until freed).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "apexalloc.h"
#include "testutil.h"

typedef struct {
  const char *name;
  void *(*alloc)(size_t);
  void (*release)(void *);
  size_t (*usable)(void *);
} api_t;

static size_t apex_usable(void *p) { return apex_usable_size(p); }
static size_t std_usable(void *p) { return malloc_usable_size(p); }
static void *std_malloc(size_t n) { return malloc(n); }
static void std_free(void *p) { free(p); }

static const api_t apis[] = {
    {"apex_malloc", apex_malloc, apex_free, apex_usable},
    {"malloc", std_malloc, std_free, std_usable},
};

#define MAX_SIZES 8192
#define BATCH 128

static size_t sizes[MAX_SIZES];
static size_t nsizes;

static void add_size(size_t s) {
  CHECK(nsizes < MAX_SIZES, "size schedule too long");
  sizes[nsizes++] = s;
}

static void build_schedule(void) {
  const size_t max = 16 * TU_MIB;
  tu_rng rng;
  tu_rng_seed(&rng, 42);
  for (size_t s = 0; s <= 4100; s++) add_size(s);
  for (unsigned k = 12; k <= 24; k++) {
    size_t p = (size_t)1 << k;
    add_size(p - 1);
    add_size(p);
    if (p + 1 <= max) add_size(p + 1);
  }
  add_size(TU_MIB - 16);
  add_size(TU_MIB + 16);
  add_size(4 * TU_MIB - 16);
  add_size(4 * TU_MIB + 16);
  /* Geometric with jitter; a coarser ratio when the work is scaled down (valgrind, sanitizers). */
  double ratio = tu_scale() >= 1.0 ? 1.08 : 1.5;
  for (double d = 4101; d <= (double)max; d *= ratio) {
    size_t s = (size_t)d;
    s += (size_t)tu_rng_range(&rng, 0, s / 16);
    if (s <= max) add_size(s);
  }
  add_size(max);
}

static void run_batch(const api_t *api, const size_t *batch, size_t n, unsigned batch_no) {
  void *ptr[BATCH];
  tu_range ranges[BATCH];
  size_t usable[BATCH];
  for (size_t i = 0; i < n; i++) {
    size_t size = batch[i];
    void *p = api->alloc(size);
    CHECK(p != NULL, "%s(%zu) returned NULL", api->name, size);
    CHECK(tu_aligned(p, 16), "%s(%zu) returned %p, not 16-byte aligned", api->name, size, p);
    size_t u = api->usable(p);
    CHECK(u >= size, "%s(%zu): usable size %zu is smaller than the size asked for", api->name, size, u);
    tu_fill(p, u, tu_mix64(((uint64_t)batch_no << 20) + i));
    ptr[i] = p;
    usable[i] = u;
    ranges[i].lo = (uintptr_t)p;
    ranges[i].hi = (uintptr_t)p + (u ? u : 1);
    ranges[i].index = i;
  }
  TU_CHECK_DISJOINT(ranges, n, api->name);
  for (size_t i = 0; i < n; i++) {
    size_t bad = tu_verify(ptr[i], usable[i], tu_mix64(((uint64_t)batch_no << 20) + i));
    CHECK(bad == SIZE_MAX, "%s(%zu) = %p: byte %zu of the usable size %zu was overwritten while the block was live",
          api->name, batch[i], ptr[i], bad, usable[i]);
    CHECK(api->usable(ptr[i]) == usable[i], "%s(%zu) = %p: usable size changed from %zu to %zu", api->name,
          batch[i], ptr[i], usable[i], api->usable(ptr[i]));
  }
  for (size_t i = 0; i < n; i++) api->release(ptr[i]);
}

int main(void) {
  build_schedule();
  static size_t shuffled[MAX_SIZES];
  memcpy(shuffled, sizes, nsizes * sizeof(size_t));
  tu_rng rng;
  tu_rng_seed(&rng, 7);
  for (size_t i = nsizes - 1; i > 0; i--) {
    size_t j = tu_rng_range(&rng, 0, i);
    size_t t = shuffled[i];
    shuffled[i] = shuffled[j];
    shuffled[j] = t;
  }
  unsigned batch_no = 0;
  for (size_t a = 0; a < TU_NUM_APIS(apis); a++) {
    /* In schedule order: neighbouring sizes (same or adjacent classes) live together. */
    for (size_t i = 0; i < nsizes; i += BATCH)
      run_batch(&apis[a], sizes + i, nsizes - i < BATCH ? nsizes - i : BATCH, batch_no++);
    /* Shuffled: small and large blocks live together. */
    for (size_t i = 0; i < nsizes; i += BATCH)
      run_batch(&apis[a], shuffled + i, nsizes - i < BATCH ? nsizes - i : BATCH, batch_no++);
  }
  printf("every_size: %zu sizes x %zu APIs x 2 orders OK\n", nsizes, TU_NUM_APIS(apis));
  return 0;
}
