/*
 * Pins: purging does not fragment the address space. Over repeated cycles of a 64 MiB burst of
 * mixed sizes, a free, and an idle pause until the purge thread has acted (APEX_DECAY_MS is short;
 * polled up to a deadline), the number of mappings (/proc/self/maps lines) stays bounded: it neither grows from
 * cycle to cycle after the frees nor at the peaks, and drops back after apex_collect().
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "decayutil.h"

#define MAX_OBJECTS 200000
#define CYCLES 12

/* ThreadSanitizer maps shadow and meta-shadow for the ranges the program touched, which adds
 * lines to /proc/self/maps that are not the allocator's. */
#define TSAN_SHADOW_MAPPINGS (APEX_TEST_TSAN ? 32 : 0)

static void *slots[MAX_OBJECTS];

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  size_t total = (size_t)(64.0 * tu_scale() * (double)TU_MIB);
  if (total < 8 * TU_MIB) total = 8 * TU_MIB;
  size_t decay = du_ctl_size("opt.decay_ms");
  apex_free(apex_malloc(64));
  size_t base = du_mapping_count();
  size_t first_peak = 0, first_idle = 0, max_peak = 0, max_idle = 0;
  for (int cycle = 0; cycle < CYCLES; cycle++) {
    size_t n = du_burst(slots, MAX_OBJECTS, total, (uint64_t)cycle + 10);
    size_t peak = du_mapping_count();
    du_free_all(slots, n, (uint64_t)cycle);
    /* Idle until the purge thread has unmapped the cached huge mappings (the count is back within
     * the bound checked below), up to a deadline. */
    uint64_t deadline = du_now_ms() + 20 * decay + 5000;
    size_t idle = du_mapping_count();
    while (idle > base + 3 * 16 + 16 + TSAN_SHADOW_MAPPINGS && du_now_ms() < deadline) {
      du_sleep_ms(10);
      idle = du_mapping_count();
    }
    if (cycle == 0) { first_peak = peak; first_idle = idle; }
    if (peak > max_peak) max_peak = peak;
    if (idle > max_idle) max_idle = idle;
  }
  apex_collect();
  size_t collected = du_mapping_count();
  printf("mappings_bounded_while_purging: start %zu, first peak %zu, max peak %zu, first idle %zu, max idle %zu, "
         "after collect %zu\n", base, first_peak, max_peak, first_idle, max_idle, collected);
  /* Superblocks sit at random addresses, so each is a few mappings of its own: allow the burst's
   * share of them, and a little jitter between cycles. */
  CHECK(max_peak <= first_peak + 24, "mappings grew from %zu to %zu at the peaks", first_peak, max_peak);
  CHECK(max_idle <= first_idle + 24, "mappings grew from %zu to %zu while idle", first_idle, max_idle);
  CHECK(first_idle <= base + 3 * 16 + 16 + TSAN_SHADOW_MAPPINGS, "after the frees %zu mappings remain (started with %zu)",
        first_idle, base);
  CHECK(collected <= base + 16 + TSAN_SHADOW_MAPPINGS, "after apex_collect %zu mappings remain (started with %zu)",
        collected, base);
  printf("mappings_bounded_while_purging: OK\n");
  return 0;
}
