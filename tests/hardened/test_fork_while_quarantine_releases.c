/*
 * Hardened mode (APEX_SECURE=2): fork while another thread is letting chunks of a heap out of its
 * quarantine. That thread holds a pin on the heap while it checks and frees a chunk
 * (core/security.c); in the child the thread is gone, and its pin must be too, or the child's
 * apex_heap_destroy of that heap would wait for it forever. Each child destroys the heap and exits
 * within the runner's deadline; a child that hangs is killed and the test fails.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apexalloc.h"
#include "check.h"

enum { BATCH = 256, SIZE = 8000, FORKS = 200 };

static apex_heap_t *g_heap;
static void *_Atomic g_handoff[BATCH];
static _Atomic bool g_stop;

/* Frees chunks of g_heap that the main thread hands over: with a small quarantine, each free lets
 * an older one out (checking its 8 KB pattern under a pin on g_heap). */
static void *freeing_thread(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
    for (int i = 0; i < BATCH; i++) {
      void *p = atomic_exchange(&g_handoff[i], NULL);
      if (p != NULL) apex_free(p);
    }
  }
  return NULL;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void) {
  size_t level = 0, len = sizeof level;
  CHECK(apex_ctl("opt.secure", &level, &len, NULL, 0) == 0 && level == 2,
        "this test is for hardened mode: run it with APEX_SECURE=2");
  size_t budget = 64 * 1024;
  CHECK(apex_ctl("opt.quarantine_bytes", NULL, NULL, &budget, sizeof budget) == 0, "opt.quarantine_bytes");
  g_heap = apex_heap_new();
  CHECK(g_heap != NULL, "apex_heap_new");
  pthread_t t;
  CHECK(pthread_create(&t, NULL, freeing_thread, NULL) == 0, "pthread_create");
  int hung = 0;
  for (int f = 0; f < FORKS; f++) {
    for (int i = 0; i < BATCH; i++) {
      if (atomic_load(&g_handoff[i]) != NULL) continue;
      void *p = apex_heap_alloc(g_heap, SIZE, 0);
      CHECK(p != NULL, "apex_heap_alloc");
      atomic_store(&g_handoff[i], p);
    }
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
      alarm(10);                                   /* a hung child dies of SIGALRM */
      _exit(apex_heap_destroy(g_heap) == 0 ? 0 : 3);
    }
    int status = 0;
    double deadline = now() + 10;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (now() > deadline) { kill(pid, SIGKILL); waitpid(pid, &status, 0); break; }
      usleep(1000);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) hung++;
    CHECK(hung == 0, "fork %d: the child did not destroy the heap and exit (status 0x%x)", f, status);
  }
  atomic_store(&g_stop, true);
  CHECK(pthread_join(t, NULL) == 0, "pthread_join");
  for (int i = 0; i < BATCH; i++) {
    void *p = atomic_exchange(&g_handoff[i], NULL);
    if (p != NULL) apex_free(p);
  }
  CHECK(apex_heap_destroy(g_heap) == 0, "apex_heap_destroy");
  return 0;
}
