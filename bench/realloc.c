/*
 * realloc.c — realloc-heavy string building.
 *
 * Each thread builds several strings at once, interleaved, the naive way: every append calls
 * realloc to exactly the new length + 1. Appends are short while a string is short and grow with
 * it (up to 1/16 of the current length), so a string passes through every size class from a few
 * bytes to about 1 MiB. When all strings are complete they are checked in full, then shrunk back
 * by repeated realloc to half their length (checking what is left each time) and freed.
 * Interleaving several strings keeps neighbours next to each other, so an allocator cannot
 * always grow in place.
 *
 * usage: bench_realloc [threads=1] [rounds=24] [strings per thread=8]
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

#define TARGET_LEN (1u << 20)
#define PERIOD 251 /* prime, so the text never lines up with power-of-two sizes */

typedef struct {
  char *s;
  size_t len;
  size_t target;
  size_t seed;
} str_t;

typedef struct {
  pthread_t tid;
  int index;
  long rounds;
  long nstr;
  long reallocs;
} worker_t;

static char g_text[PERIOD];

static inline char char_at(const str_t *st, size_t pos) { return g_text[(pos + st->seed) % PERIOD]; }

static void mismatch(const str_t *st, size_t pos, const char *when) {
  fprintf(stderr, "realloc: data mismatch %s in string %p (length %zu) at %zu\n", when, (void *)st->s,
          st->len, pos);
  exit(2);
}

static char *xrealloc(char *p, size_t size) {
  char *q = realloc(p, size);
  if (q == NULL) {
    fprintf(stderr, "realloc: realloc(%zu) returned NULL\n", size);
    exit(3);
  }
  return q;
}

/* Check the whole string (and its terminator) against the expected text. */
static void check_full(const str_t *st, const char *when) {
  size_t pos = st->seed % PERIOD;
  for (size_t i = 0; i < st->len; i++) {
    if (st->s[i] != g_text[pos]) mismatch(st, i, when);
    if (++pos == PERIOD) pos = 0;
  }
  if (st->s[st->len] != '\0') mismatch(st, st->len, when);
}

static void *worker(void *arg) {
  worker_t *w = arg;
  uint64_t seed = 0xD1B54A32D192ED03ULL * (uint64_t)(w->index + 1);
  str_t *strs = calloc((size_t)w->nstr, sizeof *strs);
  if (strs == NULL) exit(3);
  long reallocs = 0;
  for (long round = 0; round < w->rounds; round++) {
    for (long b = 0; b < w->nstr; b++) {
      strs[b].s = calloc(1, 1); /* the empty string */
      if (strs[b].s == NULL) exit(3);
      strs[b].len = 0;
      strs[b].target = TARGET_LEN - (size_t)(rng_next(&seed) % (TARGET_LEN / 8));
      strs[b].seed = (size_t)(rng_next(&seed) % PERIOD);
    }
    /* grow, interleaved */
    long active = w->nstr;
    while (active > 0) {
      active = 0;
      for (long b = 0; b < w->nstr; b++) {
        str_t *st = &strs[b];
        if (st->len >= st->target) continue;
        active++;
        size_t add = 1 + (size_t)(rng_next(&seed) % (16 + st->len / 16));
        size_t old = st->len;
        st->s = xrealloc(st->s, old + add + 1);
        reallocs++;
        if (st->s[old] != '\0') mismatch(st, old, "after growing");
        if (old > 0 && (st->s[0] != char_at(st, 0) || st->s[old - 1] != char_at(st, old - 1) ||
                        st->s[old / 2] != char_at(st, old / 2)))
          mismatch(st, old, "after growing");
        size_t pos = (old + st->seed) % PERIOD;
        for (size_t i = old; i < old + add; i++) {
          st->s[i] = g_text[pos];
          if (++pos == PERIOD) pos = 0;
        }
        st->s[old + add] = '\0';
        st->len = old + add;
      }
    }
    for (long b = 0; b < w->nstr; b++) {
      str_t *st = &strs[b];
      check_full(st, "after building");
      if (strlen(st->s) != st->len) mismatch(st, strlen(st->s), "strlen after building");
    }
    /* shrink back, interleaved */
    active = w->nstr;
    while (active > 0) {
      active = 0;
      for (long b = 0; b < w->nstr; b++) {
        str_t *st = &strs[b];
        if (st->s == NULL) continue;
        if (st->len < 16) {
          check_full(st, "before free");
          free(st->s);
          st->s = NULL;
          continue;
        }
        active++;
        st->len /= 2;
        st->s[st->len] = '\0';
        st->s = xrealloc(st->s, st->len + 1);
        reallocs++;
        if (st->s[0] != char_at(st, 0) || st->s[st->len - 1] != char_at(st, st->len - 1) ||
            st->s[st->len / 3] != char_at(st, st->len / 3) || st->s[st->len] != '\0')
          mismatch(st, st->len, "after shrinking");
      }
    }
  }
  free(strs);
  w->reallocs = reallocs;
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  long rounds = argc > 2 ? atol(argv[2]) : 24;
  long nstr = argc > 3 ? atol(argv[3]) : 8;
  if (threads < 1 || rounds < 1 || nstr < 1) {
    fprintf(stderr, "usage: %s [threads>=1] [rounds>=1] [strings per thread>=1]\n", argv[0]);
    return 1;
  }
  uint64_t seed = 42;
  for (int i = 0; i < PERIOD; i++) g_text[i] = (char)('a' + rng_next(&seed) % 26);

  worker_t *ws = calloc((size_t)threads, sizeof *ws);
  if (ws == NULL) return 3;
  double t0 = now_sec();
  for (int t = 0; t < threads; t++) {
    ws[t].index = t;
    ws[t].rounds = rounds;
    ws[t].nstr = nstr;
    if (pthread_create(&ws[t].tid, NULL, worker, &ws[t]) != 0) return 3;
  }
  long total = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(ws[t].tid, NULL);
    total += ws[t].reallocs;
  }
  double elapsed = now_sec() - t0;
  free(ws);
  printf("realloc: threads=%d rounds=%ld strings=%ld reallocs=%ld time=%.3fs\n", threads, rounds,
         nstr * threads, total, elapsed);
  return 0;
}
