/*
 * apex_free_sized with a size larger than the allocation can hold (more than its usable size):
 *   small  48-byte object freed as 49 bytes
 *   huge   8 MiB object freed as its usable size + 1
 *   expects: apexalloc: invalid free_sized (size larger than the allocation) at <p> (no size class)
 */
#define _GNU_SOURCE
#include "sec.h"

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "small", "huge");
  size_t size = strcmp(v, "small") == 0 ? 48 : (size_t)8 * 1024 * 1024;
  char *p = apex_malloc(size);
  if (p == NULL) sec_setup_failed("apex_malloc(%zu) returned NULL", size);
  size_t usable = apex_usable_size(p);
  if (usable < size) sec_setup_failed("usable size %zu < %zu", usable, size);
  sec_expect_at(p);
  apex_free_sized(sec_launder(p), usable + 1);
  sec_survived("apex_free_sized with a size larger than the allocation");
}
