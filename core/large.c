/*
 * large.c — huge objects: anything above LARGE_MAX gets a mapping of its own, with a header page
 * that looks like a superblock (so the same registry lookup finds it) and a small cache of
 * recently freed mappings so that a loop allocating and freeing a few MiB does not mmap/munmap
 * on every iteration. Growing reallocs move pages with mremap instead of copying them.
 *
 * Owns: huge mappings, their headers, the huge cache and its lock.
 * Must never: hand out a mapping that is not registered, or keep more than HUGE_CACHE_BYTES
 * cached.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <string.h>

#define HUGE_CACHE_SLOTS  8
#define HUGE_CACHE_BYTES  ((size_t)32 * 1024 * 1024)

static pthread_mutex_t g_huge_lock = PTHREAD_MUTEX_INITIALIZER;
static superblock_t *g_huge_cache[HUGE_CACHE_SLOTS];
static size_t g_huge_cached_bytes;

void huge_cache_lock(void)       { pthread_mutex_lock(&g_huge_lock); }
void huge_cache_unlock(void)     { pthread_mutex_unlock(&g_huge_lock); }
void huge_cache_reset_lock(void) { pthread_mutex_init(&g_huge_lock, NULL); }

static size_t page_round(size_t n) {
  size_t page = os_page_size();
  return (n + page - 1) & ~(page - 1);
}

static uint8_t *huge_map_base(superblock_t *h) { return h->map_base; }

/* A cached mapping big enough for `total` bytes, but not more than twice that. Only mappings with
 * the default layout (header page then user data) are cached. */
static superblock_t *huge_cache_take(size_t total) {
  if (__atomic_load_n(&g_huge_cached_bytes, __ATOMIC_RELAXED) == 0) return NULL;
  superblock_t *found = NULL;
  pthread_mutex_lock(&g_huge_lock);
  for (size_t i = 0; i < HUGE_CACHE_SLOTS; i++) {
    superblock_t *h = g_huge_cache[i];
    if (h && h->map_size >= total && h->map_size / 2 <= total) {
      g_huge_cache[i] = NULL;
      __atomic_store_n(&g_huge_cached_bytes, g_huge_cached_bytes - h->map_size, __ATOMIC_RELAXED);
      found = h;
      break;
    }
  }
  pthread_mutex_unlock(&g_huge_lock);
  return found;
}

static bool huge_cache_put(superblock_t *h) {
  if (h->huge_offset != HUGE_HEADER || h->map_size > HUGE_CACHE_BYTES / 2) return false;
  bool stored = false;
  pthread_mutex_lock(&g_huge_lock);
  if (g_huge_cached_bytes + h->map_size <= HUGE_CACHE_BYTES) {
    for (size_t i = 0; i < HUGE_CACHE_SLOTS && !stored; i++) {
      if (g_huge_cache[i] == NULL) {
        g_huge_cache[i] = h;
        __atomic_store_n(&g_huge_cached_bytes, g_huge_cached_bytes + h->map_size, __ATOMIC_RELAXED);
        stored = true;
      }
    }
  }
  pthread_mutex_unlock(&g_huge_lock);
  return stored;
}

static void huge_unmap(superblock_t *h) {
  uint8_t *base = huge_map_base(h);
  size_t size = h->map_size;
  registry_set(h, false);
  os_unmap(base, size);
}

/* Layout: the user pointer sits `offset` bytes into the mapping, where offset is the alignment
 * (at least one page). The header is the page at superblock_base(p), i.e. the 4 MiB unit holding
 * the byte just before p; for alignments up to 4 MiB that is the mapping's first page. */
void *huge_alloc(size_t size, size_t alignment, bool zero) {
  size_t offset = alignment > HUGE_HEADER ? alignment : HUGE_HEADER;
  if (size > HUGE_MAX || offset > HUGE_MAX) return NULL;
  size_t total = page_round(offset + size);

  if (offset == HUGE_HEADER) {
    superblock_t *h = huge_cache_take(total);
    if (h != NULL) {
      h->huge_size = h->map_size - HUGE_HEADER;
      atomic_store_explicit(&h->huge_state, HUGE_LIVE, memory_order_release);
      atomic_fetch_add_explicit(&g_huge_live_bytes, h->map_size, memory_order_relaxed);
      uint8_t *p = (uint8_t *)h + HUGE_HEADER;
      if (zero) memset(p, 0, size);
      return p;
    }
  }

  size_t map_align = alignment > SB_SIZE ? alignment : SB_SIZE;
  uint8_t *base = os_map_aligned(total, map_align);
  if (base == NULL) return NULL;
  uint8_t *p = base + offset;
  superblock_t *h = superblock_base(p);
  h->magic = SB_MAGIC ^ (uintptr_t)h;
  h->kind = SB_KIND_HUGE;
  h->map_size = total;
  h->map_base = base;
  h->huge_offset = (size_t)(p - (uint8_t *)h);
  h->huge_size = total - offset;
  atomic_store_explicit(&h->huge_state, HUGE_LIVE, memory_order_release);
  atomic_fetch_add_explicit(&g_huge_live_bytes, total, memory_order_relaxed);
  registry_set(h, true);
  return p;                                   /* fresh pages are already zero */
}

void huge_free(superblock_t *h, void *p) {
  if (apex_unlikely((uint8_t *)p != (uint8_t *)h + h->huge_offset))
    apex_fatal("invalid free (interior pointer)", p, CLASS_LARGE);
  uint32_t live = HUGE_LIVE;
  if (apex_unlikely(!atomic_compare_exchange_strong_explicit(&h->huge_state, &live, HUGE_FREE,
                                                             memory_order_acq_rel, memory_order_relaxed)))
    apex_fatal("double free", p, CLASS_LARGE);
  atomic_fetch_sub_explicit(&g_huge_live_bytes, h->map_size, memory_order_relaxed);
  if (!huge_cache_put(h)) huge_unmap(h);
}

/* Resizes a huge object in place when the mapping can grow or shrink where it is, or moves its
 * pages to a new aligned range without copying. NULL means the caller should copy. */
void *huge_realloc(superblock_t *h, void *p, size_t size) {
  size_t offset = h->huge_offset;
  if (offset != HUGE_HEADER) return NULL;           /* over-aligned: let the caller copy */
  size_t total = page_round(offset + size);
  if (total == h->map_size) { h->huge_size = total - offset; return p; }
  size_t old_total = h->map_size;
  if (os_remap_grow(h, old_total, total)) {
    atomic_fetch_add_explicit(&g_huge_live_bytes, total - old_total, memory_order_relaxed);
    h->map_size = total;
    h->huge_size = total - offset;
    return p;
  }
  if (total < old_total) return NULL;
  superblock_t *moved = os_remap_move_aligned(h, old_total, total, SB_SIZE);
  if (moved == NULL) return NULL;
  registry_set(h, false);
  moved->magic = SB_MAGIC ^ (uintptr_t)moved;
  moved->map_base = (uint8_t *)moved;
  moved->map_size = total;
  moved->huge_size = total - offset;
  atomic_fetch_add_explicit(&g_huge_live_bytes, total - old_total, memory_order_relaxed);
  registry_set(moved, true);
  return (uint8_t *)moved + offset;
}
