/*
 * decay.c — giving memory back over time: the background purge thread, and the facts about the
 * machine that decide how memory is backed (transparent huge page mode, NUMA nodes).
 *
 * Empty superblocks and freed huge mappings wait in their caches (superblock.c, huge.c) with the
 * time they entered. The purge thread wakes every decay/4 (at least 50 ms, at most 1 s) and gives
 * back what has waited for opt.decay_ms: the data slices of cached superblocks (madvise), cached
 * huge mappings (munmap). So memory comes back while the program sleeps, and the fast paths pay
 * nothing. The thread is started lazily, after something entered a cache, at a clean point (see
 * below); in a forked child it does not exist, and is started again the same way. It can be
 * turned off (opt.purge_thread): decay then happens inline, on allocator activity.
 *
 * Owns: the purge thread and its start flag, the THP mode, the NUMA node count and placement.
 * Must never: take a lock the fork handlers do not take (it may hold the heaps lock — only with a
 * trylock —, the superblock cache lock, the huge cache lock, the walk lock), so a fork never copies
 * a lock held by the purger; touch a superblock owned by a heap that has a thread (its owner may
 * reuse free slices at any moment: abandoned heaps are fair game under the heaps lock, as for any
 * thread that claims them); call malloc.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- The purge thread --------------------------------------------------------------------------
 * When it starts: memory entering a cache (a superblock released, a huge mapping kept, a heap
 * abandoned) only asks for it (purger_kick sets a pending flag). The thread is created at the next
 * clean point of a thread: when the outermost allocator operation it is in ends (the depth
 * counter purger_defer keeps reaches zero). There no lock of ours is held, no queue or list walk
 * is in progress and the operation is complete, so pthread_create's own calloc (which comes back
 * into this allocator in the preload build) finds every structure consistent. Not from the
 * library constructor: every program, and every forked child before its exec, would become
 * multi-threaded whether it ever gives memory back or not. errno is kept across the start.
 *
 * opt.purge_thread = 0 (APEX_PURGE_THREAD=0): no thread at all, for programs that must stay
 * single-threaded (unshare(CLONE_NEWUSER), seccomp sandboxes, forked children). Decay then runs
 * inline at those same clean points: at most once per interval (decay/4, 50 ms .. 1 s), the
 * thread's work (bounded by the cache sizes) is done by whoever is there. A running thread
 * notices the option turned off at its next wake-up and exits. */
static _Atomic int g_purger_started;      /* 0: not running (never started, off, or forked child) */
_Atomic int g_purger_pending;             /* a start was asked for; done at the next clean point */
APEX_TLS int tls_purger_depth;            /* > 0: inside an operation that must not be re-entered */
static _Atomic uint64_t g_inline_decay_ns;   /* last inline decay (opt.purge_thread = 0) */

bool purger_running(void) { return atomic_load_explicit(&g_purger_started, memory_order_relaxed) != 0; }

static bool purge_thread_allowed(void) { return __atomic_load_n(&g_opt.purge_thread, __ATOMIC_RELAXED) != 0; }

static uint64_t interval_ns(size_t decay_ms) {
  size_t ms = decay_ms / 4;
  if (ms < 50) ms = 50;
  if (ms > 1000) ms = 1000;
  return (uint64_t)ms * 1000000u;
}

/* One round of the purge thread's work: abandoned heaps' queued frees and idle free slices, then
 * the caches. Takes only locks the fork handlers take (the heaps lock with a trylock). */
static void decay_round(uint64_t now) {
  uint64_t decay_ns = (uint64_t)atomic_load_explicit(&g_opt.decay_ms, memory_order_relaxed) * 1000000u;
  heap_collect_abandoned_idle(now, decay_ns);
  superblock_cache_decay(now, decay_ns);
  huge_cache_decay(now, decay_ns);
}

static void *purger_main(void *arg) {
  (void)arg;
  for (;;) {
    uint64_t sleep_ns = interval_ns(atomic_load_explicit(&g_opt.decay_ms, memory_order_relaxed));
    struct timespec ts = { (time_t)(sleep_ns / 1000000000u), (long)(sleep_ns % 1000000000u) };
    while (nanosleep(&ts, &ts) != 0) {}
    if (!purge_thread_allowed()) {        /* turned off at run time: decay goes inline */
      atomic_store_explicit(&g_purger_started, 0, memory_order_relaxed);
      return NULL;
    }
    decay_round(os_now_ns());
  }
  return NULL;
}

static void purger_start(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&g_purger_started, &expected, 1)) return;
  atomic_store_explicit(&g_purger_pending, 0, memory_order_relaxed);
  int saved_errno = errno;               /* pthread_create's mmap, setname's open of /proc */
  /* The thread inherits a mask blocking every signal: a signal meant for the program is never
   * delivered to it. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_t thread;
  int err = pthread_attr_init(&attr);
  if (err == 0) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, (size_t)256 * 1024);
    err = pthread_create(&thread, &attr, purger_main, NULL);
    pthread_attr_destroy(&attr);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err != 0) atomic_store_explicit(&g_purger_started, 0, memory_order_relaxed);  /* next kick tries again */
  else pthread_setname_np(thread, "apex-purge");
  errno = saved_errno;
}

