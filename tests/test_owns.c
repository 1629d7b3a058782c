/* apex_owns tells live allocations from everything else, and never aborts: free chunks and
 * chunk-aligned addresses that no allocation ever covered (past the carved part of a block) are
 * not owned either. */
#include <apexalloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

static int a_global;

int main(void) {
  int on_stack = 0;
  const size_t sizes[] = {0, 16, 100, 4000, 70000, 200000, 3u << 20, 9u << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    unsigned char *p = apex_malloc(sizes[i]);
    CHECK(p != NULL, "malloc(%zu) failed", sizes[i]);
    CHECK(apex_owns(p) == 1, "live %zu-byte object not owned", sizes[i]);
    CHECK(apex_owns(p + 16) == 0, "interior pointer of a %zu-byte object owned", sizes[i]);
    CHECK(apex_owns(p + 1) == 0, "misaligned pointer owned");
    apex_free(p);
    CHECK(apex_owns(p) == 0, "freed %zu-byte object still owned", sizes[i]);
  }
  unsigned char *aligned = apex_aligned_alloc(1 << 20, 100);
  CHECK(aligned != NULL && apex_owns(aligned) == 1, "1 MiB-aligned object not owned");
  apex_free(aligned);
  /* A fresh 48-byte block carves about 8 KiB at a time: 600 chunks on lies inside the block but
   * was never handed out. */
  apex_heap_t *heap = apex_heap_new();
  CHECK(heap != NULL, "apex_heap_new failed");
  unsigned char *first = apex_heap_alloc(heap, 48, 0);
  CHECK(first != NULL && apex_owns(first) == 1, "a fresh 48-byte object not owned");
  for (size_t k = 200; k < 1300; k += 100)
    CHECK(apex_owns(first + k * 48) == 0, "never-carved chunk address %p (chunk %zu on) owned", (void *)(first + k * 48), k);
  unsigned char *second = apex_heap_alloc(heap, 48, 0);               /* a carved, free neighbour */
  apex_free(second);
  CHECK(apex_owns(second) == 0, "a free chunk of a live block owned");
  CHECK(apex_owns(first) == 1, "the live chunk is no longer owned");
  apex_heap_destroy(heap);
  CHECK(apex_owns(NULL) == 0, "NULL owned");
  CHECK(apex_owns(&on_stack) == 0, "a stack address owned");
  CHECK(apex_owns(&a_global) == 0, "a global owned");
  CHECK(apex_owns((void *)(uintptr_t)0x1000) == 0, "a low address owned");
  CHECK(apex_owns((void *)(uintptr_t)0xffff800000000000ull) == 0, "a kernel address owned");
  return 0;
}
