/*
 * Free of a pointer into a superblock's metadata (slice 0). For a small object p the superblock
 * starts at p & ~(4 MiB - 1); its first 64 KiB hold the header and the block descriptors, and no
 * chunk ever lives there:
 *   header       superblock base + 64 (inside the header: owner heap, slice maps)
 *   descriptors  superblock base + 4096 (inside the array of block descriptors)
 *   slice-end    superblock base + 64 KiB - 16 (the last 16 bytes of slice 0)
 * (The base itself is not used: a pointer exactly on a 4 MiB boundary is looked up in the unit
 * before it, where a huge object aligned to 4 MiB has its header.)
 *   expects: apexalloc: invalid free (no allocation here) at <address> (no size class)
 */
#define _GNU_SOURCE
#include "sec.h"

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "header", "descriptors", "slice-end");
  char *p = apex_malloc(48);
  if (p == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  char *base = (char *)((uintptr_t)p & ~(uintptr_t)(4 * 1024 * 1024 - 1));
  size_t offset = 64;
  if (strcmp(v, "descriptors") == 0) offset = 4096;
  if (strcmp(v, "slice-end") == 0) offset = 64 * 1024 - 16;
  if (p < base + 64 * 1024) sec_setup_failed("object %p inside slice 0 of its superblock", (void *)p);
  sec_expect_at(base + offset);
  apex_free(sec_launder(base + offset));
  sec_survived("free of a pointer into superblock metadata");
}
