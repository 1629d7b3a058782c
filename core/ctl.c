/*
 * ctl.c — the key registry: every named statistic, option and command of apex_ctl, the run-time
 * options themselves (g_opt) and reading them from the environment at start-up.
 *
 * Owns: g_opt and its defaults, options_init, the registry table, apex_ctl, apex_ctl_count,
 *       apex_ctl_info, stats_reset_peak.
 * Must never: compute a statistic itself (values come from apex_stats_get and its siblings, never
 * from walking memory here); allocate or use stdio in options_init, which runs inside the
 * allocator's own initialization.
 *
 * One table drives everything: apex_ctl looks keys up in it, options_init reads the environment
 * variables it names, and tests/gen_ctl_doc.c prints it as the key table of docs/API.md. A new key
 * is one line here and appears in all three.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

apex_options_t g_opt = {
  .superblock_cache = 8,
  .huge_cache_bytes = (size_t)32 * 1024 * 1024,
  .quarantine_bytes = (size_t)256 * 1024,
  .decay_ms = 1000,
  .heap_dirty_max = (size_t)8 * 1024 * 1024,
  .purge_madv_free = 0,
  .purge_thread = 1,
  .thp = 0,
  .secure = 1,
  .zero_on_free = 0,
  .show_stats = 0,
  .heap_map = "",
};

/* mapped_peak starts again from what is mapped now (the command "stats.reset"). */
void stats_reset_peak(void) {
  atomic_store_explicit(&g_mapped_peak, atomic_load_explicit(&g_mapped_bytes, memory_order_relaxed),
                        memory_order_relaxed);
}

/* ---- The registry ---------------------------------------------------------------------------- */
typedef struct ctl_key_s ctl_key_t;
/* Reads the value of key (index: the <i> of a family) into out, which has the type's size. */
typedef int (*ctl_get_fn)(const ctl_key_t *key, size_t index, void *out);
/* Stores a value (options; `in` has the type's size) or runs a command (`in` is NULL). Also used
 * by options_init, so a read-only option can still come from the environment. */
typedef int (*ctl_set_fn)(const ctl_key_t *key, const void *in);

struct ctl_key_s {
  const char *name;
  int type;                     /* APEX_CTL_* */
  const char *unit;
  bool writable;                /* apex_ctl may write it (a run-time option or a command) */
  const char *env;              /* environment variable read at start-up, or NULL */
  const char *description;
  size_t index_count;           /* > 0 for a "<i>" family */
  ctl_get_fn get;               /* NULL for commands */
  ctl_set_fn set;               /* NULL for values that can be neither written nor set from env */
  size_t field;                 /* offset of the value in its struct (statistics, options), or a constant */
  size_t max;                   /* largest value a size option accepts */
};

static int get_version(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
  *(const char **)out = apex_version_string();
  return 0;
}

static size_t field_of(const void *record, size_t offset) {
  size_t v;
  memcpy(&v, (const char *)record + offset, sizeof v);
  return v;
}

static int get_global(const ctl_key_t *key, size_t index, void *out) {
  (void)index;
  apex_stats_t s;
  int err = apex_stats_get(&s, sizeof s);
  if (err == 0) *(size_t *)out = field_of(&s, key->field);
  return err;
}

static int get_thread(const ctl_key_t *key, size_t index, void *out) {
  (void)index;
  apex_stats_t s;
  int err = apex_thread_stats_get(&s, sizeof s);
  if (err == 0) *(size_t *)out = field_of(&s, key->field);
  return err;
}

static int get_bin(const ctl_key_t *key, size_t index, void *out) {
  apex_bin_stats_t s;
  int err = apex_bin_stats_get(index, &s, sizeof s);
  if (err == 0) *(size_t *)out = field_of(&s, key->field);
  return err;
}

static _Atomic size_t *option_size(const ctl_key_t *key) {
  return (_Atomic size_t *)((char *)&g_opt + key->field);
}

static int get_opt_size(const ctl_key_t *key, size_t index, void *out) {
  (void)index;
  *(size_t *)out = atomic_load_explicit(option_size(key), memory_order_relaxed);
  return 0;
}

