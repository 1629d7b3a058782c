/*
 * Concurrency stress (in the spirit of mimalloc's test-stress, written for ApexAlloc).
 *
 * A shared array of slots holds live objects. T threads (default 4) each run iterations of:
 *   allocate an object of a random size (mostly 8..1024 B, some up to 64 KiB, rare ones up to 4 MiB),
 *   with malloc, apex_malloc, calloc (checked zero), aligned_alloc (checked aligned) or realloc of an
 *   object taken from a slot; fill it with a pattern derived from its address and size; swap it into a
 *   random slot; verify the object that was there and free it (free, apex_free or apex_free_sized).
 * So objects are mostly freed, reallocated and verified by threads that did not allocate them. Each
 * thread also keeps a few objects of its own and frees them locally.
 * Thread churn: the run is split in rounds; at the end of each round all threads exit and new ones
 * start, while the objects of the dead threads stay live in the slots (and are freed later by others).
 * At the end, every remaining object is verified and freed. Every free is preceded by a content check.
 *
 * Usage: test_stress_threads [threads [iterations-per-thread [rounds]]]
 * APEX_TEST_SCALE scales the iterations (valgrind and sanitizer runs shrink them).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apexalloc.h"
#include "testutil.h"

#define MAX_OBJECT (4 * TU_MIB)
#define LOCAL_OBJECTS 32

static size_t nslots;
static _Atomic(uintptr_t) *slots;
static _Atomic size_t live_large; /* objects > 64 KiB currently allocated, to bound the footprint */
static _Atomic unsigned long long ops_total;

/* ---- object format: word 0 = size ^ cookie(address); the rest: pattern of (address, size) ----- */

static uint64_t cookie(uintptr_t addr) { return tu_mix64((uint64_t)addr ^ 0xA5A5A5A5DEADBEEFull); }

static void obj_fill(void *p, size_t size) {
  uint64_t head = (uint64_t)size ^ cookie((uintptr_t)p);
  memcpy(p, &head, 8);
  tu_fill((char *)p + 8, size - 8, cookie((uintptr_t)p + size));
}

/* Checks the object at p, written at address `written_at` (p itself unless it was moved by realloc),
 * and returns its size. `keep` limits the check to the first bytes (after a shrinking realloc). */
static size_t obj_check(const void *p, uintptr_t written_at, size_t keep, const char *when) {
  uint64_t head;
  memcpy(&head, p, 8);
  size_t size = (size_t)(head ^ cookie(written_at));
  CHECK(size >= 8 && size <= MAX_OBJECT,
        "%s: object %p has a corrupted header (decoded size %zu): overwritten or freed while live", when, p, size);
  size_t n = keep < size ? keep : size;
  size_t bad = tu_verify((const char *)p + 8, n - 8, cookie(written_at + size));
  CHECK(bad == SIZE_MAX, "%s: object %p of %zu bytes: byte %zu differs from its pattern", when, p, size, bad + 8);
  return size;
}

/* ---- allocation and release, through both APIs --------------------------------------------- */

static int use_std(void) { return !APEX_TEST_FOREIGN_MALLOC; }

static size_t pick_size(tu_rng *rng) {
  uint64_t r = tu_rng_next(rng) % 10000;
  if (r < 9000) return tu_rng_range(rng, 8, 1024);
  if (r < 9992) return tu_rng_range(rng, 1025, 64 * TU_KIB);
  if (atomic_load_explicit(&live_large, memory_order_relaxed) > 24) return tu_rng_range(rng, 1025, 64 * TU_KIB);
  return tu_rng_range(rng, 64 * TU_KIB + 1, MAX_OBJECT);
}

