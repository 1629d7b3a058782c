/*
 * Pins: apex_heap_visit calls back with no allocator lock held, and stays correct whatever the
 * callback does to the heap. Each scenario walks a fresh heap of small, large and huge objects
 * spread over several superblocks, with a callback that
 *   1. allocates from the same heap (which has no limit), and tries to destroy / delete it (EBUSY);
 *   2. allocates from the same heap, which has a limit (the limit check takes a per-heap lock);
 *   3. reads statistics (apex_stats_get, apex_heap_stats_get, apex_thread_stats_get);
 *   4. frees the visited object (blocks retire, superblocks are released and, with
 *      opt.superblock_cache = 0, unmapped under the walk);
 *   5. frees other objects of the heap, not yet visited;
 *   6. runs on a thread that does not own the heap and allocates from it (the shared sub-heap,
 *      which holds objects too, is walked under its lock).
 * Every walk must return, visit each object that was live when the walk started and was not freed
 * before the walk reached it exactly once, never report a freed object, and leave the heap
 * consistent: a second walk sees exactly what is live, and destroy succeeds. A watchdog (alarm)
 * turns a deadlock into a failure naming the scenario.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apexalloc.h"
#include "testutil.h"

enum { N = 3000, EXTRA_MAX = 20000 };

enum { LIVE = 0, FREED_BEFORE = 1, VISITED = 2, FREED_BY_WALK = 3 };

typedef struct {
  void *p;
  size_t size;
  int state;
} obj_t;

static obj_t objs[N + 2000 + 400];
static size_t nobjs;
static void *extra[EXTRA_MAX];          /* allocated by callbacks during the walk */
static size_t nextra;
static size_t visits, visits_unknown;
static apex_heap_t *g_heap;
static const char *volatile g_scenario = "setup";
static uint64_t g_rng = 12345;

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "apex_heap_visit did not return within 60 s (a callback deadlocked on an allocator lock?) in scenario: ";
  ssize_t ignored = write(2, msg, sizeof msg - 1);
  const char *s = g_scenario;
  ignored = write(2, s, strlen(s));
  ignored = write(2, "\n", 1);
  (void)ignored;
  _exit(1);
}

static int cmp_obj(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const obj_t *)a)->p, y = (uintptr_t)((const obj_t *)b)->p;
  return x < y ? -1 : x > y;
}

static obj_t *find(void *p) {
  obj_t key = { p, 0, 0 };
  return bsearch(&key, objs, nobjs, sizeof objs[0], cmp_obj);
}

static size_t object_size(size_t i) {
  if (i % 1000 == 500) return 5 * TU_MIB;         /* huge: its own mapping */
  if (i % 150 == 0) return 150 * TU_KIB;          /* large: a run of slices */
  return 16 + (i * 37) % 4000;
}

/* A heap of about 12 MiB of small objects, some large and a few huge ones (so several superblocks
 * and a huge list); if `shared_too`, a thread that does not own it adds objects to its shared
 * sub-heap as well. */
static void *shared_filler(void *arg) {
  (void)arg;
  for (size_t i = 0; i < 400; i++) {
    size_t size = i == 7 ? 5 * TU_MIB : 32 + i;
    void *p = apex_heap_alloc(g_heap, size, 0);
    CHECK(p != NULL, "non-owner allocation failed");
    objs[nobjs++] = (obj_t){ p, size, LIVE };
  }
  return NULL;
}

static void make_heap(size_t limit, int shared_too) {
  apex_heap_options_t o = { .size = sizeof o, .limit = limit };
  g_heap = apex_heap_new_ex(&o);
  CHECK(g_heap != NULL, "apex_heap_new_ex failed");
  nobjs = nextra = visits = visits_unknown = 0;
  for (size_t i = 0; i < N; i++) {
    size_t size = object_size(i);
    void *p = apex_heap_alloc(g_heap, size, 0);
    CHECK(p != NULL, "apex_heap_alloc(%zu) failed", size);
    objs[nobjs++] = (obj_t){ p, size, LIVE };
  }
  for (size_t i = 0; i < 2000; i++) {                 /* more small ones: past one superblock */
    void *p = apex_heap_alloc(g_heap, 4000, 0);
    CHECK(p != NULL, "apex_heap_alloc(4000) failed");
    if (i % 4 == 0) apex_free(p);                     /* some freed before the walk */
    else objs[nobjs++] = (obj_t){ p, 4000, LIVE };
  }
  if (shared_too) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, shared_filler, NULL) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
  }
  qsort(objs, nobjs, sizeof objs[0], cmp_obj);
}

/* Checks the reported object: an original one must be live and not seen yet. */
static obj_t *note_visit(void *p, size_t usable) {
  visits++;
  obj_t *o = find(p);
  if (o == NULL) {
    visits_unknown++;
    CHECK(nextra > 0, "[%s] visit reported %p, which is no object of the heap", g_scenario, p);
    CHECK(apex_owns(p), "[%s] visit reported %p, which is not a live allocation", g_scenario, p);
    return NULL;
  }
  CHECK(o->state != FREED_BEFORE && o->state != FREED_BY_WALK, "[%s] visit reported %p, freed before the walk reached it",
        g_scenario, p);
  CHECK(o->state != VISITED, "[%s] visit reported %p twice", g_scenario, p);
  CHECK(usable >= o->size, "[%s] usable size %zu < %zu for %p", g_scenario, usable, o->size, p);
  o->state = VISITED;
  return o;
}

