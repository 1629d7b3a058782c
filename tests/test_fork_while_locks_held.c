/*
 * Pins: fork() never leaves an allocator lock held in the child — the per-heap locks (huge_lock,
 * shared_lock) as well as the global ones.
 *
 * While the main thread forks again and again, other threads keep each per-heap lock busy:
 *   - two threads allocate huge objects and free each other's and the main thread's (a huge free
 *     unlinks the object from its heap's list under that heap's huge_lock, whoever frees it);
 *   - a thread allocates from a heap with a limit (the limit check takes huge_lock);
 *   - a thread that does not own an explicit heap allocates from it (shared_lock, for the whole
 *     allocation);
 *   - a thread reads statistics (the heaps lock, and every heap's huge_lock in turn).
 * Each child makes a huge allocation, reads statistics, allocates from the limited heap and from
 * the explicit heap (and visits it), and exits. The parent waits for each child with a time limit;
 * a child that hangs is killed and the test fails naming what it was doing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apexalloc.h"
#include "testutil.h"

#define HUGE_SIZE (5 * TU_MIB)
enum { SLOTS = 8 };

static _Atomic(uintptr_t) huge_slots[SLOTS];
static atomic_int stop;
static apex_heap_t *limited;            /* owned by the limit thread */
static apex_heap_t *explicit_heap;      /* owned by the main thread */
static atomic_int limited_ready;

/* Where the child is, for the parent's message (shared memory, written before each step). */
static volatile int *child_step;
static const char *const step_names[] = {
  "start", "huge allocation", "statistics", "allocation from the limited heap",
  "allocation from the explicit heap", "visit of the explicit heap", "exit"
};

static void put_huge(void *p, uint64_t r) {
  uintptr_t old = atomic_exchange(&huge_slots[r % SLOTS], (uintptr_t)p);
  if (old) apex_free((void *)old);
}

static void *huge_swapper(void *arg) {
  tu_rng rng;
  tu_rng_seed(&rng, (uint64_t)(uintptr_t)arg);
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    void *p = apex_malloc(HUGE_SIZE);
    CHECK(p != NULL, "huge allocation failed");
    ((char *)p)[0] = 1;
    put_huge(p, tu_rng_next(&rng));
  }
  return NULL;
}

static void *limit_user(void *arg) {
  (void)arg;
  apex_heap_options_t o = { .size = sizeof o, .limit = 64 * TU_MIB };
  limited = apex_heap_new_ex(&o);
  CHECK(limited != NULL, "apex_heap_new_ex failed");
  atomic_store(&limited_ready, 1);
  void *keep[64] = { 0 };
  for (unsigned i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
    apex_free(keep[i % 64]);
    keep[i % 64] = apex_heap_alloc(limited, 16 + i % 2000, 0);
    CHECK(keep[i % 64] != NULL, "allocation from the limited heap failed");
  }
  for (int i = 0; i < 64; i++) apex_free(keep[i]);
  return NULL;
}

static void *shared_user(void *arg) {
  (void)arg;
  void *keep[64] = { 0 };
  for (unsigned i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
    apex_free(keep[i % 64]);
    keep[i % 64] = apex_heap_alloc(explicit_heap, 16 + i % 3000, 0);    /* not the owner */
    CHECK(keep[i % 64] != NULL, "non-owner allocation from the explicit heap failed");
  }
  for (int i = 0; i < 64; i++) apex_free(keep[i]);
  return NULL;
}

static void *stats_reader(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    apex_stats_t s;
    CHECK(apex_stats_get(&s, sizeof s) == 0, "apex_stats_get failed");
  }
  return NULL;
}

static int count_object(void *p, size_t usable, void *arg) {
  (void)p; (void)usable;
  ++*(size_t *)arg;
  return 0;
}

static void child(void) {
  *child_step = 1;
  void *h = apex_malloc(HUGE_SIZE);
  if (h == NULL) _exit(2);
  memset(h, 7, 4096);
  apex_free(h);
  *child_step = 2;
  apex_stats_t s;
  if (apex_stats_get(&s, sizeof s) != 0) _exit(3);
  *child_step = 3;
  void *p = apex_heap_alloc(limited, 100, 0);
  if (p == NULL) _exit(4);
  apex_free(p);
  *child_step = 4;
  p = apex_heap_alloc(explicit_heap, 100, 0);
  if (p == NULL) _exit(5);
  apex_free(p);
  *child_step = 5;
  size_t n = 0;
  if (apex_heap_visit(explicit_heap, count_object, &n) != 0) _exit(6);
  *child_step = 6;
  exit(0);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void wait_child(pid_t pid, unsigned fork_no) {
  double deadline = now_s() + 20.0;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    CHECK(r >= 0, "waitpid failed: errno %d", errno);
    if (r == pid) {
      CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %u (pid %d) %s %d at step \"%s\"", fork_no, (int)pid,
            WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), step_names[*child_step]);
      return;
    }
    if (now_s() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      CHECK(0, "child %u (pid %d) hung in \"%s\" for 20 s: a lock was held across fork", fork_no, (int)pid,
            step_names[*child_step]);
    }
    struct timespec ts = { 0, 200 * 1000 };
    nanosleep(&ts, NULL);
  }
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  child_step = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(child_step != MAP_FAILED, "mmap of the shared step word failed");
  explicit_heap = apex_heap_new();
  CHECK(explicit_heap != NULL, "apex_heap_new failed");
  pthread_t t[5];
  CHECK(pthread_create(&t[0], NULL, huge_swapper, (void *)1) == 0, "pthread_create");
  CHECK(pthread_create(&t[1], NULL, huge_swapper, (void *)2) == 0, "pthread_create");
  CHECK(pthread_create(&t[2], NULL, limit_user, NULL) == 0, "pthread_create");
  CHECK(pthread_create(&t[3], NULL, shared_user, NULL) == 0, "pthread_create");
  CHECK(pthread_create(&t[4], NULL, stats_reader, NULL) == 0, "pthread_create");
  while (!atomic_load(&limited_ready)) sched_yield();

  double budget = 3.0 * tu_scale();
  if (budget < 1.0) budget = 1.0;
  double end = now_s() + budget;
  unsigned forks = 0;
  tu_rng rng;
  tu_rng_seed(&rng, 99);
  while (forks < 2000 && now_s() < end) {
    /* The main thread's own huge objects, for the other threads to free. */
    void *mine = apex_malloc(HUGE_SIZE);
    CHECK(mine != NULL, "huge allocation failed");
    put_huge(mine, tu_rng_next(&rng));
    *child_step = 0;
    pid_t pid = fork();
    CHECK(pid >= 0, "fork failed: errno %d", errno);
    if (pid == 0) child();
    wait_child(pid, forks);
    forks++;
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 5; i++) CHECK(pthread_join(t[i], NULL) == 0, "pthread_join");
  for (int i = 0; i < SLOTS; i++) apex_free((void *)atomic_exchange(&huge_slots[i], 0));
  printf("fork_while_locks_held: %u forks in %.1f s while other threads held the per-heap locks: OK\n", forks, budget);
  return 0;
}
