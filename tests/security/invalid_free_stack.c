/*
 * Free of a pointer to a local variable (the stack). The registry has no bit for the stack's
 * 4 MiB unit, so the pointer is rejected before any memory near it is read.
 *   expects: apexalloc: invalid free (not allocated by apexalloc) at <&local> (no size class)
 */
#define _GNU_SOURCE
#include "sec.h"

int main(void) {
  _Alignas(16) char local[64];
  memset(local, 0x5a, sizeof local);
  sec_expect_at(local);
  apex_free(sec_launder(local));
  sec_survived("free of a stack pointer");
}
