/*
 * Pins: the allocator survives fork() while other threads are inside it.
 *
 * Three threads allocate, fill, verify and free in a loop (through a shared array of slots, so they
 * also free each other's objects). Meanwhile the main thread forks several times. Each child:
 *   - allocates and frees a lot at once (small sizes, and large ones that need new memory from the OS),
 *     checking contents;
 *   - verifies and frees objects that the parent's threads had allocated before the fork (their owners
 *     do not exist in the child);
 *   - starts a thread that allocates and frees, and joins it;
 *   - exits with status 0 (through exit(), so that atexit handlers and destructors run too).
 * The parent waits for each child with a timeout (a lock held across fork would hang the child) and
 * requires exit status 0.
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

enum { NSLOTS = 512, BG_THREADS = 3 };

static _Atomic(uintptr_t) slots[NSLOTS];
static atomic_int stop;

/* Object: word 0 = size ^ key(address), then the pattern of (address, size). */
static uint64_t key(uintptr_t a) { return tu_mix64(a ^ 0x5151515151515151ull); }

static void *obj_new(size_t n, int use_std) {
  void *p = use_std ? malloc(n) : apex_malloc(n);
  CHECK(p != NULL, "allocation of %zu bytes failed (pid %d)", n, (int)getpid());
  uint64_t h = (uint64_t)n ^ key((uintptr_t)p);
  memcpy(p, &h, 8);
  tu_fill((char *)p + 8, n - 8, key((uintptr_t)p + n));
  return p;
}

static void obj_del(void *p, const char *who) {
  uint64_t h;
  memcpy(&h, p, 8);
  size_t n = (size_t)(h ^ key((uintptr_t)p));
  CHECK(n >= 8 && n <= 8 * TU_MIB, "%s (pid %d): object %p has a corrupted header", who, (int)getpid(), p);
  size_t bad = tu_verify((char *)p + 8, n - 8, key((uintptr_t)p + n));
  CHECK(bad == SIZE_MAX, "%s (pid %d): object %p of %zu bytes changed at byte %zu", who, (int)getpid(), p, n, bad + 8);
  apex_free(p);
}

static int std_ok(void) { return !APEX_TEST_FOREIGN_MALLOC; }

static void *background(void *arg) {
  tu_rng rng;
  tu_rng_seed(&rng, (uint64_t)(uintptr_t)arg);
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int k = 0; k < 64; k++) {
      uint64_t r = tu_rng_next(&rng);
      size_t n = r % 1000 == 0 ? tu_rng_range(&rng, 128 * TU_KIB, 2 * TU_MIB) : tu_rng_range(&rng, 8, 3000);
      void *p = obj_new(n, std_ok() && (r & 1));
      uintptr_t old = atomic_exchange_explicit(&slots[(r >> 8) % NSLOTS], (uintptr_t)p, memory_order_acq_rel);
      if (old) obj_del((void *)old, "background thread");
    }
  }
  return NULL;
}

static void *child_thread(void *arg) {
  (void)arg;
  void *keep[256];
  for (int round = 0; round < 20; round++) {
    for (size_t i = 0; i < 256; i++) keep[i] = obj_new(8 + (i * 41 + (size_t)round) % 5000, std_ok() && (i & 1));
    for (size_t i = 0; i < 256; i++) obj_del(keep[i], "child's thread");
  }
  return NULL;
}

