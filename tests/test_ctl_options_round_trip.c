/*
 * Pins: every writable value key of the registry round-trips (write a new value, read it back,
 * restore the old one); a read and a write in one call return the old value and store the new one;
 * the documented defaults hold when the environment sets nothing (superblock_cache 8,
 * huge_cache_bytes 32 MiB, show_stats 0, heap_map ""); opt.tls_model names the TLS model of this
 * build of the library (libapexalloc.so: initial-exec); stats.reset brings stats.peak down to
 * stats.mapped; and the options really steer the allocator: with opt.superblock_cache = 0, freeing
 * everything and collecting leaves no cached superblock, and with opt.huge_cache_bytes = 0 a freed
 * huge object is unmapped at once.
 * Hardened mode (APEX_SECURE=2, label hardened) keeps no freed huge mapping: opt.huge_cache_bytes
 * is 0 there, and writing another value fails with EPERM and changes nothing (docs/API.md).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apexalloc.h"
#include "check.h"

static size_t get_size(const char *name) {
  size_t v = 0, len = sizeof v;
  int err = apex_ctl(name, &v, &len, NULL, 0);
  CHECK(err == 0, "read %s: %d", name, err);
  return v;
}

static void set_size(const char *name, size_t v) {
  int err = apex_ctl(name, NULL, NULL, &v, sizeof v);
  CHECK(err == 0, "write %s = %zu: %d", name, v, err);
}

/* The security level the library runs at (2: hardened). */
static size_t secure_level(void) { return get_size("opt.secure"); }