static int cb_alloc(void *p, size_t usable, void *arg) {
  (void)arg;
  obj_t *o = note_visit(p, usable);
  if (visits == 1) {
    CHECK(apex_heap_destroy(g_heap) == EBUSY, "[%s] apex_heap_destroy during the walk did not say EBUSY", g_scenario);
    CHECK(apex_heap_delete(g_heap) == EBUSY, "[%s] apex_heap_delete during the walk did not say EBUSY", g_scenario);
  }
  if (o != NULL && nextra < EXTRA_MAX) {              /* one per object live at the start */
    size_t size = nextra % 997 == 0 ? 6 * TU_MIB : 48;   /* some huge ones too */
    void *q = apex_heap_alloc(g_heap, size, 0);
    CHECK(q != NULL, "[%s] allocation from the visited heap failed: errno %d", g_scenario, errno);
    memset(q, 0x33, size < 4096 ? size : 4096);
    extra[nextra++] = q;
  }
  return 0;
}

static int cb_stats(void *p, size_t usable, void *arg) {
  (void)arg;
  note_visit(p, usable);
  apex_stats_t s, hs, ts;
  CHECK(apex_stats_get(&s, sizeof s) == 0, "apex_stats_get");
  CHECK(apex_heap_stats_get(g_heap, &hs, sizeof hs) == 0, "apex_heap_stats_get");
  CHECK(apex_thread_stats_get(&ts, sizeof ts) == 0, "apex_thread_stats_get");
  CHECK(hs.allocated > 0 && s.allocated >= hs.allocated, "[%s] statistics read in a callback: heap %zu, process %zu",
        g_scenario, hs.allocated, s.allocated);
  return 0;
}

static int cb_free_self(void *p, size_t usable, void *arg) {
  (void)arg;
  obj_t *o = note_visit(p, usable);
  CHECK(o != NULL, "[%s] unknown object", g_scenario);
  o->state = FREED_BY_WALK;
  apex_free(p);
  return 0;
}

static int cb_free_other(void *p, size_t usable, void *arg) {
  (void)arg;
  note_visit(p, usable);
  for (int tries = 0; tries < 4; tries++) {            /* free a few objects not reached yet */
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    obj_t *o = &objs[(g_rng >> 33) % nobjs];
    if (o->state != LIVE) continue;
    o->state = FREED_BEFORE;
    apex_free(o->p);
  }
  return 0;
}

static int cb_count(void *p, size_t usable, void *arg) {
  (void)p; (void)usable;
  ++*(size_t *)arg;
  return 0;
}

/* After the walk: every original object was visited or freed, and a second walk sees exactly the
 * live ones; then the heap is destroyed. */
static void finish(int r) {
  CHECK(r == 0, "[%s] apex_heap_visit returned %d", g_scenario, r);
  size_t live = nextra;
  for (size_t i = 0; i < nobjs; i++) {
    CHECK(objs[i].state != LIVE, "[%s] object %p (%zu bytes), live throughout, was never visited", g_scenario, objs[i].p,
          objs[i].size);
    if (objs[i].state == VISITED) live++;
  }
  size_t again = 0;
  g_scenario = "second walk";
  CHECK(apex_heap_visit(g_heap, cb_count, &again) == 0, "second walk");
  CHECK(again == live, "after the walk the heap holds %zu objects by a second walk, %zu expected", again, live);
  CHECK(apex_heap_destroy(g_heap) == 0, "apex_heap_destroy after the walk failed");
}

typedef struct { apex_visit_fn fn; int r; } visit_job_t;

static void *visit_thread(void *arg) {
  visit_job_t *job = arg;
  job->r = apex_heap_visit(g_heap, job->fn, NULL);
  return NULL;
}

static void run(int which) {
  switch (which) {
    case 1:
      g_scenario = "1: callback allocates from the visited heap";
      make_heap(0, 0);
      finish(apex_heap_visit(g_heap, cb_alloc, NULL));
      printf("1: %zu visits, %zu allocations during the walk (%zu of them visited)\n", visits, nextra, visits_unknown);
      break;
    case 2:
      g_scenario = "2: callback allocates from the visited heap, which has a limit";
      make_heap((size_t)1 << 40, 0);
      finish(apex_heap_visit(g_heap, cb_alloc, NULL));
      break;
    case 3:
      g_scenario = "3: callback reads statistics";
      make_heap(0, 0);
      finish(apex_heap_visit(g_heap, cb_stats, NULL));
      break;
    case 4: {
      g_scenario = "4: callback frees the visited object (superblocks unmapped under the walk)";
      size_t cache = 0, old_cache = 0, len = sizeof old_cache;
      CHECK(apex_ctl("opt.superblock_cache", &old_cache, &len, &cache, sizeof cache) == 0, "opt.superblock_cache");
      make_heap(0, 0);
      finish(apex_heap_visit(g_heap, cb_free_self, NULL));
      CHECK(apex_ctl("opt.superblock_cache", NULL, NULL, &old_cache, sizeof old_cache) == 0, "opt.superblock_cache");
      break;
    }
    case 5:
      g_scenario = "5: callback frees other objects of the heap";
      make_heap(0, 0);
      finish(apex_heap_visit(g_heap, cb_free_other, NULL));
      break;
    case 6: {
      g_scenario = "6: a non-owner thread visits, its callback allocates from the heap (shared sub-heap)";
      make_heap(0, 1);
      visit_job_t job = { cb_alloc, -1 };
      pthread_t t;
      CHECK(pthread_create(&t, NULL, visit_thread, &job) == 0, "pthread_create");
      CHECK(pthread_join(t, NULL) == 0, "pthread_join");
      finish(job.r);
      break;
    }
  }
}

/* With an argument, only that scenario (1..6). */
int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  signal(SIGALRM, on_alarm);
  alarm(60);
  int only = argc > 1 ? atoi(argv[1]) : 0;
  for (int which = 1; which <= 6; which++)
    if (only == 0 || only == which) run(which);
  alarm(0);
  printf("heap_visit_callbacks: OK\n");
  return 0;
}