static int set_opt_size(const ctl_key_t *key, const void *in) {
  size_t v = *(const size_t *)in;
  if (v > key->max) return EINVAL;
  /* Hardened mode keeps no freed huge mapping: each has a guard page behind it (security.c). */
  if (key->field == offsetof(apex_options_t, huge_cache_bytes) && g_hardened && v != 0) return EPERM;
  atomic_store_explicit(option_size(key), v, memory_order_relaxed);
  return 0;
}

/* show_stats is a plain int read once at exit; the __atomic builtins keep a write from another
 * thread race-free without changing its type. */
static int get_show_stats(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
  *(int *)out = __atomic_load_n(&g_opt.show_stats, __ATOMIC_RELAXED);
  return 0;
}


static int set_show_stats(const ctl_key_t *key, const void *in) {
  (void)key;
  int v = *(const int *)in;
  if (v != 0 && v != 1) return EINVAL;
  if (v) report_keep_stderr();
  __atomic_store_n(&g_opt.show_stats, v, __ATOMIC_RELAXED);
  return 0;
}

static int get_heap_map(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
  *(const char **)out = g_opt.heap_map;
  return 0;
}

/* Only from the environment, before any thread could read it: reading hands out a pointer to the
 * buffer itself, so it must not change afterwards. */
static int set_heap_map(const ctl_key_t *key, const void *in) {
  (void)key;
  const char *path = *(const char *const *)in;
  size_t len = strlen(path);
  if (len >= sizeof g_opt.heap_map) return EINVAL;
  memcpy(g_opt.heap_map, path, len + 1);
  return 0;
}

/* The TLS model is chosen at compile time by the same condition as APEX_TLS in internal.h. */
static int get_tls_model(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
#if defined(APEX_EMBED_TLS) || !defined(APEX_OVERRIDE)
  *(const char **)out = "global-dynamic";
#else
  *(const char **)out = "initial-exec";
#endif
  return 0;
}

/* The security level and zero-on-free are fixed before the first allocation (from the
 * environment): changing them under live allocations would break the hardened mode's layout. */
static int get_secure(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
  *(size_t *)out = (size_t)g_secure_level;
  return 0;
}

static int set_secure(const ctl_key_t *key, const void *in) {
  (void)key;
  size_t v = *(const size_t *)in;
  if (v > 2) return EINVAL;
  g_opt.secure = (int)v;
  return 0;
}

static int get_zero_on_free(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
  *(int *)out = g_opt.zero_on_free;
  return 0;
}

static int set_zero_on_free(const ctl_key_t *key, const void *in) {
  (void)key;
  int v = *(const int *)in;
  if (v != 0 && v != 1) return EINVAL;
  g_opt.zero_on_free = v;
  return 0;
}

/* Run-time switches (ints read with __atomic builtins by the core): 0 or 1. */
static int get_opt_bool(const ctl_key_t *key, size_t index, void *out) {
  (void)index;
  *(int *)out = __atomic_load_n((int *)((char *)&g_opt + key->field), __ATOMIC_RELAXED);
  return 0;
}

static int set_opt_bool(const ctl_key_t *key, const void *in) {
  int v = *(const int *)in;
  if (v != 0 && v != 1) return EINVAL;
  __atomic_store_n((int *)((char *)&g_opt + key->field), v, __ATOMIC_RELAXED);
  return 0;
}

static int get_purged(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
  *(size_t *)out = atomic_load_explicit(&g_purged_bytes, memory_order_relaxed);
  return 0;
}

static int get_purge_thread(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
  *(int *)out = purger_running() ? 1 : 0;
  return 0;
}

static int get_numa_nodes(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
  *(size_t *)out = g_numa_nodes;
  return 0;
}

static int get_numa_node(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
  *(size_t *)out = numa_current_node();
  return 0;
}

/* From the environment only: the per-node caches are sized at start. */
static int set_numa_nodes_opt(const ctl_key_t *key, const void *in) {
  (void)key;
  size_t v = *(const size_t *)in;
  if (v > NUMA_MAX_NODES) return EINVAL;
  g_opt.numa_nodes = v;
  return 0;
}

static int get_numa_nodes_opt(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
  *(size_t *)out = g_opt.numa_nodes;
  return 0;
}

static int get_thp_mode(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
  *(const char **)out = thp_mode_name();
  return 0;
}

