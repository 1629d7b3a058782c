/*
 * cache_scratch.c — passive false sharing, after the cache-scratch test of Hoard (Berger et al.).
 *
 * The main thread allocates one small object per worker, back to back, so that they are likely
 * to share a cache line, and hands object t to worker t. Each worker scribbles on the object it
 * was given, frees it, and then repeatedly allocates a small object, writes to it many times and
 * frees it. An allocator that serves the worker's allocations from the freed object (whose cache
 * line neighbours belong to the other workers) makes the workers fight over one cache line for
 * the whole run; one that keeps each thread's objects apart lets them run at full speed.
 *
 * usage: bench_cache_scratch [threads=2] [iterations=15000] [object size=8] [writes per object=4000]
 * Prints one line; exits 2 on a data mismatch, 3 on an allocation failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

typedef struct {
  pthread_t tid;
  unsigned char *given;
} worker_t;

static long g_iters;
static size_t g_size;
static long g_writes;

/* Increment every byte of p g_writes times through a volatile pointer (a real store each time),
 * then check that every byte holds the expected count. */
static void scribble(unsigned char *p) {
  memset(p, 0, g_size);
  volatile unsigned char *v = p;
  for (long w = 0; w < g_writes; w++)
    for (size_t j = 0; j < g_size; j++) v[j]++;
  unsigned char want = (unsigned char)g_writes;
  for (size_t j = 0; j < g_size; j++) {
    if (p[j] != want) {
      fprintf(stderr, "cache-scratch: data mismatch in object %p at byte %zu\n", (void *)p, j);
      exit(2);
    }
  }
}

static void *worker(void *arg) {
  worker_t *w = arg;
  scribble(w->given);
  free(w->given);
  for (long i = 0; i < g_iters; i++) {
    unsigned char *p = malloc(g_size);
    if (p == NULL) {
      fprintf(stderr, "cache-scratch: malloc(%zu) returned NULL\n", g_size);
      exit(3);
    }
    scribble(p);
    free(p);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  g_iters = argc > 2 ? atol(argv[2]) : 15000;
  g_size = argc > 3 ? (size_t)atol(argv[3]) : 8;
  g_writes = argc > 4 ? atol(argv[4]) : 4000;
  if (threads < 1 || g_iters < 1 || g_size < 1 || g_writes < 1) {
    fprintf(stderr, "usage: %s [threads>=1] [iterations>=1] [object size>=1] [writes>=1]\n", argv[0]);
    return 1;
  }
  worker_t *ws = calloc((size_t)threads, sizeof *ws);
  if (ws == NULL) return 3;
  for (int t = 0; t < threads; t++) {
    ws[t].given = malloc(g_size);
    if (ws[t].given == NULL) return 3;
  }
  double t0 = now_sec();
  for (int t = 0; t < threads; t++)
    if (pthread_create(&ws[t].tid, NULL, worker, &ws[t]) != 0) return 3;
  for (int t = 0; t < threads; t++) pthread_join(ws[t].tid, NULL);
  double elapsed = now_sec() - t0;
  free(ws);
  printf("cache-scratch: threads=%d iterations=%ld size=%zu writes=%ld time=%.3fs\n", threads,
         g_iters, g_size, g_writes, elapsed);
  return 0;
}
