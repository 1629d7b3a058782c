/*
 * Pins: the statistics snapshots (apex_stats_get, apex_heap_stats_get, apex_thread_stats_get,
 * apex_bin_stats_get, the stats.* ctl keys and apex_stats_print) never walk every superblock, and
 * what they report from the counters kept on slow paths agrees, at a quiescent moment, with the
 * heap map, which does walk every superblock and shows each block's class, capacity and use.
 *
 * Built against apexalloc_debug, whose superblocks_walk counts its calls
 * (apex_debug_superblock_walks). The workload spreads over many superblocks (a large object per
 * superblock), several classes with full blocks (parked out of their queues), partial and
 * emptied blocks, an explicit heap, a huge object, and the heap of a thread that exited with
 * objects still live, some of them freed from here afterwards (remote frees not yet collected).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apexalloc.h"
#include "check.h"
#include "internal.h"      /* apex_debug_superblock_walks (debug builds) */

enum { LARGE_OBJECTS = 40, SMALL = 6000, THREAD_OBJECTS = 3000, FULL = 5000 };

/* ---- The heap map as text ---- */
typedef struct { char *text; size_t len, cap; } buf_t;

static void buf_write(void *opaque, const char *text, size_t len) {
  buf_t *b = opaque;
  if (b->len + len + 1 > b->cap) {
    b->cap = (b->len + len + 1) * 2;
    b->text = realloc(b->text, b->cap);
    CHECK(b->text != NULL, "out of memory for the map");
  }
  memcpy(b->text + b->len, text, len);
  b->len += len;
  b->text[b->len] = 0;
}

static void discard(void *opaque, const char *text, size_t len) { (void)opaque; (void)text; (void)len; }

typedef struct { size_t count, blocks, partial, full, free_bytes, bytes; } expect_t;

/* Sums the map's blocks per class, as the old walk did: live chunks, blocks, blocks neither
 * full nor empty, free bytes of class blocks, bytes of live large objects; and huge objects. */
static size_t map_sums(expect_t bins[APEX_BIN_COUNT]) {
  buf_t b = { 0 };
  CHECK(apex_heap_map(buf_write, &b, APEX_FORMAT_JSON) == 0, "apex_heap_map failed");
  CHECK(strstr(b.text, "\"omitted\":0}") != NULL, "the map omitted superblocks");
  memset(bins, 0, sizeof(expect_t) * APEX_BIN_COUNT);
  for (const char *p = b.text; (p = strstr(p, "{\"slice\":")) != NULL; p++) {
    unsigned slice, slices, cls, chunk, capacity, used;
    CHECK(sscanf(p, "{\"slice\":%u,\"slices\":%u,\"class\":%u,\"chunk_size\":%u,\"capacity\":%u,\"used\":%u}",
                 &slice, &slices, &cls, &chunk, &capacity, &used) == 6, "unreadable block: %.80s", p);
    CHECK(cls < APEX_BIN_COUNT, "class %u", cls);
    expect_t *e = &bins[cls];
    e->count += used;
    e->blocks++;
    e->partial += used != 0 && used != capacity;
    e->full += used == capacity;
    if (cls != 0) e->free_bytes += (size_t)(capacity - used) * chunk;
    else e->bytes += (size_t)used * chunk;
  }
  size_t huge = 0;
  for (const char *p = b.text; (p = strstr(p, "\"kind\":\"huge\"")) != NULL; p++) huge++;
  free(b.text);
  return huge;
}

static void *leave_objects(void *arg) {
  void **out = arg;
  for (int i = 0; i < THREAD_OBJECTS; i++) {
    out[i] = apex_malloc((size_t)(i % 700) + 1);
    CHECK(out[i] != NULL, "thread allocation failed");
  }
  return NULL;                    /* the heap is abandoned with these objects live */
}

