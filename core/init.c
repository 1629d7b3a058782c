/*
 * init.c — starting and stopping: global initialization, the bootstrap area that serves
 * allocations made while the allocator itself is starting, thread registration (so a thread's
 * heap is handed over when it exits), fork handlers, and the one way ApexAlloc reports heap
 * corruption.
 *
 * Owns: g_init_state, the bootstrap arena, the thread-exit key, the atfork handlers, apex_fatal.
 * Must never: call malloc-family functions of the C library, or printf (both may allocate).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Atomic int g_init_state;
uintptr_t g_secret;
uintptr_t g_tag_secret;
static APEX_TLS bool tls_initializing;
static pthread_key_t g_thread_key;

/* ---- Bootstrap area -------------------------------------------------------------------------
 * Requests made while this thread is initializing the allocator (and so cannot use it yet) are
 * carved from a static area. Each carries a 16-byte header with its size, so realloc and
 * usable_size work; free of such a pointer is accepted and does nothing. */
#define BOOTSTRAP_SIZE (256 * 1024)
static _Alignas(4096) uint8_t g_bootstrap[BOOTSTRAP_SIZE];
static _Atomic size_t g_bootstrap_used;

bool bootstrap_owns(const void *p) {
  return (const uint8_t *)p >= g_bootstrap && (const uint8_t *)p < g_bootstrap + BOOTSTRAP_SIZE;
}

void *bootstrap_alloc(size_t size, size_t alignment) {
  if (alignment < 16) alignment = 16;
  if (size > BOOTSTRAP_SIZE || alignment > 4096) return NULL;
  size_t need = ((size + 15) & ~(size_t)15) + 16 + alignment;
  size_t at = atomic_fetch_add_explicit(&g_bootstrap_used, need, memory_order_relaxed);
  if (at + need > BOOTSTRAP_SIZE) return NULL;
  uintptr_t p = ((uintptr_t)(g_bootstrap + at + 16) + alignment - 1) & ~(uintptr_t)(alignment - 1);
  ((size_t *)p)[-1] = size;
  return (void *)p;
}

size_t bootstrap_usable_size(const void *p) { return ((const size_t *)p)[-1]; }

/* ---- Fatal errors ---------------------------------------------------------------------------- */
static char *put_str(char *out, const char *s) { while (*s) *out++ = *s++; return out; }

static char *put_dec(char *out, size_t v) {
  char digits[24];
  int n = 0;
  do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (n) *out++ = digits[--n];
  return out;
}

static char *put_hex(char *out, uintptr_t v) {
  out = put_str(out, "0x");
  int shift = 60;
  while (shift > 0 && ((v >> shift) & 0xf) == 0) shift -= 4;
  for (; shift >= 0; shift -= 4) *out++ = "0123456789abcdef"[(v >> shift) & 0xf];
  return out;
}

/* One line on stderr, then abort: `apexalloc: <what> at <address> (<size class>)`. */
void apex_fatal(const char *what, const void *where, size_t cls) {
  char line[256];
  char *out = put_str(line, "apexalloc: ");
  out = put_str(out, what);
  out = put_str(out, " at ");
  out = put_hex(out, (uintptr_t)where);
  out = put_str(out, " (");
  if (cls == (size_t)-1) {
    out = put_str(out, "no size class");
  } else if (cls == CLASS_LARGE) {
    out = put_str(out, "large object");
  } else if (cls < CLASS_COUNT) {
    out = put_str(out, "size class ");
    out = put_dec(out, cls);
    out = put_str(out, ", ");
    out = put_dec(out, g_class_size[cls]);
    out = put_str(out, " bytes");
  } else {
    out = put_str(out, "unknown size class");
  }
  out = put_str(out, ")\n");
  ssize_t ignored = write(STDERR_FILENO, line, (size_t)(out - line));
  (void)ignored;
  abort();
}

void apex_assert_fail(const char *cond, const char *file, int line) {
  char text[512];
  char *out = put_str(text, "apexalloc: internal check failed: ");
  out = put_str(out, cond);
  out = put_str(out, " (");
  out = put_str(out, file);
  out = put_str(out, ":");
  out = put_dec(out, (size_t)line);
  out = put_str(out, ")\n");
  ssize_t ignored = write(STDERR_FILENO, text, (size_t)(out - text));
  (void)ignored;
  abort();
}

/* ---- Threads --------------------------------------------------------------------------------- */
static void thread_exit(void *value) {
  heap_thread_done((heap_t *)value);
}

void thread_register(heap_t *heap) {
  pthread_setspecific(g_thread_key, heap);
}

/* ---- Fork -------------------------------------------------------------------------------------
 * Every lock is taken before fork and released (parent) or re-created (child) after, so the child
 * never inherits a lock held by a thread that does not exist there: the per-heap locks as well as
 * the global ones. The order is the one every other path respects (docs/ARCHITECTURE.md, "Locks"):
 * heaps lock, each heap's shared_lock, each heap's huge_lock, superblock cache, huge cache,
 * superblock walk. */
static void fork_prepare(void) {
  heaps_fork_prepare();
  superblock_cache_lock();
  huge_cache_lock();
  superblock_walk_lock();
}

static void fork_parent(void) {
  superblock_walk_unlock();
  huge_cache_unlock();
  superblock_cache_unlock();
  heaps_fork_parent();
}

static void fork_child(void) {
  superblock_walk_reset_lock();
  huge_cache_reset_lock();
  superblock_cache_reset_lock();
  heaps_after_fork_child();
  quarantine_after_fork_child();
  purger_after_fork_child();
}

/* ---- Global initialization ------------------------------------------------------------------- */
static void global_init(void) {
  options_init();
  decay_init();                         /* THP mode: open/read into a stack buffer */
  os_page_size();                       /* cached now, before any thread can race to fill it */
  os_random(&g_secret, sizeof g_secret);
  os_random(&g_tag_secret, sizeof g_tag_secret);
  g_tag_secret &= ~TAG_REMOTE;
  security_init();
  g_reg_blocks = g_hardened ? REG_BLOCKS_HARDENED : REG_BLOCKS;   /* before any superblock exists */
  sizeclass_init();
  pthread_key_create(&g_thread_key, thread_exit);
  pthread_atfork(fork_prepare, fork_parent, fork_child);
  atexit(report_at_exit);
}

/* Runs once. A second thread arriving meanwhile waits; the initializing thread itself, re-entering
 * through an allocation made by a library call inside global_init, returns at once and is served
 * from the bootstrap area. */
apex_cold void apex_init_slow(void) {
  int expected = 0;
  if (atomic_compare_exchange_strong(&g_init_state, &expected, 1)) {
    tls_initializing = true;
    global_init();
    atomic_store_explicit(&g_init_state, 2, memory_order_release);
    tls_initializing = false;
    return;
  }
  if (tls_initializing) return;
  while (atomic_load_explicit(&g_init_state, memory_order_acquire) != 2) sched_yield();
}

/* Initialize as the library loads, so the common case never sees the slow branch. */
__attribute__((constructor)) static void apex_library_init(void) { apex_ensure_init(); }
