/*
 * Hardened mode (APEX_SECURE=2): a destroyed heap's struct, reused for a new heap, never lets an
 * old quarantine entry of the destroyed heap go back to the allocator. Thread U frees objects of
 * heap H (they wait in U's quarantine, recorded with H's destroy count, 0 for a new struct); H's
 * owner destroys H (count 1: the entries are dropped from then on; the memory went to the
 * superblock cache); then apex_heap_new reuses H's struct. A debug pause point
 * (APEX_PAUSE_HEAP_STRUCT_CLEARED, core/heap.c) holds the new heap's owner right after the struct
 * was cleared for reuse, and U evicts its whole quarantine meanwhile.
 *
 * Before the fix heap_new_locked cleared the whole struct, destroy count included, and wrote the
 * count back afterwards: in between an eviction read 0, took the old entries for live ones and
 * freed chunks of memory H no longer had ("double free" abort). That is the 1-in-40 failure of
 * hardened_heap_destroy_quarantined_concurrent, whose owner makes a heap right after each destroy.
 *
 * Built against apexalloc_debug (the core with APEX_DEBUG=1: the pause points).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "apexalloc.h"
#include "check.h"
#include "internal.h"      /* apex_debug_pause_hook, APEX_PAUSE_HEAP_STRUCT_CLEARED (debug builds) */

enum { H_OBJECTS = 4, H_SIZE = 200, OWN = 1000, OWN_SIZE = 48, NEW_OBJECTS = 64 };

static void *g_h_objects[H_OBJECTS];
static _Atomic int g_step;             /* 1: U holds H's chunks; 2: evict now; 3: U evicted */
static _Atomic bool g_paused_once;
static _Thread_local bool tls_pause_here;   /* only the owner's apex_heap_new after the destroy */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void wait_step(int step, const char *what) {
  double deadline = now_s() + 30;
  while (atomic_load(&g_step) != step) {
    CHECK(now_s() < deadline, "%s did not happen within 30 s", what);
    sched_yield();
  }
}

/* In the owner, inside heap_new_locked with the heaps lock held: U evicts everything now. */
static void pause_hook(int point) {
  if (point != APEX_PAUSE_HEAP_STRUCT_CLEARED || !tls_pause_here) return;
  tls_pause_here = false;
  atomic_store(&g_paused_once, true);
  atomic_store(&g_step, 2);
  wait_step(3, "U's eviction while the heap struct was being reused");
}

static void *freeing_thread(void *arg) {
  (void)arg;
  static void *own[OWN];
  for (int i = 0; i < OWN; i++) {            /* allocated now: no allocation during the pause */
    own[i] = apex_malloc(OWN_SIZE);
    CHECK(own[i] != NULL, "U: apex_malloc");
  }
  for (int i = 0; i < H_OBJECTS; i++) apex_free(g_h_objects[i]);   /* into U's quarantine */
  atomic_store(&g_step, 1);
  wait_step(2, "the pause in apex_heap_new");
  /* Each free over the small budget evicts EVICT_BATCH entries at random: H's few entries are
   * all gone long before the end (each eviction takes one with probability >= 1/4). */
  for (int i = 0; i < OWN; i++) apex_free(own[i]);
  atomic_store(&g_step, 3);
  return NULL;
}

int main(void) {
  size_t secure = 0, len = sizeof secure;
  CHECK(apex_ctl("opt.secure", &secure, &len, NULL, 0) == 0 && secure == 2,
        "this test is for hardened mode: run it with APEX_SECURE=2");
  size_t budget = 2048;                      /* a few dozen small entries: evictions all the time */
  CHECK(apex_ctl("opt.quarantine_bytes", NULL, NULL, &budget, sizeof budget) == 0, "opt.quarantine_bytes");

  apex_heap_t *h = apex_heap_new();          /* a new struct: destroy count 0 */
  CHECK(h != NULL, "apex_heap_new");
  for (int i = 0; i < H_OBJECTS; i++) {
    g_h_objects[i] = apex_heap_alloc(h, H_SIZE, 0);
    CHECK(g_h_objects[i] != NULL, "apex_heap_alloc");
    memset(g_h_objects[i], 0x33, H_SIZE);
  }
  pthread_t u;
  CHECK(pthread_create(&u, NULL, freeing_thread, NULL) == 0, "pthread_create");
  wait_step(1, "U's frees of H's objects");
  CHECK(apex_heap_destroy(h) == 0, "apex_heap_destroy");

  apex_debug_pause_hook = pause_hook;
  tls_pause_here = true;
  apex_heap_t *again = apex_heap_new();      /* reuses H's struct; U evicts inside */
  apex_debug_pause_hook = NULL;
  CHECK(again != NULL, "apex_heap_new");
  CHECK(atomic_load(&g_paused_once), "apex_heap_new did not reach the pause point (no struct reused?)");
  CHECK(again == h, "the destroyed heap's struct was not the one reused (%p, %p)", (void *)again, (void *)h);
  CHECK(pthread_join(u, NULL) == 0, "pthread_join");

  /* The new heap works, and its objects keep their contents and stay allocated. */
  unsigned char *objs[NEW_OBJECTS];
  for (int i = 0; i < NEW_OBJECTS; i++) {
    objs[i] = apex_heap_alloc(again, H_SIZE, 0);
    CHECK(objs[i] != NULL, "apex_heap_alloc");
    memset(objs[i], 0x5a, H_SIZE);
  }
  apex_collect();
  for (int i = 0; i < NEW_OBJECTS; i++) {
    CHECK(apex_owns(objs[i]) == 1, "object %d: no longer allocated", i);
    for (size_t k = 0; k < H_SIZE; k++) CHECK(objs[i][k] == 0x5a, "object %d: byte %zu is 0x%02x", i, k, objs[i][k]);
  }
  CHECK(apex_heap_destroy(again) == 0, "apex_heap_destroy of the new heap");
  printf("ok: the old heap's quarantined chunks stayed out while its struct was reused\n");
  return 0;
}
