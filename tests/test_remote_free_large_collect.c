/*
 * Pins: large objects (one per block) freed by other threads while their owner calls apex_collect()
 * in a loop are each given back once. Before the remote-free fix, a free whose chunk the owner
 * collected and retired before the freer read the block's state notified the retired block, and
 * the owner retired it a second time: with the internal checks on this aborts within seconds
 * ("(sb->free_slices & mask) == 0"); without them two live objects could overlap, or the freer
 * could fault on an unmapped superblock.
 *
 * Built against apexalloc_debug (the core with its internal checks). In each round the owner
 * allocates a batch of large objects of varying sizes, fills the first page of each with its own
 * pattern, and lets the freeing threads (more of them than cores, so they get preempted) take
 * and free them, calling apex_collect() all the while. It keeps a few large objects of its own,
 * checked every round, so a slice handed out twice is noticed. Bounded by a round count and a
 * 3-second budget.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "apexalloc.h"
#include "check.h"
#include "testutil.h"

enum { FREERS = 4, BATCH = 32, OWN = 4, PAGE = 4096 };

typedef struct { void *p; size_t size; uint64_t seed; } obj_t;

static obj_t g_batch[BATCH];
static _Atomic size_t g_round;          /* the round whose batch is out; 0: none yet */
static _Atomic size_t g_next;           /* next index of the batch to take */
static _Atomic size_t g_freed;          /* frees done in this round */
static _Atomic int g_stop;

static void *freer(void *arg) {
  (void)arg;
  size_t seen = 0;
  while (!atomic_load(&g_stop)) {
    size_t round = atomic_load(&g_round);
    if (round == seen) { sched_yield(); continue; }
    size_t i;
    while ((i = atomic_fetch_add(&g_next, 1)) < BATCH) {
      obj_t o = g_batch[i];
      CHECK(tu_verify(o.p, PAGE, o.seed) == SIZE_MAX, "a large object of %zu bytes was overwritten before its free", o.size);
      apex_free(o.p);
      atomic_fetch_add(&g_freed, 1);
    }
    seen = round;
  }
  return NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
  pthread_t t[FREERS];
  for (int i = 0; i < FREERS; i++) CHECK(pthread_create(&t[i], NULL, freer, NULL) == 0, "pthread_create");
  tu_rng rng;
  tu_rng_seed(&rng, 42);
  obj_t own[OWN];
  for (int i = 0; i < OWN; i++) {
    own[i] = (obj_t){ NULL, tu_rng_range(&rng, 129 * TU_KIB, 300 * TU_KIB), tu_mix64(~(uint64_t)i) };
    own[i].p = apex_malloc(own[i].size);
    CHECK(own[i].p != NULL, "apex_malloc(%zu)", own[i].size);
    tu_fill(own[i].p, own[i].size, own[i].seed);
  }
  size_t rounds = tu_scaled(2000, 50), round, collects = 0;
  double stop = now_s() + 3.0;
  for (round = 1; round <= rounds && now_s() < stop; round++) {
    for (size_t i = 0; i < BATCH; i++) {
      obj_t o = { NULL, tu_rng_range(&rng, 129 * TU_KIB, 600 * TU_KIB), tu_mix64(round * BATCH + i) };
      o.p = apex_malloc(o.size);
      CHECK(o.p != NULL, "apex_malloc(%zu)", o.size);
      tu_fill(o.p, PAGE, o.seed);     /* the first page only: filling 600 KiB would be the whole cost */
      g_batch[i] = o;
    }
    atomic_store(&g_freed, 0);
    atomic_store(&g_next, 0);
    atomic_store(&g_round, round);    /* the freers start taking */
    while (atomic_load(&g_freed) < BATCH) { apex_collect(); collects++; }
    apex_collect();
    for (int i = 0; i < OWN; i++)
      CHECK(tu_verify(own[i].p, own[i].size, own[i].seed) == SIZE_MAX,
            "a live large object of %zu bytes was overwritten (round %zu)", own[i].size, round);
    obj_t *mine = &own[round % OWN];  /* replace one: its slices go back and are handed out again */
    apex_free(mine->p);
    mine->p = apex_malloc(mine->size);
    CHECK(mine->p != NULL, "apex_malloc(%zu)", mine->size);
    tu_fill(mine->p, mine->size, mine->seed);
  }
  atomic_store(&g_stop, 1);
  for (int i = 0; i < FREERS; i++) CHECK(pthread_join(t[i], NULL) == 0, "pthread_join");
  for (int i = 0; i < OWN; i++) apex_free(own[i].p);
  apex_collect();
  printf("%zu rounds of %d large objects freed by other threads during %zu apex_collect calls\n",
         round - 1, BATCH, collects);
  return 0;
}
