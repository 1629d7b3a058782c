/* In a controlled test the statistics add up: a heap's `allocated` equals the sum of the usable
 * sizes of its live objects, before and after frees; global figures are consistent with it;
 * thread counters move by what this thread allocated and freed; bins count objects.
 * In hardened mode (APEX_SECURE=2, label hardened) the usable size is the requested size, and each
 * chunk also holds an 8-byte trailer that the heap counts as asked for: `allocated` is then at least
 * the usable sizes plus 8 bytes per object, `requested` is 8 bytes per object more, and freed
 * objects count until they leave the thread's quarantine (apex_collect empties it). */
#include <apexalloc.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"

enum { N = 3000 };

enum { TRAILER = 8 };

/* `allocated` against the live objects' usable sizes (see the top of the file). */
static void check_allocated(size_t allocated, size_t usable_sum, size_t live, bool hardened, const char *when) {
  if (!hardened)
    CHECK(allocated == usable_sum, "%s: heap allocated %zu, live usable sizes sum to %zu", when, allocated, usable_sum);
  else
    CHECK(allocated >= usable_sum + TRAILER * live && allocated <= 2 * (usable_sum + TRAILER * live),
          "%s: hardened heap allocated %zu for %zu objects of %zu usable bytes", when, allocated, live, usable_sum);
}

int main(void) {
  size_t level = 0, level_len = sizeof level;
  CHECK(apex_ctl("opt.secure", &level, &level_len, NULL, 0) == 0, "opt.secure");
  bool hardened = level == 2;
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
  check_allocated(s.allocated, usable_sum, N, hardened, "live");
  CHECK(s.requested == requested_sum + (hardened ? (size_t)TRAILER * N : 0), "requested %zu, asked for %zu",
        s.requested, requested_sum);
  CHECK(s.requested_usable >= s.requested, "usable %zu below requested %zu", s.requested_usable, s.requested);
  CHECK(s.huge_count == 1, "huge_count %zu, want 1", s.huge_count);
  CHECK(s.large_count == (size_t)N / 500, "large_count %zu, want %d", s.large_count, N / 500);
  for (int i = 0; i < N; i += 2) {
    usable_sum -= apex_usable_size(p[i]);
    apex_free(p[i]);
  }
  if (hardened) apex_collect();          /* the freed objects leave this thread's quarantine */
  CHECK(apex_heap_stats_get(h, &s, sizeof s) == 0, "apex_heap_stats_get failed");
  check_allocated(s.allocated, usable_sum, N / 2, hardened, "after frees");
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
