/*
 * mstress.c — mixed multi-threaded stress, in the spirit of the stress tests collected in
 * mimalloc-bench.
 *
 * Several threads run for a number of rounds (new threads every round). Each keeps a working set
 * of objects whose sizes range from 8 B to 4 MiB with a strong skew toward small ones. A step
 * either allocates a new object (replacing a random old one when the working set is full), frees
 * a random object, or swaps one of its objects with a random slot of a global transfer table, so
 * that objects migrate between threads and are freed by a thread other than their allocator.
 * A few objects are put aside as long-lived: they survive the round and are freed in a later
 * round by a different thread.
 *
 * Every object is filled completely with a pattern derived from its size; the pattern is checked
 * before each free (fully for small objects, sampled for big ones).
 *
 * usage: bench_mstress [threads=4] [steps per thread=300000]
 * Prints one line; exits 2 on a data mismatch, 3 on an allocation failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#define ROUNDS 10
#define TRANSFER_SLOTS 1024
#define WORKING_SET 1500
#define RETAINED_MAX 1000
#define COOKIE 0xA5C3F00DBAADF00DULL
#define MAX_OBJECT (4u << 20)

typedef struct {
  uint64_t *obj[RETAINED_MAX];
  size_t n;
} retained_t;

typedef struct {
  pthread_t tid;
  int index;
  int round;
  long steps;
} worker_t;

static _Atomic(uint64_t *) g_transfer[TRANSFER_SLOTS];
static retained_t *g_retained; /* one per worker index, survives rounds */

static size_t random_size(uint64_t *seed) {
  uint64_t r = rng_next(seed);
  unsigned u = (unsigned)(r % 1000);
  uint64_t v = r >> 20;
  size_t lo, hi;
  if (u < 2) {
    lo = 256u << 10; hi = MAX_OBJECT;   /* 0.2 %: huge */
  } else if (u < 30) {
    lo = 4096; hi = 256u << 10;         /* 2.8 %: large */
  } else if (u < 250) {
    lo = 256; hi = 4096;                /* 22 %: medium */
  } else {
    lo = 8; hi = 256;                   /* 75 %: small */
  }
  size_t size = lo + (size_t)(v % (hi - lo + 1));
  size &= ~(size_t)7;
  return size < 8 ? 8 : size;
}

static inline uint64_t word_at(size_t size, size_t i) {
  return (0x9E3779B97F4A7C15ULL * (uint64_t)i) ^ (uint64_t)size ^ COOKIE;
}

static uint64_t *alloc_object(size_t size) {
  uint64_t *p = malloc(size);
  if (p == NULL) {
    fprintf(stderr, "mstress: malloc(%zu) returned NULL\n", size);
    exit(3);
  }
  size_t n = size / 8;
  p[0] = (uint64_t)size ^ COOKIE;
  for (size_t i = 1; i < n; i++) p[i] = word_at(size, i);
  return p;
}

static void bad_object(const uint64_t *p, size_t size, size_t i) {
  fprintf(stderr, "mstress: data mismatch in object %p (size %zu) at word %zu\n", (const void *)p, size, i);
  exit(2);
}

static void free_object(uint64_t *p) {
  if (p == NULL) return;
  size_t size = (size_t)(p[0] ^ COOKIE);
  if (size < 8 || size > MAX_OBJECT || (size & 7) != 0) bad_object(p, size, 0);
  size_t n = size / 8;
  if (n <= 512) {
    for (size_t i = 1; i < n; i++)
      if (p[i] != word_at(size, i)) bad_object(p, size, i);
  } else {
    for (size_t i = 1; i < 64; i++)
      if (p[i] != word_at(size, i)) bad_object(p, size, i);
    for (size_t i = 64; i < n; i += 61)
      if (p[i] != word_at(size, i)) bad_object(p, size, i);
    if (p[n - 1] != word_at(size, n - 1)) bad_object(p, size, n - 1);
  }
  free(p);
}

static void *worker(void *arg) {
  worker_t *w = arg;
  uint64_t seed = 0xD1B54A32D192ED03ULL * (uint64_t)(w->round * 1000 + w->index + 1);
  uint64_t **items = calloc(WORKING_SET, sizeof *items);
  if (items == NULL) exit(3);
  size_t count = 0;

  /* free about half of what this slot put aside in earlier rounds (allocated by other threads) */
  retained_t *ret = &g_retained[w->index];
  for (size_t i = 0; i < ret->n;) {
    if (rng_next(&seed) & 1) {
      free_object(ret->obj[i]);
      ret->obj[i] = ret->obj[--ret->n];
    } else {
      i++;
    }
  }

  for (long s = 0; s < w->steps; s++) {
    uint64_t r = rng_next(&seed);
    unsigned op = (unsigned)(r % 100);
    size_t j = count ? (size_t)((r >> 32) % count) : 0;
    if (op < 50 || count == 0) {
      uint64_t *p = alloc_object(random_size(&seed));
      if ((r >> 8) % 64 == 0 && ret->n < RETAINED_MAX) {
        ret->obj[ret->n++] = p;               /* long-lived */
      } else if (count == WORKING_SET) {
        free_object(items[j]);
        items[j] = p;
      } else {
        items[count++] = p;
      }
    } else if (op < 85) {
      free_object(items[j]);
      items[j] = items[--count];
    } else {
      size_t k = (size_t)((r >> 16) % TRANSFER_SLOTS);
      uint64_t *old = atomic_exchange_explicit(&g_transfer[k], items[j], memory_order_acq_rel);
      if (old != NULL) {
        items[j] = old;
      } else {
        items[j] = items[--count];
      }
    }
  }
  for (size_t i = 0; i < count; i++) free_object(items[i]);
  free(items);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 4;
  long steps = argc > 2 ? atol(argv[2]) : 300000;
  if (threads < 1 || steps < ROUNDS) {
    fprintf(stderr, "usage: %s [threads>=1] [steps per thread>=%d]\n", argv[0], ROUNDS);
    return 1;
  }
  g_retained = calloc((size_t)threads, sizeof *g_retained);
  worker_t *ws = calloc((size_t)threads, sizeof *ws);
  if (g_retained == NULL || ws == NULL) return 3;

  double t0 = now_sec();
  for (int round = 0; round < ROUNDS; round++) {
    for (int t = 0; t < threads; t++) {
      ws[t].index = t;
      ws[t].round = round;
      ws[t].steps = steps / ROUNDS;
      if (pthread_create(&ws[t].tid, NULL, worker, &ws[t]) != 0) return 3;
    }
    for (int t = 0; t < threads; t++) pthread_join(ws[t].tid, NULL);
  }
  for (size_t k = 0; k < TRANSFER_SLOTS; k++) free_object(atomic_exchange(&g_transfer[k], NULL));
  for (int t = 0; t < threads; t++)
    for (size_t i = 0; i < g_retained[t].n; i++) free_object(g_retained[t].obj[i]);
  double elapsed = now_sec() - t0;

  free(g_retained);
  free(ws);
  printf("mstress: threads=%d rounds=%d steps=%ld time=%.3fs\n", threads, ROUNDS,
         (steps / ROUNDS) * ROUNDS * threads, elapsed);
  return 0;
}
