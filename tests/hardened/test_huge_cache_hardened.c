/*
 * Hardened mode (APEX_SECURE=2) keeps no freed huge mapping, and a guard page is never inside a
 * usable size (review #8): writing a non-zero opt.huge_cache_bytes at run time fails with EPERM
 * and leaves 0; writing 0 succeeds; huge objects allocated, filled to their last byte and freed in
 * cycles of sizes that would fit each other's mappings all work, report their requested size as
 * usable, and go back to the OS at once (stats.mapped).
 * Before the fix the write was accepted, the next huge allocation of a size that fit a cached
 * mapping took it with its guard page counted as usable, and arming it (the trailer at the end of
 * the usable size) died of SIGSEGV.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "apexalloc.h"
#include "check.h"

static size_t get_size(const char *name) {
  size_t v = 0, len = sizeof v;
  CHECK(apex_ctl(name, &v, &len, NULL, 0) == 0, "read %s", name);
  return v;
}

int main(void) {
  CHECK(get_size("opt.secure") == 2, "this test is for hardened mode: run it with APEX_SECURE=2");
  CHECK(get_size("opt.huge_cache_bytes") == 0, "hardened mode starts with opt.huge_cache_bytes = %zu",
        get_size("opt.huge_cache_bytes"));
  size_t want = (size_t)64 << 20;
  int err = apex_ctl("opt.huge_cache_bytes", NULL, NULL, &want, sizeof want);   /* checked below */

  /* Warm up: the thread's heap and quarantine exist before stats.mapped is compared. */
  void *warm = apex_malloc(100);
  CHECK(warm != NULL, "apex_malloc(100)");
  apex_free(warm);
  warm = apex_malloc(200);
  apex_free(warm);
  size_t stayed = 0;                       /* most bytes a freed huge object left mapped */

  /* Sizes in a few MiB, each within twice the next: a cache would hand one's mapping to another. */
  static const size_t sizes[] = { 5u << 20, (5u << 20) - 4096, (6u << 20) + 123, 5u << 20, (4u << 20) + 1,
                                  (5u << 20) + 4090, 7u << 20, (5u << 20) - 1 };
  for (int cycle = 0; cycle < 4; cycle++) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      size_t mapped = get_size("stats.mapped");
      unsigned char *p = apex_malloc(n);
      CHECK(p != NULL, "apex_malloc(%zu)", n);
      CHECK(apex_usable_size(p) == n, "usable size %zu of a %zu-byte huge object", apex_usable_size(p), n);
      memset(p, 0x77, n);
      CHECK(p[n - 1] == 0x77, "last byte");
      apex_free(p);
      size_t now = get_size("stats.mapped");
      if (now > mapped && now - mapped > stayed) stayed = now - mapped;
    }
  }
  CHECK(stayed <= 4096, "a freed huge object stayed mapped (%zu bytes)", stayed);
  CHECK(err == EPERM, "hardened mode: writing opt.huge_cache_bytes = %zu returned %d, want EPERM", want, err);
  CHECK(get_size("opt.huge_cache_bytes") == 0, "a refused write left opt.huge_cache_bytes = %zu",
        get_size("opt.huge_cache_bytes"));
  size_t zero = 0;
  CHECK(apex_ctl("opt.huge_cache_bytes", NULL, NULL, &zero, sizeof zero) == 0, "writing 0 was refused");
  printf("ok: no huge mapping cached in hardened mode\n");
  return 0;
}
