/*
 * Pins: every entry of the apex_ctl registry (apex_ctl_count / apex_ctl_info) answers apex_ctl as
 * it says: a value key reads with exactly its type's size (int for BOOL, size_t for SIZE, a
 * non-NULL static string for STRING), families ("<i>") read at the first and last index and give
 * ENOENT one past it, a command runs with no value. The entries are well formed (a name, a unit and
 * a one-line description; "<i>" exactly when index_count > 0), names are unique, the keys the docs
 * promise exist, and the figures are live (stats.allocated follows an allocation).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "apexalloc.h"
#include "check.h"

static size_t type_size(int type) {
  switch (type) {
    case APEX_CTL_BOOL:   return sizeof(int);
    case APEX_CTL_SIZE:   return sizeof(size_t);
    case APEX_CTL_STRING: return sizeof(const char *);
    default:              return 0;
  }
}

/* "stats.bins.<i>.count" with <i> replaced by `index`. */
static void expand(char *out, size_t cap, const char *pattern, size_t index) {
  const char *at = strstr(pattern, "<i>");
  CHECK(at != NULL, "%s: no <i>", pattern);
  snprintf(out, cap, "%.*s%zu%s", (int)(at - pattern), pattern, index, at + 3);
}

static void read_key(const apex_ctl_info_t *info, const char *name) {
  if (info->type == APEX_CTL_COMMAND) {
    int err = apex_ctl(name, NULL, NULL, NULL, 0);
    CHECK(err == 0, "command %s: apex_ctl returned %d", name, err);
    return;
  }
  union { int b; size_t z; const char *s; unsigned char bytes[16]; } v;
  memset(&v, 0xA5, sizeof v);
  size_t len = type_size(info->type);
  int err = apex_ctl(name, &v, &len, NULL, 0);
  CHECK(err == 0, "%s: read with its documented size %zu gave %d", name, type_size(info->type), err);
  CHECK(len == type_size(info->type), "%s: *oldlenp changed to %zu", name, len);
  if (info->type == APEX_CTL_BOOL) CHECK(v.b == 0 || v.b == 1, "%s: bool reads %d", name, v.b);
  if (info->type == APEX_CTL_STRING) {
    CHECK(v.s != NULL, "%s: string reads NULL", name);
    const char *again = NULL;
    len = sizeof again;
    CHECK(apex_ctl(name, &again, &len, NULL, 0) == 0 && again == v.s, "%s: the string is not static", name);
  }
}

static size_t read_size(const char *name) {
  size_t v = 0, len = sizeof v;
  int err = apex_ctl(name, &v, &len, NULL, 0);
  CHECK(err == 0, "%s: %d", name, err);
  return v;
}

