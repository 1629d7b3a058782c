/*
 * mixed.c — a mixed allocation test with random sizes: each thread keeps a table of slots, and
 * every step picks a random slot and does one of malloc, calloc, realloc (grow or shrink) or free
 * on it, so allocations and frees are not paired one to one and the number of live objects
 * wanders (between a few and the table size) instead of staying constant.
 *
 * Sizes are log-uniform from 8 B to 64 KiB (every size class sees traffic, small ones most), with
 * one request in 256 between 64 KiB and 512 KiB. calloc'd memory is checked to be zero, realloc
 * must keep the old contents (checked at both ends of what is kept), and every object is checked
 * before it is freed. Threads share nothing.
 *
 * usage: bench_mixed [threads=1] [steps per thread=2500000] [slots=2048]
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
  size_t slots;
  uint64_t seed;
  long ops[4]; /* malloc, calloc, realloc, free */
} worker_t;

typedef struct {
  unsigned char *p;
  size_t size;
  unsigned char stamp;
} slot_t;

static size_t random_size(uint64_t r) {
  if ((r & 255) == 0) return 65537 + (size_t)((r >> 8) % (512 * 1024 - 65536));
  unsigned e = 3 + (unsigned)((r >> 8) % 13); /* [2^3, 2^16) */
  return ((size_t)1 << e) + (size_t)((r >> 16) & (((uint64_t)1 << e) - 1));
}

static void check(const slot_t *s, const char *what) {
  if (s->p[0] != s->stamp || s->p[s->size - 1] != s->stamp) {
    fprintf(stderr, "mixed: data mismatch in object %p of size %zu (%s)\n", (void *)s->p, s->size, what);
    exit(2);
  }
}

static void stamp(slot_t *s, unsigned char v) {
  s->stamp = v;
  s->p[0] = s->p[s->size - 1] = v;
}

static void *worker(void *arg) {
  worker_t *w = arg;
  slot_t *slot = calloc(w->slots, sizeof *slot);
  if (slot == NULL) exit(3);
  uint64_t rng = w->seed;
  for (long step = 0; step < w->steps; step++) {
    uint64_t r = rng_next(&rng);
    slot_t *s = &slot[(r >> 44) % w->slots];
    unsigned action = (unsigned)((r >> 36) & 7);
    size_t size = random_size(rng_next(&rng));
    unsigned char v = (unsigned char)(step | 1);
    if (s->p == NULL) {
      if (action < 5) { /* malloc */
        if ((s->p = malloc(size)) == NULL) exit(3);
        w->ops[0]++;
      } else { /* calloc, checked to be zero where we look */
        if ((s->p = calloc(1, size)) == NULL) exit(3);
        if (s->p[0] != 0 || s->p[size / 2] != 0 || s->p[size - 1] != 0) {
          fprintf(stderr, "mixed: calloc(%zu) returned non-zero memory\n", size);
          exit(2);
        }
        w->ops[1]++;
      }
      s->size = size;
      stamp(s, v);
    } else if (action < 3) { /* realloc: the first min(old, new) bytes must survive */
      check(s, "before realloc");
      size_t keep = size < s->size ? size : s->size;
      unsigned char *q = realloc(s->p, size);
      if (q == NULL) exit(3);
      if (q[0] != s->stamp || (keep == s->size && q[keep - 1] != s->stamp)) {
        fprintf(stderr, "mixed: realloc(%zu -> %zu) lost the contents\n", s->size, size);
        exit(2);
      }
      s->p = q;
      s->size = size;
      stamp(s, v);
      w->ops[2]++;
    } else { /* free */
      check(s, "before free");
      free(s->p);
      s->p = NULL;
      w->ops[3]++;
    }
  }
  for (size_t i = 0; i < w->slots; i++)
    if (slot[i].p != NULL) {
      check(&slot[i], "at the end");
      free(slot[i].p);
    }
  free(slot);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  long steps = argc > 2 ? atol(argv[2]) : 2500000;
  long slots = argc > 3 ? atol(argv[3]) : 2048;
  if (threads < 1 || steps < 1 || slots < 1) {
    fprintf(stderr, "usage: %s [threads>=1] [steps per thread>=1] [slots>=1]\n", argv[0]);
    return 1;
  }
  worker_t *ws = calloc((size_t)threads, sizeof *ws);
  if (ws == NULL) return 3;
  double t0 = now_sec();
  for (int t = 0; t < threads; t++) {
    ws[t].steps = steps;
    ws[t].slots = (size_t)slots;
    ws[t].seed = 0xD1B54A32D192ED03ULL * (uint64_t)(t + 1);
    if (pthread_create(&ws[t].tid, NULL, worker, &ws[t]) != 0) return 3;
  }
  long ops[4] = {0, 0, 0, 0};
  for (int t = 0; t < threads; t++) {
    pthread_join(ws[t].tid, NULL);
    for (int k = 0; k < 4; k++) ops[k] += ws[t].ops[k];
  }
  double elapsed = now_sec() - t0;
  free(ws);
  printf("mixed: threads=%d malloc=%ld calloc=%ld realloc=%ld free=%ld time=%.3fs\n", threads, ops[0],
         ops[1], ops[2], ops[3], elapsed);
  return 0;
}
