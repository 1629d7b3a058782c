/*
 * Double free of objects above the size classes:
 *   large  300 KiB: a run of slices of its own (a block of capacity one)
 *   huge   8 MiB:   a mapping of its own (its header's state says live or free)
 * The second free comes right after the first, on the same thread.
 *   expects: apexalloc: double free at <p> (large object)
 */
#define _GNU_SOURCE
#include "sec.h"

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "large", "huge");
  size_t size = strcmp(v, "large") == 0 ? (size_t)300 * 1024 : (size_t)8 * 1024 * 1024;
  char *p = apex_malloc(size);
  if (p == NULL) sec_setup_failed("apex_malloc(%zu) returned NULL", size);
  memset(p, 0x5a, 4096);
  memset(p + size - 4096, 0xa5, 4096);
  apex_free(p);
  sec_expect_at(p);
  apex_free(sec_launder(p));
  sec_survived("double free of a large/huge object");
}
