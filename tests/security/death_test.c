/*
 * death_test.c — runs one security test program and checks that ApexAlloc killed it the way it
 * must: by SIGABRT (not SIGSEGV, not a normal exit), after writing exactly one line on stderr,
 *
 *   apexalloc: <what> at <address> (<size class>)
 *
 * where <what> and <size class> come from the command line and <address> is the one the program
 * announced on stdout (APEX_EXPECT_AT 0x..., see sec.h) just before its misuse. Nothing else may
 * appear on stderr.
 *
 *   death_test --what "double free" --class "size class 3, 48 bytes" -- prog [args...]
 *   death_test --what ... --class ... --timeout 30 -- prog [args...]
 *   death_test --fault -- prog [args...]
 *
 * With --fault the program must instead be killed by SIGSEGV (a guard page), with nothing on
 * stderr, after announcing the address it expects to fault at (APEX_EXPECT_AT) and, from its own
 * SIGSEGV handler, the address it did fault at (APEX_FAULT_AT 0x...): the two must be equal.
 *
 * Exit status 0 when the program died as expected, 1 otherwise (with an explanation). The runner
 * itself is plain C with glibc's malloc: it is not linked with ApexAlloc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  char *data;
  size_t len, cap;
} buffer;

static void buffer_add(buffer *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (b->len + n + 1 > cap) cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) { perror("death_test: realloc"); exit(1); }
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void usage(void) {
  fprintf(stderr, "usage: death_test (--what TEXT --class TEXT | --fault) [--timeout SECONDS] -- program [args...]\n");
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prints `text` with every line prefixed, for the failure report. */
static void show(const char *label, const char *text) {
  if (text == NULL || *text == '\0') {
    printf("  %s: (empty)\n", label);
    return;
  }
  printf("  %s:\n", label);
  const char *line = text;
  while (*line) {
    const char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line) : strlen(line);
    printf("    | %.*s\n", (int)n, line);
    line += n + (end != NULL);
  }
}

int main(int argc, char **argv) {
  const char *what = NULL, *cls = NULL;
  bool fault = false;
  double timeout = 60;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) { i++; break; }
    if (strcmp(argv[i], "--fault") == 0) { fault = true; continue; }
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--what") == 0) what = argv[++i];
    else if (strcmp(argv[i], "--class") == 0) cls = argv[++i];
    else if (strcmp(argv[i], "--timeout") == 0) timeout = atof(argv[++i]);
    else usage();
  }
  if (fault ? (what != NULL || cls != NULL) : (what == NULL || cls == NULL)) usage();
  if (i >= argc || timeout <= 0) usage();
  char **child_argv = argv + i;

  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) { perror("death_test: pipe"); return 1; }
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) { perror("death_test: fork"); return 1; }
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    close(out_pipe[0]); close(out_pipe[1]);
    close(err_pipe[0]); close(err_pipe[1]);
    /* The death is expected: no core files. */
    signal(SIGABRT, SIG_DFL);
    execv(child_argv[0], child_argv);
    fprintf(stderr, "death_test: cannot run %s: %s\n", child_argv[0], strerror(errno));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);

  buffer out = {0}, err = {0};
  struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  bool timed_out = false;
  double deadline = now() + timeout;
  while (open_fds > 0) {
    int wait_ms = (int)((deadline - now()) * 1000);
    if (wait_ms <= 0) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    int r = poll(fds, 2, wait_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      perror("death_test: poll");
      kill(pid, SIGKILL);
      break;
    }
    for (int k = 0; k < 2; k++) {
      if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char chunk[4096];
      ssize_t n = read(fds[k].fd, chunk, sizeof chunk);
      if (n > 0) {
        buffer_add(k == 0 ? &out : &err, chunk, (size_t)n);
      } else if (n == 0 || errno != EINTR) {
        close(fds[k].fd);
        fds[k].fd = -1;
        open_fds--;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (out.data == NULL) buffer_add(&out, "", 0);
  if (err.data == NULL) buffer_add(&err, "", 0);

  /* The address the program announced. */
  char address[64] = "";
  int announcements = 0;
  for (const char *at = out.data; (at = strstr(at, "APEX_EXPECT_AT ")) != NULL; at++) {
    announcements++;
    sscanf(at + strlen("APEX_EXPECT_AT "), "%63s", address);
  }

  /* --fault: where the program's SIGSEGV handler says the fault was. */
  char fault_address[64] = "";
  int faults = 0;
  for (const char *at = out.data; (at = strstr(at, "APEX_FAULT_AT ")) != NULL; at++) {
    faults++;
    sscanf(at + strlen("APEX_FAULT_AT "), "%63s", fault_address);
  }

  char expected[1024];
  if (fault)
    snprintf(expected, sizeof expected, "(nothing; SIGSEGV at %s)", address[0] ? address : "<address>");
  else
    snprintf(expected, sizeof expected, "apexalloc: %s at %s (%s)", what, address[0] ? address : "<address>", cls);

  /* stderr must be exactly the expected line (one line, newline-terminated). */
  int matching = 0, other = 0;
  const char *line = err.data;
  while (*line) {
    const char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line) : strlen(line);
    if (n == strlen(expected) && strncmp(line, expected, n) == 0) matching++;
    else other++;
    line += n + (end != NULL);
  }

  const char *problem = NULL;
  char why[256];
  if (timed_out) {
    snprintf(why, sizeof why, "the program did not finish within %g s (killed)", timeout);
    problem = why;
  } else if (announcements != 1) {
    snprintf(why, sizeof why, "the program announced %d addresses on stdout (want exactly one APEX_EXPECT_AT line): "
             "it did not reach its misuse", announcements);
    problem = why;
  } else if (WIFEXITED(status)) {
    snprintf(why, sizeof why, "the program exited normally with status %d instead of being killed by %s",
             WEXITSTATUS(status), fault ? "SIGSEGV" : "SIGABRT");
    problem = why;
  } else if (!WIFSIGNALED(status) || WTERMSIG(status) != (fault ? SIGSEGV : SIGABRT)) {
    snprintf(why, sizeof why, "the program was killed by signal %d (%s), not %s",
             WIFSIGNALED(status) ? WTERMSIG(status) : -1,
             WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "?", fault ? "SIGSEGV" : "SIGABRT");
    problem = why;
  } else if (fault && (faults != 1 || strcmp(fault_address, address) != 0)) {
    snprintf(why, sizeof why, "the program reported %d fault(s), at %s; want one, at the announced %s", faults,
             fault_address[0] ? fault_address : "(none)", address);
    problem = why;
  } else if (fault && err.data[0] != '\0') {
    snprintf(why, sizeof why, "stderr is not empty");
    problem = why;
  } else if (!fault && (matching != 1 || other != 0)) {
    snprintf(why, sizeof why, "stderr has %d line(s) equal to the expected one and %d other line(s); want exactly "
             "the expected line and nothing else", matching, other);
    problem = why;
  }

  printf("%s: %s\n", problem ? "FAIL" : "PASS",
         problem ? problem : fault ? "killed by SIGSEGV at the expected address" : "killed by SIGABRT with the expected line");
  printf("  program: ");
  for (char **a = child_argv; *a; a++) printf("%s%s", *a, a[1] ? " " : "\n");
  printf("  expected stderr: %s\n", expected);
  show("stdout", out.data);
  show("stderr", err.data);
  free(out.data);
  free(err.data);
  return problem ? 1 : 0;
}