static int get_thp_bytes(const ctl_key_t *key, size_t index, void *out) {
  (void)key; (void)index;
  *(size_t *)out = thp_process_bytes();
  return 0;
}

static int get_constant(const ctl_key_t *key, size_t index, void *out) {
  (void)index;
  *(size_t *)out = key->field;
  return 0;
}

static int run_stats_reset(const ctl_key_t *key, const void *in) {
  (void)key; (void)in;
  stats_reset_peak();
  return 0;
}

static int run_collect(const ctl_key_t *key, const void *in) {
  (void)key; (void)in;
  apex_collect();
  return 0;
}

#define STAT(name, unit, field, description) \
  { name, APEX_CTL_SIZE, unit, false, NULL, description, 0, get_global, NULL, offsetof(apex_stats_t, field), 0 }
#define THREAD_STAT(name, unit, field, description) \
  { name, APEX_CTL_SIZE, unit, false, NULL, description, 0, get_thread, NULL, offsetof(apex_stats_t, field), 0 }
#define BIN_STAT(name, unit, field, description) \
  { name, APEX_CTL_SIZE, unit, false, NULL, description, APEX_BIN_COUNT, get_bin, NULL, \
    offsetof(apex_bin_stats_t, field), 0 }
#define OPT_SIZE(name, unit, env, field, max, description) \
  { name, APEX_CTL_SIZE, unit, true, env, description, 0, get_opt_size, set_opt_size, \
    offsetof(apex_options_t, field), max }
#define OPT_BOOL(name, env, field, description) \
  { name, APEX_CTL_BOOL, "", true, env, description, 0, get_opt_bool, set_opt_bool, offsetof(apex_options_t, field), 1 }
#define CONSTANT(name, unit, value, description) \
  { name, APEX_CTL_SIZE, unit, false, NULL, description, 0, get_constant, NULL, value, 0 }
#define COMMAND(name, run, description) \
  { name, APEX_CTL_COMMAND, "", true, NULL, description, 0, NULL, run, 0, 0 }