int main(void) {
  size_t count = apex_ctl_count();
  CHECK(count >= 35, "only %zu registry entries", count);
  size_t families = 0, commands = 0;
  for (size_t i = 0; i < count; i++) {
    apex_ctl_info_t info;
    memset(&info, 0, sizeof info);
    CHECK(apex_ctl_info(i, &info, sizeof info) == 0, "apex_ctl_info(%zu)", i);
    CHECK(info.size == sizeof info, "entry %zu: size %zu", i, info.size);
    CHECK(info.name != NULL && info.name[0] != '\0', "entry %zu has no name", i);
    CHECK(info.unit != NULL, "%s: unit is NULL", info.name);
    CHECK(info.description != NULL && info.description[0] != '\0' && strchr(info.description, '\n') == NULL,
          "%s: description must be one non-empty line", info.name);
    CHECK(info.type >= APEX_CTL_BOOL && info.type <= APEX_CTL_COMMAND, "%s: type %d", info.name, info.type);
    CHECK(info.writable == 0 || info.writable == 1, "%s: writable %d", info.name, info.writable);
    CHECK(info.type != APEX_CTL_COMMAND || info.writable, "%s: a command must be writable (it runs)", info.name);
    CHECK((strstr(info.name, "<i>") != NULL) == (info.index_count > 0), "%s: index_count %zu", info.name,
          info.index_count);
    for (size_t k = 0; k < i; k++) {
      apex_ctl_info_t other;
      CHECK(apex_ctl_info(k, &other, sizeof other) == 0, "apex_ctl_info(%zu)", k);
      CHECK(strcmp(other.name, info.name) != 0, "%s is registered twice", info.name);
    }
    commands += info.type == APEX_CTL_COMMAND;
    if (info.index_count > 0) {
      families++;
      char name[128];
      expand(name, sizeof name, info.name, 0);
      read_key(&info, name);
      expand(name, sizeof name, info.name, info.index_count - 1);
      read_key(&info, name);
      expand(name, sizeof name, info.name, info.index_count);
      size_t v, len = sizeof v;
      CHECK(apex_ctl(name, &v, &len, NULL, 0) == ENOENT, "%s: one past the last index must be ENOENT", name);
    } else {
      read_key(&info, info.name);
    }
  }
  CHECK(families >= 5 && commands >= 2, "%zu families, %zu commands", families, commands);

  /* The keys the documentation promises (docs/API.md). */
  static const char *const promised[] = {
    "version", "stats.allocated", "stats.active", "stats.resident", "stats.mapped", "stats.metadata",
    "stats.peak", "stats.allocated_huge", "stats.superblocks", "stats.heaps", "stats.heaps_abandoned",
    "stats.remote_frees", "stats.requested", "stats.requested_usable", "stats.free_in_blocks", "stats.blocks",
    "stats.blocks_partial", "stats.large.count", "stats.large.allocated", "stats.huge.count",
    "stats.huge.allocated", "stats.bins.0.size", "stats.bins.88.count", "stats.bins.5.blocks",
    "stats.bins.5.blocks_partial", "stats.bins.5.free_bytes", "thread.allocated", "thread.deallocated",
    "opt.superblock_cache", "opt.huge_cache_bytes", "opt.show_stats", "opt.heap_map", "opt.tls_model",
    "opt.small_max", "opt.large_max",
  };
  for (size_t i = 0; i < sizeof promised / sizeof promised[0]; i++) {
    size_t buf[2], len = sizeof buf;   /* a wrong size: only existence is checked here */
    int err = apex_ctl(promised[i], buf, &len, NULL, 0);
    CHECK(err != ENOENT, "%s is missing from the registry", promised[i]);
  }
  CHECK(apex_ctl("stats.reset", NULL, NULL, NULL, 0) == 0, "stats.reset");
  CHECK(apex_ctl("heap.collect", NULL, NULL, NULL, 0) == 0, "heap.collect");

  /* Values are live, and agree with apex_stats_get / apex_bin_stats_get. */
  size_t before = read_size("stats.allocated");
  size_t thread_before = read_size("thread.allocated");
  void *p = apex_malloc(100000);
  CHECK(p != NULL, "apex_malloc");
  size_t after = read_size("stats.allocated");
  CHECK(after >= before + 100000, "stats.allocated %zu -> %zu after a 100000-byte allocation", before, after);
  CHECK(read_size("thread.allocated") >= thread_before + 100000, "thread.allocated did not grow");
  apex_stats_t s;
  CHECK(apex_stats_get(&s, sizeof s) == 0, "apex_stats_get");
  CHECK(read_size("stats.superblocks") == s.superblocks, "stats.superblocks disagrees with apex_stats_get");
  apex_bin_stats_t b;
  CHECK(apex_bin_stats_get(3, &b, sizeof b) == 0, "apex_bin_stats_get");
  CHECK(read_size("stats.bins.3.size") == b.chunk_size && b.chunk_size == 48, "stats.bins.3.size = %zu",
        read_size("stats.bins.3.size"));
  CHECK(read_size("opt.small_max") == 128 * 1024, "opt.small_max");
  CHECK(read_size("stats.peak") >= read_size("stats.mapped"), "stats.peak below stats.mapped");
  apex_free(p);

  const char *version = NULL;
  size_t len = sizeof version;
  CHECK(apex_ctl("version", &version, &len, NULL, 0) == 0 && strcmp(version, apex_version_string()) == 0,
        "version key");
  printf("ctl_every_key_readable: %zu entries (%zu families, %zu commands) OK\n", count, families, commands);
  return 0;
}