int main(void) {
  /* Many superblocks: each of these takes more than half of one. */
  void *large[LARGE_OBJECTS];
  for (int i = 0; i < LARGE_OBJECTS; i++) {
    large[i] = apex_malloc((size_t)(33 + i % 20) << 16);
    CHECK(large[i] != NULL, "large allocation failed");
  }
  void *huge = apex_malloc((size_t)9 << 20);
  CHECK(huge != NULL, "huge allocation failed");
  /* Small objects: full blocks, then holes (partial blocks, some unparked again). */
  static void *small[SMALL];
  for (int i = 0; i < SMALL; i++) {
    small[i] = apex_malloc(i % 3 == 0 ? 48 : i % 3 == 1 ? 200 : (size_t)(i % 2000) + 1);
    CHECK(small[i] != NULL, "small allocation failed");
  }
  for (int i = 0; i < SMALL; i += 5) { apex_free(small[i]); small[i] = NULL; }
  static void *kept[FULL];                      /* a class whose first blocks stay full */
  for (int i = 0; i < FULL; i++) CHECK((kept[i] = apex_malloc(32)) != NULL, "small allocation failed");
  for (int i = 0; i < LARGE_OBJECTS; i += 4) { apex_free(large[i]); large[i] = NULL; }
  /* An explicit heap. */
  apex_heap_t *h = apex_heap_new();
  CHECK(h != NULL, "apex_heap_new failed");
  void *mine[500];
  for (int i = 0; i < 500; i++) CHECK((mine[i] = apex_heap_alloc(h, 64 + (size_t)i, 0)) != NULL, "heap alloc failed");
  for (int i = 0; i < 500; i += 3) apex_free(mine[i]);
  /* A thread that exits with objects live; some are freed from here afterwards. */
  static void *theirs[THREAD_OBJECTS];
  pthread_t t;
  CHECK(pthread_create(&t, NULL, leave_objects, theirs) == 0, "pthread_create failed");
  CHECK(pthread_join(t, NULL) == 0, "pthread_join failed");
  for (int i = 0; i < THREAD_OBJECTS; i += 2) apex_free(theirs[i]);

  /* No snapshot walks the superblocks. */
  size_t walks = atomic_load(&apex_debug_superblock_walks);
  apex_stats_t g, th, hs;
  apex_bin_stats_t bins[APEX_BIN_COUNT];
  CHECK(apex_stats_get(&g, sizeof g) == 0, "apex_stats_get failed");
  CHECK(apex_thread_stats_get(&th, sizeof th) == 0, "apex_thread_stats_get failed");
  CHECK(apex_heap_stats_get(h, &hs, sizeof hs) == 0, "apex_heap_stats_get failed");
  for (size_t i = 0; i < APEX_BIN_COUNT; i++)
    CHECK(apex_bin_stats_get(i, &bins[i], sizeof bins[i]) == 0, "apex_bin_stats_get(%zu) failed", i);
  size_t value, len = sizeof value;
  CHECK(apex_ctl("stats.bins.3.count", &value, &len, NULL, 0) == 0, "stats.bins.3.count");
  CHECK(apex_ctl("stats.free_in_blocks", &value, &len, NULL, 0) == 0, "stats.free_in_blocks");
  CHECK(apex_stats_print(discard, NULL, APEX_FORMAT_TEXT) == 0, "apex_stats_print failed");
  CHECK(apex_stats_print(discard, NULL, APEX_FORMAT_JSON) == 0, "apex_stats_print failed");
  size_t walked = atomic_load(&apex_debug_superblock_walks) - walks;
  CHECK(walked == 0, "statistics walked every superblock %zu times (over %zu superblocks)", walked, g.superblocks);
  CHECK(g.superblocks >= LARGE_OBJECTS / 2, "only %zu superblocks: the workload did not spread", g.superblocks);

  /* The heap map walks (the counter counts), and agrees with the snapshots. */
  expect_t want[APEX_BIN_COUNT];
  size_t huge_seen = map_sums(want);
  CHECK(atomic_load(&apex_debug_superblock_walks) > walks, "the heap map's walk was not counted");
  size_t blocks = 0, partial = 0, free_in_blocks = 0, classes_with_full = 0;
  for (size_t i = 0; i < APEX_BIN_COUNT; i++) {
    const apex_bin_stats_t *b = &bins[i];
    CHECK(b->count == want[i].count && b->blocks == want[i].blocks && b->blocks_partial == want[i].partial &&
          b->free_bytes == want[i].free_bytes,
          "bin %zu: count %zu blocks %zu partial %zu free %zu; the map: %zu %zu %zu %zu", i, b->count, b->blocks,
          b->blocks_partial, b->free_bytes, want[i].count, want[i].blocks, want[i].partial, want[i].free_bytes);
    blocks += want[i].blocks;
    partial += want[i].partial;
    free_in_blocks += want[i].free_bytes;
    classes_with_full += i != 0 && want[i].full != 0;
  }
  CHECK(classes_with_full >= 1, "no class had full blocks: the workload missed parked blocks");
  CHECK(g.blocks == blocks && g.blocks_partial == partial && g.free_in_blocks == free_in_blocks,
        "global blocks %zu partial %zu free %zu; the map: %zu %zu %zu", g.blocks, g.blocks_partial,
        g.free_in_blocks, blocks, partial, free_in_blocks);
  CHECK(g.large_count == want[0].count && g.large_allocated == want[0].bytes,
        "large: %zu objects %zu bytes; the map: %zu %zu", g.large_count, g.large_allocated, want[0].count,
        want[0].bytes);
  CHECK(g.huge_count == huge_seen && huge_seen == 1, "huge objects %zu, the map shows %zu", g.huge_count, huge_seen);
  CHECK(g.resident <= g.mapped && g.active <= g.mapped && g.resident >= g.active - g.active / 2,
        "resident %zu active %zu mapped %zu", g.resident, g.active, g.mapped);
  /* The dirty-slice counts (stats.resident) against the superblocks' own bits, globally and for
   * this thread's heap; the purge thread may be purging cached superblocks meanwhile: look again. */
  size_t counted = 0, bits = 0;
  for (int tries = 0; tries < 100; tries++) {
    superblock_walk_lock();
    bits = 0;
    for (superblock_t *sb = superblocks_first(); sb != NULL; sb = sb->all_next)
      bits += (size_t)__builtin_popcountll(sb->dirty_slices);
    counted = atomic_load(&g_dirty_slices);
    superblock_walk_unlock();
    if (counted == bits) break;
  }
  CHECK(counted == bits, "dirty slices counted %zu, the superblocks have %zu", counted, bits);
  bits = 0;
  for (superblock_t *sb = tls_heap->superblocks; sb != NULL; sb = sb->next) bits += (size_t)__builtin_popcountll(sb->dirty_slices);
  counted = atomic_load(&tls_heap->block_counts.dirty_slices);
  CHECK(counted == bits, "this heap's dirty slices counted %zu, its superblocks have %zu", counted, bits);
  CHECK(th.resident >= bits * SLICE_SIZE, "thread resident %zu below its %zu dirty slices", th.resident, bits);
  CHECK(hs.blocks >= 1 && hs.blocks < g.blocks && th.blocks < g.blocks, "per-heap blocks: heap %zu thread %zu of %zu",
        hs.blocks, th.blocks, g.blocks);

  /* After everything is freed and collected, nothing is left in use. */
  for (int i = 0; i < SMALL; i++) apex_free(small[i]);
  for (int i = 0; i < FULL; i++) apex_free(kept[i]);
  for (int i = 0; i < LARGE_OBJECTS; i++) apex_free(large[i]);
  for (int i = 1; i < THREAD_OBJECTS; i += 2) apex_free(theirs[i]);
  apex_free(huge);
  CHECK(apex_heap_destroy(h) == 0, "apex_heap_destroy failed");
  apex_collect();
  CHECK(apex_heap_stats_get(NULL, &hs, sizeof hs) == EINVAL, "a NULL heap was accepted");
  CHECK(apex_stats_get(&g, sizeof g) == 0, "apex_stats_get failed");
  map_sums(want);
  CHECK(g.large_count == 0 && g.huge_count == 0 && g.large_allocated == 0, "large %zu huge %zu left",
        g.large_count, g.huge_count);
  size_t left = 0;
  for (size_t i = 0; i < APEX_BIN_COUNT; i++) left += want[i].blocks;
  CHECK(g.blocks == left, "%zu blocks counted after the frees, the map shows %zu", g.blocks, left);
  return 0;
}
