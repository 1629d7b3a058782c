/*
 * Pins the life cycle of an explicit heap's handle (apexalloc.h, apex_heap_delete):
 *   1. only the owner deletes: another thread gets EPERM while the owner lives, and the heap keeps
 *      working for its owner; the owner's delete returns 0 and the handle is invalid (EINVAL)
 *      afterwards, while the heap's objects stay valid and freeable;
 *   2. a heap whose owner thread has exited has no owner: any thread may delete it (0);
 *   3. a deleted heap's handle never becomes valid again: the next thread that needs a default
 *      heap does not adopt the deleted one, so the stale handle does not alias that thread's
 *      default heap (apex_heap_alloc / apex_heap_stats_get / apex_heap_visit on it say EINVAL).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "apexalloc.h"
#include "testutil.h"

static apex_heap_t *g_heap;
static int g_result;
static apex_heap_t *g_default_of_new_thread;
static pthread_barrier_t seen, done;

static void *delete_from_other(void *arg) {
  (void)arg;
  g_result = apex_heap_delete(g_heap);
  return NULL;
}

static void *make_and_leave(void *arg) {
  (void)arg;
  g_heap = apex_heap_new();
  CHECK(g_heap != NULL, "apex_heap_new");
  CHECK(apex_heap_alloc(g_heap, 100, 0) != NULL, "apex_heap_alloc");
  return NULL;                                          /* exits: the heap has no owner now */
}

static void *new_thread(void *arg) {
  (void)arg;
  void *p = apex_malloc(64);                            /* needs a default heap */
  CHECK(p != NULL, "apex_malloc");
  g_default_of_new_thread = apex_heap_default();
  pthread_barrier_wait(&seen);
  pthread_barrier_wait(&done);                          /* stays alive while main checks */
  apex_free(p);
  return NULL;
}

static void run(void *(*fn)(void *)) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fn, NULL) == 0, "pthread_create");
  CHECK(pthread_join(t, NULL) == 0, "pthread_join");
}

static int count(void *p, size_t n, void *arg) { (void)p; (void)n; ++*(int *)arg; return 0; }

int main(void) {
  /* 1. */
  g_heap = apex_heap_new();
  CHECK(g_heap != NULL, "apex_heap_new");
  void *obj = apex_heap_alloc(g_heap, 200, 0);
  CHECK(obj != NULL, "apex_heap_alloc");
  run(delete_from_other);
  CHECK(g_result == EPERM, "apex_heap_delete from a thread that does not own the heap returned %d, not EPERM", g_result);
  void *more = apex_heap_alloc(g_heap, 300, 0);
  CHECK(more != NULL, "the heap no longer works for its owner after a refused delete");
  CHECK(apex_heap_delete(g_heap) == 0, "the owner's apex_heap_delete failed");
  errno = 0;
  CHECK(apex_heap_alloc(g_heap, 16, 0) == NULL && errno == EINVAL, "a deleted heap's handle still allocates");
  CHECK(apex_heap_delete(g_heap) == EINVAL, "a second delete did not say EINVAL");
  memset(obj, 1, 200);
  apex_free(obj);
  apex_free(more);

  /* 2. */
  run(make_and_leave);
  CHECK(apex_heap_delete(g_heap) == 0, "deleting a heap whose owner exited failed");

  /* 3. */
  g_heap = apex_heap_new();
  CHECK(g_heap != NULL, "apex_heap_new");
  void *objs[100];
  for (int i = 0; i < 100; i++) CHECK((objs[i] = apex_heap_alloc(g_heap, (size_t)(32 + i), 0)) != NULL, "alloc");
  CHECK(apex_heap_delete(g_heap) == 0, "apex_heap_delete");
  pthread_barrier_init(&seen, NULL, 2);
  pthread_barrier_init(&done, NULL, 2);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, new_thread, NULL) == 0, "pthread_create");
  pthread_barrier_wait(&seen);
  apex_heap_t *stale = g_heap;
  errno = 0;
  void *alias = apex_heap_alloc(stale, 16, 0);
  int alias_errno = errno;
  apex_stats_t s;
  int stats_r = apex_heap_stats_get(stale, &s, sizeof s);
  int visited = 0;
  int visit_r = apex_heap_visit(stale, count, &visited);
  printf("heap_delete_rules: new thread's default heap %p, deleted handle %p; alloc through the stale handle: %p "
         "(errno %d), stats %d, visit %d\n", (void *)g_default_of_new_thread, (void *)stale, alias, alias_errno, stats_r,
         visit_r);
  CHECK(g_default_of_new_thread != stale, "a new thread adopted the deleted heap: its stale handle is valid again");
  CHECK(alias == NULL && alias_errno == EINVAL, "the deleted heap's handle allocates again");
  CHECK(stats_r == EINVAL && visit_r == EINVAL, "the deleted heap's handle answers stats (%d) / visit (%d)", stats_r,
        visit_r);
  pthread_barrier_wait(&done);
  CHECK(pthread_join(t, NULL) == 0, "pthread_join");
  for (int i = 0; i < 100; i++) apex_free(objs[i]);
  printf("heap_delete_rules: OK\n");
  return 0;
}
