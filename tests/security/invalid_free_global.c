/*
 * Free of a pointer to a global (the program's .data), 16-byte aligned like a real allocation.
 *   expects: apexalloc: invalid free (not allocated by apexalloc) at <&global> (no size class)
 */
#define _GNU_SOURCE
#include "sec.h"

_Alignas(16) char g_object[64] = "not from the heap";

int main(void) {
  sec_expect_at(g_object);
  apex_free(sec_launder(g_object));
  sec_survived("free of a global");
}
