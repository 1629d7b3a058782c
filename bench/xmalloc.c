/*
 * xmalloc.c — producer/consumer workload after the idea of Lever & Boreham's xmalloc test.
 *
 * Half of the threads are producers: they allocate batches of small objects (8..512 B), write a
 * pattern into each, and hand the batch to a bounded shared queue. The other half are consumers:
 * they take batches, check every object and free it. Every free is therefore a remote free
 * (the object was allocated by another thread), and the batch descriptor itself is allocated by
 * the producer and freed by the consumer as well.
 *
 * usage: bench_xmalloc [threads=4] [objects per producer=3000000]
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

#define BATCH 256
#define QUEUE_CAP 32
#define MIN_SIZE 8
#define MAX_SIZE 512

typedef struct {
  size_t n;
  uint64_t tag;
  size_t size[BATCH];
  unsigned char *obj[BATCH];
} batch_t;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t not_empty;
  pthread_cond_t not_full;
  batch_t *ring[QUEUE_CAP];
  size_t head, count;
  int producers_left;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0};

static long g_per_producer;

static uint64_t object_word(uint64_t tag, size_t i) { return tag ^ (0x9E3779B97F4A7C15ULL * (i + 1)); }

static void push(batch_t *b) {
  pthread_mutex_lock(&q.lock);
  while (q.count == QUEUE_CAP) pthread_cond_wait(&q.not_full, &q.lock);
  q.ring[(q.head + q.count) % QUEUE_CAP] = b;
  q.count++;
  pthread_cond_signal(&q.not_empty);
  pthread_mutex_unlock(&q.lock);
}

/* Returns NULL once all producers are done and the queue is drained. */
static batch_t *pop(void) {
  pthread_mutex_lock(&q.lock);
  while (q.count == 0 && q.producers_left > 0) pthread_cond_wait(&q.not_empty, &q.lock);
  batch_t *b = NULL;
  if (q.count > 0) {
    b = q.ring[q.head];
    q.head = (q.head + 1) % QUEUE_CAP;
    q.count--;
    pthread_cond_signal(&q.not_full);
  }
  pthread_mutex_unlock(&q.lock);
  return b;
}

static void *producer(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg * 0xD1B54A32D192ED03ULL + 1;
  long made = 0;
  while (made < g_per_producer) {
    batch_t *b = malloc(sizeof *b);
    if (b == NULL) {
      fprintf(stderr, "xmalloc: malloc(batch) returned NULL\n");
      exit(3);
    }
    b->tag = rng_next(&seed);
    b->n = 0;
    while (b->n < BATCH && made < g_per_producer) {
      uint64_t r = rng_next(&seed);
      /* skew toward the small end: the minimum of two uniform draws */
      size_t s1 = (size_t)(r % (MAX_SIZE - MIN_SIZE + 1));
      size_t s2 = (size_t)((r >> 32) % (MAX_SIZE - MIN_SIZE + 1));
      size_t size = MIN_SIZE + (s1 < s2 ? s1 : s2);
      unsigned char *p = malloc(size);
      if (p == NULL) {
        fprintf(stderr, "xmalloc: malloc(%zu) returned NULL\n", size);
        exit(3);
      }
      uint64_t w = object_word(b->tag, b->n);
      memcpy(p, &w, sizeof w);
      if (size > sizeof w) p[size - 1] = (unsigned char)(w >> 40);
      b->size[b->n] = size;
      b->obj[b->n] = p;
      b->n++;
      made++;
    }
    push(b);
  }
  pthread_mutex_lock(&q.lock);
  q.producers_left--;
  pthread_cond_broadcast(&q.not_empty);
  pthread_mutex_unlock(&q.lock);
  return NULL;
}

static void *consumer(void *arg) {
  long *freed = arg;
  batch_t *b;
  while ((b = pop()) != NULL) {
    for (size_t i = 0; i < b->n; i++) {
      unsigned char *p = b->obj[i];
      uint64_t w, want = object_word(b->tag, i);
      memcpy(&w, p, sizeof w);
      if (w != want || (b->size[i] > sizeof w && p[b->size[i] - 1] != (unsigned char)(want >> 40))) {
        fprintf(stderr, "xmalloc: data mismatch in object %p of size %zu\n", (void *)p, b->size[i]);
        exit(2);
      }
      free(p);
    }
    *freed += (long)b->n;
    free(b);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 4;
  g_per_producer = argc > 2 ? atol(argv[2]) : 3000000;
  if (threads < 2 || g_per_producer < 1) {
    fprintf(stderr, "usage: %s [threads>=2] [objects per producer>=1]\n", argv[0]);
    return 1;
  }
  int producers = threads / 2;
  int consumers = threads - producers;
  q.producers_left = producers;
  pthread_t *tids = calloc((size_t)threads, sizeof *tids);
  long *freed = calloc((size_t)consumers, sizeof *freed);
  if (tids == NULL || freed == NULL) return 3;

  double t0 = now_sec();
  for (int i = 0; i < consumers; i++)
    if (pthread_create(&tids[i], NULL, consumer, &freed[i]) != 0) return 3;
  for (int i = 0; i < producers; i++)
    if (pthread_create(&tids[consumers + i], NULL, producer, (void *)(uintptr_t)(i + 1)) != 0) return 3;
  for (int i = 0; i < threads; i++) pthread_join(tids[i], NULL);
  double elapsed = now_sec() - t0;

  long total = 0;
  for (int i = 0; i < consumers; i++) total += freed[i];
  if (total != g_per_producer * producers) {
    fprintf(stderr, "xmalloc: freed %ld objects, expected %ld\n", total, g_per_producer * producers);
    return 2;
  }
  free(tids);
  free(freed);
  printf("xmalloc: producers=%d consumers=%d objects=%ld time=%.3fs rate=%.2f Mobj/s\n", producers,
         consumers, total, elapsed, (double)total / elapsed / 1e6);
  return 0;
}
