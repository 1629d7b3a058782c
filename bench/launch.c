/*
 * launch.c — helper of bench/run.py, not a workload.
 *
 * Runs one program and records its wall time, exit status and peak RSS. It exists because
 * Linux folds the resident-set high-water mark of the process image that calls exec into the
 * child's ru_maxrss: a child started straight from Python reports at least Python's own RSS
 * (tens of MiB with matplotlib loaded). This launcher is small, so the floor it leaves is about
 * 1 MiB, below what any workload uses.
 *
 * usage: bench_launch RESULT_FILE PRELOAD TIMEOUT_SECONDS PROGRAM [ARG...]
 *   PRELOAD          library to put in the child's LD_PRELOAD, or "-" for none (LD_PRELOAD is
 *                    removed from the child's environment either way before this is applied)
 *   TIMEOUT_SECONDS  the child is killed with SIGKILL after this many seconds (0: never)
 * The child inherits stdin, stdout and stderr. RESULT_FILE receives one line:
 *   exit=<code> signal=<number> timeout=<0|1> wall=<seconds> maxrss_kib=<KiB>
 * Exit status: 0 if the child could be run (whatever it did), 125 otherwise.
 */
#define _DEFAULT_SOURCE /* wait4 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

extern char **environ;

static volatile sig_atomic_t g_timed_out;
static volatile pid_t g_child;

static void on_alarm(int sig) {
  (void)sig;
  g_timed_out = 1;
  if (g_child > 0) kill(g_child, SIGKILL);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s RESULT_FILE PRELOAD|- TIMEOUT_SECONDS PROGRAM [ARG...]\n", argv[0]);
    return 125;
  }
  const char *result_path = argv[1];
  const char *preload = argv[2];
  unsigned timeout = (unsigned)strtoul(argv[3], NULL, 10);

  size_t n = 0;
  while (environ[n] != NULL) n++;
  char **env = calloc(n + 2, sizeof *env);
  char *preload_var = NULL;
  if (env == NULL) return 125;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0) env[k++] = environ[i];
  if (strcmp(preload, "-") != 0) {
    size_t len = strlen(preload) + sizeof "LD_PRELOAD=";
    preload_var = malloc(len);
    if (preload_var == NULL) return 125;
    snprintf(preload_var, len, "LD_PRELOAD=%s", preload);
    env[k++] = preload_var;
  }
  env[k] = NULL;

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART: wait4 returns EINTR */

  double t0 = now_sec();
  pid_t pid;
  int rc = posix_spawn(&pid, argv[4], NULL, NULL, &argv[4], env);
  if (rc != 0) {
    fprintf(stderr, "bench_launch: cannot run %s: %s\n", argv[4], strerror(rc));
    return 125;
  }
  g_child = pid;
  if (timeout > 0) alarm(timeout);
  int status = 0;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("bench_launch: wait4");
      return 125;
    }
  }
  double wall = now_sec() - t0;
  alarm(0);

  FILE *f = fopen(result_path, "w");
  if (f == NULL) {
    perror("bench_launch: result file");
    return 125;
  }
  fprintf(f, "exit=%d signal=%d timeout=%d wall=%.6f maxrss_kib=%ld\n",
          WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
          (int)g_timed_out, wall, ru.ru_maxrss);
  fclose(f);
  free(preload_var);
  free(env);
  return 0;
}
