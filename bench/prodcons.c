/*
 * prodcons.c — one thread allocates, the others free: a single producer hands every object it
 * allocates to one of N consumer threads, which check it and free it.
 *
 * Unlike xmalloc (several producers and a locked queue of batches), there is exactly one
 * allocating thread and the hand-off is a lock-free single-producer/single-consumer ring per
 * consumer, so almost all the time goes to malloc in the producer and to the remote free in the
 * consumers (the object always belongs to another thread's heap). Messages carry MSG_OBJECTS
 * pointers at a time, in slots of the ring itself (the hand-off allocates nothing), and the
 * producer deals them to the consumers round-robin. A side that finds its ring full (producer) or
 * empty (consumer) yields the processor a few times and then sleeps on the ring's condition
 * variable until the other side wakes it (the producer when the ring is half empty again), so the workload also behaves when there are more
 * threads than cores (a spinning waiter would take the processor from the thread it waits for).
 *
 * usage: bench_prodcons [consumers=2] [objects=6000000]
 * Prints one line; exits 2 on a data mismatch, 3 on an allocation failure.
 */
#define _GNU_SOURCE /* sched_yield */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define MSG_OBJECTS 32
#define RING_SLOTS 64 /* power of two */
#define MIN_SIZE 16
#define MAX_SIZE 256
#define YIELDS_BEFORE_SLEEP 16

typedef struct {
  size_t n;
  unsigned char *obj[MSG_OBJECTS];
  uint32_t size[MSG_OBJECTS];
} message_t;

/* One ring per consumer; head and tail on their own cache lines so that the producer's and the
 * consumer's counters do not share one. The counters and the *_waiting flags are sequentially
 * consistent: a side stores its counter and then reads the other side's flag, the waiter stores
 * its flag and then reads the counter, so at least one of them sees the other (no lost wake-up);
 * the waiter holds the lock from its flag to pthread_cond_wait, so the signal cannot slip in
 * between. */
typedef struct {
  _Alignas(64) atomic_size_t head; /* written by the consumer */
  _Alignas(64) atomic_size_t tail; /* written by the producer */
  atomic_int done;                 /* set by the producer after its last message */
  _Alignas(64) atomic_int consumer_waiting;
  atomic_int producer_waiting;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  long freed;
  message_t slot[RING_SLOTS];
} ring_t;

static unsigned char object_byte(size_t size, size_t i) { return (unsigned char)(size * 31u + i); }

static int has_message(ring_t *r) { return atomic_load(&r->tail) != atomic_load(&r->head) || atomic_load(&r->done); }
static int has_room(ring_t *r) { return atomic_load(&r->tail) - atomic_load(&r->head) < RING_SLOTS; }
/* What a producer that found its ring full waits for, so that it does not sleep again after every
 * message (one wake-up per half ring instead of one per message). */
static int half_empty(ring_t *r) { return atomic_load(&r->tail) - atomic_load(&r->head) <= RING_SLOTS / 2; }

/* Wait until ready(r): yield a few times, then sleep until the other side signals. */
static void wait_for(ring_t *r, int (*ready)(ring_t *), atomic_int *waiting) {
  for (int i = 0; i < YIELDS_BEFORE_SLEEP; i++) {
    if (ready(r)) return;
    sched_yield();
  }
  pthread_mutex_lock(&r->lock);
  atomic_store(waiting, 1);
  while (!ready(r)) pthread_cond_wait(&r->wake, &r->lock);
  atomic_store(waiting, 0);
  pthread_mutex_unlock(&r->lock);
}

static void wake_if_waiting(ring_t *r, atomic_int *waiting) {
  if (atomic_load(waiting)) {
    pthread_mutex_lock(&r->lock);
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
  }
}