static void child(unsigned fork_no) {
  /* Right away: the allocator must be usable in the child. */
  void *first = obj_new(100, std_ok());
  obj_del(first, "child (first allocation)");

  /* Objects of the parent's threads, which do not exist here. Take half of the slots. */
  for (size_t i = fork_no % 2; i < NSLOTS; i += 2) {
    uintptr_t p = atomic_exchange(&slots[i], 0);
    if (p) obj_del((void *)p, "child, freeing a parent thread's object");
  }

  /* A lot of allocation, including sizes that need new memory. */
  enum { N = 4000 };
  static void *objs[N];
  tu_rng rng;
  tu_rng_seed(&rng, 1000 + fork_no);
  for (size_t i = 0; i < N; i++) {
    size_t n = i % 500 == 0 ? tu_rng_range(&rng, TU_MIB, 6 * TU_MIB) : tu_rng_range(&rng, 8, 20000);
    objs[i] = obj_new(n, std_ok() && (i & 1));
  }
  void *huge = obj_new(8 * TU_MIB, 0);
  for (size_t i = 0; i < N; i += 2) obj_del(objs[i], "child");
  for (size_t i = 0; i < N; i += 2) objs[i] = obj_new(tu_rng_range(&rng, 8, 5000), 0);
  for (size_t i = 0; i < N; i++) obj_del(objs[i], "child");
  obj_del(huge, "child");
  void *c = std_ok() ? calloc(1000, 1000) : apex_calloc(1000, 1000);
  CHECK(c && tu_first_nonzero(c, 1000000) == SIZE_MAX, "calloc in the child is not zeroed");
  apex_free(c);

  /* A thread in the child. glibc gives it the cached stack (and so the pthread_t) of one of the parent's
   * threads that do not exist here; ThreadSanitizer's registry still lists those and aborts with "dup
   * thread with used id", so under TSan the thread gets a stack of its own instead. */
  pthread_t t;
  pthread_attr_t attr;
  CHECK(pthread_attr_init(&attr) == 0, "pthread_attr_init failed");
  if (APEX_TEST_TSAN) {
    size_t stack_size = 4 * TU_MIB;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(stack != MAP_FAILED, "mmap of a thread stack failed");
    CHECK(pthread_attr_setstack(&attr, stack, stack_size) == 0, "pthread_attr_setstack failed");
  }
  CHECK(pthread_create(&t, &attr, child_thread, NULL) == 0, "pthread_create in the child failed");
  CHECK(pthread_join(t, NULL) == 0, "pthread_join in the child failed");
  pthread_attr_destroy(&attr);

  /* The rest of the parent's objects. */
  for (size_t i = 0; i < NSLOTS; i++) {
    uintptr_t p = atomic_exchange(&slots[i], 0);
    if (p) obj_del((void *)p, "child, freeing a parent thread's object");
  }
  exit(0);
}

static void wait_child(pid_t pid, unsigned fork_no) {
  const long timeout_ms = 60000;
  for (long waited = 0;; waited += 10) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    CHECK(r >= 0, "waitpid failed: errno %d", errno);
    if (r == pid) {
      CHECK(!WIFSIGNALED(status), "child %u (pid %d) was killed by signal %d", fork_no, (int)pid, WTERMSIG(status));
      CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %u (pid %d) exited with status %d", fork_no,
            (int)pid, WEXITSTATUS(status));
      return;
    }
    if (waited >= timeout_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      CHECK(0, "child %u (pid %d) did not finish within %ld s: deadlock in the allocator after fork?", fork_no,
            (int)pid, timeout_ms / 1000);
    }
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

int main(void) {
  unsigned forks = (unsigned)tu_scaled(8, 3);
  pthread_t bg[BG_THREADS];
  for (uintptr_t i = 0; i < BG_THREADS; i++)
    CHECK(pthread_create(&bg[i], NULL, background, (void *)(i + 1)) == 0, "pthread_create failed");
  for (unsigned f = 0; f < forks; f++) {
    struct timespec ts = {0, (long)(3 + f % 5) * 1000 * 1000};
    nanosleep(&ts, NULL); /* let the threads get busy */
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork failed: errno %d", errno);
    if (pid == 0) child(f);
    wait_child(pid, f);
    /* The parent keeps allocating too. */
    void *p = obj_new(1000 + f, std_ok());
    obj_del(p, "parent");
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < BG_THREADS; i++) CHECK(pthread_join(bg[i], NULL) == 0, "pthread_join failed");
  for (size_t i = 0; i < NSLOTS; i++) {
    uintptr_t p = atomic_exchange(&slots[i], 0);
    if (p) obj_del((void *)p, "parent at the end");
  }
  printf("fork: %u forks with %d busy threads: OK\n", forks, BG_THREADS);
  return 0;
}