static const ctl_key_t g_keys[] = {
  { "version", APEX_CTL_STRING, "", false, NULL, "library version, e.g. \"0.1.0\"", 0, get_version, NULL, 0, 0 },

  STAT("stats.allocated", "bytes", allocated, "bytes in live allocations (usable sizes)"),
  STAT("stats.active", "bytes", active, "bytes of slices given to blocks, plus huge mappings"),
  STAT("stats.resident", "bytes", resident, "estimate of bytes backed by memory (pages touched and not given back)"),
  STAT("stats.mapped", "bytes", mapped, "bytes currently mapped from the operating system"),
  STAT("stats.metadata", "bytes", metadata, "bytes of allocator metadata (superblock headers, heaps)"),
  STAT("stats.peak", "bytes", mapped_peak, "highest value stats.mapped has had (since start or stats.reset)"),
  STAT("stats.allocated_huge", "bytes", allocated_huge, "of stats.allocated: huge objects in their own mappings"),
  STAT("stats.superblocks", "count", superblocks, "4 MiB superblocks currently mapped (owned or cached)"),
  STAT("stats.heaps", "count", heaps, "heaps created so far (live, abandoned or reusable)"),
  STAT("stats.heaps_abandoned", "count", heaps_abandoned, "heaps whose thread has exited, waiting to be adopted"),
  STAT("stats.remote_frees", "count", remote_frees, "chunks freed by a thread other than their owner (collected so far)"),
  STAT("stats.requested", "bytes", requested, "cumulative bytes asked for by malloc-family calls"),
  STAT("stats.requested_usable", "bytes", requested_usable, "cumulative usable bytes handed out for those requests"),
  STAT("stats.free_in_blocks", "bytes", free_in_blocks, "bytes of free chunks sitting in blocks"),
  STAT("stats.blocks", "count", blocks, "blocks in use"),
  STAT("stats.blocks_partial", "count", blocks_partial, "blocks neither full nor empty"),
  STAT("stats.large.count", "count", large_count, "live large objects (runs of whole slices)"),
  STAT("stats.large.allocated", "bytes", large_allocated, "bytes of live large objects"),
  STAT("stats.huge.count", "count", huge_count, "live huge objects (their own mappings)"),
  STAT("stats.huge.allocated", "bytes", allocated_huge, "bytes of live huge objects"),
  { "stats.purged", APEX_CTL_SIZE, "bytes", false, NULL,
    "cumulative bytes given back to the OS while staying mapped (madvise) or from cached huge mappings", 0,
    get_purged, NULL, 0, 0 },
  { "stats.purge_thread", APEX_CTL_BOOL, "", false, NULL,
    "1 while the background purge thread runs (started once memory has entered a cache; never with opt.purge_thread 0)", 0,
    get_purge_thread, NULL, 0, 0 },
  { "stats.thp_bytes", APEX_CTL_SIZE, "bytes", false, NULL,
    "bytes of the process backed by transparent huge pages (AnonHugePages of /proc/self/smaps_rollup)", 0,
    get_thp_bytes, NULL, 0, 0 },
  { "os.thp_mode", APEX_CTL_STRING, "", false, NULL,
    "system transparent huge page mode read at start: \"always\", \"madvise\", \"never\" or \"unknown\"", 0,
    get_thp_mode, NULL, 0, 0 },
  { "os.numa_nodes", APEX_CTL_SIZE, "count", false, NULL,
    "NUMA nodes the allocator places superblocks on (from /sys/devices/system/node/online, or opt.numa_nodes)", 0,
    get_numa_nodes, NULL, 0, 0 },
  { "thread.numa_node", APEX_CTL_SIZE, "index", false, NULL,
    "NUMA node of the calling thread's CPU (getcpu); 0 with one node", 0, get_numa_node, NULL, 0, 0 },

  BIN_STAT("stats.bins.<i>.size", "bytes", chunk_size, "object size of size class <i> (0 for bin 0: large objects)"),
  BIN_STAT("stats.bins.<i>.count", "count", count, "live objects of the class"),
  BIN_STAT("stats.bins.<i>.blocks", "count", blocks, "blocks serving the class"),
  BIN_STAT("stats.bins.<i>.blocks_partial", "count", blocks_partial, "of those, blocks neither full nor empty"),
  BIN_STAT("stats.bins.<i>.free_bytes", "bytes", free_bytes, "bytes held free in the class's blocks"),

  THREAD_STAT("thread.allocated", "bytes", thread_allocated, "cumulative bytes handed out by the calling thread's default heap"),
  THREAD_STAT("thread.deallocated", "bytes", thread_deallocated, "cumulative bytes returned to the calling thread's default heap"),

  OPT_SIZE("opt.superblock_cache", "count", "APEX_SUPERBLOCK_CACHE", superblock_cache, 65536,
           "empty superblocks kept mapped for reuse (0 .. 65536)"),
  OPT_SIZE("opt.huge_cache_bytes", "bytes", "APEX_HUGE_CACHE_BYTES", huge_cache_bytes, HUGE_MAX,
           "bytes of freed huge mappings kept for reuse (k/m/g suffixes); hardened mode: 0, other values EPERM"),
  OPT_SIZE("opt.quarantine_bytes", "bytes", "APEX_QUARANTINE_BYTES", quarantine_bytes, HUGE_MAX,
           "hardened mode: bytes of freed chunks each thread holds back before reuse (k/m/g suffixes)"),
  OPT_SIZE("opt.decay_ms", "ms", "APEX_DECAY_MS", decay_ms, (size_t)86400000,
           "cached empty superblocks and huge mappings go back to the OS after this many ms; 0: at once"),
  OPT_SIZE("opt.heap_dirty_max", "bytes", "APEX_HEAP_DIRTY_MAX", heap_dirty_max, HUGE_MAX,
           "free slices a heap keeps backed by memory before its owner purges them (k/m/g suffixes)"),
  { "opt.numa_nodes", APEX_CTL_SIZE, "count", false, "APEX_NUMA_NODES",
    "override of the NUMA node count, e.g. to test per-node caches on one node (0: detect; at most 64); set before start", 0,
    get_numa_nodes_opt, set_numa_nodes_opt, 0, 0 },
  OPT_BOOL("opt.purge_madv_free", "APEX_PURGE_MADV_FREE",  purge_madv_free,
           "purge with MADV_FREE (pages taken only under memory pressure) instead of MADV_DONTNEED (0 or 1)"),
  OPT_BOOL("opt.purge_thread", "APEX_PURGE_THREAD", purge_thread,
           "allow the background purge thread (0 or 1); 0: the process stays single-threaded and decay runs on allocator activity"),
  OPT_BOOL("opt.thp", "APEX_THP", thp,
           "back new superblocks with transparent huge pages (MADV_HUGEPAGE); off: MADV_NOHUGEPAGE if THP is \"always\""),
  { "opt.secure", APEX_CTL_SIZE, "level", false, "APEX_SECURE",
    "security level: 1 default checks, 2 hardened (quarantine, canaries, guard pages); set before start", 0,
    get_secure, set_secure, 0, 0 },
  { "opt.zero_on_free", APEX_CTL_BOOL, "", false, "APEX_ZERO_ON_FREE",
    "hardened mode: fill freed chunks with zeros instead of a pattern (0 or 1); set before start", 0,
    get_zero_on_free, set_zero_on_free, 0, 0 },
  { "opt.show_stats", APEX_CTL_BOOL, "", true, "APEX_SHOW_STATS", "print statistics to stderr at exit (0 or 1)", 0,
    get_show_stats, set_show_stats, 0, 0 },
  { "opt.heap_map", APEX_CTL_STRING, "", false, "APEX_HEAP_MAP",
    "write the heap map to this file at exit (SVG if it ends in .svg, else JSON); \"\" for none", 0,
    get_heap_map, set_heap_map, 0, 0 },
  { "opt.tls_model", APEX_CTL_STRING, "", false, NULL,
    "TLS model the library was built with: \"initial-exec\" (libapexalloc.so) or \"global-dynamic\" (dlopen-safe)", 0,
    get_tls_model, NULL, 0, 0 },
  CONSTANT("opt.small_max", "bytes", SMALL_MAX, "largest request served from the size classes"),
  CONSTANT("opt.large_max", "bytes", LARGE_MAX, "largest request served from a run of slices; above it, a huge mapping"),

  COMMAND("stats.reset", run_stats_reset, "start stats.peak again from the current stats.mapped"),
  COMMAND("heap.collect", run_collect, "free the memory of exited threads' heaps and return cached memory (apex_collect)"),
};

