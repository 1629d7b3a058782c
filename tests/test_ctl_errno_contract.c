/*
 * Pins the error results of apex_ctl and apex_ctl_info (include/apexalloc.h, "apex_ctl"):
 *   ENOENT  an unknown name, a prefix or extension of a real one, a family with a bad index
 *           (past the count, signed, leading zeros, missing, not a number);
 *   EINVAL  a wrong *oldlenp or newlen (smaller and larger), oldp without oldlenp, newp NULL
 *           with newlen set, a read of a command, a command given a value, a bad value for an
 *           option (bool not 0/1); and a failed write leaves *oldp and the option unchanged;
 *   EPERM   a write to any read-only key, whatever the size given;
 * and apex_ctl_info's EINVAL for an index past the count, NULL, or a bad struct size, while a
 * smaller (older) struct size is filled only up to that size.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "apexalloc.h"
#include "check.h"

static int read_as(const char *name, size_t len) {
  unsigned char buf[64];
  return apex_ctl(name, buf, &len, NULL, 0);
}

int main(void) {
  size_t v, len;
  static const char *const unknown[] = {
    "", "stats", "stats.", "stats.allocated.x", "stats.allocatedx", "Stats.allocated", "nope",
    "stats.bins", "stats.bins.", "stats.bins..count", "stats.bins.89.count", "stats.bins.1000000000000.count",
    "stats.bins.-1.count", "stats.bins.+1.count", "stats.bins.01.count", "stats.bins.x.count",
    "stats.bins.<i>.count", "stats.bins.3", "stats.bins.3.", "opt.", "opt.show_stats ", " version",
  };
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    len = sizeof v;
    int err = apex_ctl(unknown[i], &v, &len, NULL, 0);
    CHECK(err == ENOENT, "\"%s\": expected ENOENT, got %d", unknown[i], err);
    CHECK(apex_ctl(unknown[i], NULL, NULL, NULL, 0) == ENOENT, "\"%s\" as a command: expected ENOENT", unknown[i]);
  }
  CHECK(apex_ctl(NULL, NULL, NULL, NULL, 0) == EINVAL, "NULL name");

  /* Wrong sizes, for every type. */
  CHECK(read_as("stats.allocated", sizeof(size_t) - 1) == EINVAL, "SIZE read with a short buffer");
  CHECK(read_as("stats.allocated", sizeof(size_t) + 1) == EINVAL, "SIZE read with a long buffer");
  CHECK(read_as("stats.allocated", 0) == EINVAL, "SIZE read with length 0");
  CHECK(read_as("opt.show_stats", sizeof(size_t)) == EINVAL, "BOOL read as size_t");
  CHECK(read_as("opt.show_stats", 1) == EINVAL, "BOOL read as a byte");
  CHECK(read_as("version", sizeof(char *) + 8) == EINVAL, "STRING read with a long buffer");
  CHECK(read_as("stats.bins.7.count", 4) == EINVAL, "family read with a short buffer");
  CHECK(apex_ctl("stats.allocated", &v, NULL, NULL, 0) == EINVAL, "oldp without oldlenp");

  /* Writes: a read-only key is EPERM whatever the size; a writable one checks the size. */
  static const char *const read_only[] = { "version", "stats.allocated", "stats.peak", "stats.bins.3.count",
                                           "thread.allocated", "opt.heap_map", "opt.tls_model", "opt.small_max",
                                           "opt.large_max" };
  for (size_t i = 0; i < sizeof read_only / sizeof read_only[0]; i++) {
    size_t nv[2] = { 1, 1 };
    CHECK(apex_ctl(read_only[i], NULL, NULL, nv, sizeof(size_t)) == EPERM, "%s: write of size_t", read_only[i]);
    CHECK(apex_ctl(read_only[i], NULL, NULL, nv, sizeof nv) == EPERM, "%s: write of 16 bytes", read_only[i]);
    CHECK(apex_ctl(read_only[i], NULL, NULL, NULL, 8) == EPERM, "%s: newlen without newp", read_only[i]);
  }
  size_t cache = 0, nv = 3;
  len = sizeof cache;
  CHECK(apex_ctl("opt.superblock_cache", &cache, &len, NULL, 0) == 0, "read opt.superblock_cache");
  CHECK(apex_ctl("opt.superblock_cache", NULL, NULL, &nv, sizeof nv - 1) == EINVAL, "short write");
  CHECK(apex_ctl("opt.superblock_cache", NULL, NULL, &nv, sizeof nv + 1) == EINVAL, "long write");
  CHECK(apex_ctl("opt.superblock_cache", NULL, NULL, NULL, sizeof nv) == EINVAL, "newp NULL with newlen");
  int b = 2;
  CHECK(apex_ctl("opt.show_stats", NULL, NULL, &b, sizeof b) == EINVAL, "show_stats = 2 must be EINVAL");
  b = -1;
  CHECK(apex_ctl("opt.show_stats", NULL, NULL, &b, sizeof b) == EINVAL, "show_stats = -1 must be EINVAL");
  /* A failed write changes nothing, not even *oldp. */
  size_t huge = (size_t)1 << 62, old = 12345;
  len = sizeof old;
  CHECK(apex_ctl("opt.superblock_cache", &old, &len, &huge, sizeof huge) == EINVAL, "absurd superblock_cache");
  CHECK(old == 12345, "a failed write changed *oldp to %zu", old);
  size_t now = 0;
  len = sizeof now;
  CHECK(apex_ctl("opt.superblock_cache", &now, &len, NULL, 0) == 0 && now == cache, "option changed to %zu", now);

  /* Commands: no reading, no value. */
  len = sizeof v;
  CHECK(apex_ctl("heap.collect", &v, &len, NULL, 0) == EINVAL, "reading a command");
  CHECK(apex_ctl("stats.reset", NULL, &len, NULL, 0) == EINVAL, "oldlenp given to a command");
  CHECK(apex_ctl("stats.reset", NULL, NULL, &v, sizeof v) == EINVAL, "a command given a value");
  CHECK(apex_ctl("stats.reset", NULL, NULL, NULL, 0) == 0, "running stats.reset");

  /* apex_ctl_info. */
  apex_ctl_info_t info;
  size_t count = apex_ctl_count();
  CHECK(apex_ctl_info(count, &info, sizeof info) == EINVAL, "index == count");
  CHECK(apex_ctl_info((size_t)-1, &info, sizeof info) == EINVAL, "index SIZE_MAX");
  CHECK(apex_ctl_info(0, NULL, sizeof info) == EINVAL, "NULL out");
  CHECK(apex_ctl_info(0, &info, sizeof info + 1) == EINVAL, "struct larger than the library's");
  CHECK(apex_ctl_info(0, &info, sizeof(size_t) - 1) == EINVAL, "struct smaller than its size field");
  memset(&info, 0x5A, sizeof info);
  size_t older = offsetof(apex_ctl_info_t, type) + sizeof(int);
  CHECK(apex_ctl_info(0, &info, older) == 0, "an older, smaller struct");
  CHECK(info.size == older && info.name != NULL, "older struct: size %zu", info.size);
  unsigned char *tail = (unsigned char *)&info + older;
  for (size_t i = 0; i < sizeof info - older; i++)
    CHECK(tail[i] == 0x5A, "apex_ctl_info wrote past the size it was given (byte %zu)", older + i);

  printf("ctl_errno_contract: OK\n");
  return 0;
}
