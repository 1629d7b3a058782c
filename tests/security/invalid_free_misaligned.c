/*
 * Free of a misaligned pointer: one byte past the start of a live 48-byte object (no chunk, and no
 * pointer ApexAlloc returns, is ever at an odd address).
 *   expects: apexalloc: invalid free (interior pointer) at <p + 1> (size class 3, 48 bytes)
 */
#define _GNU_SOURCE
#include "sec.h"

int main(void) {
  char *p = apex_malloc(48);
  if (p == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  memset(p, 0x5a, 48);
  sec_expect_at(p + 1);
  apex_free(sec_launder(p + 1));
  sec_survived("free of a misaligned pointer");
}
