/* A huge object of no bytes at a 4 MiB alignment ends where it starts: its pointer is the first
 * byte past its mapping, on a 4 MiB boundary, and the next superblock the allocator maps may begin
 * exactly there. free, free_sized, realloc, usable_size and owns of such a pointer must still find
 * the huge object (its header lies before the pointer), never the superblock that starts at it.
 *
 * Superblocks are normally placed at random far away from other mappings; this test (linked with
 * the debug core) turns that off, so that they land where the kernel puts them, next to the
 * zero-byte objects, as they do when the random window is crowded or under ThreadSanitizer. It
 * asserts on every pointer and fails unless some zero-byte object had a superblock starting at it.
 * (Before the fix, free took such a pointer for the superblock's: "invalid free (no allocation
 * here)".) */
#include <apexalloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "internal.h"     /* apex_debug_kernel_placement (debug builds) */

#define ROUNDS 64
#define MIB ((size_t)1 << 20)

int main(void) {
  apex_debug_kernel_placement = true;
  size_t adjacent = 0;
  for (int pass = 0; pass < 4; pass++) {
    /* A hole of 256 MiB for the mappings below to fall into. */
    void *hole = apex_malloc(256 * MIB);
    CHECK(hole != NULL, "malloc(256 MiB) failed");
    apex_free(hole);
    void *empty[ROUNDS], *big[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
      empty[i] = apex_aligned_alloc(4 * MIB, 0);
      CHECK(empty[i] != NULL && ((uintptr_t)empty[i] & (4 * MIB - 1)) == 0, "aligned_alloc(4 MiB, 0) = %p", empty[i]);
      big[i] = apex_malloc(3 * MIB);                     /* a large object: a superblock of its own */
      CHECK(big[i] != NULL, "malloc(3 MiB) failed");
    }
    for (int i = 0; i < ROUNDS; i++) {
      uintptr_t e = (uintptr_t)empty[i];
      for (int j = 0; j < ROUNDS; j++)
        if (((uintptr_t)big[j] & ~(4 * MIB - 1)) == e) adjacent++;
      CHECK(apex_owns(empty[i]) == 1, "zero-byte huge object %p not owned", empty[i]);
      size_t usable = apex_usable_size(empty[i]);
      CHECK(usable < 4096, "zero-byte huge object %p: usable size %zu", empty[i], usable);
      switch (i % 3) {
        case 0: apex_free(empty[i]); break;
        case 1: apex_free_sized(empty[i], 0); break;
        default: {
          void *q = apex_realloc(empty[i], 1);
          CHECK(q != NULL, "realloc of the zero-byte object %p to 1 byte failed", empty[i]);
          apex_free(q);
          break;
        }
      }
    }
    for (int i = 0; i < ROUNDS; i++) apex_free(big[i]);
  }
  CHECK(adjacent > 0, "no zero-byte object had a superblock starting at it: the case was not produced");
  printf("free_empty_huge_beside_superblock: OK (%zu zero-byte objects had a superblock starting at them)\n",
         adjacent);
  return 0;
}
