/*
 * working_set.c — each thread keeps a working set of live objects of random sizes and, step after
 * step, frees a random one and allocates a new one of a fresh random size in its place: the kind
 * of loop glibc's threaded malloc micro-benchmark runs (written here from that description).
 *
 * Sizes follow a skewed distribution: most requests are small (16..256 B), some are medium
 * (up to 4 KiB) and a few are large (up to 32 KiB), so several size classes and, for some
 * allocators, more than one allocation path are exercised. Threads share nothing; with more than
 * one thread the workload shows whether that mix scales. Each object is stamped at both ends
 * and checked before it is freed.
 *
 * usage: bench_working_set [threads=2] [steps per thread=3000000] [working set=1024]
 * Prints one line; exits 2 on a data mismatch, 3 on an allocation failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

typedef struct {
  pthread_t tid;
  long steps;
  size_t live;
  uint64_t seed;
} worker_t;

/* 16..32 KiB skewed small: 80 % in 16..256 B, 15 % up to 4 KiB, 5 % up to 32 KiB. */
static size_t random_size(uint64_t r) {
  unsigned pick = (unsigned)(r % 100);
  uint64_t u = r >> 8;
  if (pick < 80) return 16 + (size_t)(u % 241);
  if (pick < 95) return 257 + (size_t)(u % (4096 - 257 + 1));
  return 4097 + (size_t)(u % (32768 - 4097 + 1));
}

static unsigned char stamp_of(size_t i, size_t size) { return (unsigned char)(i * 131u + size); }

static void *worker(void *arg) {
  worker_t *w = arg;
  unsigned char **obj = calloc(w->live, sizeof *obj);
  size_t *size = calloc(w->live, sizeof *size);
  if (obj == NULL || size == NULL) exit(3);
  uint64_t rng = w->seed;
  for (long s = 0; s < w->steps; s++) {
    uint64_t r = rng_next(&rng);
    size_t i = (size_t)((r >> 40) % w->live);
    if (obj[i] != NULL) {
      unsigned char want = stamp_of(i, size[i]);
      if (obj[i][0] != want || obj[i][size[i] - 1] != want) {
        fprintf(stderr, "working-set: data mismatch in object %p of size %zu\n", (void *)obj[i], size[i]);
        exit(2);
      }
      free(obj[i]);
    }
    size[i] = random_size(r);
    if ((obj[i] = malloc(size[i])) == NULL) {
      fprintf(stderr, "working-set: malloc(%zu) returned NULL\n", size[i]);
      exit(3);
    }
    obj[i][0] = obj[i][size[i] - 1] = stamp_of(i, size[i]);
  }
  for (size_t i = 0; i < w->live; i++) free(obj[i]);
  free(obj);
  free(size);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  long steps = argc > 2 ? atol(argv[2]) : 3000000;
  long live = argc > 3 ? atol(argv[3]) : 1024;
  if (threads < 1 || steps < 1 || live < 1) {
    fprintf(stderr, "usage: %s [threads>=1] [steps per thread>=1] [working set>=1]\n", argv[0]);
    return 1;
  }
  worker_t *ws = calloc((size_t)threads, sizeof *ws);
  if (ws == NULL) return 3;
  double t0 = now_sec();
  for (int t = 0; t < threads; t++) {
    ws[t].steps = steps;
    ws[t].live = (size_t)live;
    ws[t].seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1);
    if (pthread_create(&ws[t].tid, NULL, worker, &ws[t]) != 0) return 3;
  }
  for (int t = 0; t < threads; t++) pthread_join(ws[t].tid, NULL);
  double elapsed = now_sec() - t0;
  free(ws);
  printf("working-set: threads=%d steps=%ld live=%ld time=%.3fs (%.1f ns/step/thread)\n", threads,
         steps, live, elapsed, elapsed * 1e9 / (double)steps);
  return 0;
}
