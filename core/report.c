/*
 * report.c — what a person reads about the allocator: the statistics as text or JSON
 * (apex_stats_print), the heap map as JSON or an SVG picture (apex_heap_map), and the reports
 * written at exit when APEX_SHOW_STATS / APEX_HEAP_MAP ask for them.
 *
 * Owns: the output formats and the snapshot of superblocks the heap map is drawn from.
 * Must never: call the caller's write function while holding an allocator lock (it may well
 * allocate: a Python callback does), or allocate through ApexAlloc inside a walk callback.
 *
 * So the heap map is made in two steps: walk the superblocks under the walk lock, copying what is
 * drawn into a private mapping (plain mmap, kept out of the statistics it reports), then format
 * from that copy with no lock held. Figures come from apex_stats_get and its siblings; only the
 * map reads block descriptors, and it reads them racily on purpose (APEX_RACY_READER): a block
 * its owner is changing is drawn as it was a moment ago.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Output: a stack buffer flushed through the caller's write function ---------------------- */
typedef struct {
  apex_write_fn write;
  void *opaque;
  size_t len;
  char buf[4096];
} out_t;

static void write_fd(void *opaque, const char *text, size_t len) {
  int fd = *(const int *)opaque;
  while (len > 0) {
    ssize_t n = write(fd, text, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text += n;
    len -= (size_t)n;
  }
}

static int g_stderr_fd = STDERR_FILENO;

static void out_init(out_t *o, apex_write_fn write_fn, void *opaque) {
  o->write = write_fn != NULL ? write_fn : write_fd;
  o->opaque = write_fn != NULL ? opaque : &g_stderr_fd;
  o->len = 0;
}

static void out_flush(out_t *o) {
  if (o->len > 0) o->write(o->opaque, o->buf, o->len);
  o->len = 0;
}

static void out_bytes(out_t *o, const char *s, size_t n) {
  while (n > 0) {
    if (o->len == sizeof o->buf) out_flush(o);
    size_t room = sizeof o->buf - o->len, take = n < room ? n : room;
    memcpy(o->buf + o->len, s, take);
    o->len += take;
    s += take;
    n -= take;
  }
}

static void out_str(out_t *o, const char *s) { out_bytes(o, s, strlen(s)); }

/* snprintf into a stack buffer: no allocation, and never called under a lock. */
__attribute__((format(printf, 2, 3)))
static void out_fmt(out_t *o, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  out_bytes(o, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* "12.3 MiB": a size for people, with one decimal (integer arithmetic). */
static const char *human_bytes(char buf[48], size_t v) {
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  size_t unit = 0, scale = 1;
  while (unit + 1 < sizeof units / sizeof units[0] && v / scale >= 1024) { scale *= 1024; unit++; }
  if (unit == 0) {
    snprintf(buf, 48, "%zu B", v);
  } else {
    size_t tenths = (size_t)(((unsigned __int128)v * 10 + scale / 2) / scale);
    snprintf(buf, 48, "%zu.%zu %s", tenths / 10, tenths % 10, units[unit]);
  }
  return buf;
}

/* part/whole in tenths of a percent, rounded; 0 when whole is 0. */
static size_t permille(size_t part, size_t whole) {
  if (whole == 0) return 0;
  return (size_t)(((unsigned __int128)part * 1000 + whole / 2) / whole);
}

/* ---- Statistics ------------------------------------------------------------------------------ */
typedef struct { const char *name; size_t offset; const char *what; } stat_field_t;

#define FIELD(f, what) { #f, offsetof(apex_stats_t, f), what }
static const stat_field_t g_fields[] = {
  FIELD(allocated, "bytes in live allocations (usable sizes)"),
  FIELD(allocated_huge, "of which huge objects"),
  FIELD(active, "bytes of slices given to blocks, plus huge mappings"),
  FIELD(resident, "estimate of bytes backed by memory"),
  FIELD(mapped, "bytes mapped from the operating system"),
  FIELD(mapped_peak, "highest `mapped` so far"),
  FIELD(metadata, "bytes of allocator metadata"),
  FIELD(superblocks, "4 MiB superblocks mapped (owned or cached)"),
  FIELD(heaps, "heaps created so far"),
  FIELD(heaps_abandoned, "heaps whose thread has exited"),
  FIELD(remote_frees, "chunks freed by another thread than their owner"),
  FIELD(requested, "cumulative bytes asked for"),
  FIELD(requested_usable, "cumulative usable bytes handed out for them"),
  FIELD(thread_allocated, "cumulative bytes handed out (all heaps)"),
  FIELD(thread_deallocated, "cumulative bytes returned (all heaps)"),
  FIELD(large_count, "live large objects (slice runs)"),
  FIELD(large_allocated, "their bytes"),
  FIELD(huge_count, "live huge objects (own mappings)"),
  FIELD(free_in_blocks, "bytes of free chunks in blocks"),
  FIELD(blocks, "blocks in use"),
  FIELD(blocks_partial, "blocks neither full nor empty"),
};
#define FIELD_COUNT (sizeof g_fields / sizeof g_fields[0])

static bool field_is_bytes(const stat_field_t *f) {
  static const char *const counts[] = { "superblocks", "heaps", "heaps_abandoned", "remote_frees",
                                        "large_count", "huge_count", "blocks", "blocks_partial" };
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
    if (strcmp(f->name, counts[i]) == 0) return false;
  return true;
}

static size_t stat_value(const apex_stats_t *s, const stat_field_t *f) {
  size_t v;
  memcpy(&v, (const char *)s + f->offset, sizeof v);
  return v;
}

/* The heaps a program can hold a handle to (thread default heaps and heaps it created), as seen
 * at one moment; their figures are taken afterwards, without the heaps lock. A new thread marks its
 * heap as a default heap (and a heap links its shared part) after leaving the heaps lock, so those
 * fields are read racily: a heap made at this very moment may be listed a moment stale. */
#define REPORT_HEAPS_MAX 256
typedef struct {
  heap_t *heap[REPORT_HEAPS_MAX];
  bool is_default[REPORT_HEAPS_MAX];
  size_t count, more;
} heap_list_t;

APEX_RACY_READER static void list_heaps(heap_list_t *list) {
  list->count = list->more = 0;
  heaps_lock();
  for (heap_t *h = heaps_first(); h != NULL; h = h->all_next) {
    if (!heap_handle_ok(h) || h->parent != NULL) continue;
    if (list->count == REPORT_HEAPS_MAX) { list->more++; continue; }
    list->is_default[list->count] = h->is_default;
    list->heap[list->count++] = h;
  }
  heaps_unlock();
}

typedef struct {
  apex_stats_t global;
  apex_bin_stats_t bins[APEX_BIN_COUNT];
  heap_list_t heaps;
  apex_stats_t heap_stats[REPORT_HEAPS_MAX];
  bool heap_ok[REPORT_HEAPS_MAX];
} report_t;

static void report_gather(report_t *r) {
  memset(r, 0, sizeof *r);
  apex_stats_get(&r->global, sizeof r->global);
  for (size_t i = 0; i < APEX_BIN_COUNT; i++) apex_bin_stats_get(i, &r->bins[i], sizeof r->bins[i]);
  list_heaps(&r->heaps);
  for (size_t i = 0; i < r->heaps.count; i++)
    r->heap_ok[i] = apex_heap_stats_get(r->heaps.heap[i], &r->heap_stats[i], sizeof r->heap_stats[i]) == 0;
}

static bool bin_shown(const apex_bin_stats_t *b) { return b->blocks != 0 || b->count != 0; }

/* Internal waste: the share of usable bytes handed out that nobody asked for. */
static size_t waste_permille(const apex_stats_t *s) {
  if (s->requested_usable == 0 || s->requested > s->requested_usable) return 0;
  return 1000 - permille(s->requested, s->requested_usable);
}

static void print_text(out_t *o, const report_t *r) {
  const apex_stats_t *s = &r->global;
  char h1[48], h2[48];
  out_fmt(o, "ApexAlloc %s statistics\n\nGlobal\n", apex_version_string());
  for (size_t i = 0; i < FIELD_COUNT; i++) {
    const stat_field_t *f = &g_fields[i];
    size_t v = stat_value(s, f);
    if (field_is_bytes(f))
      out_fmt(o, "  %-20s %16zu  %-11s %s\n", f->name, v, human_bytes(h1, v), f->what);
    else
      out_fmt(o, "  %-20s %16zu  %-11s %s\n", f->name, v, "", f->what);
  }

  out_str(o, "\nSize classes (those with blocks)\n");
  out_fmt(o, "  %4s %10s %10s %7s %8s %12s %10s %7s\n", "bin", "chunk size", "objects", "blocks", "partial",
          "free bytes", "live", "used");
  for (size_t i = 0; i < APEX_BIN_COUNT; i++) {
    const apex_bin_stats_t *b = &r->bins[i];
    if (!bin_shown(b)) continue;
    /* Bin 0 holds large objects, each of its own size: their bytes are in the global figures. */
    size_t live = i == CLASS_LARGE ? s->large_allocated : b->count * b->chunk_size;
    char size_text[24];
    if (i == CLASS_LARGE) snprintf(size_text, sizeof size_text, "large");
    else snprintf(size_text, sizeof size_text, "%zu", b->chunk_size);
    size_t used = permille(live, live + b->free_bytes);
    out_fmt(o, "  %4zu %10s %10zu %7zu %8zu %12zu %10s %5zu.%zu%%\n", i, size_text, b->count, b->blocks,
            b->blocks_partial, b->free_bytes, human_bytes(h1, live), used / 10, used % 10);
  }

  size_t waste = waste_permille(s);
  size_t free_share = permille(s->free_in_blocks, s->active);
  out_str(o, "\nFragmentation\n");
  out_fmt(o, "  %-22s %5zu.%zu%%   1 - requested / requested_usable (%s asked, %s handed out)\n",
          "internal waste", waste / 10, waste % 10, human_bytes(h1, s->requested), human_bytes(h2, s->requested_usable));
  out_fmt(o, "  %-22s %16zu  %s, %zu.%zu%% of active\n", "free bytes in blocks", s->free_in_blocks,
          human_bytes(h1, s->free_in_blocks), free_share / 10, free_share % 10);
  out_fmt(o, "  %-22s %16zu  of %zu blocks in use\n", "partial blocks", s->blocks_partial, s->blocks);

  out_str(o, "\nHeaps (live handles)\n");
  out_fmt(o, "  %-18s %-8s %12s %12s %7s %6s %15s %15s\n", "heap", "kind", "allocated", "active", "blocks",
          "huge", "handed out", "returned");
  for (size_t i = 0; i < r->heaps.count; i++) {
    if (!r->heap_ok[i]) continue;
    const apex_stats_t *hs = &r->heap_stats[i];
    out_fmt(o, "  %-18p %-8s %12zu %12zu %7zu %6zu %15zu %15zu\n", (void *)r->heaps.heap[i],
            r->heaps.is_default[i] ? "default" : "created", hs->allocated, hs->active, hs->blocks, hs->huge_count,
            hs->thread_allocated, hs->thread_deallocated);
  }
  if (r->heaps.more) out_fmt(o, "  ... and %zu more\n", r->heaps.more);
}

static void print_json(out_t *o, const report_t *r) {
  const apex_stats_t *s = &r->global;
  out_fmt(o, "{\"version\":\"%s\",\"global\":{", apex_version_string());
  for (size_t i = 0; i < FIELD_COUNT; i++)
    out_fmt(o, "%s\"%s\":%zu", i ? "," : "", g_fields[i].name, stat_value(s, &g_fields[i]));
  out_str(o, "},\n\"bins\":[");
  bool first = true;
  for (size_t i = 0; i < APEX_BIN_COUNT; i++) {
    const apex_bin_stats_t *b = &r->bins[i];
    if (!bin_shown(b)) continue;
    out_fmt(o, "%s\n {\"bin\":%zu,\"chunk_size\":%zu,\"count\":%zu,\"blocks\":%zu,\"blocks_partial\":%zu,"
            "\"free_bytes\":%zu}", first ? "" : ",", i, b->chunk_size, b->count, b->blocks, b->blocks_partial,
            b->free_bytes);
    first = false;
  }
  out_fmt(o, "],\n\"fragmentation\":{\"internal_waste_permille\":%zu,\"requested\":%zu,\"requested_usable\":%zu,"
          "\"free_in_blocks\":%zu,\"blocks\":%zu,\"blocks_partial\":%zu},\n\"heaps\":[",
          waste_permille(s), s->requested, s->requested_usable, s->free_in_blocks, s->blocks, s->blocks_partial);
  first = true;
  for (size_t i = 0; i < r->heaps.count; i++) {
    if (!r->heap_ok[i]) continue;
    const apex_stats_t *hs = &r->heap_stats[i];
    out_fmt(o, "%s\n {\"address\":\"%p\",\"default\":%s", first ? "" : ",", (void *)r->heaps.heap[i],
            r->heaps.is_default[i] ? "true" : "false");
    for (size_t k = 0; k < FIELD_COUNT; k++)
      out_fmt(o, ",\"%s\":%zu", g_fields[k].name, stat_value(hs, &g_fields[k]));
    out_str(o, "}");
    first = false;
  }
  out_fmt(o, "],\n\"heaps_not_listed\":%zu}\n", r->heaps.more);
}

/* The report is large (the per-heap snapshots): it lives in a private mapping, not on the stack
 * of a thread that may be small, and not in ApexAlloc memory it describes. */
static void *scratch_map(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

apex_export int apex_stats_print(apex_write_fn write_fn, void *opaque, int format) {
  if (format != APEX_FORMAT_TEXT && format != APEX_FORMAT_JSON) return EINVAL;
  int saved = errno;
  report_t *r = scratch_map(sizeof *r);
  if (r == NULL) { errno = saved; return ENOMEM; }
  report_gather(r);
  out_t o;
  out_init(&o, write_fn, opaque);
  if (format == APEX_FORMAT_TEXT) print_text(&o, r); else print_json(&o, r);
  out_flush(&o);
  munmap(r, sizeof *r);
  errno = saved;
  return 0;
}

/* ---- The heap map: a snapshot of every superblock -------------------------------------------- */
typedef struct {
  uint8_t index, slices, cls;
  uint32_t chunk_size, capacity, used;
} map_block_t;

typedef struct {
  uintptr_t address;            /* the superblock, or a huge object's header page */
  uintptr_t heap;               /* owner, 0 for none (a cached superblock) */
  uintptr_t group;              /* the heap it is shown under: the owner, or the heap it serves */
  uint64_t free_slices;
  uintptr_t huge_ptr;           /* huge: the user pointer */
  size_t huge_size, map_size;   /* huge: usable and mapped bytes */
  uint32_t kind;                /* SB_KIND_BLOCKS / SB_KIND_HUGE */
  uint32_t block_count;
  uint32_t gid;                 /* number of its heap in this map (1, 2, ...), 0 for none */
  bool shared, is_default, abandoned;
  map_block_t blocks[SLICES_PER_SB];
} map_sb_t;

/* The order of the output: by heap (in order of first appearance, owner-less last), superblocks
 * before huge objects, then by address. */
typedef struct { uint64_t key; uint32_t index; } map_order_t;

typedef struct {
  map_sb_t *sbs;
  map_order_t *order;           /* count entries, after groups_make */
  size_t count, capacity, missed;
  size_t map_bytes;             /* of the snapshot mapping (records, then the order) */
} snapshot_t;

static void count_one(superblock_t *sb, void *arg) {
  (void)sb;
  ((snapshot_t *)arg)->count++;
}

static void count_one_huge(huge_t *h, void *arg) {
  (void)h;
  ((snapshot_t *)arg)->count++;
}

static map_sb_t *snapshot_slot(snapshot_t *snap) {
  if (snap->count == snap->capacity) { snap->missed++; return NULL; }
  map_sb_t *m = &snap->sbs[snap->count++];
  memset(m, 0, offsetof(map_sb_t, blocks));
  return m;
}

/* Reads heap fields racily: heap structs are never unmapped, and a label a moment stale is fine. */
APEX_RACY_READER static void snapshot_owner(map_sb_t *m, heap_t *heap) {
  m->heap = (uintptr_t)heap;
  m->group = (uintptr_t)heap;
  if (heap == NULL) return;
  heap_t *parent = heap->parent;
  m->shared = parent != NULL;
  if (parent != NULL) m->group = (uintptr_t)parent;
  heap_t *shown = parent != NULL ? parent : heap;
  m->is_default = shown->is_default;
  m->abandoned = atomic_load_explicit(&shown->abandoned, memory_order_relaxed);
}

/* Under the walk lock: copies what the map shows of one superblock. No allocation here. */
APEX_RACY_READER static void snapshot_blocks(superblock_t *sb, void *arg) {
  map_sb_t *m = snapshot_slot(arg);
  if (m == NULL) return;
  m->address = (uintptr_t)sb;
  m->kind = SB_KIND_BLOCKS;
  snapshot_owner(m, atomic_load_explicit(&sb->heap, memory_order_relaxed));
  uint64_t free_slices = sb->free_slices | 1;          /* slice 0 is metadata, never a block */
  uint64_t covered = 1;
  for (size_t i = 1; i < SLICES_PER_SB; i++) {
    if (((free_slices | covered) >> i) & 1) continue;
    if (sb->slice_head[i] != i) continue;
    const block_t *b = &sb->blocks[i];
    size_t slices = b->slices, capacity = b->capacity, used = b->used, cls = b->cls;
    if (block_limit(b) == 0 || slices == 0 || cls >= CLASS_COUNT || capacity == 0) continue;   /* being (re)made */
    if (slices > SLICES_PER_SB - i) slices = SLICES_PER_SB - i;
    if (used > capacity) used = capacity;
    map_block_t *mb = &m->blocks[m->block_count++];
    mb->index = (uint8_t)i;
    mb->slices = (uint8_t)slices;
    mb->cls = (uint8_t)cls;
    mb->chunk_size = b->chunk_size;
    mb->capacity = (uint32_t)capacity;
    mb->used = (uint32_t)used;
    uint64_t run = (slices >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << slices) - 1)) << i;
    covered |= run;
  }
  /* Drawn free: what the superblock says is free, and nothing a block already covers. */
  m->free_slices = sb->free_slices & ~covered & ~(uint64_t)1;
}

APEX_RACY_READER static void snapshot_huge(huge_t *h, void *arg) {
  map_sb_t *m = snapshot_slot(arg);
  if (m == NULL) return;
  m->address = (uintptr_t)h;
  m->kind = SB_KIND_HUGE;
  snapshot_owner(m, atomic_load_explicit(&h->heap, memory_order_relaxed));
  m->huge_ptr = (uintptr_t)h + h->huge_offset;
  m->huge_size = h->huge_size;
  m->map_size = h->map_size;
}

static size_t page_round(size_t n) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  return (n + page - 1) & ~(page - 1);
}

/* Counts, maps room for that many and some growth, then copies. Superblocks mapped between the
 * two walks beyond that room are counted in `missed` and reported as omitted. */
static int snapshot_take(snapshot_t *snap) {
  memset(snap, 0, sizeof *snap);
  superblocks_walk(count_one, count_one_huge, snap);
  size_t capacity = snap->count + snap->count / 4 + 16;
  snap->map_bytes = page_round(capacity * (sizeof(map_sb_t) + sizeof(map_order_t)));
  snap->sbs = scratch_map(snap->map_bytes);
  if (snap->sbs == NULL) return ENOMEM;
  snap->order = (map_order_t *)(snap->sbs + capacity);
  snap->capacity = capacity;
  snap->count = 0;
  superblocks_walk(snapshot_blocks, snapshot_huge, snap);
  return 0;
}

/* The heaps that own something, numbered in order of first appearance. Superblocks of heaps beyond
 * MAP_GROUPS_MAX are shown with the owner-less ones (gid 0). */
#define MAP_GROUPS_MAX 1024
typedef struct {
  uintptr_t heap[MAP_GROUPS_MAX];
  bool is_default[MAP_GROUPS_MAX], abandoned[MAP_GROUPS_MAX];
  size_t count;
} groups_t;

static uint32_t group_find(const groups_t *g, uintptr_t heap) {
  for (size_t i = 0; i < g->count; i++)
    if (g->heap[i] == heap) return (uint32_t)(i + 1);
  return 0;
}

static int order_cmp(const void *a, const void *b) {
  uint64_t x = ((const map_order_t *)a)->key, y = ((const map_order_t *)b)->key;
  return x < y ? -1 : x > y;
}

static void groups_make(groups_t *g, snapshot_t *snap) {
  g->count = 0;
  for (size_t k = 0; k < snap->count; k++) {
    map_sb_t *m = &snap->sbs[k];
    m->gid = m->group ? group_find(g, m->group) : 0;
    if (m->gid == 0 && m->group != 0 && g->count < MAP_GROUPS_MAX) {
      g->heap[g->count] = m->group;
      g->is_default[g->count] = m->is_default;
      g->abandoned[g->count] = m->abandoned;
      m->gid = (uint32_t)++g->count;
    }
    uint64_t rank = m->gid ? m->gid : MAP_GROUPS_MAX + 1;
    snap->order[k].key = rank << 36 | (uint64_t)(m->kind == SB_KIND_HUGE) << 35 | (uint64_t)(m->address >> 12);
    snap->order[k].index = (uint32_t)k;
  }
  qsort(snap->order, snap->count, sizeof *snap->order, order_cmp);   /* no lock held: may allocate */
}

static const map_sb_t *ordered(const snapshot_t *snap, size_t k) { return &snap->sbs[snap->order[k].index]; }

static const char *heap_kind(const groups_t *g, size_t gid) {
  return g->abandoned[gid - 1] ? "abandoned" : g->is_default[gid - 1] ? "default" : "created";
}

static void class_name(char buf[64], const map_block_t *b) {
  char h[48];
  if (b->cls == CLASS_LARGE) snprintf(buf, 64, "large object, %s", human_bytes(h, b->chunk_size));
  else snprintf(buf, 64, "class %u, %u B", (unsigned)b->cls, (unsigned)b->chunk_size);
}

static void map_json(out_t *o, const snapshot_t *snap, const groups_t *g) {
  out_fmt(o, "{\"version\":\"%s\",\"superblock_size\":%zu,\"slice_size\":%zu,\"slices_per_superblock\":%zu,\n",
          apex_version_string(), SB_SIZE, SLICE_SIZE, (size_t)SLICES_PER_SB);
  out_str(o, "\"heaps\":[");
  for (size_t i = 0; i < g->count; i++)
    out_fmt(o, "%s\n {\"id\":%zu,\"address\":\"%p\",\"kind\":\"%s\"}", i ? "," : "", i + 1, (void *)g->heap[i],
            heap_kind(g, i + 1));
  out_str(o, "],\n\"superblocks\":[");
  for (size_t k = 0; k < snap->count; k++) {
    const map_sb_t *m = ordered(snap, k);
    out_fmt(o, "%s\n {\"address\":\"%p\",", k ? "," : "", (void *)m->address);
    if (m->gid) out_fmt(o, "\"heap\":%u,\"shared\":%s,", m->gid, m->shared ? "true" : "false");
    else out_str(o, "\"heap\":null,\"shared\":false,");
    if (m->kind == SB_KIND_HUGE) {
      out_fmt(o, "\"kind\":\"huge\",\"pointer\":\"%p\",\"size\":%zu,\"mapped\":%zu,\"blocks\":[]}",
              (void *)m->huge_ptr, m->huge_size, m->map_size);
      continue;
    }
    out_fmt(o, "\"kind\":\"%s\",\"free_slices\":%d,\"blocks\":[", m->heap ? "blocks" : "cached",
            __builtin_popcountll(m->free_slices));
    for (uint32_t i = 0; i < m->block_count; i++) {
      const map_block_t *b = &m->blocks[i];
      out_fmt(o, "%s\n  {\"slice\":%u,\"slices\":%u,\"class\":%u,\"chunk_size\":%u,\"capacity\":%u,\"used\":%u}",
              i ? "," : "", b->index, b->slices, b->cls, b->chunk_size, b->capacity, b->used);
    }
    out_str(o, "]}");
  }
  out_fmt(o, "],\n\"omitted\":%zu}\n", snap->missed);
}

/* ---- The heap map as SVG ----------------------------------------------------------------------
 * One row per superblock: its label, then 64 slices side by side. Slice 0 (metadata) is hatched,
 * a block is one rectangle as wide as its slices, coloured from green (empty) through yellow to
 * red (full), free slices are grey. Rows are grouped by owning heap; huge objects are bars below,
 * as long as their size relative to the largest. Each block carries a <title> (a tooltip). */
#define SVG_SLICE   24
#define SVG_ROW     20
#define SVG_GAP     4
#define SVG_LABEL   300
#define SVG_MARGIN  20
#define SVG_CHAR_TENTHS 48                    /* width of a character of .in text, in 1/10 px */
#define SVG_BAR     (64 * SVG_SLICE)          /* a superblock's 64 slices */
_Static_assert(SLICES_PER_SB == 64, "the SVG layout draws 64 slices per row");
#define SVG_WIDTH   (SVG_MARGIN * 2 + SVG_LABEL + SVG_BAR)

/* Occupancy in per-mille to a colour: green (0) -> yellow (500) -> red (1000). */
static void occupancy_colour(char buf[8], size_t pm) {
  static const int stops[3][3] = { { 26, 150, 65 }, { 250, 210, 60 }, { 215, 48, 39 } };
  const int *a = pm <= 500 ? stops[0] : stops[1], *b = pm <= 500 ? stops[1] : stops[2];
  int t = (int)(pm <= 500 ? pm : pm - 500);          /* 0..500 within the segment */
  int rgb[3];
  for (int i = 0; i < 3; i++) rgb[i] = a[i] + (b[i] - a[i]) * t / 500;
  snprintf(buf, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

/* Size text short enough for a block: "48", "1152", "24K", "3M" (exact up to 9999 bytes). */
static void short_size(char buf[24], size_t v) {
  if (v < 10000) snprintf(buf, 24, "%zu", v);
  else if (v < ((size_t)1 << 20) || v % ((size_t)1 << 20) != 0) snprintf(buf, 24, "%zuK", v >> 10);
  else snprintf(buf, 24, "%zuM", v >> 20);
}

static void svg_block(out_t *o, size_t x, size_t y, const map_block_t *b) {
  char colour[8], name[64], label[24];
  size_t pm = permille(b->used, b->capacity);
  occupancy_colour(colour, pm);
  class_name(name, b);
  size_t w = (size_t)b->slices * SVG_SLICE;
  out_fmt(o, "<rect class=\"block\" x=\"%zu\" y=\"%zu\" width=\"%zu\" height=\"%d\" fill=\"%s\">"
          "<title>slices %u-%u: %s, %u of %u used (%zu.%zu%%)</title></rect>\n",
          x, y, w - 1, SVG_ROW, colour, b->index, b->index + b->slices - 1, name, b->used, b->capacity,
          pm / 10, pm % 10);
  short_size(label, b->chunk_size);
  if (strlen(label) * SVG_CHAR_TENTHS + 20 <= w * 10)
    out_fmt(o, "<text class=\"in\" x=\"%zu\" y=\"%zu\">%s</text>\n", x + w / 2, y + SVG_ROW / 2 + 3, label);
}

static void svg_superblock(out_t *o, size_t y, const map_sb_t *m) {
  size_t x0 = SVG_MARGIN + SVG_LABEL;
  char owner[48];
  if (m->gid) snprintf(owner, sizeof owner, "heap %u%s", m->gid, m->shared ? " (shared part)" : "");
  else snprintf(owner, sizeof owner, "%s", m->heap ? "unlisted heap" : "cached");
  out_fmt(o, "<text class=\"label\" x=\"%d\" y=\"%zu\">%p  %s</text>\n", SVG_MARGIN, y + SVG_ROW / 2 + 4,
          (void *)m->address, owner);
  out_fmt(o, "<rect class=\"meta\" x=\"%zu\" y=\"%zu\" width=\"%d\" height=\"%d\"><title>slice 0: "
          "superblock metadata</title></rect>\n", x0, y, SVG_SLICE - 1, SVG_ROW);
  /* Free slices: one rectangle per run. */
  for (size_t i = 1; i < SLICES_PER_SB;) {
    if (!((m->free_slices >> i) & 1)) { i++; continue; }
    size_t j = i;
    while (j < SLICES_PER_SB && ((m->free_slices >> j) & 1)) j++;
    out_fmt(o, "<rect class=\"free\" x=\"%zu\" y=\"%zu\" width=\"%zu\" height=\"%d\"><title>slices %zu-%zu: free"
            "</title></rect>\n", x0 + i * SVG_SLICE, y, (j - i) * SVG_SLICE - 1, SVG_ROW, i, j - 1);
    i = j;
  }
  for (uint32_t i = 0; i < m->block_count; i++)
    svg_block(o, x0 + (size_t)m->blocks[i].index * SVG_SLICE, y, &m->blocks[i]);
}

static void svg_legend(out_t *o, size_t y) {
  size_t x = SVG_MARGIN;
  out_fmt(o, "<text class=\"label\" x=\"%zu\" y=\"%zu\">block occupancy (used / capacity):</text>\n", x, y + 14);
  x += 270;
  out_fmt(o, "<rect x=\"%zu\" y=\"%zu\" width=\"200\" height=\"%d\" fill=\"url(#occupancy)\"/>\n", x, y, 18);
  out_fmt(o, "<text class=\"label\" x=\"%zu\" y=\"%zu\">0%%</text>", x, y + 32);
  out_fmt(o, "<text class=\"label\" x=\"%zu\" y=\"%zu\">50%%</text>", x + 90, y + 32);
  out_fmt(o, "<text class=\"label\" x=\"%zu\" y=\"%zu\">100%%</text>\n", x + 176, y + 32);
  x += 240;
  out_fmt(o, "<rect class=\"free key\" x=\"%zu\" y=\"%zu\" width=\"%d\" height=\"18\"/>"
          "<text class=\"label\" x=\"%zu\" y=\"%zu\">free slice (64 KiB)</text>\n", x, y, SVG_SLICE, x + SVG_SLICE + 6, y + 14);
  x += 200;
  out_fmt(o, "<rect class=\"meta key\" x=\"%zu\" y=\"%zu\" width=\"%d\" height=\"18\"/>"
          "<text class=\"label\" x=\"%zu\" y=\"%zu\">slice 0: metadata</text>\n", x, y, SVG_SLICE, x + SVG_SLICE + 6, y + 14);
  x += 190;
  out_fmt(o, "<rect class=\"huge key\" x=\"%zu\" y=\"%zu\" width=\"%d\" height=\"18\"/>"
          "<text class=\"label\" x=\"%zu\" y=\"%zu\">huge object</text>\n", x, y, SVG_SLICE, x + SVG_SLICE + 6, y + 14);
}

static void map_svg(out_t *o, const snapshot_t *snap, const groups_t *g) {
  size_t sb_count = 0, huge_count = 0, block_count = 0, huge_max = 0, huge_bytes = 0;
  for (size_t k = 0; k < snap->count; k++) {
    const map_sb_t *m = &snap->sbs[k];
    if (m->kind == SB_KIND_HUGE) {
      huge_count++;
      huge_bytes += m->map_size;
      if (m->map_size > huge_max) huge_max = m->map_size;
    } else {
      sb_count++;
      block_count += m->block_count;
    }
  }
  apex_stats_t s;
  memset(&s, 0, sizeof s);
  apex_stats_get(&s, sizeof s);

  /* Height: title and legend, a heading per group that has superblocks, a row per superblock, the
   * huge section. */
  size_t headings = 0;
  for (size_t k = 0; k < snap->count; k++) {
    const map_sb_t *m = ordered(snap, k);
    if (m->kind == SB_KIND_BLOCKS && (k == 0 || ordered(snap, k - 1)->gid != m->gid ||
                                      ordered(snap, k - 1)->kind != SB_KIND_BLOCKS))
      headings++;
  }
  size_t height = 110 + headings * 26 + sb_count * (SVG_ROW + SVG_GAP) + 20;
  if (huge_count) height += 30 + huge_count * (SVG_ROW + SVG_GAP);
  if (snap->missed) height += 20;

  char h1[48], h2[48], h3[48];
  out_fmt(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%zu\" viewBox=\"0 0 %d %zu\">\n",
          SVG_WIDTH, height, SVG_WIDTH, height);
  out_str(o, "<defs>\n"
             "<pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
             "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#3a3a4a\"/>"
             "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#9a9ab0\" stroke-width=\"2\"/></pattern>\n"
             "<linearGradient id=\"occupancy\"><stop offset=\"0\" stop-color=\"#1a9641\"/>"
             "<stop offset=\"0.5\" stop-color=\"#fad23c\"/><stop offset=\"1\" stop-color=\"#d73027\"/></linearGradient>\n"
             "<style>\n"
             "text { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 12px; fill: #222; }\n"
             ".title { font-size: 18px; font-weight: bold; }\n"
             ".heading { font-size: 13px; font-weight: bold; }\n"
             ".in { font-size: 8px; text-anchor: middle; fill: #111; }\n"
             ".free { fill: #d9d9d9; }\n"
             ".meta { fill: url(#hatch); }\n"
             ".huge { fill: #6a51a3; }\n"
             ".block { stroke: none; }\n"
             "</style>\n</defs>\n"
             "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
  out_fmt(o, "<text class=\"title\" x=\"%d\" y=\"30\">ApexAlloc %s heap map</text>\n", SVG_MARGIN,
          apex_version_string());
  out_fmt(o, "<text class=\"label\" x=\"%d\" y=\"50\">%zu superblocks, %zu blocks, %zu huge objects (%s); "
          "allocated %s, mapped %s</text>\n", SVG_MARGIN, sb_count, block_count, huge_count,
          human_bytes(h1, huge_bytes), human_bytes(h2, s.allocated), human_bytes(h3, s.mapped));
  svg_legend(o, 62);

  size_t y = 110;
  uint32_t shown = UINT32_MAX;                     /* the group whose heading is above */
  for (size_t k = 0; k < snap->count; k++) {
    const map_sb_t *m = ordered(snap, k);
    if (m->kind != SB_KIND_BLOCKS) continue;
    if (m->gid != shown) {
      shown = m->gid;
      if (m->gid)
        out_fmt(o, "<text class=\"heading\" x=\"%d\" y=\"%zu\">heap %u  %p  (%s)</text>\n", SVG_MARGIN, y + 16,
                m->gid, (void *)g->heap[m->gid - 1], heap_kind(g, m->gid));
      else
        out_fmt(o, "<text class=\"heading\" x=\"%d\" y=\"%zu\">superblocks without a listed heap (cached)</text>\n",
                SVG_MARGIN, y + 16);
      y += 26;
    }
    svg_superblock(o, y, m);
    y += SVG_ROW + SVG_GAP;
  }

  if (huge_count) {
    y += 10;
    out_fmt(o, "<text class=\"heading\" x=\"%d\" y=\"%zu\">huge objects (own mappings; bar length relative to "
            "the largest)</text>\n", SVG_MARGIN, y + 16);
    y += 30;
    for (size_t k = 0; k < snap->count; k++) {
      const map_sb_t *m = ordered(snap, k);
      if (m->kind != SB_KIND_HUGE) continue;
      size_t w = (size_t)(((unsigned __int128)m->map_size * SVG_BAR) / (huge_max ? huge_max : 1));
      if (w < 2) w = 2;
      char owner[32];
      if (m->gid) snprintf(owner, sizeof owner, "heap %u", m->gid); else snprintf(owner, sizeof owner, "no heap");
      out_fmt(o, "<text class=\"label\" x=\"%d\" y=\"%zu\">%p  %s</text>\n", SVG_MARGIN, y + SVG_ROW / 2 + 4,
              (void *)m->huge_ptr, owner);
      out_fmt(o, "<rect class=\"huge\" x=\"%d\" y=\"%zu\" width=\"%zu\" height=\"%d\"><title>huge object at %p: "
              "%s usable, %s mapped</title></rect>\n", SVG_MARGIN + SVG_LABEL, y, w, SVG_ROW, (void *)m->huge_ptr,
              human_bytes(h1, m->huge_size), human_bytes(h2, m->map_size));
      if (w >= 80)
        out_fmt(o, "<text class=\"in\" x=\"%zu\" y=\"%zu\" fill=\"#fff\" style=\"fill:#fff\">%s</text>\n",
                SVG_MARGIN + SVG_LABEL + w / 2, y + SVG_ROW / 2 + 3, human_bytes(h1, m->huge_size));
      y += SVG_ROW + SVG_GAP;
    }
  }
  if (snap->missed)
    out_fmt(o, "<text class=\"label\" x=\"%d\" y=\"%zu\">(%zu superblocks mapped while drawing are not shown)</text>\n",
            SVG_MARGIN, y + 14, snap->missed);
  out_str(o, "</svg>\n");
}

apex_export int apex_heap_map(apex_write_fn write_fn, void *opaque, int format) {
  if (format != APEX_FORMAT_JSON && format != APEX_FORMAT_SVG) return EINVAL;
  int saved = errno;
  snapshot_t snap;
  if (snapshot_take(&snap) != 0) { errno = saved; return ENOMEM; }
  groups_t *g = scratch_map(sizeof *g);
  if (g == NULL) { munmap(snap.sbs, snap.map_bytes); errno = saved; return ENOMEM; }
  groups_make(g, &snap);
  out_t o;
  out_init(&o, write_fn, opaque);
  if (format == APEX_FORMAT_JSON) map_json(&o, &snap, g); else map_svg(&o, &snap, g);
  out_flush(&o);
  munmap(g, sizeof *g);
  munmap(snap.sbs, snap.map_bytes);
  errno = saved;
  return 0;
}

/* ---- At exit ----------------------------------------------------------------------------------
 * Many programs close stderr in an atexit handler of their own (gnulib's close_stdout, used by
 * coreutils, does), and ours, registered first, runs last. So when statistics are asked for, a
 * copy of stderr is kept, with the identity of the file, and used at exit if fd 2 is gone by then
 * and the copy still refers to the same file (a program may have closed every descriptor and
 * reused the number). */
static _Atomic int g_stderr_copy = -1;
static dev_t g_stderr_dev;
static ino_t g_stderr_ino;

void report_keep_stderr(void) {
  if (atomic_load_explicit(&g_stderr_copy, memory_order_acquire) >= 0) return;
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) return;
  int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return;
  int expected = -1;
  g_stderr_dev = st.st_dev;
  g_stderr_ino = st.st_ino;
  if (!atomic_compare_exchange_strong(&g_stderr_copy, &expected, fd)) close(fd);
}

static int stderr_at_exit(void) {
  if (fcntl(STDERR_FILENO, F_GETFD) != -1) return STDERR_FILENO;
  int fd = atomic_load_explicit(&g_stderr_copy, memory_order_acquire);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_dev != g_stderr_dev || st.st_ino != g_stderr_ino) return -1;
  return fd;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

void report_at_exit(void) {
  if (__atomic_load_n(&g_opt.show_stats, __ATOMIC_RELAXED)) {
    int fd = stderr_at_exit();
    if (fd >= 0) apex_stats_print(write_fd, &fd, APEX_FORMAT_TEXT);
  }
  if (g_opt.heap_map[0] == '\0') return;
  int fd = open(g_opt.heap_map, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    out_t o;
    out_init(&o, NULL, NULL);
    out_fmt(&o, "apexalloc: cannot write the heap map to %s: %s\n", g_opt.heap_map, strerror(errno));
    out_flush(&o);
    return;
  }
  apex_heap_map(write_fd, &fd, ends_with(g_opt.heap_map, ".svg") ? APEX_FORMAT_SVG : APEX_FORMAT_JSON);
  close(fd);
}
