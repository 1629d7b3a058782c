/*
 * larson.c — server simulation in the spirit of Larson & Krishnan's benchmark.
 *
 * A shared table of objects (random sizes 16..1000 B) is split into one partition per worker.
 * The run is a sequence of rounds; each round starts a fresh set of worker threads (thread
 * churn, as a server that replaces its worker threads) and worker t of round r works on
 * partition (t + r) mod T. A worker repeatedly picks a random slot of its partition, checks the
 * object in it, frees it and puts a new object of random size there. Because the partition a
 * worker gets rotates, most objects are freed by a different thread than the one that
 * allocated them, and many by a thread that started after the allocating one exited.
 *
 * usage: bench_larson [threads=2] [replacements per thread=8000000] [slots per thread=4000]
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

#define MIN_SIZE 16
#define MAX_SIZE 1000
#define ROUNDS 30

typedef struct {
  unsigned char *p;
  size_t size;
  uint64_t tag;
} slot_t;

typedef struct {
  pthread_t tid;
  int index;
  int round;
  long ops;
  uint64_t seed;
} worker_t;

static slot_t *g_slots;
static size_t g_per_thread;
static int g_threads;

static void fill_slot(slot_t *s, size_t size, uint64_t tag) {
  unsigned char *p = malloc(size);
  if (p == NULL) {
    fprintf(stderr, "larson: malloc(%zu) returned NULL\n", size);
    exit(3);
  }
  uint64_t tail = tag ^ (uint64_t)size;
  memcpy(p, &tag, sizeof tag);
  memcpy(p + size - sizeof tail, &tail, sizeof tail);
  if (size >= 24) p[size / 2] = (unsigned char)(tag >> 56); /* clear of head and tail */
  s->p = p;
  s->size = size;
  s->tag = tag;
}

static void check_and_free_slot(slot_t *s) {
  uint64_t head, tail;
  memcpy(&head, s->p, sizeof head);
  memcpy(&tail, s->p + s->size - sizeof tail, sizeof tail);
  if (head != s->tag || tail != (s->tag ^ (uint64_t)s->size) ||
      (s->size >= 24 && s->p[s->size / 2] != (unsigned char)(s->tag >> 56))) {
    fprintf(stderr, "larson: data mismatch in object %p of size %zu\n", (void *)s->p, s->size);
    exit(2);
  }
  free(s->p);
  s->p = NULL;
}

static void *worker(void *arg) {
  worker_t *w = arg;
  size_t part = (size_t)((w->index + w->round) % g_threads);
  slot_t *base = g_slots + part * g_per_thread;
  uint64_t seed = w->seed;
  for (long i = 0; i < w->ops; i++) {
    uint64_t r = rng_next(&seed);
    slot_t *s = &base[r % g_per_thread];
    size_t size = MIN_SIZE + (size_t)((r >> 32) % (MAX_SIZE - MIN_SIZE + 1));
    check_and_free_slot(s);
    fill_slot(s, size, rng_next(&seed));
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  long iters = argc > 2 ? atol(argv[2]) : 8000000;
  long per_thread = argc > 3 ? atol(argv[3]) : 4000;
  if (threads < 1 || iters < ROUNDS || per_thread < 1) {
    fprintf(stderr, "usage: %s [threads>=1] [replacements per thread>=%d] [slots per thread>=1]\n",
            argv[0], ROUNDS);
    return 1;
  }
  g_threads = threads;
  g_per_thread = (size_t)per_thread;
  size_t nslots = g_per_thread * (size_t)threads;
  g_slots = calloc(nslots, sizeof *g_slots);
  if (g_slots == NULL) {
    fprintf(stderr, "larson: cannot allocate the slot table\n");
    return 3;
  }
  uint64_t seed = 0x9E3779B97F4A7C15ULL;
  for (size_t i = 0; i < nslots; i++) {
    uint64_t r = rng_next(&seed);
    fill_slot(&g_slots[i], MIN_SIZE + (size_t)(r % (MAX_SIZE - MIN_SIZE + 1)), rng_next(&seed));
  }

  worker_t *ws = calloc((size_t)threads, sizeof *ws);
  if (ws == NULL) return 3;
  double t0 = now_sec();
  for (int round = 0; round < ROUNDS; round++) {
    for (int t = 0; t < threads; t++) {
      ws[t].index = t;
      ws[t].round = round;
      ws[t].ops = iters / ROUNDS;
      ws[t].seed = 0xD1B54A32D192ED03ULL * (uint64_t)(round * threads + t + 1);
      if (pthread_create(&ws[t].tid, NULL, worker, &ws[t]) != 0) {
        fprintf(stderr, "larson: pthread_create failed\n");
        return 3;
      }
    }
    for (int t = 0; t < threads; t++) pthread_join(ws[t].tid, NULL);
  }
  double elapsed = now_sec() - t0;

  for (size_t i = 0; i < nslots; i++) check_and_free_slot(&g_slots[i]);
  free(g_slots);
  free(ws);
  long total = (iters / ROUNDS) * ROUNDS * threads;
  printf("larson: threads=%d rounds=%d replacements=%ld time=%.3fs rate=%.2f Mops/s\n", threads,
         ROUNDS, total, elapsed, (double)total / elapsed / 1e6);
  return 0;
}
