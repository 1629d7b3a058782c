/*
 * Hardened mode (APEX_SECURE=2): apex_heap_destroy while another thread's quarantine still holds
 * chunks of the heap is safe. Thread U frees objects of heap H (they wait in U's quarantine, filled
 * with the freed pattern); H's owner destroys H; another heap takes the memory and writes its own
 * data there (or it is unmapped); U keeps freeing until its quarantine has let every old entry go.
 * Nothing may crash, no false "write after free" may be reported, and the new heap's objects must
 * keep their contents and stay allocated (an old entry must never free what lives there now).
 *
 *   test_heap_destroy_quarantined reused     the destroyed heap's superblocks go to the next heap
 *   test_heap_destroy_quarantined unmapped   opt.superblock_cache = 0: they are unmapped at once
 *   test_heap_destroy_quarantined concurrent U's quarantine is small and evicts all the time,
 *                                            while the owner destroys heaps whose chunks it holds
 * Before the fix (core/security.c, quarantine entries tagged with their heap) "reused" aborted
 * with a false "write after free" and "unmapped" died of SIGSEGV. "concurrent" races evictions
 * against destroy (the pin handshake of the fix); the old code usually survived it, as most of
 * the heap's entries had left the small quarantine before the destroy. Its rare false "double
 * free" (3 runs in 200; 9 in 100 with heap_t 2 KiB larger) was an eviction racing with the
 * owner's next apex_heap_new, which cleared the reused heap struct's destroy count for an
 * instant: test_heap_struct_reuse_quarantined forces that window.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "apexalloc.h"
#include "check.h"

enum { OBJECTS = 1500, OWN = 5000, ROUNDS = 12 };

static void *g_batch[OBJECTS];
static unsigned char *g_kept[ROUNDS][OBJECTS];   /* the new heaps' objects */
static _Atomic int g_phase;            /* main -> U: round r handed over = 2r+1; U -> main: freed = 2r+2 */
static _Atomic bool g_done;
static bool g_concurrent;

static size_t object_size(int i) { return 16 + (size_t)(i * 37) % 2000; }

static size_t get_size(const char *name) {
  size_t v = 0, len = sizeof v;
  CHECK(apex_ctl(name, &v, &len, NULL, 0) == 0, "read %s", name);
  return v;
}

static void set_size(const char *name, size_t v) {
  CHECK(apex_ctl(name, NULL, NULL, &v, sizeof v) == 0, "write %s = %zu", name, v);
}

/* U's own traffic: allocations and frees of its default heap, which push older entries (H's
 * among them) out of its quarantine. */
static void churn_own(int n) {
  static __thread void *own[64];
  for (int i = 0; i < n; i++) {
    int k = i % 64;
    if (own[k] != NULL) apex_free(own[k]);
    own[k] = apex_malloc(48 + (size_t)(i % 7) * 16);
    CHECK(own[k] != NULL, "U: apex_malloc");
  }
}

static void *freeing_thread(void *arg) {
  (void)arg;
  for (int round = 0; round < ROUNDS; round++) {
    while (atomic_load(&g_phase) != 2 * round + 1) {
      if (g_concurrent) churn_own(16); else sched_yield();
    }
    for (int i = 0; i < OBJECTS; i++) apex_free(g_batch[i]);     /* into U's quarantine */
    atomic_store(&g_phase, 2 * round + 2);
    if (g_concurrent) churn_own(OWN);      /* evicting while the owner destroys the heap */
  }
  while (!atomic_load(&g_done)) sched_yield();
  churn_own(OWN);                          /* every old entry leaves: by eviction, */
  apex_collect();                          /* and what is left by emptying the quarantine */
  return NULL;
}

int main(int argc, char **argv) {
  CHECK(argc == 2, "usage: %s reused|unmapped|concurrent", argv[0]);
  CHECK(get_size("opt.secure") == 2, "this test is for hardened mode: run it with APEX_SECURE=2");
  bool unmapped = strcmp(argv[1], "unmapped") == 0;
  g_concurrent = strcmp(argv[1], "concurrent") == 0;
  CHECK(unmapped || g_concurrent || strcmp(argv[1], "reused") == 0, "unknown mode %s", argv[1]);
  if (unmapped) set_size("opt.superblock_cache", 0);
  if (g_concurrent) set_size("opt.quarantine_bytes", 64 * 1024);

  pthread_t u;
  CHECK(pthread_create(&u, NULL, freeing_thread, NULL) == 0, "pthread_create");
  apex_heap_t *keep[ROUNDS];
  for (int round = 0; round < ROUNDS; round++) {
    apex_heap_t *h = apex_heap_new();
    CHECK(h != NULL, "apex_heap_new");
    for (int i = 0; i < OBJECTS; i++) {
      g_batch[i] = apex_heap_alloc(h, object_size(i), 0);
      CHECK(g_batch[i] != NULL, "apex_heap_alloc");
      memset(g_batch[i], 0x33, object_size(i));
    }
    atomic_store(&g_phase, 2 * round + 1);
    while (atomic_load(&g_phase) != 2 * round + 2) sched_yield();
    CHECK(apex_heap_destroy(h) == 0, "apex_heap_destroy");
    /* Another heap takes the memory and fills it with its own data. */
    keep[round] = apex_heap_new();
    CHECK(keep[round] != NULL, "apex_heap_new");
    for (int i = 0; i < OBJECTS; i++) {
      g_kept[round][i] = apex_heap_alloc(keep[round], object_size(i), 0);
      CHECK(g_kept[round][i] != NULL, "apex_heap_alloc");
      memset(g_kept[round][i], 0x5a, object_size(i));
    }
  }
  atomic_store(&g_done, true);
  CHECK(pthread_join(u, NULL) == 0, "pthread_join");

  /* The new heaps' objects are intact and still allocated: their contents, and (hardened usable
   * size) their size trailers and canaries. */
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < OBJECTS; i++) {
      unsigned char *p = g_kept[round][i];
      CHECK(apex_owns(p) == 1, "round %d object %d: no longer allocated", round, i);
      CHECK(apex_usable_size(p) == object_size(i), "round %d object %d: usable size %zu, asked %zu", round, i,
            apex_usable_size(p), object_size(i));
      for (size_t k = 0; k < object_size(i); k++)
        CHECK(p[k] == 0x5a, "round %d object %d: byte %zu is 0x%02x", round, i, k, p[k]);
    }
    CHECK(apex_heap_destroy(keep[round]) == 0, "destroy");
  }
  printf("ok: %d heaps destroyed while another thread's quarantine held their chunks (%s)\n", ROUNDS, argv[1]);
  return 0;
}
