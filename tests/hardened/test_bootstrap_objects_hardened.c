/*
 * Hardened mode (APEX_SECURE=2) and the bootstrap area: objects the C library got while ApexAlloc
 * was starting come from a static area and are never armed (no trailer, no canary). With the level
 * already 2 they must still work: apex_usable_size gives their size, realloc moves them into armed
 * objects with their contents, free (even twice) does nothing, apex_free_sized accepts their size.
 * A real process rarely makes such allocations, so this test links the static core and makes them
 * itself through bootstrap_alloc (core/init.c).
 */
#include <string.h>

#include "check.h"
#include "internal.h"

int main(void) {
  size_t level = 0, len = sizeof level;
  CHECK(apex_ctl("opt.secure", &level, &len, NULL, 0) == 0 && level == 2,
        "this test is for hardened mode: run it with APEX_SECURE=2");
  for (size_t n = 1; n <= 5000; n = n * 3 + 1) {
    unsigned char *b = bootstrap_alloc(n, 16);
    CHECK(b != NULL && bootstrap_owns(b), "bootstrap_alloc(%zu)", n);
    memset(b, 0x6b, n);
    CHECK(apex_usable_size(b) == n, "usable size %zu of a %zu-byte bootstrap object", apex_usable_size(b), n);
    unsigned char *q = apex_realloc(b, n + 100);
    CHECK(q != NULL && !bootstrap_owns(q), "realloc of a bootstrap object");
    for (size_t i = 0; i < n; i++) CHECK(q[i] == 0x6b, "realloc lost byte %zu of %zu", i, n);
    CHECK(apex_usable_size(q) == n + 100, "the new object is armed: usable %zu", apex_usable_size(q));
    apex_free(q);
    apex_free(b);                              /* realloc freed it already: a no-op, like every free of one */
    unsigned char *c = bootstrap_alloc(n, 16);
    CHECK(c != NULL, "bootstrap_alloc(%zu)", n);
    apex_free_sized(c, n);
    apex_free(c);
  }
  return 0;
}
