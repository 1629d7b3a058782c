/* In a controlled test the statistics add up: a heap's `allocated` equals the sum of the usable
 * sizes of its live objects, before and after frees; global figures are consistent with it;
 * thread counters move by what this thread allocated and freed; bins count objects. */
#include <apexalloc.h>
#include <errno.h>
#include <string.h>

#include "check.h"

enum { N = 3000 };

int main(void) {
  apex_heap_t *h = apex_heap_new();
  CHECK(h != NULL, "apex_heap_new failed");
  void *p[N];
  size_t usable_sum = 0, requested_sum = 0;
  for (int i = 0; i < N; i++) {
    size_t n = i % 500 == 0 ? 300000 : i == 17 ? (size_t)(8 << 20) : (size_t)(i % 1500) + 1;
    p[i] = apex_heap_alloc(h, n, 0);
    CHECK(p[i] != NULL, "allocation failed");
    usable_sum += apex_usable_size(p[i]);
    requested_sum += n;
  }
  apex_stats_t s;
  CHECK(apex_heap_stats_get(h, &s, sizeof s) == 0, "apex_heap_stats_get failed");
  CHECK(s.allocated == usable_sum, "heap allocated %zu, live usable sizes sum to %zu", s.allocated, usable_sum);
  CHECK(s.requested == requested_sum, "requested %zu, asked for %zu", s.requested, requested_sum);
  CHECK(s.requested_usable >= s.requested, "usable %zu below requested %zu", s.requested_usable, s.requested);
  CHECK(s.huge_count == 1, "huge_count %zu, want 1", s.huge_count);
  CHECK(s.large_count == (size_t)N / 500, "large_count %zu, want %d", s.large_count, N / 500);
  for (int i = 0; i < N; i += 2) {
    usable_sum -= apex_usable_size(p[i]);
    apex_free(p[i]);
  }
  CHECK(apex_heap_stats_get(h, &s, sizeof s) == 0, "apex_heap_stats_get failed");
  CHECK(s.allocated == usable_sum, "after frees: allocated %zu, live usable sizes sum to %zu", s.allocated, usable_sum);
  CHECK(s.thread_allocated - s.thread_deallocated == s.allocated,
        "cumulative counters do not balance: in %zu out %zu allocated %zu", s.thread_allocated,
        s.thread_deallocated, s.allocated);
  apex_stats_t g;
  CHECK(apex_stats_get(&g, sizeof g) == 0, "apex_stats_get failed");
  CHECK(g.allocated >= s.allocated, "global allocated %zu below the heap's %zu", g.allocated, s.allocated);
  CHECK(g.mapped >= g.active && g.mapped_peak >= g.mapped, "mapped %zu active %zu peak %zu inconsistent",
        g.mapped, g.active, g.mapped_peak);
  /* A bin sees objects of its class (class 7 is 112 bytes). */
  void *q[100];
  apex_bin_stats_t before, after;
  CHECK(apex_bin_stats_get(7, &before, sizeof before) == 0, "apex_bin_stats_get failed");
  for (int i = 0; i < 100; i++) q[i] = apex_malloc(100);
  CHECK(apex_bin_stats_get(7, &after, sizeof after) == 0, "apex_bin_stats_get failed");
  CHECK(after.chunk_size == 112, "bin 7 chunk size %zu", after.chunk_size);
  CHECK(after.count == before.count + 100, "bin 7 count went from %zu to %zu after 100 allocations",
        before.count, after.count);
  for (int i = 0; i < 100; i++) apex_free(q[i]);
  CHECK(apex_bin_stats_get(APEX_BIN_COUNT, &after, sizeof after) == EINVAL, "a bad bin was accepted");
  CHECK(apex_stats_get(&g, 1) == EINVAL && apex_stats_get(NULL, sizeof g) == EINVAL, "bad sizes accepted");
  /* An older, smaller struct gets only its fields. */
  size_t small[2] = {0, 0};
  CHECK(apex_stats_get((apex_stats_t *)(void *)small, sizeof small) == 0 && small[0] == sizeof small,
        "a 2-field snapshot reported size %zu", small[0]);
  CHECK(apex_heap_destroy(h) == 0, "destroy failed");
  return 0;
}