int main(void) {
  bool hardened = secure_level() == 2;
  /* Defaults (the test runs without APEX_* variables; see tests/CMakeLists.txt). */
  if (getenv("APEX_SUPERBLOCK_CACHE") == NULL)
    CHECK(get_size("opt.superblock_cache") == 8, "default opt.superblock_cache = %zu", get_size("opt.superblock_cache"));
  if (getenv("APEX_HUGE_CACHE_BYTES") == NULL)
    CHECK(get_size("opt.huge_cache_bytes") == (hardened ? 0 : (size_t)32 << 20), "default opt.huge_cache_bytes = %zu",
          get_size("opt.huge_cache_bytes"));
  const char *map = NULL;
  size_t len = sizeof map;
  CHECK(apex_ctl("opt.heap_map", &map, &len, NULL, 0) == 0 && map != NULL, "opt.heap_map");
  if (getenv("APEX_HEAP_MAP") == NULL) CHECK(map[0] == '\0', "default opt.heap_map = \"%s\"", map);

  /* Every writable value key round-trips, whatever it is. */
  size_t writable = 0;
  for (size_t i = 0; i < apex_ctl_count(); i++) {
    apex_ctl_info_t info;
    CHECK(apex_ctl_info(i, &info, sizeof info) == 0, "apex_ctl_info(%zu)", i);
    if (!info.writable || info.type == APEX_CTL_COMMAND) continue;
    CHECK(info.index_count == 0, "%s: a writable family is not tested here", info.name);
    writable++;
    if (info.type == APEX_CTL_SIZE && hardened && strcmp(info.name, "opt.huge_cache_bytes") == 0) {
      size_t one = 1, zero = 0;
      CHECK(apex_ctl(info.name, NULL, NULL, &one, sizeof one) == EPERM, "%s: hardened mode accepted 1", info.name);
      CHECK(get_size(info.name) == 0, "%s: a refused write changed it to %zu", info.name, get_size(info.name));
      CHECK(apex_ctl(info.name, NULL, NULL, &zero, sizeof zero) == 0, "%s: hardened mode refused 0", info.name);
    } else if (info.type == APEX_CTL_SIZE) {
      size_t old = get_size(info.name);
      size_t want = old + 1;
      set_size(info.name, want);
      CHECK(get_size(info.name) == want, "%s: wrote %zu, read %zu", info.name, want, get_size(info.name));
      /* Read and write in one call: the old value comes back, the new one is stored. */
      size_t prev = 0;
      len = sizeof prev;
      CHECK(apex_ctl(info.name, &prev, &len, &old, sizeof old) == 0, "%s: read+write", info.name);
      CHECK(prev == want && get_size(info.name) == old, "%s: read+write gave %zu, now %zu", info.name, prev,
            get_size(info.name));
    } else if (info.type == APEX_CTL_BOOL) {
      int old = -1, flipped, now = -1;
      len = sizeof old;
      CHECK(apex_ctl(info.name, &old, &len, NULL, 0) == 0, "%s: read", info.name);
      flipped = !old;
      CHECK(apex_ctl(info.name, NULL, NULL, &flipped, sizeof flipped) == 0, "%s: write", info.name);
      len = sizeof now;
      CHECK(apex_ctl(info.name, &now, &len, NULL, 0) == 0 && now == flipped, "%s: wrote %d, read %d", info.name,
            flipped, now);
      CHECK(apex_ctl(info.name, NULL, NULL, &old, sizeof old) == 0, "%s: restore", info.name);
    } else {
      CHECK(0, "%s: writable key of type %d has no round-trip test", info.name, info.type);
    }
  }
  CHECK(writable >= 3, "only %zu writable options", writable);

  /* The TLS model of the library these tests link (libapexalloc.so). */
  const char *tls = NULL;
  len = sizeof tls;
  CHECK(apex_ctl("opt.tls_model", &tls, &len, NULL, 0) == 0, "opt.tls_model");
  CHECK(strcmp(tls, "initial-exec") == 0, "libapexalloc.so reports opt.tls_model = \"%s\"", tls);

  /* stats.reset: the peak starts again from what is mapped now. */
  void *big = apex_malloc((size_t)64 << 20);
  CHECK(big != NULL, "64 MiB");
  apex_free(big);
  apex_collect();
  size_t mapped = get_size("stats.mapped"), peak = get_size("stats.peak");
  CHECK(peak >= mapped + ((size_t)32 << 20), "peak %zu should remember the 64 MiB object (mapped %zu)", peak, mapped);
  CHECK(apex_ctl("stats.reset", NULL, NULL, NULL, 0) == 0, "stats.reset");
  peak = get_size("stats.peak");
  CHECK(peak <= get_size("stats.mapped") + ((size_t)1 << 20), "after stats.reset: peak %zu, mapped %zu", peak,
        get_size("stats.mapped"));

  /* The options steer the allocator. */
  size_t old_huge_cache = get_size("opt.huge_cache_bytes");
  set_size("opt.huge_cache_bytes", 0);
  mapped = get_size("stats.mapped");
  void *h = apex_malloc((size_t)8 << 20);
  CHECK(h != NULL, "8 MiB");
  CHECK(get_size("stats.mapped") >= mapped + ((size_t)8 << 20), "an 8 MiB object is not mapped?");
  apex_free(h);
  CHECK(get_size("stats.mapped") < mapped + ((size_t)1 << 20),
        "with opt.huge_cache_bytes = 0 a freed huge object stayed mapped (%zu -> %zu)", mapped, get_size("stats.mapped"));
  set_size("opt.huge_cache_bytes", old_huge_cache);

  size_t old_cache = get_size("opt.superblock_cache");
  set_size("opt.superblock_cache", 0);
  enum { N = 4000 };
  static void *objects[N];
  for (size_t i = 0; i < N; i++) CHECK((objects[i] = apex_malloc(2048)) != NULL, "apex_malloc(2048)");
  size_t superblocks = get_size("stats.superblocks");
  for (size_t i = 0; i < N; i++) apex_free(objects[i]);
  apex_collect();
  size_t after = get_size("stats.superblocks");
  CHECK(after < superblocks, "with opt.superblock_cache = 0, freeing 8 MiB of objects and collecting kept %zu of "
        "%zu superblocks", after, superblocks);
  set_size("opt.superblock_cache", old_cache);

  printf("ctl_options_round_trip: %zu writable options OK\n", writable);
  return 0;
}
