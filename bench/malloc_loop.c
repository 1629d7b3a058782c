/*
 * malloc_loop.c — tight malloc/free loop of small sizes, in the style of glibc's
 * bench-malloc-simple (one thread) and bench-malloc-thread (the same loop in N threads).
 *
 * For each small size (16..1024 B) and each batch length (1, 16, 128, 1024) a thread allocates
 * a batch of objects, stamps each one, then checks and frees the whole batch, over and over.
 * The total number of malloc/free pairs is the same for every (size, batch) combination.
 * Threads share nothing: this measures the fast path and how it scales with threads.
 *
 * usage: bench_malloc_loop [threads=1] [malloc/free pairs per thread=20000000]
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

static const size_t k_sizes[] = {16, 24, 32, 48, 64, 96, 128, 256, 512, 1024};
static const size_t k_batches[] = {1, 16, 128, 1024};
#define NSIZES (sizeof k_sizes / sizeof k_sizes[0])
#define NBATCHES (sizeof k_batches / sizeof k_batches[0])
#define MAX_BATCH 1024

typedef struct {
  pthread_t tid;
  long pairs;
  long done;
} worker_t;

static void *worker(void *arg) {
  worker_t *w = arg;
  void **slot = malloc(MAX_BATCH * sizeof *slot);
  if (slot == NULL) exit(3);
  long per_combo = w->pairs / (long)(NSIZES * NBATCHES);
  long done = 0;
  uint64_t stamp = (uint64_t)(uintptr_t)w;
  for (size_t si = 0; si < NSIZES; si++) {
    size_t size = k_sizes[si];
    for (size_t bi = 0; bi < NBATCHES; bi++) {
      size_t batch = k_batches[bi];
      long reps = per_combo / (long)batch;
      for (long r = 0; r < reps; r++) {
        for (size_t i = 0; i < batch; i++) {
          unsigned char *p = malloc(size);
          if (p == NULL) {
            fprintf(stderr, "malloc-loop: malloc(%zu) returned NULL\n", size);
            exit(3);
          }
          uint64_t v = stamp + i;
          memcpy(p, &v, sizeof v);
          p[size - 1] = (unsigned char)i;
          slot[i] = p;
        }
        for (size_t i = 0; i < batch; i++) {
          unsigned char *p = slot[i];
          uint64_t v;
          memcpy(&v, p, sizeof v);
          if (v != stamp + i || p[size - 1] != (unsigned char)i) {
            fprintf(stderr, "malloc-loop: data mismatch in object %p of size %zu\n", (void *)p, size);
            exit(2);
          }
          free(p);
        }
        done += (long)batch;
        stamp += 0x9E3779B97F4A7C15ULL;
      }
    }
  }
  free(slot);
  w->done = done;
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  long pairs = argc > 2 ? atol(argv[2]) : 20000000;
  if (threads < 1 || pairs < (long)(NSIZES * NBATCHES * MAX_BATCH)) {
    fprintf(stderr, "usage: %s [threads>=1] [pairs per thread>=%zu]\n", argv[0],
            (size_t)(NSIZES * NBATCHES * MAX_BATCH));
    return 1;
  }
  worker_t *ws = calloc((size_t)threads, sizeof *ws);
  if (ws == NULL) return 3;
  double t0 = now_sec();
  for (int t = 0; t < threads; t++) {
    ws[t].pairs = pairs;
    if (pthread_create(&ws[t].tid, NULL, worker, &ws[t]) != 0) return 3;
  }
  long total = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(ws[t].tid, NULL);
    total += ws[t].done;
  }
  double elapsed = now_sec() - t0;
  free(ws);
  printf("malloc-loop: threads=%d pairs=%ld time=%.3fs rate=%.2f Mpairs/s (%.1f ns/pair/thread)\n",
         threads, total, elapsed, (double)total / elapsed / 1e6, elapsed * 1e9 * threads / (double)total);
  return 0;
}
