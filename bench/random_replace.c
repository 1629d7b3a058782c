/*
 * random_replace.c — the single-thread fast path as a program sees it: 4,096 live objects of
 * random sizes (8 B to 4 KiB); each step frees one at a random slot and allocates a new one there.
 * Made for counting instructions per malloc+free pair under callgrind (bench/count_fastpath.sh),
 * where wall time does not matter and the count is repeatable.
 *
 * usage: bench_random_replace [steps=2000000]
 * Prints one line; exits 2 on a data mismatch, 3 on an allocation failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

enum { LIVE = 4096 };

/* 8..4095 bytes: a power-of-two range [2^e, 2^(e+1)) with e uniform in 3..11, then uniform in it. */
static size_t random_size(uint64_t r) {
  unsigned e = 3 + (unsigned)(r % 9);
  return ((size_t)1 << e) + (size_t)((r >> 8) & (((uint64_t)1 << e) - 1));
}

int main(int argc, char **argv) {
  long steps = argc > 1 ? atol(argv[1]) : 2000000;
  static unsigned char *slot[LIVE];
  static unsigned char stamp[LIVE];
  uint64_t rng = 0x9E3779B97F4A7C15ULL;
  for (size_t i = 0; i < LIVE; i++) {
    size_t size = random_size(rng_next(&rng));
    if ((slot[i] = malloc(size)) == NULL) return 3;
    slot[i][0] = stamp[i] = (unsigned char)i;
  }
  double t0 = now_sec();
  for (long s = 0; s < steps; s++) {
    uint64_t r = rng_next(&rng);
    size_t i = (size_t)(r & (LIVE - 1));
    if (slot[i][0] != stamp[i]) return 2;
    free(slot[i]);
    size_t size = random_size(r >> 24);
    if ((slot[i] = malloc(size)) == NULL) return 3;
    slot[i][0] = stamp[i] = (unsigned char)(s + 1);
  }
  double t = now_sec() - t0;
  for (size_t i = 0; i < LIVE; i++) free(slot[i]);
  printf("random_replace: %ld steps, %.1f ns per malloc+free pair\n", steps, t * 1e9 / (double)steps);
  return 0;
}
