/*
 * Pins: thread churn keeps RSS flat, and gives memory back when it stops. Batches of short-lived
 * threads (thousands in all) allocate objects of mixed sizes, free half, and leave the other half
 * to a thread that never allocates, which frees them after their threads have exited. RSS must
 * not creep up from batch to batch, and after the churn, with no allocator call, it must come back
 * near where it started (polled up to a deadline of 20 decay periods plus 5 s).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>

#include "decayutil.h"

enum { BATCH = 8, PER_THREAD = 200, HANDOFF = PER_THREAD / 2 };

static void *handoff[BATCH][HANDOFF];

static void *alloc_thread(void *arg) {
  size_t idx = (size_t)(uintptr_t)arg;
  tu_rng rng;
  tu_rng_seed(&rng, idx * 7919 + (uint64_t)(uintptr_t)&rng);
  void *mine[PER_THREAD];
  for (size_t i = 0; i < PER_THREAD; i++) {
    size_t size = i % 50 == 0 ? tu_rng_range(&rng, 64 * TU_KIB, 1 * TU_MIB) : tu_rng_range(&rng, 1, 2048);
    mine[i] = apex_malloc(size);
    CHECK(mine[i] != NULL, "apex_malloc(%zu)", size);
    memset(mine[i], (int)i, size < 8192 ? size : 8192);
  }
  for (size_t i = 0; i < PER_THREAD; i++) {
    if (i % 2) apex_free(mine[i]);
    else handoff[idx % BATCH][i / 2] = mine[i];
  }
  return NULL;
}

/* Never allocates: every free goes to a heap whose thread has exited. */
static void *free_thread(void *arg) {
  (void)arg;
  for (size_t t = 0; t < BATCH; t++)
    for (size_t i = 0; i < HANDOFF; i++) apex_free(handoff[t][i]);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  size_t batches = (size_t)(500.0 * tu_scale());
  if (batches < 40) batches = 40;
  size_t decay = du_ctl_size("opt.decay_ms");
  apex_free(apex_malloc(64));
  size_t base = du_footprint();
  size_t early_max = 0, late_max = 0;
  for (size_t b = 0; b < batches; b++) {
    pthread_t t[BATCH + 1];
    for (size_t i = 0; i < BATCH; i++)
      CHECK(pthread_create(&t[i], NULL, alloc_thread, (void *)(uintptr_t)(b * BATCH + i)) == 0, "pthread_create");
    for (size_t i = 0; i < BATCH; i++) pthread_join(t[i], NULL);
    CHECK(pthread_create(&t[BATCH], NULL, free_thread, NULL) == 0, "pthread_create");
    pthread_join(t[BATCH], NULL);
    size_t rss = du_footprint();
    if (b < batches / 4 && rss > early_max) early_max = rss;
    if (b >= batches / 2 && rss > late_max) late_max = rss;
  }
  size_t end = du_footprint();
  /* Idle: no allocator call; the purge thread gives the memory back. Poll up to a deadline. */
  uint64_t start_ms = du_now_ms(), deadline = start_ms + 20 * decay + 5000;
  size_t idle = end;
  while (idle > base + 8 * TU_MIB && du_now_ms() < deadline) {
    du_sleep_ms(25);
    idle = du_footprint();
  }
  uint64_t waited = du_now_ms() - start_ms;
  printf("churn_rss_flat_with_purge: %zu threads; RSS start %zu KiB, max early %zu KiB, max late %zu KiB, "
         "end %zu KiB, after idle %zu KiB\n", batches * (BATCH + 1), base >> 10, early_max >> 10, late_max >> 10,
         end >> 10, idle >> 10);
  CHECK(late_max <= early_max + 8 * TU_MIB, "RSS crept up under churn: %zu KiB early, %zu KiB late", early_max >> 10,
        late_max >> 10);
  CHECK(idle <= base + 8 * TU_MIB, "after the churn and %zu ms idle RSS is %zu KiB above the start", (size_t)waited,
        (idle - base) >> 10);
  printf("churn_rss_flat_with_purge: OK\n");
  return 0;
}
