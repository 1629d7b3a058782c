/*
 * Double free of a small object (48 bytes, size class 3) on the thread that allocated it, right
 * after the first free: the chunk carries its free tag, so the second free aborts.
 *   expects: apexalloc: double free at <p> (size class 3, 48 bytes)
 */
#define _GNU_SOURCE
#include "sec.h"

int main(void) {
  char *p = apex_malloc(48);
  if (p == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  memset(p, 0x5a, 48);
  apex_free(p);
  sec_expect_at(p);
  apex_free(sec_launder(p));
  sec_survived("double free of a 48-byte object");
}
