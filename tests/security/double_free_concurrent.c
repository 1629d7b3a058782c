/*
 * Two threads free the same chunk at the same moment, both from threads that do not own it, so
 * both frees pass the free-tag check before either has tagged the chunk, and push it onto the
 * block's remote list twice. The owner must catch that when it collects the list (the chunk's
 * second appearance already says "local") — and it must never hand the chunk out twice.
 *
 * The race is forced, not hoped for. The page(s) holding the chunk are made read-only before the
 * two threads are let go: a free reads the tag (allowed), finds it clear, and then faults on its
 * first write to the chunk. The SIGSEGV handler holds each faulting thread until both have
 * faulted — that is, until both frees have passed their check — then makes the pages writable
 * again and returns, so both writes proceed. The owner then allocates from the class until it
 * collects the block's remote list.
 *   expects: apexalloc: double free at <p> (size class 3, 48 bytes)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "sec.h"

static void *g_target;
static uintptr_t g_lo, g_hi;            /* the read-only range around the chunk */
static atomic_int g_go, g_in_window;

static void on_fault(int sig, siginfo_t *info, void *context) {
  (void)context;
  uintptr_t at = (uintptr_t)info->si_addr;
  if (at < g_lo || at >= g_hi) {        /* a real crash: die of it */
    signal(sig, SIG_DFL);
    return;
  }
  atomic_fetch_add(&g_in_window, 1);
  while (atomic_load(&g_in_window) < 2) {}        /* both frees are past their check */
  mprotect((void *)g_lo, g_hi - g_lo, PROT_READ | PROT_WRITE);
}

static void *racer(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&g_go, memory_order_acquire)) {}
  apex_free(sec_launder(g_target));
  return NULL;
}

int main(void) {
  sec_keep(48, 8);
  g_target = apex_malloc(48);
  if (g_target == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  memset(g_target, 0x5a, 48);
  long page = sysconf(_SC_PAGESIZE);
  g_lo = (uintptr_t)g_target & ~(uintptr_t)(page - 1);
  g_hi = ((uintptr_t)g_target + 48 + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, NULL) != 0) sec_setup_failed("sigaction");

  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    if (pthread_create(&t[i], NULL, racer, NULL) != 0) sec_setup_failed("pthread_create");
  if (mprotect((void *)g_lo, g_hi - g_lo, PROT_READ) != 0) sec_setup_failed("mprotect: errno %d", errno);
  sec_expect_at(g_target);
  atomic_store_explicit(&g_go, 1, memory_order_release);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  if (atomic_load(&g_in_window) != 2)
    sec_setup_failed("%d free(s) reached the chunk's first write, expected 2", atomic_load(&g_in_window));
  sec_say("both frees returned: the chunk is in the remote list twice; the owner collects\n");
  /* The owner collects a block's remote list when the block's local free list runs dry. */
  for (int i = 0; i < 100000; i++)
    if (apex_malloc(48) == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  sec_survived("a chunk freed by two threads at once");
}
