/*
 * huge.c — huge objects: anything above LARGE_MAX gets a mapping of its own, with a header page
 * (huge_t) that starts like a superblock's (so the same registry lookup finds it) and a small cache of
 * recently freed mappings so that a loop allocating and freeing a few MiB does not mmap/munmap
 * on every iteration. Growing reallocs move pages with mremap instead of copying them.
 *
 * Owns: huge mappings, their headers and the keyed checks of those headers, the huge cache and its
 *       lock.
 * Must never: hand out a mapping that is not registered, keep more than g_opt.huge_cache_bytes
 * cached, or act on a header field (its heap, geometry or list links) before checking it.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <string.h>

#define HUGE_CACHE_SLOTS  8

static pthread_mutex_t g_huge_lock = PTHREAD_MUTEX_INITIALIZER;
static huge_t *g_huge_cache[HUGE_CACHE_SLOTS];
static size_t g_huge_cached_bytes;

void huge_cache_lock(void)       { pthread_mutex_lock(&g_huge_lock); }
void huge_cache_unlock(void)     { pthread_mutex_unlock(&g_huge_lock); }
void huge_cache_reset_lock(void) { pthread_mutex_init(&g_huge_lock, NULL); }

static size_t page_round(size_t n) {
  size_t page = os_page_size();
  return (n + page - 1) & ~(page - 1);
}

/* ---- Header checks ----------------------------------------------------------------------------
 * A huge header is the first page of a 4 MiB unit, where a linear overflow out of the mapping
 * below lands (huge mappings are placed by the kernel, often right next to each other). Before
 * a free or a realloc acts on it, its fixed fields (heap, kind, geometry) must match their keyed
 * check; before the list is changed, so must its links, and the neighbours must point back at it
 * (a safe unlink): a forged link never becomes a write-what-where. */
static uint32_t huge_check_of(const huge_t *h) {
  uint64_t w[7] = { (uint64_t)(uintptr_t)atomic_load_explicit(&h->heap, memory_order_relaxed), h->kind,
                    (uint64_t)(uintptr_t)h->map_base, h->map_size, h->huge_size, h->huge_offset,
                    (uint64_t)(uintptr_t)h };
  return header_check(w, 7);
}

static uint32_t huge_link_check_of(const huge_t *h) {
  uint64_t w[3] = { (uint64_t)(uintptr_t)h->all_next, (uint64_t)(uintptr_t)h->all_prev, ~(uint64_t)(uintptr_t)h };
  return header_check(w, 3);
}

static void huge_seal(huge_t *h) { h->check = huge_check_of(h); }
static void huge_seal_links(huge_t *h) { h->link_check = huge_link_check_of(h); }

apex_cold apex_noreturn static void huge_corrupted(const huge_t *h) {
  apex_fatal("corrupted huge header", h, CLASS_LARGE);
}

/* Aborts unless h is an intact huge header (p: the pointer the caller was given, for context). */
void huge_verify(const huge_t *h, const void *p) {
  (void)p;
  if (apex_unlikely(h->kind != SB_KIND_HUGE || h->check != huge_check_of(h))) huge_corrupted(h);
}

/* Called with h->heap's huge_lock held. */
static void huge_verify_links(const huge_t *h, heap_t *heap) {
  if (apex_unlikely(h->link_check != huge_link_check_of(h))) huge_corrupted(h);
  huge_t *prev = h->all_prev, *next = h->all_next;
  if (apex_unlikely((prev != NULL ? prev->all_next : heap->huge_list) != h)) huge_corrupted(h);
  if (apex_unlikely(next != NULL && next->all_prev != h)) huge_corrupted(h);
}

/* A cached mapping big enough for `total` bytes, but not more than twice that. Only mappings with
 * the default layout (header page then user data) are cached. */
