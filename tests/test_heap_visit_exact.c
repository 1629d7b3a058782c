/* apex_heap_visit sees exactly the live objects of a heap: each once, with a usable size that
 * fits, none freed, none from another heap; and stops when the callback says so. */
#include <apexalloc.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { N = 6000 };
static void *live[N];
static size_t live_size[N];
static int seen[N];

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
  return x < y ? -1 : x > y;
}

static int record(void *p, size_t usable, void *arg) {
  size_t *calls = arg;
  (*calls)++;
  void **hit = bsearch(&p, live, N, sizeof live[0], cmp_ptr);
  CHECK(hit != NULL && *hit != NULL, "visit reported %p, which is not a live object of this heap", p);
  size_t k = (size_t)(hit - live);
  CHECK(!seen[k], "visit reported %p twice", p);
  seen[k] = 1;
  CHECK(usable >= live_size[k], "usable %zu < size %zu for %p", usable, live_size[k], p);
  return 0;
}

static int stop_after_ten(void *p, size_t usable, void *arg) {
  (void)p; (void)usable;
  return ++*(int *)arg == 10 ? 42 : 0;
}

int main(void) {
  apex_heap_t *h = apex_heap_new(), *other = apex_heap_new();
  CHECK(h && other, "apex_heap_new failed");
  void *all[N];
  for (int i = 0; i < N; i++) {
    size_t n = i % 1500 == 7 ? (size_t)(5 << 20) : i % 300 == 0 ? 150000 : (size_t)(i * 37 % 3000);
    all[i] = apex_heap_alloc(h, n, 0);
    CHECK(all[i] != NULL, "allocation failed");
    CHECK(apex_heap_alloc(other, 64, 0) != NULL, "allocation in the other heap failed");
    live_size[i] = n;
  }
  /* Free every third object; the rest stay live. */
  for (int i = 0; i < N; i++) {
    if (i % 3 == 0) { apex_free(all[i]); all[i] = NULL; }
  }
  /* Sort the live set (with sizes) for lookup. */
  struct { void *p; size_t n; } pairs[N];
  size_t live_count = 0;
  for (int i = 0; i < N; i++) if (all[i]) { pairs[live_count].p = all[i]; pairs[live_count].n = live_size[i]; live_count++; }
  for (size_t i = 0; i < N; i++) { live[i] = NULL; live_size[i] = 0; }
  for (size_t i = 0; i < live_count; i++) { live[i] = pairs[i].p; live_size[i] = pairs[i].n; }
  for (size_t i = live_count; i < N; i++) live[i] = (void *)UINTPTR_MAX;   /* sort last */
  /* sort live[] and live_size[] together */
  for (size_t i = 1; i < live_count; i++)
    for (size_t j = i; j > 0 && (uintptr_t)live[j - 1] > (uintptr_t)live[j]; j--) {
      void *tp = live[j]; live[j] = live[j - 1]; live[j - 1] = tp;
      size_t tn = live_size[j]; live_size[j] = live_size[j - 1]; live_size[j - 1] = tn;
    }
  size_t calls = 0;
  CHECK(apex_heap_visit(h, record, &calls) == 0, "visit failed");
  CHECK(calls == live_count, "visit called back %zu times for %zu live objects", calls, live_count);
  int count = 0;
  CHECK(apex_heap_visit(h, stop_after_ten, &count) == 42 && count == 10, "visit did not stop when asked");
  CHECK(apex_heap_visit(NULL, record, &calls) == EINVAL, "visit of NULL was accepted");
  CHECK(apex_heap_destroy(h) == 0 && apex_heap_destroy(other) == 0, "destroy failed");
  return 0;
}
