/*
 * apex_usable_size of a pointer that was already freed:
 *   small  48-byte object
 *          expects: apexalloc: use of a freed pointer at <p> (size class 3, 48 bytes)
 *   huge   8 MiB object
 *          expects: apexalloc: use of a freed pointer at <p> (large object)
 */
#define _GNU_SOURCE
#include "sec.h"

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "small", "huge");
  size_t size = strcmp(v, "small") == 0 ? 48 : (size_t)8 * 1024 * 1024;
  void *keep = apex_malloc(size);
  char *p = apex_malloc(size);
  if (p == NULL || keep == NULL) sec_setup_failed("apex_malloc(%zu) returned NULL", size);
  apex_free(p);
  sec_expect_at(p);
  size_t n = apex_usable_size(sec_launder(p));
  sec_say("apex_usable_size returned %zu\n", n);
  sec_survived("usable_size of a freed pointer");
}
