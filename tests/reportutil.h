/*
 * reportutil.h — helpers of the tests of ApexAlloc's reports (apex_stats_print, apex_heap_map):
 * capture what a report writes into a static buffer (so that capturing allocates nothing and
 * cannot change what the next report shows), save it to a temporary file, and check it with a
 * short Python program (json / xml.etree from Python's standard library).
 */
#ifndef APEX_TESTS_REPORTUTIL_H
#define APEX_TESTS_REPORTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

typedef struct {
  char *buf;
  size_t len, cap;
  size_t calls;
} ru_capture;

/* An apex_write_fn: appends to the capture; fails the test when the buffer is too small. */
static inline void ru_write(void *opaque, const char *text, size_t len) {
  ru_capture *c = (ru_capture *)opaque;
  CHECK(c->len + len < c->cap, "report larger than the test's buffer (%zu bytes)", c->cap);
  memcpy(c->buf + c->len, text, len);
  c->len += len;
  c->buf[c->len] = '\0';
  c->calls++;
}

static inline void ru_reset(ru_capture *c) {
  c->len = 0;
  c->calls = 0;
  c->buf[0] = '\0';
}

/* Writes the capture to a fresh file /tmp/apex_<tag>_<pid>.<ext>; returns its path (static). */
static inline const char *ru_save(const ru_capture *c, const char *tag, const char *ext, char *path, size_t cap) {
  snprintf(path, cap, "/tmp/apex_%s_%d.%s", tag, (int)getpid(), ext);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL, "cannot create %s", path);
  CHECK(fwrite(c->buf, 1, c->len, f) == c->len, "cannot write %s", path);
  CHECK(fclose(f) == 0, "cannot close %s", path);
  return path;
}

/* Runs `python3 -c program args...`; returns its exit status (its output goes to ours). A missing
 * python3 fails the test: the checks must run, not be skipped. */
static inline int ru_python(const char *program, const char *const *args, size_t nargs) {
  char cmd[8192];
  size_t n = (size_t)snprintf(cmd, sizeof cmd, "python3 -c '%s'", program);
  for (size_t i = 0; i < nargs && n < sizeof cmd; i++) n += (size_t)snprintf(cmd + n, sizeof cmd - n, " '%s'", args[i]);
  CHECK(n < sizeof cmd, "command too long");
  CHECK(strchr(program, '\'') == NULL, "the Python program must not contain single quotes");
  fflush(stdout);
  FILE *p = popen(cmd, "r");
  CHECK(p != NULL, "popen(python3) failed");
  char line[512];
  while (fgets(line, sizeof line, p) != NULL) fputs(line, stdout);
  int status = pclose(p);
  CHECK(status != -1, "pclose");
  CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 127),
        "python3 not found: the report tests check JSON and SVG with it (apt-get install python3)");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#endif /* APEX_TESTS_REPORTUTIL_H */
