/* apex_heap_destroy releases everything in the heap at once: its live objects no longer count as
 * allocated, and after apex_collect the mapped bytes drop back near where they were. */
#include <apexalloc.h>
#include <errno.h>
#include <string.h>

#include "check.h"

int main(void) {
  apex_stats_t before, full, after;
  apex_collect();
  CHECK(apex_stats_get(&before, sizeof before) == 0, "apex_stats_get failed");
  apex_heap_t *h = apex_heap_new();
  CHECK(h != NULL, "apex_heap_new failed");
  size_t total = 0;
  for (int i = 0; i < 20000; i++) {                    /* small, large and huge objects */
    size_t size = i % 1000 == 0 ? (size_t)(6 << 20) : i % 100 == 0 ? 300000 : (size_t)(i % 2000) + 1;
    void *p = apex_heap_alloc(h, size, 0);
    CHECK(p != NULL, "allocation %d of %zu bytes failed", i, size);
    memset(p, 0x5a, size);
    total += size;
  }
  CHECK(apex_stats_get(&full, sizeof full) == 0, "apex_stats_get failed");
  CHECK(full.allocated >= before.allocated + total, "allocated %zu, want at least %zu", full.allocated,
        before.allocated + total);
  CHECK(apex_heap_destroy(h) == 0, "apex_heap_destroy failed");
  apex_collect();
  CHECK(apex_stats_get(&after, sizeof after) == 0, "apex_stats_get failed");
  CHECK(after.allocated <= before.allocated + 4096,
        "allocated %zu after destroy, %zu before: the heap's objects still count", after.allocated,
        before.allocated);
  CHECK(after.mapped + total / 2 < full.mapped,
        "mapped %zu after destroy and collect, %zu at the peak (%zu bytes were allocated)", after.mapped,
        full.mapped, total);
  /* Default heaps and bad handles are refused. */
  CHECK(apex_heap_destroy(apex_heap_default()) == EINVAL, "a default heap was destroyed");
  CHECK(apex_heap_destroy(NULL) == EINVAL, "NULL was accepted");
  /* The memory is reusable: a new heap works. */
  apex_heap_t *again = apex_heap_new();
  void *p = apex_heap_alloc(again, 100, 0);
  CHECK(p != NULL && apex_owns(p), "a heap made after destroy does not work");
  CHECK(apex_heap_destroy(again) == 0, "second destroy failed");
  return 0;
}
