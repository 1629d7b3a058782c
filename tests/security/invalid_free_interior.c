/*
 * Free of a pointer into the middle of a live object:
 *   small  48-byte object, p + 16 (aligned, but not a chunk start)
 *   large  300 KiB object, p + 4096
 *   huge   8 MiB object,   p + 64 KiB
 *   expects: apexalloc: invalid free (interior pointer) at <p + offset> (size class 3, 48 bytes)
 *            ... (large object) for large and huge
 */
#define _GNU_SOURCE
#include "sec.h"

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "small", "large", "huge");
  size_t size = 48, offset = 16;
  if (strcmp(v, "large") == 0) { size = (size_t)300 * 1024; offset = 4096; }
  if (strcmp(v, "huge") == 0) { size = (size_t)8 * 1024 * 1024; offset = (size_t)64 * 1024; }
  char *p = apex_malloc(size);
  if (p == NULL) sec_setup_failed("apex_malloc(%zu) returned NULL", size);
  memset(p, 0x5a, offset + 16);
  sec_expect_at(p + offset);
  apex_free(sec_launder(p + offset));
  sec_survived("free of an interior pointer");
}
