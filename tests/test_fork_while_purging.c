/*
 * Pins: fork is safe while the purge thread works. Threads keep allocating and freeing bursts
 * (so superblocks and huge mappings keep entering the caches and the purge thread keeps giving
 * them back) while the main thread forks again and again. Each child: has no purge thread (it did
 * not survive the fork) until memory enters a cache, then has one again that purges while the
 * child sleeps; allocates and frees from a new thread; exits normally within its time limit.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "decayutil.h"

#define WORKERS 3
#define FORKS 12

static atomic_int stop;

static void *worker(void *arg) {
  tu_rng rng;
  tu_rng_seed(&rng, (uint64_t)(uintptr_t)arg);
  void *held[256];
  while (!atomic_load(&stop)) {
    size_t n = 0;
    for (; n < 256; n++) {
      size_t size = du_burst_size(&rng);
      held[n] = apex_malloc(size);
      CHECK(held[n] != NULL, "apex_malloc(%zu)", size);
      memset(held[n], 1, size < 4096 ? size : 4096);
    }
    for (size_t i = 0; i < n; i++) apex_free(held[i]);
  }
  return NULL;
}

static void *child_thread(void *arg) {
  (void)arg;
  void *objs[1000];
  for (int i = 0; i < 1000; i++) { objs[i] = apex_malloc((size_t)(i * 37 % 5000) + 1); CHECK(objs[i], "child thread alloc"); }
  for (int i = 0; i < 1000; i++) apex_free(objs[i]);
  return NULL;
}

static int child(void) {
  alarm(30);
  size_t decay = 50;                      /* short, to keep the test quick */
  CHECK(apex_ctl("opt.decay_ms", NULL, NULL, &decay, sizeof decay) == 0, "set opt.decay_ms");
  CHECK(du_ctl_bool("stats.purge_thread") == 0, "the child has a purge thread right after fork");
  size_t purged = du_ctl_size("stats.purged");
  static void *slots[20000];
  size_t n = du_burst(slots, 20000, 24 * TU_MIB, 99);
  du_free_all(slots, n, 99);
  /* glibc gives a thread made in the child the cached stack (so the pthread_t) of a parent thread
   * that does not exist here; ThreadSanitizer still lists that one and aborts ("dup thread with
   * used id"), so under TSan the thread gets a stack of its own (as in test_fork.c). */
  pthread_t t;
  pthread_attr_t attr;
  CHECK(pthread_attr_init(&attr) == 0, "pthread_attr_init");
  if (APEX_TEST_TSAN) {
    size_t stack_size = 4 * TU_MIB;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(stack != MAP_FAILED, "mmap of a thread stack");
    CHECK(pthread_attr_setstack(&attr, stack, stack_size) == 0, "pthread_attr_setstack");
  }
  CHECK(pthread_create(&t, &attr, child_thread, NULL) == 0, "pthread_create in the child");
  CHECK(pthread_join(t, NULL) == 0, "pthread_join in the child");
  pthread_attr_destroy(&attr);
  /* The child's purge thread starts and purges while the child sleeps: poll up to a deadline
   * (the alarm above is the hard limit). */
  uint64_t deadline = du_now_ms() + 15000;
  while (du_now_ms() < deadline && (du_ctl_bool("stats.purge_thread") != 1 || du_ctl_size("stats.purged") <= purged))
    du_sleep_ms(10);
  CHECK(du_ctl_bool("stats.purge_thread") == 1, "the child's purge thread did not start");
  CHECK(du_ctl_size("stats.purged") > purged, "nothing was purged in the child");
  return 0;
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  pthread_t workers[WORKERS];
  for (uintptr_t i = 0; i < WORKERS; i++)
    CHECK(pthread_create(&workers[i], NULL, worker, (void *)(i + 1)) == 0, "pthread_create");
  du_sleep_ms(100);
  for (int f = 0; f < FORKS; f++) {
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: errno %d", errno);
    if (pid == 0) _exit(child());
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: %s %d", f,
          WIFSIGNALED(status) ? "killed by signal" : "exit status",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < WORKERS; i++) pthread_join(workers[i], NULL);
  CHECK(du_ctl_bool("stats.purge_thread") == 1, "the parent's purge thread is not running");
  printf("fork_while_purging: %d forks OK\n", FORKS);
  return 0;
}