static huge_t *huge_cache_take(size_t total) {
  if (__atomic_load_n(&g_huge_cached_bytes, __ATOMIC_RELAXED) == 0) return NULL;
  huge_t *found = NULL;
  pthread_mutex_lock(&g_huge_lock);
  for (size_t i = 0; i < HUGE_CACHE_SLOTS; i++) {
    huge_t *h = g_huge_cache[i];
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

/* Bytes mapped behind the usable size: the guard page of hardened mode, or 0. */
static size_t huge_guard(const huge_t *h) { return h->map_size - h->huge_offset - h->huge_size; }

/* A mapping with a guard page is never cached (hardened mode keeps its huge objects fresh, and a
 * reused one must never count its guard as usable). */
static bool huge_cache_put(huge_t *h) {
  if (h->huge_offset != HUGE_HEADER || huge_guard(h) != 0 ||
      atomic_load_explicit(&g_opt.decay_ms, memory_order_relaxed) == 0 ||
      h->map_size > atomic_load_explicit(&g_opt.huge_cache_bytes, memory_order_relaxed) / 2)
    return false;
  bool stored = false;
  pthread_mutex_lock(&g_huge_lock);
  if (g_huge_cached_bytes + h->map_size <= atomic_load_explicit(&g_opt.huge_cache_bytes, memory_order_relaxed)) {
    for (size_t i = 0; i < HUGE_CACHE_SLOTS && !stored; i++) {
      if (g_huge_cache[i] == NULL) {
        h->release_ns = os_now_ns();
        g_huge_cache[i] = h;
        __atomic_store_n(&g_huge_cached_bytes, g_huge_cached_bytes + h->map_size, __ATOMIC_RELAXED);
        stored = true;
      }
    }
  }
  pthread_mutex_unlock(&g_huge_lock);
  if (stored) purger_kick();
  return stored;
}

/* The user addresses of the last huge objects given back to the OS: once unmapped, the registry
 * no longer knows them, and a second free would otherwise read as a foreign pointer. */
#define RECENT_HUGE 64
static _Atomic uintptr_t g_recent_huge[RECENT_HUGE];
static _Atomic size_t g_recent_huge_next;

bool huge_recently_unmapped(const void *p) {
  for (size_t i = 0; i < RECENT_HUGE; i++)
    if (atomic_load_explicit(&g_recent_huge[i], memory_order_relaxed) == (uintptr_t)p) return true;
  return false;
}

/* Clear the registry entry, wait out apex_owns readers, then unmap (see registry_quiesce). */
static void huge_unmap(huge_t *h) {
  uint8_t *base = h->map_base;
  size_t size = h->map_size;
  size_t slot = atomic_fetch_add_explicit(&g_recent_huge_next, 1, memory_order_relaxed) % RECENT_HUGE;
  atomic_store_explicit(&g_recent_huge[slot], (uintptr_t)h + h->huge_offset, memory_order_relaxed);
  registry_set(h, REG_NONE);
  registry_quiesce();
  os_unmap(base, size);
}

/* Each live huge object is on its heap's list, so destroying or visiting a heap finds it. */
static void huge_link(heap_t *heap, huge_t *h) {
  atomic_store_explicit(&h->heap, heap, memory_order_relaxed);
  huge_seal(h);
  pthread_mutex_lock(&heap->huge_lock);
  h->all_prev = NULL;
  h->all_next = heap->huge_list;
  if (heap->huge_list) {
    heap->huge_list->all_prev = h;
    huge_seal_links(heap->huge_list);
  }
  heap->huge_list = h;
  huge_seal_links(h);
  heap->huge_bytes += h->huge_size;
  heap->huge_total_in += h->huge_size;
  heap->huge_count++;
  heap->huge_mapped += h->map_size;
  pthread_mutex_unlock(&heap->huge_lock);
}

/* Called with the heap's huge_lock held, h's links verified. */
static void huge_unlink_locked(heap_t *heap, huge_t *h) {
  huge_t *prev = h->all_prev, *next = h->all_next;
  if (prev) { prev->all_next = next; huge_seal_links(prev); } else heap->huge_list = next;
  if (next) { next->all_prev = prev; huge_seal_links(next); }
}

static void huge_unlink(huge_t *h) {
  heap_t *heap = atomic_load_explicit(&h->heap, memory_order_relaxed);   /* verified by the caller */
  pthread_mutex_lock(&heap->huge_lock);
  huge_verify_links(h, heap);
  huge_unlink_locked(heap, h);
  heap->huge_bytes -= h->huge_size;
  heap->huge_total_out += h->huge_size;
  heap->huge_count--;
  heap->huge_mapped -= h->map_size;
  pthread_mutex_unlock(&heap->huge_lock);
}

/* apex_heap_destroy: every huge object of the heap goes back to the OS. */
void huge_discard_all(heap_t *heap) {
  pthread_mutex_lock(&heap->huge_lock);
  huge_t *h = heap->huge_list;
  heap->huge_list = NULL;
  heap->huge_total_out += heap->huge_bytes;
  heap->huge_bytes = heap->huge_count = heap->huge_mapped = 0;
  pthread_mutex_unlock(&heap->huge_lock);
  while (h != NULL) {
    huge_verify(h, NULL);
    if (apex_unlikely(h->link_check != huge_link_check_of(h))) huge_corrupted(h);
    huge_t *next = h->all_next;
    atomic_store_explicit(&h->huge_state, HUGE_FREE, memory_order_relaxed);
    atomic_fetch_sub_explicit(&g_huge_live_bytes, h->map_size, memory_order_relaxed);
    huge_unmap(h);
    h = next;
  }
}

/* apex_collect: the cached mappings go back to the OS. */
void huge_cache_flush(void) {
  pthread_mutex_lock(&g_huge_lock);
  huge_t *taken[HUGE_CACHE_SLOTS];
  for (size_t i = 0; i < HUGE_CACHE_SLOTS; i++) { taken[i] = g_huge_cache[i]; g_huge_cache[i] = NULL; }
  __atomic_store_n(&g_huge_cached_bytes, 0, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&g_huge_lock);
  for (size_t i = 0; i < HUGE_CACHE_SLOTS; i++) if (taken[i]) huge_unmap(taken[i]);
}

/* The purge thread: mappings cached for at least decay_ns go back to the OS. Unmapped under the
 * lock, so a fork (whose handlers take it) never sees one half gone. */
void huge_cache_decay(uint64_t now_ns, uint64_t decay_ns) {
  if (__atomic_load_n(&g_huge_cached_bytes, __ATOMIC_RELAXED) == 0) return;
  pthread_mutex_lock(&g_huge_lock);
  for (size_t i = 0; i < HUGE_CACHE_SLOTS; i++) {
    huge_t *h = g_huge_cache[i];
    if (h == NULL || now_ns - h->release_ns < decay_ns) continue;
    g_huge_cache[i] = NULL;
    __atomic_store_n(&g_huge_cached_bytes, g_huge_cached_bytes - h->map_size, __ATOMIC_RELAXED);
    atomic_fetch_add_explicit(&g_purged_bytes, h->map_size, memory_order_relaxed);
    huge_unmap(h);
  }
  pthread_mutex_unlock(&g_huge_lock);
}

/* Layout: the user pointer sits `offset` bytes into the mapping, where offset is the alignment
 * (at least one page). The header is the page at superblock_base(p), i.e. the 4 MiB unit holding
 * the byte just before p; for alignments up to 4 MiB that is the mapping's first page. */
void *huge_alloc(heap_t *heap, size_t size, size_t alignment, bool zero) {
  size_t offset = alignment > HUGE_HEADER ? alignment : HUGE_HEADER;
  if (size > HUGE_MAX || offset > HUGE_MAX) return NULL;
  size_t total = page_round(offset + size);

  if (offset == HUGE_HEADER) {
    huge_t *h = huge_cache_take(total);
    if (h != NULL) {
      huge_verify(h, NULL);                     /* it sat in the cache: still intact? */
      h->huge_size = h->map_size - HUGE_HEADER - huge_guard(h);   /* guard: 0, see huge_cache_put */
      atomic_store_explicit(&h->huge_state, HUGE_LIVE, memory_order_release);
      atomic_fetch_add_explicit(&g_huge_live_bytes, h->map_size, memory_order_relaxed);
      uint8_t *p = (uint8_t *)h + HUGE_HEADER;
      if (zero) memset(p, 0, size);
      huge_link(heap, h);
      return p;
    }
  }

  /* Hardened mode: a PROT_NONE page right behind the object, so a linear overflow faults. */
  size_t guard = g_hardened ? os_page_size() : 0;
  total += guard;
  size_t map_align = alignment > SB_SIZE ? alignment : SB_SIZE;
  uint8_t *base = os_map_aligned(total, map_align);
  if (base == NULL) return NULL;
  if (guard != 0) os_protect_none(base + total - guard, guard);
  uint8_t *p = base + offset;
  huge_t *h = (huge_t *)superblock_base(p);
  h->kind = SB_KIND_HUGE;
  h->map_size = total;
  h->map_base = base;
  h->huge_offset = (size_t)(p - (uint8_t *)h);
  h->huge_size = total - offset - guard;
  atomic_store_explicit(&h->huge_state, HUGE_LIVE, memory_order_release);
  atomic_fetch_add_explicit(&g_huge_live_bytes, total, memory_order_relaxed);
  huge_link(heap, h);                         /* seals the header before anyone can see it */
  registry_set(h, REG_HUGE);
  return p;                                   /* fresh pages are already zero */
}

void huge_free(huge_t *h, void *p) {
  huge_verify(h, p);
  if (apex_unlikely((uint8_t *)p != (uint8_t *)h + h->huge_offset))
    apex_fatal("invalid free (interior pointer)", p, CLASS_LARGE);
  uint32_t live = HUGE_LIVE;
  if (apex_unlikely(!atomic_compare_exchange_strong_explicit(&h->huge_state, &live, HUGE_FREE,
                                                             memory_order_acq_rel, memory_order_relaxed)))
    apex_fatal("double free", p, CLASS_LARGE);
  atomic_fetch_sub_explicit(&g_huge_live_bytes, h->map_size, memory_order_relaxed);
  huge_unlink(h);
  if (!huge_cache_put(h)) huge_unmap(h);
}

/* Resizes a huge object in place when the mapping can grow or shrink where it is, or moves its
 * pages to a new aligned range without copying. NULL means the caller should copy (and, when the
 * heap's limit refused the growth, that the copy will be refused too). The caller verified h.
 * The object stays on its heap's list throughout (under its huge_lock), so the heap's totals
 * never under-count it. The registry entry of a range that moves is cleared before mremap gives
 * the old range back: once it is gone another thread may map something new in the same 4 MiB
 * unit and set the bit, which a late clear would wipe out. */
void *huge_realloc(huge_t *h, void *p, size_t size) {
  size_t offset = h->huge_offset;
  if (offset != HUGE_HEADER) return NULL;           /* over-aligned: let the caller copy */
  size_t total = page_round(offset + size);
  size_t old_total = h->map_size;
  if (total == old_total) return p;
  heap_t *heap = atomic_load_explicit(&h->heap, memory_order_relaxed);
  if (total > old_total && heap_over_limit(heap, total - old_total)) return NULL;
  pthread_mutex_lock(&heap->huge_lock);
  huge_verify_links(h, heap);
  huge_t *result = NULL;
  if (os_remap_grow(h, old_total, total)) {
    result = h;
  } else if (total > old_total) {
    registry_set(h, REG_NONE);
    registry_quiesce();
    huge_t *moved = os_remap_move_aligned(h, old_total, total, SB_SIZE);
    if (moved != NULL) {
      moved->map_base = (uint8_t *)moved;
      if (moved->all_prev) { moved->all_prev->all_next = moved; huge_seal_links(moved->all_prev); }
      else heap->huge_list = moved;
      if (moved->all_next) { moved->all_next->all_prev = moved; huge_seal_links(moved->all_next); }
      huge_seal_links(moved);
      result = moved;
    }
    registry_set(result != NULL ? result : h, REG_HUGE);
  }
  if (result != NULL) {
    atomic_fetch_add_explicit(&g_huge_live_bytes, total - old_total, memory_order_relaxed);
    /* Counted as the old object freed and the new one made, as before. */
    heap->huge_total_out += result->huge_size;
    heap->huge_total_in += total - offset;
    heap->huge_bytes += total - offset - result->huge_size;
    heap->huge_mapped += total - result->map_size;
    result->map_size = total;
    result->huge_size = total - offset;
    huge_seal(result);
  }
  pthread_mutex_unlock(&heap->huge_lock);
  return result != NULL ? (uint8_t *)result + offset : NULL;
}
