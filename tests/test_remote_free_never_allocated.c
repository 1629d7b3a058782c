/*
 * Pins: memory may be freed by a thread that never allocated, after the allocating thread has exited,
 * and such memory is reclaimed.
 *
 * Each round: a fresh thread allocates many objects (small ones of many size classes and some larger
 * ones; about 16 MiB in all), fills them, and exits. Then another fresh thread, which never calls an
 * allocation function, verifies and frees all of them (with free, apex_free or apex_free_sized).
 * The resident set size (from /proc/self/statm) after each round must not grow round over round beyond
 * a small bound: if the frees of a dead thread's blocks were lost (never collected, never adopted by a
 * later thread), every round would add its whole volume.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "apexalloc.h"
#include "testutil.h"

enum { MAX_OBJ = 60000 };

static void *objs[MAX_OBJ];
static size_t sizes[MAX_OBJ];
static size_t nobj;
static unsigned round_no;

static size_t object_size(size_t i) {
  uint64_t r = tu_mix64(i * 7919 + 13);
  if (i % 800 == 0) return 64 * TU_KIB + (size_t)(r % (256 * TU_KIB)); /* some larger ones */
  return 16 + (size_t)(r % (i % 3 ? 512 : 2048));                     /* many small classes */
}

static void *allocator_thread(void *arg) {
  (void)arg;
  for (size_t i = 0; i < nobj; i++) {
    size_t n = object_size(i);
    void *p = (i % 2) ? malloc(n) : apex_malloc(n);
    if (APEX_TEST_FOREIGN_MALLOC && (i % 2)) {
      free(p);
      p = apex_malloc(n);
    }
    CHECK(p != NULL, "round %u: allocation %zu of %zu bytes failed", round_no, i, n);
    tu_fill(p, n, tu_mix64(round_no * 1000003ull + i));
    objs[i] = p;
    sizes[i] = n;
  }
  return NULL; /* exits with all its objects live */
}

static void *freeing_thread(void *arg) {
  (void)arg;
  /* This thread calls no allocation function other than the frees below. */
  for (size_t i = 0; i < nobj; i++) {
    size_t bad = tu_verify(objs[i], sizes[i], tu_mix64(round_no * 1000003ull + i));
    CHECK(bad == SIZE_MAX, "round %u: object %zu (%p, %zu bytes) changed at byte %zu before it was freed", round_no,
          i, objs[i], sizes[i], bad);
    switch (i % 3) {
      case 0: apex_free(objs[i]); break;
      case 1: apex_free_sized(objs[i], sizes[i]); break;
      default:
        if (APEX_TEST_FOREIGN_MALLOC)
          apex_free(objs[i]);
        else
          free(objs[i]);
        break;
    }
    objs[i] = NULL;
  }
  return NULL;
}

static void run_thread(void *(*fn)(void *)) {
  pthread_t t;
  int rc = pthread_create(&t, NULL, fn, NULL);
  CHECK(rc == 0, "pthread_create failed: %d", rc);
  CHECK(pthread_join(t, NULL) == 0, "pthread_join failed");
}

/* The process's resident set, except under ThreadSanitizer, whose shadow memory grows with every
 * address touched and would swamp the allocator's own figure: there, the bytes ApexAlloc has
 * mapped (which is what a leak would grow) are measured instead. */
static size_t footprint(void) {
#if APEX_TEST_TSAN
  apex_stats_t s;
  CHECK(apex_stats_get(&s, sizeof s) == 0, "apex_stats_get failed");
  return s.mapped;
#else
  return tu_rss_bytes();
#endif
}

int main(void) {
  nobj = tu_scaled(40000, 2000);
  if (nobj > MAX_OBJ) nobj = MAX_OBJ;
  size_t volume = 0;
  for (size_t i = 0; i < nobj; i++) volume += object_size(i);
  unsigned rounds = 10;
  size_t rss[16];
  for (round_no = 0; round_no < rounds; round_no++) {
    run_thread(allocator_thread);
    run_thread(freeing_thread);
    rss[round_no] = footprint();
  }
  /* Rounds 0 and 1 warm up (first superblocks, thread caches). From round 1 on, growth must stay below
   * a quarter of one round's volume plus a little slack, whatever the number of rounds: losing even a
   * tenth of each round's frees would exceed it by the last round. */
  size_t bound = volume / 4 + (APEX_TEST_TSAN ? 16 : 4) * TU_MIB; /* TSan's shadow and clocks grow too */
  printf("remote_free_never_allocated: %zu objects (%.1f MiB) per round; RSS after each round (MiB):", nobj,
         (double)volume / (double)TU_MIB);
  for (unsigned r = 0; r < rounds; r++) printf(" %.1f", (double)rss[r] / (double)TU_MIB);
  printf("\n");
  for (unsigned r = 2; r < rounds; r++)
    CHECK(rss[r] <= rss[1] + bound,
          "RSS grew from %.1f MiB after round 1 to %.1f MiB after round %u (bound +%.1f MiB): memory freed by a "
          "thread that never allocated, after its owner exited, is not reclaimed",
          (double)rss[1] / (double)TU_MIB, (double)rss[r] / (double)TU_MIB, r, (double)bound / (double)TU_MIB);
  printf("remote_free_never_allocated: OK\n");
  return 0;
}
