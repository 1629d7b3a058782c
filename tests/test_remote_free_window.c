/*
 * Pins: a thread freeing into another thread's block never uses the block after the CAS that
 * published its chunk, unless that CAS made it responsible for notifying the owner
 * (core/remote.c). The window between the two is one instruction wide in practice; a debug-build
 * pause point (apex_debug_pause, APEX_PAUSE_AFTER_REMOTE_PUBLISH) holds the freer in it while the
 * owner collects and retires everything it can with apex_collect().
 *
 * Built against apexalloc_debug (the core with APEX_DEBUG=1: the pause point and the internal
 * checks). Each case runs in a child process, so that a crash names its case:
 *   large_beside_live_block  a large object freed remotely, its superblock kept alive by another
 *                            block: before the fix the owner retired the large block on collection
 *                            and again after the freer's late notify (internal check
 *                            "(sb->free_slices & mask) == 0", or later two objects overlapping);
 *   large_alone              the same with nothing else in the superblock, which apex_collect then
 *                            unmaps: before the fix the freer read the block's state there (SIGSEGV);
 *   small_alone              the last chunk of a small block: the same unmapping under the freer.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apexalloc.h"
#include "check.h"
#include "internal.h"      /* apex_debug_pause_hook, APEX_PAUSE_AFTER_REMOTE_PUBLISH (debug builds) */
#include "testutil.h"

static _Atomic int g_paused, g_release;
static _Thread_local int tls_pause_here;   /* only the freer under test stops */

static void pause_hook(int point) {
  if (point != APEX_PAUSE_AFTER_REMOTE_PUBLISH || !tls_pause_here) return;
  tls_pause_here = 0;
  atomic_store(&g_paused, 1);
  while (!atomic_load(&g_release)) sched_yield();
}

static void *freer(void *p) {
  tls_pause_here = 1;
  apex_free(p);
  CHECK(tls_pause_here == 0, "the free of %p never reached the pause point", p);
  return NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Frees p on another thread, held just after its publishing CAS while this (owning) thread
 * collects; then lets it finish and collects again. */
static void free_remotely_across_collect(void *p) {
  atomic_store(&g_paused, 0);
  atomic_store(&g_release, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, freer, p) == 0, "pthread_create");
  double deadline = now_s() + 30;
  while (!atomic_load(&g_paused)) {
    CHECK(now_s() < deadline, "the freer did not reach the pause point within 30 s");
    sched_yield();
  }
  apex_collect();                  /* collects the published chunk: the block is empty now */
  atomic_store(&g_release, 1);
  CHECK(pthread_join(t, NULL) == 0, "pthread_join");
  apex_collect();                  /* whatever the freer left to do is done by now */
}

/* Live objects must stay intact and apart: what a double retire breaks. */
static void check_fresh_objects(size_t size, size_t count) {
  void *objs[8];
  tu_range r[8];
  for (size_t i = 0; i < count; i++) {
    objs[i] = apex_malloc(size);
    CHECK(objs[i] != NULL, "apex_malloc(%zu)", size);
    tu_fill(objs[i], size, 1000 + i);
    r[i] = (tu_range){ (uintptr_t)objs[i], (uintptr_t)objs[i] + size, i };
  }
  for (size_t i = 0; i < count; i++)
    CHECK(tu_verify(objs[i], size, 1000 + i) == SIZE_MAX, "object %zu of %zu bytes was overwritten", i, size);
  TU_CHECK_DISJOINT(r, count, "after the remote free");
  for (size_t i = 0; i < count; i++) apex_free(objs[i]);
}

enum { LARGE_SIZE = 256 * 1024, SMALL_SIZE = 48 };

static void large_beside_live_block(void) {
  void *keep = apex_malloc(SMALL_SIZE);           /* a block that keeps the superblock in use */
  tu_fill(keep, SMALL_SIZE, 7);
  void *p = apex_malloc(LARGE_SIZE);
  CHECK(p != NULL && keep != NULL, "apex_malloc");
  CHECK(((uintptr_t)p >> 22) == ((uintptr_t)keep >> 22), "test setup: both objects in one superblock");
  tu_fill(p, LARGE_SIZE, 8);
  free_remotely_across_collect(p);
  check_fresh_objects(LARGE_SIZE, 8);
  CHECK(tu_verify(keep, SMALL_SIZE, 7) == SIZE_MAX, "the live small object was overwritten");
  apex_free(keep);
}

static void large_alone(void) {
  void *p = apex_malloc(LARGE_SIZE);
  CHECK(p != NULL, "apex_malloc");
  tu_fill(p, LARGE_SIZE, 9);
  free_remotely_across_collect(p);
  check_fresh_objects(LARGE_SIZE, 8);
}

static void small_alone(void) {
  void *p = apex_malloc(SMALL_SIZE);
  CHECK(p != NULL, "apex_malloc");
  free_remotely_across_collect(p);
  check_fresh_objects(SMALL_SIZE, 8);
}

static int run_case(const char *name, void (*fn)(void)) {
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0, "fork");
  if (pid == 0) {
    fn();
    _exit(0);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    printf("%s: ok\n", name);
    return 0;
  }
  if (WIFSIGNALED(status))
    fprintf(stderr, "%s: FAILED (signal %d: %s)\n", name, WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    fprintf(stderr, "%s: FAILED (exit status %d)\n", name, WEXITSTATUS(status));
  return 1;
}

int main(void) {
  apex_debug_pause_hook = pause_hook;
  int failed = 0;
  failed += run_case("large_beside_live_block", large_beside_live_block);
  failed += run_case("large_alone", large_alone);
  failed += run_case("small_alone", small_alone);
  return failed == 0 ? 0 : 1;
}