#define KEY_COUNT (sizeof g_keys / sizeof g_keys[0])

static size_t type_size(int type) {
  switch (type) {
    case APEX_CTL_BOOL:   return sizeof(int);
    case APEX_CTL_SIZE:   return sizeof(size_t);
    case APEX_CTL_STRING: return sizeof(const char *);
    default:              return 0;
  }
}

/* Matches `name` against a registry name, where "<i>" stands for a decimal index (no sign, no
 * leading zeros). */
static bool name_matches(const char *pattern, const char *name, size_t *index) {
  while (*pattern) {
    if (strncmp(pattern, "<i>", 3) == 0) {
      if (*name < '0' || *name > '9' || (name[0] == '0' && name[1] >= '0' && name[1] <= '9')) return false;
      size_t v = 0;
      for (; *name >= '0' && *name <= '9'; name++) {
        if (v > 1000000) return false;          /* far beyond any family: no overflow below */
        v = v * 10 + (size_t)(*name - '0');
      }
      *index = v;
      pattern += 3;
      continue;
    }
    if (*pattern++ != *name++) return false;
  }
  return *name == '\0';
}

static const ctl_key_t *key_lookup(const char *name, size_t *index) {
  for (size_t i = 0; i < KEY_COUNT; i++) {
    *index = 0;
    if (name_matches(g_keys[i].name, name, index))
      return g_keys[i].index_count == 0 || *index < g_keys[i].index_count ? &g_keys[i] : NULL;
  }
  return NULL;
}