/* opt.purge_thread = 0: the thread's work, done here at most once per interval. */
static void decay_inline(void) {
  size_t decay_ms = atomic_load_explicit(&g_opt.decay_ms, memory_order_relaxed);
  uint64_t now = os_now_ns();
  uint64_t last = atomic_load_explicit(&g_inline_decay_ns, memory_order_relaxed);
  if (now - last < interval_ns(decay_ms)) return;
  if (!atomic_compare_exchange_strong(&g_inline_decay_ns, &last, now)) return;   /* another thread does it */
  int saved_errno = errno;
  decay_round(now);
  errno = saved_errno;
}

/* The outermost operation of this thread just ended (purger_defer, internal.h). */
void purger_clean_point(void) {
  if (!purge_thread_allowed()) decay_inline();
  else if (atomic_load_explicit(&g_purger_pending, memory_order_relaxed)) purger_start();
}

/* Memory entered a cache: the thread should run. Started here when this is already a clean
 * point (nothing of ours is in progress on this thread), else when the outermost bracket ends. */
void purger_kick(void) {
  if (atomic_load_explicit(&g_purger_started, memory_order_relaxed) || !purge_thread_allowed()) return;
  atomic_store_explicit(&g_purger_pending, 1, memory_order_relaxed);
  if (tls_purger_depth == 0) purger_start();
}

/* In a forked child only the forking thread exists: the purger is started again on demand. */
void purger_after_fork_child(void) {
  atomic_store_explicit(&g_purger_started, 0, memory_order_relaxed);
  atomic_store_explicit(&g_purger_pending, 0, memory_order_relaxed);
}

/* ---- Transparent huge pages -------------------------------------------------------------------- */
int g_thp_mode = THP_UNKNOWN;

/* The file reads like "always [madvise] never": the bracketed word is the mode. */
static void thp_detect(void) {
  char buf[128];
  if (os_read_file("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf) <= 0) return;
  if (strstr(buf, "[always]")) g_thp_mode = THP_ALWAYS;
  else if (strstr(buf, "[madvise]")) g_thp_mode = THP_MADVISE;
  else if (strstr(buf, "[never]")) g_thp_mode = THP_NEVER;
}

const char *thp_mode_name(void) {
  switch (g_thp_mode) {
    case THP_ALWAYS:  return "always";
    case THP_MADVISE: return "madvise";
    case THP_NEVER:   return "never";
    default:          return "unknown";
  }
}

/* AnonHugePages of the whole process, from /proc/self/smaps_rollup, in bytes (0 when unknown). */
size_t thp_process_bytes(void) {
  char buf[4096];
  if (os_read_file("/proc/self/smaps_rollup", buf, sizeof buf) <= 0) return 0;
  const char *p = strstr(buf, "AnonHugePages:");
  if (p == NULL) return 0;
  p += strlen("AnonHugePages:");
  while (*p == ' ' || *p == '\t') p++;
  size_t kib = 0;
  for (; *p >= '0' && *p <= '9'; p++) kib = kib * 10 + (size_t)(*p - '0');
  return kib * 1024;
}

/* ---- NUMA --------------------------------------------------------------------------------------
 * Nodes from /sys/devices/system/node/online (a list like "0" or "0-3,6"): the count is the highest
 * node id + 1. opt.numa_nodes (APEX_NUMA_NODES) overrides it, so the per-node paths can be tested
 * on a single-node machine: there the "node" of a thread is its CPU modulo the count, and pages are
 * bound only to nodes that really exist. No libnuma: getcpu and mbind are system calls. */
size_t g_numa_nodes = 1;
static size_t g_numa_real = 1;

static size_t numa_detect(void) {
  char buf[256];
  if (os_read_file("/sys/devices/system/node/online", buf, sizeof buf) <= 0) return 1;
  size_t highest = 0, v = 0;
  bool digits = false;
  for (const char *p = buf;; p++) {
    if (*p >= '0' && *p <= '9') { v = v * 10 + (size_t)(*p - '0'); digits = true; continue; }
    if (digits && v > highest) highest = v;
    v = 0;
    digits = false;
    if (*p == '\0') break;
  }
  return highest + 1 > NUMA_MAX_NODES ? NUMA_MAX_NODES : highest + 1;
}

size_t numa_current_node(void) {
  if (g_numa_nodes <= 1) return 0;
  unsigned cpu = 0, node = 0;
  if (syscall(SYS_getcpu, &cpu, &node, NULL) != 0) return 0;
  if (g_numa_real > 1) return node % g_numa_nodes;
  return cpu % g_numa_nodes;
}

#define APEX_MPOL_PREFERRED 1

void numa_bind(void *p, size_t size, size_t node) {
  if (g_numa_nodes <= 1 || node >= g_numa_real) return;
  unsigned long mask[NUMA_MAX_NODES / (8 * sizeof(unsigned long))] = { 0 };
  mask[node / (8 * sizeof(unsigned long))] = 1UL << (node % (8 * sizeof(unsigned long)));
  int saved = errno;
  syscall(SYS_mbind, p, size, APEX_MPOL_PREFERRED, mask, (unsigned long)NUMA_MAX_NODES + 1, 0u);
  errno = saved;
}

void decay_init(void) {
  thp_detect();
  g_numa_real = numa_detect();
  g_numa_nodes = g_opt.numa_nodes ? (g_opt.numa_nodes > NUMA_MAX_NODES ? NUMA_MAX_NODES : g_opt.numa_nodes)
                                  : g_numa_real;
}
