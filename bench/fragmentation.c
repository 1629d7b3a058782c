/*
 * fragmentation.c — how much memory an allocator keeps when the heap gets fragmented.
 *
 * Repeated cycles of:
 *   1. allocate many small objects (16..512 B) and fill them;
 *   2. free every other one of them, leaving holes that no larger object fits in;
 *   3. allocate larger objects (1..8 KiB) adding up to about what was freed;
 *   4. free a random half of everything that is live;
 *   5. allocate mixed objects (16 B..16 KiB) adding up to about what was freed;
 *   6. keep a random 10 % as survivors into the next cycle and free the rest.
 * Every object is filled completely, so resident memory reflects what the allocator maps and
 * touches. The interesting number is the peak RSS compared with the peak of live bytes requested
 * (printed as "overhead"); the run time is secondary.
 *
 * usage: bench_fragmentation [threads=1] [cycles=5] [small objects per cycle=300000]
 * With threads > 1 every thread runs the same cycles on its own objects.
 * Prints one line; exits 2 on a data mismatch, 3 on an allocation failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"

typedef struct {
  unsigned char *p;
  uint32_t size;
  uint32_t tag;
} obj_t;

typedef struct {
  pthread_t tid;
  int index;
  long cycles;
  long nsmall;
} worker_t;

static atomic_size_t g_live_bytes;
static atomic_size_t g_peak_live;

static void account(ptrdiff_t delta) {
  size_t live = atomic_fetch_add(&g_live_bytes, (size_t)delta) + (size_t)delta;
  size_t peak = atomic_load(&g_peak_live);
  while (live > peak && !atomic_compare_exchange_weak(&g_peak_live, &peak, live)) {
  }
}

typedef struct {
  obj_t *v;
  size_t n, cap;
  size_t bytes; /* live bytes of this thread, for the phase targets */
  uint64_t seed;
} heap_t;

static void add_object(heap_t *h, size_t size) {
  if (h->n == h->cap) {
    fprintf(stderr, "fragmentation: object table full\n");
    exit(3);
  }
  unsigned char *p = malloc(size);
  if (p == NULL) {
    fprintf(stderr, "fragmentation: malloc(%zu) returned NULL\n", size);
    exit(3);
  }
  uint32_t tag = (uint32_t)rng_next(&h->seed);
  memset(p, (int)(tag & 0xFF), size);
  memcpy(p, &tag, size < sizeof tag ? size : sizeof tag);
  h->v[h->n++] = (obj_t){p, (uint32_t)size, tag};
  h->bytes += size;
  account((ptrdiff_t)size);
}

static void drop_object(heap_t *h, size_t i) {
  obj_t *o = &h->v[i];
  unsigned char fillb = (unsigned char)(o->tag & 0xFF);
  uint32_t head;
  memcpy(&head, o->p, sizeof head);
  if (head != o->tag || o->p[o->size - 1] != fillb || o->p[o->size / 2 + 2] != fillb) {
    fprintf(stderr, "fragmentation: data mismatch in object %p of size %u\n", (void *)o->p, o->size);
    exit(2);
  }
  free(o->p);
  o->p = NULL;
  h->bytes -= o->size;
  account(-(ptrdiff_t)o->size);
}

static void compact(heap_t *h) {
  size_t k = 0;
  for (size_t i = 0; i < h->n; i++)
    if (h->v[i].p != NULL) h->v[k++] = h->v[i];
  h->n = k;
}

static size_t size_between(heap_t *h, size_t lo, size_t hi) {
  return lo + (size_t)(rng_next(&h->seed) % (hi - lo + 1));
}

static void *worker(void *arg) {
  worker_t *w = arg;
  heap_t h = {0};
  h.cap = (size_t)w->nsmall * 3;
  h.v = calloc(h.cap, sizeof *h.v);
  if (h.v == NULL) exit(3);
  h.seed = 0xD1B54A32D192ED03ULL * (uint64_t)(w->index + 1);

  for (long c = 0; c < w->cycles; c++) {
    /* 1. many small objects */
    size_t first = h.n;
    for (long i = 0; i < w->nsmall; i++) add_object(&h, size_between(&h, 16, 512));
    /* 2. free every other one of them */
    size_t before = h.bytes;
    for (size_t i = first; i < h.n; i += 2) drop_object(&h, i);
    compact(&h);
    /* 3. larger objects, about as many bytes as were freed */
    size_t goal = before;
    while (h.bytes < goal) add_object(&h, size_between(&h, 1024, 8192));
    /* 4. free a random half */
    before = h.bytes;
    for (size_t i = 0; i < h.n; i++)
      if (rng_next(&h.seed) & 1) drop_object(&h, i);
    compact(&h);
    /* 5. mixed sizes, refill what was freed */
    goal = before;
    while (h.bytes < goal) {
      uint64_t r = rng_next(&h.seed) % 10;
      add_object(&h, r < 6 ? size_between(&h, 16, 256) : r < 9 ? size_between(&h, 256, 4096)
                                                               : size_between(&h, 4096, 16384));
    }
    /* 6. keep about 10 % as survivors */
    for (size_t i = 0; i < h.n; i++)
      if (rng_next(&h.seed) % 10 != 0) drop_object(&h, i);
    compact(&h);
  }
  for (size_t i = 0; i < h.n; i++) drop_object(&h, i);
  free(h.v);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  long cycles = argc > 2 ? atol(argv[2]) : 5;
  long nsmall = argc > 3 ? atol(argv[3]) : 300000;
  if (threads < 1 || cycles < 1 || nsmall < 2) {
    fprintf(stderr, "usage: %s [threads>=1] [cycles>=1] [small objects per cycle>=2]\n", argv[0]);
    return 1;
  }
  worker_t *ws = calloc((size_t)threads, sizeof *ws);
  if (ws == NULL) return 3;
  double t0 = now_sec();
  for (int t = 0; t < threads; t++) {
    ws[t].index = t;
    ws[t].cycles = cycles;
    ws[t].nsmall = nsmall;
    if (pthread_create(&ws[t].tid, NULL, worker, &ws[t]) != 0) return 3;
  }
  for (int t = 0; t < threads; t++) pthread_join(ws[t].tid, NULL);
  double elapsed = now_sec() - t0;
  free(ws);
  if (atomic_load(&g_live_bytes) != 0) {
    fprintf(stderr, "fragmentation: live byte count is %zu at the end\n", atomic_load(&g_live_bytes));
    return 2;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double peak_live = (double)atomic_load(&g_peak_live) / 1048576.0;
  double maxrss = (double)ru.ru_maxrss / 1024.0;
  printf("fragmentation: threads=%d cycles=%ld peak_live=%.1fMiB maxrss=%.1fMiB overhead=%.2fx time=%.3fs\n",
         threads, cycles, peak_live, maxrss, maxrss / peak_live, elapsed);
  return 0;
}
