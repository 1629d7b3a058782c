/*
 * Hardened mode (APEX_SECURE=2): every byte that hardened mode promises to check is checked, and
 * the report names that very byte. For objects of many sizes and alignments of the slack (small
 * classes, the largest small class, large objects), one forked child per case:
 *   - canary: one byte of the slack between the requested size and the trailer changed, then
 *     free: "heap overflow (canary overwritten) at <that byte>";
 *   - write after free: the object freed, one byte of its chunk changed (any byte: the user part,
 *     the slack, where the trailer was), then apex_collect() empties the quarantine: "write after
 *     free at <that byte>", or at the chunk's second word for a byte of it (the free tag).
 * Each child must die of SIGABRT with exactly that one line on stderr. The bytes tried are all of
 * them for short ranges, else the first and last 24 and 16 spread between: the pattern checks work
 * many bytes at a time with unaligned ends (core/security.c), and these are where they could miss
 * (dropping the last 8 bytes of the aligned verification, or the second word of the canary's
 * unaligned head, made this test fail; it passes on the word-by-word code before them).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apexalloc.h"
#include "check.h"

#define CANARY_BYTE 0xA5

static int g_cases;

/* Runs misuse(p, at) in a forked child and checks it died of SIGABRT with the one line
 * "apexalloc: <what> at <expect_at> (...)". */
static void expect_death(void (*misuse)(unsigned char *, size_t), unsigned char *p, size_t at,
                         const char *what, const void *expect_at) {
  int err[2];
  CHECK(pipe(err) == 0, "pipe");
  pid_t pid = fork();
  CHECK(pid >= 0, "fork");
  if (pid == 0) {
    dup2(err[1], STDERR_FILENO);
    close(err[0]);
    misuse(p, at);
    _exit(0);                                          /* not caught: the parent reports it */
  }
  close(err[1]);
  char out[512];
  size_t n = 0;
  ssize_t r;
  while (n < sizeof out - 1 && (r = read(err[0], out + n, sizeof out - 1 - n)) > 0) n += (size_t)r;
  out[n] = '\0';
  close(err[0]);
  int status;
  CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
  char prefix[160];
  snprintf(prefix, sizeof prefix, "apexalloc: %s at %p (", what, expect_at);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
        "%s at offset %zu of %p: the child was not aborted (status 0x%x, stderr: %s)", what, at, (void *)p,
        status, out);
  CHECK(strncmp(out, prefix, strlen(prefix)) == 0 && strchr(out, '\n') == out + n - 1,
        "offset %zu of %p: expected one line starting \"%s\", got \"%s\"", at, (void *)p, prefix, out);
  g_cases++;
}

static void overflow_into_slack(unsigned char *p, size_t at) {
  p[at] ^= 0xFF;
  free(p);
}

static void write_after_free(unsigned char *p, size_t at) {
  free(p);
  p[at] ^= 0xFF;
  apex_collect();                                      /* empties this thread's quarantine */
}

/* Offsets to try in [from, to): all of them when few, else both ends and some in between. */
static void for_offsets(size_t from, size_t to, void (*each)(size_t, void *), void *ctx) {
  if (to - from <= 64) {
    for (size_t k = from; k < to; k++) each(k, ctx);
    return;
  }
  for (size_t k = from; k < from + 24; k++) each(k, ctx);
  for (size_t i = 1; i <= 16; i++) each(from + 24 + (to - from - 48) * i / 17, ctx);
  for (size_t k = to - 24; k < to; k++) each(k, ctx);
}

struct object { unsigned char *p; size_t size, chunk; };

static void try_canary(size_t k, void *ctx) {
  struct object *o = ctx;
  expect_death(overflow_into_slack, o->p, k, "heap overflow (canary overwritten)", o->p + k);
}

static void try_after_free(size_t k, void *ctx) {
  struct object *o = ctx;
  bool tag = k >= 8 && k < 16;                         /* the free tag's word is reported whole */
  expect_death(write_after_free, o->p, k, "write after free", tag ? o->p + 8 : o->p + k);
}

int main(void) {
  size_t level = 0, len = sizeof level;
  CHECK(apex_ctl("opt.secure", &level, &len, NULL, 0) == 0 && level == 2,
        "this test is for hardened mode: run it with APEX_SECURE=2");
  static const size_t sizes[] = { 1, 7, 8, 9, 15, 16, 17, 24, 31, 33, 40, 100, 120, 129, 200, 500,
                                  1000, 1017, 1153, 2000, 2309, 4000, 4099, 5000, 20000, 20007, 70000,
                                  70003, 100000 };
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    struct object o = { malloc(sizes[s]), sizes[s], 0 };
    CHECK(o.p != NULL, "malloc(%zu)", o.size);
    /* The chunk: the request, the canary up to the 8-byte trailer, chunks a multiple of 16 long (a
     * trailer that happens to start with canary bytes is cut back to that). */
    size_t slack = 0;
    while (o.p[o.size + slack] == CANARY_BYTE) slack++;
    while ((o.size + slack + 8) % 16 != 0) slack--;
    o.chunk = o.size + slack + 8;
    for_offsets(o.size, o.size + slack, try_canary, &o);
    for_offsets(0, o.chunk, try_after_free, &o);
    free(o.p);
  }
  printf("ok: %d misuses each reported at their byte\n", g_cases);
  return 0;
}
