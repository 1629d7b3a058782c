/*
 * Pins: memory comes back. After a burst of about 200 MiB of mixed sizes (small, medium, large,
 * huge) that is then freed, the resident set returns to within 5% of the burst's height above the
 * starting RSS
 *   1. after the decay delay (APEX_DECAY_MS=200, set by CTest) while the program makes no
 *      allocator call at all: the background purge thread gave it back;
 *   2. at once after apex_collect(), for a second burst.
 * Also: stats.purged grows, stats.purge_thread is 1, and opt.decay_ms reads what the environment
 * said.
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "decayutil.h"

#define MAX_OBJECTS 400000

static void *slots[MAX_OBJECTS];

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  double scale = tu_scale();
  size_t total = (size_t)(200.0 * scale * (double)TU_MIB);
  if (total < 16 * TU_MIB) total = 16 * TU_MIB;
  const char *env = getenv("APEX_DECAY_MS");
  size_t decay = du_ctl_size("opt.decay_ms");
  if (env != NULL) CHECK(decay == (size_t)atol(env), "opt.decay_ms = %zu, APEX_DECAY_MS=%s", decay, env);
  printf("rss_returns_after_decay: decay %zu ms, burst %zu MiB\n", decay, total / TU_MIB);

  /* Warm up: the allocator, this thread's heap and stdio are set up before the baseline. */
  apex_free(apex_malloc(64));
  size_t purged0 = du_ctl_size("stats.purged");
  size_t base = du_footprint();

  /* 1. Idle purge. */
  size_t n = du_burst(slots, MAX_OBJECTS, total, 1);
  size_t peak = du_footprint();
  du_free_all(slots, n, 1);
  size_t after_free = du_footprint();
  size_t height = peak > base ? peak - base : 1;
  /* A live thread's heap keeps up to opt.heap_dirty_max of free slices resident by design (only
   * its owner may purge them): with a small burst (a reduced APEX_TEST_SCALE) that, not the
   * percentage, is the bound. */
  size_t allowed = height / 20;
  if (allowed < du_ctl_size("opt.heap_dirty_max") + 2 * TU_MIB) allowed = du_ctl_size("opt.heap_dirty_max") + 2 * TU_MIB;
  /* No allocator call from here until the check: only nanosleep and reads of /proc. */
  size_t rss = after_free;
  uint64_t start_ms = du_now_ms();
  for (;;) {
    rss = du_footprint();
    if (rss <= base + allowed || du_now_ms() - start_ms > 20 * decay + 5000) break;
    du_sleep_ms(25);
  }
  unsigned waited = (unsigned)(du_now_ms() - start_ms);
  printf("  idle: base %zu MiB, peak %zu MiB, right after free %zu MiB, after %u ms idle %zu MiB "
         "(%.1f%% of the burst kept)\n", base >> 20, peak >> 20, after_free >> 20, waited, rss >> 20,
         100.0 * (double)(rss > base ? rss - base : 0) / (double)height);
  printf("  stats: superblocks %zu, mapped %zu MiB, resident estimate %zu MiB, purged %zu MiB, purge thread %d\n",
         du_ctl_size("stats.superblocks"), du_ctl_size("stats.mapped") >> 20, du_ctl_size("stats.resident") >> 20,
         (du_ctl_size("stats.purged") - purged0) >> 20, du_ctl_bool("stats.purge_thread"));
  CHECK(rss <= base + allowed, "after %u ms idle RSS is %zu KiB above the start (burst height %zu KiB, "
        "allowed %zu KiB)", waited, (rss - base) >> 10, height >> 10, allowed >> 10);
  CHECK(du_ctl_bool("stats.purge_thread") == 1, "the purge thread is not running");
  CHECK(du_ctl_size("stats.purged") > purged0, "stats.purged did not grow");

  /* 2. apex_collect gives everything back at once. */
  base = du_footprint();
  n = du_burst(slots, MAX_OBJECTS, total, 2);
  peak = du_footprint();
  du_free_all(slots, n, 2);
  apex_collect();
  rss = du_footprint();
  height = peak > base ? peak - base : 1;
  allowed = height / 20;
  printf("  collect: base %zu MiB, peak %zu MiB, after apex_collect %zu MiB (%.1f%% kept)\n", base >> 20,
         peak >> 20, rss >> 20, 100.0 * (double)(rss > base ? rss - base : 0) / (double)height);
  CHECK(rss <= base + allowed, "after apex_collect RSS is %zu KiB above the start (burst height %zu KiB)",
        (rss - base) >> 10, height >> 10);
  printf("rss_returns_after_decay: OK\n");
  return 0;
}
