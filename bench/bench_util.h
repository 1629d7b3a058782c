/*
 * bench_util.h — the two helpers every workload needs: a monotonic clock and a fast random
 * generator (xorshift64*, Vigna 2014). Header-only so each workload stays one file plus this.
 */
#ifndef APEX_BENCH_UTIL_H
#define APEX_BENCH_UTIL_H

#include <stdint.h>
#include <time.h>

static inline double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint64_t rng_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

#endif /* APEX_BENCH_UTIL_H */