static void *obj_alloc(tu_rng *rng, size_t size) {
  void *p;
  unsigned how = (unsigned)(tu_rng_next(rng) % 16);
  if (how < 6) {
    p = apex_malloc(size);
  } else if (how < 11 && use_std()) {
    p = malloc(size);
  } else if (how < 13) {
    p = (how == 11 && use_std()) ? calloc(1, size) : apex_calloc(size % 2 ? size : size / 2, size % 2 ? 1 : 2);
    CHECK(p != NULL, "calloc(%zu) failed", size);
    size_t bad = tu_first_nonzero(p, size);
    CHECK(bad == SIZE_MAX, "calloc(%zu) = %p: byte %zu is not zero", size, p, bad);
  } else {
    size_t align = (size_t)16 << (tu_rng_next(rng) % 9); /* 16 .. 4096 */
    p = (how == 13 && use_std()) ? aligned_alloc(align, (size + align - 1) / align * align)
                                 : apex_aligned_alloc(align, size);
    CHECK(p != NULL, "aligned_alloc(%zu, %zu) failed", align, size);
    CHECK(tu_aligned(p, align), "aligned_alloc(%zu, %zu) = %p is misaligned", align, size, p);
  }
  CHECK(p != NULL, "allocation of %zu bytes failed", size);
  CHECK(tu_aligned(p, 16), "allocation of %zu bytes = %p is not 16-byte aligned", size, p);
  if (size > 64 * TU_KIB) atomic_fetch_add_explicit(&live_large, 1, memory_order_relaxed);
  obj_fill(p, size);
  return p;
}

static void obj_free(tu_rng *rng, void *p, const char *when) {
  size_t size = obj_check(p, (uintptr_t)p, SIZE_MAX, when);
  size_t u = apex_usable_size(p);
  CHECK(u >= size, "%s: usable size of %p is %zu < its size %zu", when, p, u, size);
  if (size > 64 * TU_KIB) atomic_fetch_sub_explicit(&live_large, 1, memory_order_relaxed);
  unsigned how = (unsigned)(tu_rng_next(rng) % 3);
  if (how == 0 && use_std()) {
    free(p);
  } else if (how == 1) {
    apex_free_sized(p, size);
  } else {
    apex_free(p);
  }
}

/* Takes the object out of a slot, checks it, reallocs it to a new size and checks the kept prefix. */
static void *obj_realloc(tu_rng *rng, void *p) {
  size_t old = obj_check(p, (uintptr_t)p, SIZE_MAX, "before realloc");
  size_t size = pick_size(rng);
  if (old > 64 * TU_KIB) atomic_fetch_sub_explicit(&live_large, 1, memory_order_relaxed);
  void *q = (use_std() && (tu_rng_next(rng) & 1)) ? realloc(p, size) : apex_realloc(p, size);
  CHECK(q != NULL, "realloc(%p, %zu -> %zu) failed", p, old, size);
  CHECK(tu_aligned(q, 16), "realloc result %p is not 16-byte aligned", q);
  /* The first min(old, size) bytes moved with the object: check them against the old address. */
  uint64_t head;
  memcpy(&head, q, 8);
  CHECK((size_t)(head ^ cookie((uintptr_t)p)) == old, "realloc(%p, %zu -> %zu) = %p lost the object header", p, old,
        size, q);
  size_t keep = old < size ? old : size;
  size_t bad = tu_verify((const char *)q + 8, keep - 8, cookie((uintptr_t)p + old));
  CHECK(bad == SIZE_MAX, "realloc(%p, %zu -> %zu) = %p: byte %zu of the kept prefix differs", p, old, size, q, bad + 8);
  if (size > 64 * TU_KIB) atomic_fetch_add_explicit(&live_large, 1, memory_order_relaxed);
  obj_fill(q, size);
  return q;
}

/* ---- the workers ----------------------------------------------------------------------------- */

typedef struct {
  unsigned long long iterations;
  uint64_t seed;
} work_t;

