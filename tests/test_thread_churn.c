/*
 * Pins: thread churn does not leak. A few thousand short-lived threads run in sequence, two at a time.
 * Each allocates objects of many sizes (a few larger ones too), frees half of them itself, and hands the
 * other half to the next pair of threads, which verify and free them after their allocating thread has
 * exited. The resident set size must stay bounded: what a thread leaves behind at exit (thread caches,
 * partly used blocks, pending remote frees) has to be reused by later threads or returned.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "apexalloc.h"
#include "testutil.h"

enum { PER_THREAD = 96, HANDOFF = PER_THREAD / 2, PAIR = 2 };

typedef struct {
  void *p;
  size_t n;
  uint64_t seed;
} obj_t;

/* Objects handed from the pair of generation g to the pair of generation g+1. */
static obj_t handoff[2][PAIR][HANDOFF];

typedef struct {
  unsigned long gen;
  unsigned idx;
} arg_t;

static size_t size_for(tu_rng *rng, size_t i) {
  if (i == 0) return tu_rng_range(rng, 32 * TU_KIB, 300 * TU_KIB);
  return tu_rng_range(rng, 1, i % 4 ? 256 : 4096);
}

static void *churn_thread(void *argp) {
  arg_t *a = (arg_t *)argp;
  tu_rng rng;
  tu_rng_seed(&rng, a->gen * 2 + a->idx);
  /* First, free what the previous generation handed over (allocated by threads now dead). */
  if (a->gen > 0) {
    obj_t *in = handoff[(a->gen - 1) % 2][a->idx];
    for (size_t i = 0; i < HANDOFF; i++) {
      size_t bad = tu_verify(in[i].p, in[i].n, in[i].seed);
      CHECK(bad == SIZE_MAX, "thread %lu: object %p (%zu bytes) of a dead thread changed at byte %zu", a->gen,
            in[i].p, in[i].n, bad);
      if (i % 2)
        apex_free_sized(in[i].p, in[i].n);
      else
        apex_free(in[i].p);
    }
  }
  obj_t mine[PER_THREAD];
  for (size_t i = 0; i < PER_THREAD; i++) {
    mine[i].n = size_for(&rng, i);
    mine[i].p = (i % 2 && !APEX_TEST_FOREIGN_MALLOC) ? malloc(mine[i].n) : apex_malloc(mine[i].n);
    CHECK(mine[i].p != NULL, "thread %lu: allocation of %zu bytes failed", a->gen, mine[i].n);
    mine[i].seed = tu_rng_next(&rng);
    tu_fill(mine[i].p, mine[i].n, mine[i].seed);
  }
  obj_t *out = handoff[a->gen % 2][a->idx];
  for (size_t i = 0; i < PER_THREAD; i++) {
    CHECK(tu_verify(mine[i].p, mine[i].n, mine[i].seed) == SIZE_MAX, "thread %lu: own object changed", a->gen);
    if (i < HANDOFF) {
      out[i] = mine[i];
    } else if (APEX_TEST_FOREIGN_MALLOC) {
      apex_free(mine[i].p);
    } else {
      free(mine[i].p);
    }
  }
  return NULL;
}

static void run_generation(unsigned long gen) {
  pthread_t t[PAIR];
  arg_t args[PAIR];
  for (unsigned i = 0; i < PAIR; i++) {
    args[i].gen = gen;
    args[i].idx = i;
    int rc = pthread_create(&t[i], NULL, churn_thread, &args[i]);
    CHECK(rc == 0, "pthread_create failed at generation %lu: %d", gen, rc);
  }
  for (unsigned i = 0; i < PAIR; i++) CHECK(pthread_join(t[i], NULL) == 0, "pthread_join failed");
}

int main(void) {
  unsigned long generations = (unsigned long)tu_scaled(1500, 100); /* two threads each: 3000 threads */
  unsigned long warm = generations / 10;
  size_t base = 0, peak = 0;
  for (unsigned long g = 0; g < generations; g++) {
    run_generation(g);
    if (g == warm) base = tu_rss_bytes();
    if (g > warm) {
      size_t rss = tu_rss_bytes();
      if (rss > peak) peak = rss;
    }
  }
  /* Free what the last generation handed over. */
  for (unsigned i = 0; i < PAIR; i++)
    for (size_t k = 0; k < HANDOFF; k++) apex_free(handoff[(generations - 1) % 2][i][k].p);
  /* Live data is at most two generations: well under 2 MiB. Leaking a 64 KiB block per thread would
   * add ~190 MiB over 3000 threads. */
  size_t bound = (APEX_TEST_TSAN ? 48 : 24) * TU_MIB; /* TSan keeps per-thread state too */
  printf("thread_churn: %lu threads; RSS after warm-up %.1f MiB, peak after %.1f MiB\n", generations * PAIR,
         (double)base / (double)TU_MIB, (double)peak / (double)TU_MIB);
  CHECK(peak <= base + bound,
        "RSS grew from %.1f MiB to %.1f MiB over %lu short-lived threads (bound +%.0f MiB): exited threads leak memory",
        (double)base / (double)TU_MIB, (double)peak / (double)TU_MIB, generations * PAIR, (double)bound / (double)TU_MIB);
  printf("thread_churn: OK\n");
  return 0;
}
