/*
 * Double free where a thread other than the owner does one of the frees (48 bytes, class 3):
 *   owner-then-other  the owner frees p, then another thread frees it again
 *   other-then-owner  another thread frees p (it waits in the block's remote list), then the
 *                     owner frees it again
 *   other-then-other  two other threads free p one after the other
 *   batched-twice     a thread with a heap of its own frees p (it waits, unpublished, in that
 *                     thread's batch for p's block: core/remote.c), then frees it again
 *   batched-then-owner  the same first free; while p still waits in the batch (the freer is alive
 *                     and does nothing more), the owner frees it again
 * The chunk's free tag (local or remote) is set by the first free, so the second aborts.
 *   expects: apexalloc: double free at <p> (size class 3, 48 bytes)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "sec.h"

static void *g_target;
static int g_announce;

static void *free_it(void *arg) {
  (void)arg;
  if (g_announce) sec_expect_at(g_target);
  apex_free(sec_launder(g_target));
  return NULL;
}

/* A freer whose remote frees are batched: it has a heap (it allocated), and it stays alive, so
 * nothing (its exit, apex_collect, its allocation slow path) publishes its batch. */
static _Atomic int g_batched;
static int g_twice;

static void *batch_it(void *arg) {
  (void)arg;
  void *own = apex_malloc(24);
  if (own == NULL) sec_setup_failed("apex_malloc(24) returned NULL");
  apex_free(own);
  apex_free(sec_launder(g_target));
  if (g_twice) {
    sec_expect_at(g_target);
    apex_free(sec_launder(g_target));
    return NULL;
  }
  atomic_store(&g_batched, 1);
  for (;;) pause();                     /* the owner's free ends the process */
}

static void free_into_batch(int twice) {
  pthread_t t;
  g_twice = twice;
  if (pthread_create(&t, NULL, batch_it, NULL) != 0) sec_setup_failed("pthread_create");
  if (twice) { pthread_join(t, NULL); return; }
  while (!atomic_load(&g_batched)) sched_yield();
}

static void free_on_other_thread(int announce) {
  pthread_t t;
  g_announce = announce;
  if (pthread_create(&t, NULL, free_it, NULL) != 0) sec_setup_failed("pthread_create");
  pthread_join(t, NULL);
}

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "owner-then-other", "other-then-owner", "other-then-other",
                              "batched-twice", "batched-then-owner");
  /* Neighbours keep the block busy, so nothing gets retired between the two frees. */
  sec_keep(48, 8);
  g_target = apex_malloc(48);
  if (g_target == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  memset(g_target, 0x5a, 48);

  if (strcmp(v, "owner-then-other") == 0) {
    apex_free(g_target);
    free_on_other_thread(1);
  } else if (strcmp(v, "other-then-owner") == 0) {
    free_on_other_thread(0);
    sec_expect_at(g_target);
    apex_free(sec_launder(g_target));
  } else if (strcmp(v, "batched-twice") == 0) {
    free_into_batch(1);
  } else if (strcmp(v, "batched-then-owner") == 0) {
    free_into_batch(0);
    sec_expect_at(g_target);
    apex_free(sec_launder(g_target));
  } else {
    free_on_other_thread(0);
    free_on_other_thread(1);
  }
  sec_survived("double free across threads");
}
