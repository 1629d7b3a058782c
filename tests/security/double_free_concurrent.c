/*
 * Two threads free the same chunk at the same moment, both from threads that do not own it, so
 * both frees can pass the free-tag check before either has tagged the chunk, and push it onto
 * the block's remote list twice. The owner must catch that when it collects the list (the chunk's
 * second appearance already says "local") — and it must never hand the chunk out twice.
 *
 * Whether both frees get through is a race. Each attempt runs in a forked child: there the
 * chunk's page is copy-on-write, so the first write to it (the first free's tag) takes a page
 * fault, which holds the window open. The two threads start together by spinning on a shared
 * counter, then the owner allocates from the class until it has to collect. An attempt where the
 * second free itself saw the tag (also a correct "double free" abort) is checked and retried;
 * the first attempt where both frees returned is the one this program reports: it forwards that
 * child's output and dies the way the child died.
 *   expects: apexalloc: double free at <p> (size class 3, 48 bytes)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "sec.h"

#define ATTEMPTS 2000

static void *g_target;
static atomic_int g_ready;

static void *racer(void *arg) {
  (void)arg;
  atomic_fetch_add(&g_ready, 1);
  while (atomic_load_explicit(&g_ready, memory_order_acquire) < 2) {}
  apex_free(sec_launder(g_target));
  return NULL;
}

__attribute__((noreturn)) static void attempt(void) {
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    if (pthread_create(&t[i], NULL, racer, NULL) != 0) sec_setup_failed("pthread_create");
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  sec_say("both frees returned: the chunk is in the remote list twice; the owner collects\n");
  /* The owner collects a block's remote list when the block's local free list runs dry. */
  for (int i = 0; i < 100000; i++)
    if (apex_malloc(48) == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  sec_survived("a chunk freed by two threads at once");
}

static char *read_all(int fd, size_t *len) {
  static char bufs[2][8192];
  static int which;
  char *buf = bufs[which++ & 1];
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, sizeof bufs[0] - 1 - n);
    if (r > 0) { n += (size_t)r; continue; }
    if (r < 0 && errno == EINTR) continue;
    break;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

static void forward(int fd, const char *text, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, text, len);
    if (w <= 0) return;
    text += w;
    len -= (size_t)w;
  }
}

int main(void) {
  sec_keep(48, 8);
  g_target = apex_malloc(48);
  if (g_target == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  memset(g_target, 0x5a, 48);
  sec_expect_at(g_target);
  char caught_at_free[128];
  snprintf(caught_at_free, sizeof caught_at_free, "apexalloc: double free at 0x%" PRIxPTR " (", (uintptr_t)g_target);

  for (int n = 1; n <= ATTEMPTS; n++) {
    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0) sec_setup_failed("pipe");
    pid_t pid = fork();
    if (pid < 0) sec_setup_failed("fork");
    if (pid == 0) {
      dup2(out[1], STDOUT_FILENO);
      dup2(err[1], STDERR_FILENO);
      close(out[0]); close(out[1]); close(err[0]); close(err[1]);
      attempt();
    }
    close(out[1]);
    close(err[1]);
    size_t out_len, err_len;
    char *err_text = read_all(err[0], &err_len);
    char *out_text = read_all(out[0], &out_len);
    close(out[0]);
    close(err[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;

    if (strstr(out_text, "both frees returned") != NULL) {
      sec_say("attempt %d: ", n);
      forward(STDOUT_FILENO, out_text, out_len);
      forward(STDERR_FILENO, err_text, err_len);
      if (aborted) abort();                   /* die as the child died */
      _Exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
    }
    /* The second free saw the first one's tag: a correct abort, but not the path under test. */
    if (!aborted || strncmp(err_text, caught_at_free, strlen(caught_at_free)) != 0) {
      sec_say("attempt %d: the second free neither went through nor aborted as a double free\n", n);
      forward(STDOUT_FILENO, out_text, out_len);
      forward(STDERR_FILENO, err_text, err_len);
      _Exit(1);
    }
  }
  sec_setup_failed("in %d attempts the race never let both frees through", ATTEMPTS);
}