static void *worker(void *arg) {
  work_t *w = (work_t *)arg;
  tu_rng rng;
  tu_rng_seed(&rng, w->seed);
  void *local[LOCAL_OBJECTS] = {0};
  for (unsigned long long it = 0; it < w->iterations; it++) {
    uint64_t r = tu_rng_next(&rng) % 100;
    size_t slot = (size_t)(tu_rng_next(&rng) % nslots);
    if (r < 10) {
      /* local object: allocated and freed by this thread */
      size_t i = (size_t)(tu_rng_next(&rng) % LOCAL_OBJECTS);
      if (local[i]) obj_free(&rng, local[i], "local free");
      local[i] = obj_alloc(&rng, pick_size(&rng));
    } else if (r < 14) {
      /* realloc an object that (usually) another thread allocated */
      uintptr_t old = atomic_exchange_explicit(&slots[slot], 0, memory_order_acq_rel);
      if (!old) continue;
      void *q = obj_realloc(&rng, (void *)old);
      uintptr_t prev = atomic_exchange_explicit(&slots[slot], (uintptr_t)q, memory_order_acq_rel);
      if (prev) obj_free(&rng, (void *)prev, "free after realloc");
    } else if (r < 20) {
      /* just free what is in the slot */
      uintptr_t old = atomic_exchange_explicit(&slots[slot], 0, memory_order_acq_rel);
      if (old) obj_free(&rng, (void *)old, "slot free");
    } else {
      void *p = obj_alloc(&rng, pick_size(&rng));
      uintptr_t old = atomic_exchange_explicit(&slots[slot], (uintptr_t)p, memory_order_acq_rel);
      if (old) obj_free(&rng, (void *)old, "slot replace");
    }
  }
  for (size_t i = 0; i < LOCAL_OBJECTS; i++)
    if (local[i]) obj_free(&rng, local[i], "local free at exit");
  atomic_fetch_add_explicit(&ops_total, w->iterations, memory_order_relaxed);
  return NULL;
}

static unsigned long parse_arg(int argc, char **argv, int i, unsigned long dflt) {
  if (argc <= i) return dflt;
  char *end = NULL;
  unsigned long v = strtoul(argv[i], &end, 10);
  CHECK(end && *end == '\0' && v > 0, "argument %d ('%s') must be a positive integer", i, argv[i]);
  return v;
}

int main(int argc, char **argv) {
  unsigned threads = (unsigned)parse_arg(argc, argv, 1, 4);
  unsigned long long iters = (unsigned long long)tu_scaled(parse_arg(argc, argv, 2, 150000), 200);
  unsigned rounds = (unsigned)parse_arg(argc, argv, 3, 8);
  nslots = 1024 * (size_t)threads;
  slots = (_Atomic(uintptr_t) *)apex_calloc(nslots, sizeof *slots);
  CHECK(slots != NULL, "cannot allocate the slots");
  for (size_t i = 0; i < nslots; i++) atomic_init(&slots[i], 0);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  tu_rng rng;
  tu_rng_seed(&rng, 20240611);
  /* The main thread owns some of the objects too. */
  for (size_t i = 0; i < nslots; i += 4) atomic_store(&slots[i], (uintptr_t)obj_alloc(&rng, pick_size(&rng)));

  pthread_t *tids = (pthread_t *)apex_malloc(threads * sizeof *tids);
  work_t *work = (work_t *)apex_malloc(threads * sizeof *work);
  CHECK(tids && work, "out of memory");
  for (unsigned r = 0; r < rounds; r++) {
    for (unsigned t = 0; t < threads; t++) {
      /* Uneven lifetimes: some threads of a round exit early while others still run. */
      unsigned long long base = iters / rounds + 1;
      work[t].iterations = base / 2 + (unsigned long long)tu_rng_range(&rng, 0, (size_t)base);
      work[t].seed = tu_rng_next(&rng);
      int rc = pthread_create(&tids[t], NULL, worker, &work[t]);
      CHECK(rc == 0, "pthread_create failed: %d", rc);
    }
    for (unsigned t = 0; t < threads; t++) CHECK(pthread_join(tids[t], NULL) == 0, "pthread_join failed");
    /* Objects of the exited threads stay live in the slots for the next round's threads. */
  }
  size_t left = 0;
  for (size_t i = 0; i < nslots; i++) {
    uintptr_t p = atomic_exchange(&slots[i], 0);
    if (p) {
      obj_free(&rng, (void *)p, "final free");
      left++;
    }
  }
  apex_free(tids);
  apex_free(work);
  apex_free((void *)slots);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("stress_threads: %u threads x %u rounds, %llu operations, %zu objects freed at the end, %.2f s: OK\n",
         threads, rounds, (unsigned long long)atomic_load(&ops_total), left, secs);
  return 0;
}