static void *consumer(void *arg) {
  ring_t *ring = arg;
  size_t head = atomic_load(&ring->head);
  for (;;) {
    if (head == atomic_load(&ring->tail)) {
      if (atomic_load(&ring->done) && head == atomic_load(&ring->tail)) break;
      wait_for(ring, has_message, &ring->consumer_waiting);
      continue;
    }
    message_t *m = &ring->slot[head & (RING_SLOTS - 1)];
    for (size_t i = 0; i < m->n; i++) {
      unsigned char *p = m->obj[i];
      size_t size = m->size[i];
      if (p[0] != object_byte(size, 0) || p[size - 1] != object_byte(size, size - 1)) {
        fprintf(stderr, "prodcons: data mismatch in object %p of size %zu\n", (void *)p, size);
        exit(2);
      }
      free(p);
    }
    ring->freed += (long)m->n;
    atomic_store(&ring->head, ++head);
    if (half_empty(ring)) wake_if_waiting(ring, &ring->producer_waiting);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int consumers = argc > 1 ? atoi(argv[1]) : 2;
  long objects = argc > 2 ? atol(argv[2]) : 6000000;
  if (consumers < 1 || objects < 1) {
    fprintf(stderr, "usage: %s [consumers>=1] [objects>=1]\n", argv[0]);
    return 1;
  }
  ring_t *rings = aligned_alloc(64, (size_t)consumers * sizeof *rings);
  pthread_t *tids = calloc((size_t)consumers, sizeof *tids);
  if (rings == NULL || tids == NULL) return 3;
  memset(rings, 0, (size_t)consumers * sizeof *rings);
  for (int c = 0; c < consumers; c++)
    if (pthread_mutex_init(&rings[c].lock, NULL) != 0 || pthread_cond_init(&rings[c].wake, NULL) != 0) return 3;

  double t0 = now_sec();
  for (int c = 0; c < consumers; c++)
    if (pthread_create(&tids[c], NULL, consumer, &rings[c]) != 0) return 3;

  uint64_t rng = 0x2545F4914F6CDD1DULL;
  long made = 0;
  for (int c = 0; made < objects; c = (c + 1) % consumers) {
    ring_t *ring = &rings[c];
    if (!has_room(ring)) wait_for(ring, half_empty, &ring->producer_waiting);
    size_t tail = atomic_load(&ring->tail);
    message_t *m = &ring->slot[tail & (RING_SLOTS - 1)];
    m->n = 0;
    while (m->n < MSG_OBJECTS && made < objects) {
      uint64_t r = rng_next(&rng);
      size_t size = MIN_SIZE + (size_t)(r % (MAX_SIZE - MIN_SIZE + 1));
      unsigned char *p = malloc(size);
      if (p == NULL) {
        fprintf(stderr, "prodcons: malloc(%zu) returned NULL\n", size);
        exit(3);
      }
      p[0] = object_byte(size, 0);
      p[size - 1] = object_byte(size, size - 1);
      m->obj[m->n] = p;
      m->size[m->n] = (uint32_t)size;
      m->n++;
      made++;
    }
    atomic_store(&ring->tail, tail + 1);
    wake_if_waiting(ring, &ring->consumer_waiting);
  }
  for (int c = 0; c < consumers; c++) {
    atomic_store(&rings[c].done, 1);
    wake_if_waiting(&rings[c], &rings[c].consumer_waiting);
  }
  long freed = 0;
  for (int c = 0; c < consumers; c++) {
    pthread_join(tids[c], NULL);
    freed += rings[c].freed;
  }
  double elapsed = now_sec() - t0;
  if (freed != objects) {
    fprintf(stderr, "prodcons: freed %ld objects, expected %ld\n", freed, objects);
    return 2;
  }
  for (int c = 0; c < consumers; c++) {
    pthread_mutex_destroy(&rings[c].lock);
    pthread_cond_destroy(&rings[c].wake);
  }
  free(tids);
  free(rings);
  printf("prodcons: 1 producer, %d consumers, %ld objects, time=%.3fs rate=%.2f Mobj/s\n", consumers,
         objects, elapsed, (double)objects / elapsed / 1e6);
  return 0;
}