apex_export int apex_ctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
  if (name == NULL) return EINVAL;
  apex_ensure_init();
  size_t index;
  const ctl_key_t *key = key_lookup(name, &index);
  if (key == NULL) return ENOENT;

  if (key->type == APEX_CTL_COMMAND) {
    if (oldp != NULL || oldlenp != NULL || newp != NULL || newlen != 0) return EINVAL;
    return key->set(key, NULL);
  }

  size_t size = type_size(key->type);
  bool writing = newp != NULL || newlen != 0;
  if (writing && !key->writable) return EPERM;
  if (writing && (newp == NULL || newlen != size)) return EINVAL;
  if (oldp != NULL && (oldlenp == NULL || *oldlenp != size)) return EINVAL;

  /* Read first, write second, copy out last: a failed write leaves *oldp untouched. */
  _Alignas(max_align_t) char old[sizeof(size_t) > sizeof(void *) ? sizeof(size_t) : sizeof(void *)];
  if (oldp != NULL) {
    int err = key->get(key, index, old);
    if (err) return err;
  }
  if (writing) {
    int err = key->set(key, newp);
    if (err) return err;
  }
  if (oldp != NULL) memcpy(oldp, old, size);
  return 0;
}

apex_export size_t apex_ctl_count(void) { return KEY_COUNT; }

apex_export int apex_ctl_info(size_t index, apex_ctl_info_t *out, size_t size) {
  if (index >= KEY_COUNT || out == NULL || size < sizeof(size_t) || size > sizeof(apex_ctl_info_t)) return EINVAL;
  const ctl_key_t *key = &g_keys[index];
  apex_ctl_info_t info = {
    .size = size,
    .name = key->name,
    .type = key->type,
    .writable = key->writable,
    .unit = key->unit,
    .description = key->description,
    .index_count = key->index_count,
    .env = key->env,
  };
  memcpy(out, &info, size);
  return 0;
}

/* The environment variable of registry entry `index`, or NULL (also apex_ctl_info's `env`). */

const char *ctl_key_env(size_t index) { return index < KEY_COUNT ? g_keys[index].env : NULL; }

/* ---- Options from the environment ------------------------------------------------------------
 * Runs inside global_init: getenv only, numbers parsed by hand, a complaint is one write(2). */
static char *put_str(char *out, char *end, const char *s) {
  while (*s && out < end) *out++ = *s++;
  return out;
}

static void warn_ignored(const char *env, const char *value, const char *why) {
  char line[320];
  char *end = line + sizeof line - 1;
  char *out = put_str(line, end, "apexalloc: ignoring ");
  out = put_str(out, end, env);
  out = put_str(out, end, "=\"");
  char shown[65];
  size_t n = strlen(value);
  if (n > 64) n = 64;
  memcpy(shown, value, n);
  shown[n] = '\0';
  out = put_str(out, end, shown);
  out = put_str(out, end, "\": ");
  out = put_str(out, end, why);
  out = put_str(out, end, "; keeping the default\n");
  if (out == end) out[-1] = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, (size_t)(out - line));
  (void)ignored;
}

/* Decimal digits, then for byte sizes an optional k, m or g (binary multiples). */
static bool parse_size(const char *s, bool suffixes, size_t *out) {
  if (*s < '0' || *s > '9') return false;
  size_t v = 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (v > (SIZE_MAX - 9) / 10) return false;
    v = v * 10 + (size_t)(*s - '0');
  }
  unsigned shift = 0;
  if (suffixes && *s) {
    switch (*s++) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      default: return false;
    }
  }
  if (*s != '\0' || (shift && v > (SIZE_MAX >> shift))) return false;
  *out = v << shift;
  return true;
}

void options_init(void) {
  for (size_t i = 0; i < KEY_COUNT; i++) {
    const ctl_key_t *key = &g_keys[i];
    if (key->env == NULL) continue;
    const char *value = getenv(key->env);
    if (value == NULL) continue;
    switch (key->type) {
      case APEX_CTL_SIZE: {
        bool bytes = strcmp(key->unit, "bytes") == 0;
        size_t v;
        if (!parse_size(value, bytes, &v))
          warn_ignored(key->env, value, bytes ? "not a size (digits, optional k/m/g)" : "not a number");
        else if (key->set(key, &v) != 0)
          warn_ignored(key->env, value, "out of range");
        break;
      }
      case APEX_CTL_BOOL: {
        int v = value[0] == '1' ? 1 : 0;
        if ((value[0] != '0' && value[0] != '1') || value[1] != '\0')
          warn_ignored(key->env, value, "expected 0 or 1");
        else
          key->set(key, &v);
        break;
      }
      case APEX_CTL_STRING:
        if (key->set(key, &value) != 0) warn_ignored(key->env, value, "too long");
        break;
      default:
        break;
    }
  }
}
