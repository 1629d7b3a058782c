/*
 * Pins: with APEX_PURGE_THREAD=0 (set by CTest, with a short APEX_DECAY_MS) the process stays
 * single-threaded, and cached memory still goes back to the OS after the decay time, on allocator
 * activity:
 *   - opt.purge_thread reads 0, stats.purge_thread 0, and /proc/self/status says "Threads: 1"
 *     after a burst of about 64 MiB of mixed sizes is freed (which fills the caches);
 *   - while the program keeps allocating and freeing a little (one large object at a time), the
 *     resident set comes back near where it started and stats.purged grows, within a deadline;
 *   - turning the option on at run time starts the thread at the next cache entry; turning it off
 *     again makes the thread exit (both polled to a deadline).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>

#include <pthread.h>

#include "decayutil.h"

#define MAX_OBJECTS 200000

static void *slots[MAX_OBJECTS];

/* "Threads:" of /proc/self/status, read without allocating. */
static int thread_count(void) {
  static char buf[8192];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0, "open /proc/self/status");
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  CHECK(n > 0, "read /proc/self/status");
  buf[n] = '\0';
  const char *t = strstr(buf, "\nThreads:");
  CHECK(t != NULL, "no Threads: line in /proc/self/status");
  return atoi(t + strlen("\nThreads:"));
}

/* Is a thread named "apex-purge" (the purge thread) among this process's threads? By name, as
 * ThreadSanitizer's runtime starts a thread of its own once the program has made one. */
static int purge_thread_present(void) {
  DIR *dir = opendir("/proc/self/task");
  CHECK(dir != NULL, "opendir /proc/self/task");
  int found = 0;
  for (struct dirent *e; !found && (e = readdir(dir)) != NULL;) {
    if (e->d_name[0] == '.') continue;
    char path[300], name[32];
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;                              /* the thread just exited */
    ssize_t n = read(fd, name, sizeof name - 1);
    close(fd);
    if (n > 0) { name[n] = '\0'; found = strncmp(name, "apex-purge", 10) == 0; }
  }
  closedir(dir);
  return found;
}

static void some_activity(void) {
  void *p = apex_malloc(200 * TU_KIB);                 /* a large object: slow paths both ways */
  CHECK(p != NULL, "apex_malloc");
  apex_free(p);
}

static void *allocate_and_exit(void *arg) {
  (void)arg;
  apex_free(apex_malloc(100));
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  CHECK(du_ctl_bool("opt.purge_thread") == 0, "opt.purge_thread is not 0: run with APEX_PURGE_THREAD=0");
  size_t decay = du_ctl_size("opt.decay_ms");
  double scale = tu_scale();
  size_t total = (size_t)(64.0 * scale * (double)TU_MIB);
  if (total < 16 * TU_MIB) total = 16 * TU_MIB;
  apex_free(apex_malloc(64));
  size_t base = du_footprint();
  size_t purged0 = du_ctl_size("stats.purged");

  size_t n = du_burst(slots, MAX_OBJECTS, total, 7);
  size_t peak = du_footprint();
  du_free_all(slots, n, 7);
  CHECK(thread_count() == 1, "the process has %d threads after the frees (purge thread off)", thread_count());
  CHECK(du_ctl_bool("stats.purge_thread") == 0, "stats.purge_thread says a thread runs");

  size_t height = peak > base ? peak - base : 1;
  /* A live thread's heap keeps up to opt.heap_dirty_max of free slices resident by design (only
   * its owner may purge them): with a small burst (a reduced APEX_TEST_SCALE) that, not the
   * percentage, is the bound. */
  size_t allowed = height / 10;
  if (allowed < du_ctl_size("opt.heap_dirty_max") + 2 * TU_MIB) allowed = du_ctl_size("opt.heap_dirty_max") + 2 * TU_MIB;
  uint64_t deadline = du_now_ms() + 20 * decay + 5000;
  size_t rss = du_footprint(), purged = 0;
  while (du_now_ms() < deadline) {
    some_activity();
    rss = du_footprint();
    purged = du_ctl_size("stats.purged") - purged0;
    if (rss <= base + allowed && purged > 0) break;
    du_sleep_ms(10);
  }
  printf("purge_thread_off: decay %zu ms; RSS base %zu MiB, peak %zu MiB, now %zu MiB; purged %zu MiB; threads %d\n",
         decay, base >> 20, peak >> 20, rss >> 20, purged >> 20, thread_count());
  CHECK(purged > 0, "nothing was purged with the purge thread off");
  CHECK(rss <= base + allowed, "RSS stayed %zu KiB above the start (burst height %zu KiB)", (rss - base) >> 10,
        height >> 10);
  CHECK(thread_count() == 1, "the process became multi-threaded (%d threads) with the purge thread off", thread_count());

  /* On at run time: the next cache entry starts it. */
  int on = 1, off = 0;
  CHECK(apex_ctl("opt.purge_thread", NULL, NULL, &on, sizeof on) == 0, "set opt.purge_thread = 1");
  apex_free(apex_malloc(5 * TU_MIB));                  /* a huge object enters the huge cache */
  /* Hardened mode has no huge cache: a thread's exit (its heap abandoned) asks for the thread too. */
  pthread_t t;
  CHECK(pthread_create(&t, NULL, allocate_and_exit, NULL) == 0, "pthread_create");
  CHECK(pthread_join(t, NULL) == 0, "pthread_join");
  deadline = du_now_ms() + 10000;
  while (du_now_ms() < deadline && (du_ctl_bool("stats.purge_thread") != 1 || !purge_thread_present())) du_sleep_ms(10);
  CHECK(du_ctl_bool("stats.purge_thread") == 1 && purge_thread_present(), "turned on, the purge thread did not start");
  /* Off again: the thread exits at its next wake-up. */
  CHECK(apex_ctl("opt.purge_thread", NULL, NULL, &off, sizeof off) == 0, "set opt.purge_thread = 0");
  deadline = du_now_ms() + 10000;
  while (du_now_ms() < deadline && (du_ctl_bool("stats.purge_thread") != 0 || purge_thread_present())) du_sleep_ms(10);
  CHECK(du_ctl_bool("stats.purge_thread") == 0 && !purge_thread_present(), "turned off, the purge thread did not exit");
  printf("purge_thread_off: OK\n");
  return 0;
}
