/*
 * realloc of a pointer that was already freed (a dangling pointer passed back to the allocator):
 *   small  48-byte object
 *          expects: apexalloc: use of a freed pointer at <p> (size class 3, 48 bytes)
 *   huge   8 MiB object (its mapping stays cached after the free, marked free)
 *          expects: apexalloc: realloc of a freed pointer at <p> (large object)
 */
#define _GNU_SOURCE
#include "sec.h"

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "small", "huge");
  size_t size = strcmp(v, "small") == 0 ? 48 : (size_t)8 * 1024 * 1024;
  void *keep = apex_malloc(size);
  char *p = apex_malloc(size);
  if (p == NULL || keep == NULL) sec_setup_failed("apex_malloc(%zu) returned NULL", size);
  memset(p, 0x5a, 48);
  apex_free(p);
  sec_expect_at(p);
  void *q = apex_realloc(sec_launder(p), size * 2);
  sec_say("apex_realloc returned %p\n", q);
  sec_survived("realloc of a freed pointer");
}
