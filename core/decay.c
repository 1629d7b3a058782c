/*
 * decay.c — giving memory back over time: the background purge thread, and the facts about the
 * machine that decide how memory is backed (transparent huge page mode, NUMA nodes).
 *
 * Empty superblocks and freed huge mappings wait in their caches (superblock.c, large.c) with the
 * time they entered. The purge thread wakes every decay/4 (at least 50 ms, at most 1 s) and gives
 * back what has waited for opt.decay_ms: the data slices of cached superblocks (madvise), cached
 * huge mappings (munmap). So memory comes back while the program sleeps, and the fast paths pay
 * nothing. The thread is started lazily, the first time something enters a cache, by a thread that
 * holds none of our locks; in a forked child it does not exist, and is started again the same way.
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

/* ---- The purge thread -------------------------------------------------------------------------- */
static _Atomic int g_purger_started;      /* 0: not running (never started, or forked child) */
static _Atomic int g_purger_pending;      /* a start was asked for while the caller held a lock */
static APEX_TLS int tls_kick_deferred;    /* > 0: this thread holds the heaps lock */

bool purger_running(void) { return atomic_load_explicit(&g_purger_started, memory_order_relaxed) != 0; }

static uint64_t interval_ns(size_t decay_ms) {
  size_t ms = decay_ms / 4;
  if (ms < 50) ms = 50;
  if (ms > 1000) ms = 1000;
  return (uint64_t)ms * 1000000u;
}

static void *purger_main(void *arg) {
  (void)arg;
  for (;;) {
    size_t decay_ms = atomic_load_explicit(&g_opt.decay_ms, memory_order_relaxed);
    uint64_t sleep_ns = interval_ns(decay_ms);
    struct timespec ts = { (time_t)(sleep_ns / 1000000000u), (long)(sleep_ns % 1000000000u) };
    while (nanosleep(&ts, &ts) != 0) {}
    decay_ms = atomic_load_explicit(&g_opt.decay_ms, memory_order_relaxed);
    uint64_t decay_ns = (uint64_t)decay_ms * 1000000u;
    uint64_t now = os_now_ns();
    heap_collect_abandoned_idle(now, decay_ns);
    superblock_cache_decay(now, decay_ns);
    huge_cache_decay(now, decay_ns);
  }
  return NULL;
}

/* Starts the purge thread unless it runs. pthread_create may call malloc (for the new thread's
 * TLS), which is why the caller must hold none of our locks; a caller holding the heaps lock marks
 * that with purger_defer and the start happens when it lets go. */
void purger_kick(void) {
  if (atomic_load_explicit(&g_purger_started, memory_order_relaxed)) return;
  if (tls_kick_deferred > 0) {
    atomic_store_explicit(&g_purger_pending, 1, memory_order_relaxed);
    return;
  }
  int expected = 0;
  if (!atomic_compare_exchange_strong(&g_purger_started, &expected, 1)) return;
  atomic_store_explicit(&g_purger_pending, 0, memory_order_relaxed);
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
  if (err != 0) atomic_store_explicit(&g_purger_started, 0, memory_order_relaxed);  /* try again later */
  else pthread_setname_np(thread, "apex-purge");
}

void purger_defer(bool on) {
  if (on) { tls_kick_deferred++; return; }
  if (--tls_kick_deferred == 0 && atomic_load_explicit(&g_purger_pending, memory_order_relaxed)) purger_kick();
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
