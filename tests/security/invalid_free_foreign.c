/*
 * Free of memory from a foreign allocator: a page mapped with mmap directly (what another
 * allocator hands out), freed at an offset a header-based allocator would accept (16).
 *   expects: apexalloc: invalid free (not allocated by apexalloc) at <page + 16> (no size class)
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "sec.h"

int main(void) {
  char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) sec_setup_failed("mmap");
  memset(page, 0x5a, 4096);
  sec_expect_at(page + 16);
  apex_free(sec_launder(page + 16));
  sec_survived("free of a foreign pointer");
}
