/*
 * stats_cost.c — what a statistics snapshot costs as the process's memory grows.
 *
 * Times apex_bin_stats_get (one bin), apex_stats_get and apex_stats_print (every bin, to a sink)
 * with the calling thread's heap spread over 1, then `many` superblocks (one large object of a
 * little over half a superblock each, never touched: little memory is resident). Snapshots used
 * to walk every superblock, so their cost grew with the count; they now sum counters per heap and
 * should cost about the same at both sizes. Links ApexAlloc itself (it reads its statistics), so
 * it is not one of bench/run.py's workloads.
 *
 * usage: bench_stats_cost [many=1000] [calls=2000]
 * Prints, for each size, the median nanoseconds per call of five rounds.
 */
#define _POSIX_C_SOURCE 200809L
#include <apexalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void sink(void *opaque, const char *text, size_t len) { (void)opaque; (void)text; (void)len; }

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

enum { ROUNDS = 5 };

/* Median ns per call of `what` (0: one bin, 1: apex_stats_get, 2: apex_stats_print). */
static double cost(int what, size_t calls) {
  double rounds[ROUNDS];
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now_ns();
    for (size_t i = 0; i < calls; i++) {
      apex_bin_stats_t b;
      apex_stats_t s;
      if (what == 0) apex_bin_stats_get(7, &b, sizeof b);
      else if (what == 1) apex_stats_get(&s, sizeof s);
      else apex_stats_print(sink, NULL, APEX_FORMAT_JSON);
    }
    rounds[r] = (now_ns() - t0) / (double)calls;
  }
  qsort(rounds, ROUNDS, sizeof rounds[0], cmp_double);
  return rounds[ROUNDS / 2];
}

static void report(size_t calls) {
  apex_stats_t s;
  apex_stats_get(&s, sizeof s);
  printf("%6zu superblocks: bin_stats_get %9.0f ns  stats_get %9.0f ns  stats_print %11.0f ns\n", s.superblocks,
         cost(0, calls), cost(1, calls), cost(2, calls / 20 + 1));
}

int main(int argc, char **argv) {
  size_t many = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
  size_t calls = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000;
  void **keep = calloc(many, sizeof *keep);
  if (keep == NULL) return 3;
  void *one = apex_malloc(100);
  report(calls);
  for (size_t i = 0; i < many; i++)
    if ((keep[i] = apex_malloc((size_t)33 << 16)) == NULL) return 3;
  report(calls);
  for (size_t i = 0; i < many; i++) apex_free(keep[i]);
  apex_free(one);
  free(keep);
  return 0;
}
