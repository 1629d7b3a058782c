/*
 * rss_over_time — the workload behind docs/rss-over-time.png: how much memory an allocator gives
 * back, and when. Phases, each announced on stdout as "<ms since start> <phase>":
 *   burst1  THREADS threads each allocate about MIB/THREADS MiB of mixed sizes (mostly small,
 *           some up to 1 MiB, a few huge), touching every byte;
 *   free1   everything is freed (a quarter of it by a thread other than the allocating one), except
 *           1 in 200 objects, which survive to the end (a realistic long-lived remainder);
 *   idle1   no allocator call for IDLE ms;
 *   burst2, free2, idle2  the same again;
 *   end
 * bench/rss_over_time.py runs it under each allocator (LD_PRELOAD) and samples its RSS from
 * /proc/<pid>/statm every 50 ms. Usage: bench_rss_over_time [MIB [IDLE_MS [THREADS]]]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t g_mib = 256, g_threads = 4;
static unsigned g_idle_ms = 3000;
static struct timespec g_t0;

typedef struct { void **objs; size_t n, cap; uint64_t seed; } list_t;

static unsigned long ms_since_start(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (unsigned long)((t.tv_sec - g_t0.tv_sec) * 1000 + (t.tv_nsec - g_t0.tv_nsec) / 1000000);
}

static void phase(const char *name) {
  printf("%lu %s\n", ms_since_start(), name);
  fflush(stdout);
}

static uint64_t next(uint64_t *s) {
  *s += 0x9E3779B97F4A7C15ull;
  uint64_t z = *s;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static size_t size_of(uint64_t *s) {
  unsigned r = (unsigned)(next(s) % 1000);
  if (r < 700) return 16 + next(s) % 1024;
  if (r < 960) return 1024 + next(s) % (64 * 1024);
  if (r < 998) return 64 * 1024 + next(s) % (1024 * 1024);
  return 4 * 1024 * 1024 + next(s) % (8 * 1024 * 1024);
}

static void *burst(void *arg) {
  list_t *l = arg;
  size_t target = g_mib * 1024 * 1024 / g_threads, bytes = 0;
  while (bytes < target) {
    if (l->n == l->cap) {
      l->cap = l->cap ? 2 * l->cap : 4096;
      l->objs = realloc(l->objs, l->cap * sizeof *l->objs);
      if (!l->objs) abort();
    }
    size_t size = size_of(&l->seed);
    char *p = malloc(size);
    if (!p) abort();
    memset(p, 0x5A, size);
    l->objs[l->n++] = p;
    bytes += size;
  }
  return NULL;
}

/* Frees the objects of a list whose index is part modulo parts, except the survivors. */
typedef struct { list_t *l; size_t part, parts; } free_arg_t;

static void *free_part(void *arg) {
  free_arg_t *a = arg;
  for (size_t i = a->part; i < a->l->n; i += a->parts) {
    if (i % 200 == 7) continue;                   /* survivor: freed at the end */
    free(a->l->objs[i]);
    a->l->objs[i] = NULL;
  }
  return NULL;
}

static void run_burst(list_t *lists) {
  pthread_t t[64];
  for (size_t i = 0; i < g_threads; i++) pthread_create(&t[i], NULL, burst, &lists[i]);
  for (size_t i = 0; i < g_threads; i++) pthread_join(t[i], NULL);
}

static void run_free(list_t *lists) {
  /* Each list is freed by two threads: three quarters by one, a quarter by another. */
  pthread_t t[128];
  free_arg_t args[128];
  size_t k = 0;
  for (size_t i = 0; i < g_threads; i++)
    for (size_t part = 0; part < 4; part++) {
      if (part == 3 || part == 0) {
        args[k] = (free_arg_t){ &lists[i], part, 4 };
        pthread_create(&t[k], NULL, free_part, &args[k]);
        k++;
      }
    }
  for (size_t i = 0; i < k; i++) pthread_join(t[i], NULL);
  for (size_t i = 0; i < g_threads; i++)       /* parts 1 and 2: by the main thread */
    for (size_t j = 0; j < lists[i].n; j++)
      if ((j % 4 == 1 || j % 4 == 2) && j % 200 != 7) { free(lists[i].objs[j]); lists[i].objs[j] = NULL; }
}

static void idle(void) {
  struct timespec ts = { (time_t)(g_idle_ms / 1000), (long)(g_idle_ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) != 0) {}
}

int main(int argc, char **argv) {
  if (argc > 1) g_mib = (size_t)atol(argv[1]);
  if (argc > 2) g_idle_ms = (unsigned)atol(argv[2]);
  if (argc > 3) g_threads = (size_t)atol(argv[3]);
  if (g_threads < 1 || g_threads > 32) g_threads = 4;
  clock_gettime(CLOCK_MONOTONIC, &g_t0);
  list_t lists[2][32];
  memset(lists, 0, sizeof lists);
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < g_threads; i++) lists[round][i].seed = (uint64_t)round * 1000 + i + 1;
    phase(round == 0 ? "start" : "burst2");
    if (round == 0) phase("burst1");
    run_burst(lists[round]);
    phase(round == 0 ? "free1" : "free2");
    run_free(lists[round]);
    phase(round == 0 ? "idle1" : "idle2");
    idle();
  }
  phase("end");
  for (int round = 0; round < 2; round++)
    for (size_t i = 0; i < g_threads; i++) {
      for (size_t j = 0; j < lists[round][i].n; j++) free(lists[round][i].objs[j]);
      free(lists[round][i].objs);
    }
  return 0;
}
