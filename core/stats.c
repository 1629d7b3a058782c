/*
 * stats.c — statistics: process-wide counters kept off the fast paths (bytes mapped, superblocks,
 * huge bytes alive) and the snapshot that merges them with the per-heap counters.
 *
 * Owns: the global statistics counters and apex_stats_get.
 * Must never: be updated on an allocation or free fast path with a shared atomic; per-heap
 * counters are owner-written and only summed here.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

_Atomic size_t g_mapped_bytes;
_Atomic size_t g_mapped_peak;
_Atomic size_t g_superblocks_live;
_Atomic size_t g_huge_live_bytes;

void stats_mapped(ptrdiff_t delta) {
  size_t now = atomic_fetch_add_explicit(&g_mapped_bytes, (size_t)delta, memory_order_relaxed) + (size_t)delta;
  size_t peak = atomic_load_explicit(&g_mapped_peak, memory_order_relaxed);
  while (delta > 0 && now > peak &&
         !atomic_compare_exchange_weak_explicit(&g_mapped_peak, &peak, now, memory_order_relaxed, memory_order_relaxed)) {
  }
}

apex_export int apex_stats_get(apex_stats_t *out, size_t size) {
  if (out == NULL || size < sizeof(size_t) || size > sizeof(apex_stats_t)) return EINVAL;
  apex_ensure_init();
  apex_stats_t s;
  memset(&s, 0, sizeof s);
  size_t alloc = 0, freed = 0;
  heaps_lock();
  for (heap_t *h = heaps_first(); h != NULL; h = h->all_next) {
    alloc += atomic_load_explicit(&h->counters.alloc_bytes, memory_order_relaxed);
    freed += atomic_load_explicit(&h->counters.free_bytes, memory_order_relaxed);
    s.remote_frees += atomic_load_explicit(&h->counters.remote_free_count, memory_order_relaxed);
    s.heaps++;
    if (atomic_load_explicit(&h->abandoned, memory_order_relaxed)) s.heaps_abandoned++;
  }
  heaps_unlock();
  s.allocated_huge = atomic_load_explicit(&g_huge_live_bytes, memory_order_relaxed);
  s.allocated = (alloc > freed ? alloc - freed : 0) + s.allocated_huge;
  s.mapped = atomic_load_explicit(&g_mapped_bytes, memory_order_relaxed);
  s.mapped_peak = atomic_load_explicit(&g_mapped_peak, memory_order_relaxed);
  s.superblocks = atomic_load_explicit(&g_superblocks_live, memory_order_relaxed);
  s.size = size;
  memcpy(out, &s, size);
  return 0;
}
