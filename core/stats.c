/*
 * stats.c — process-wide counters kept off the fast paths: bytes mapped from the OS, superblocks
 * and huge bytes alive. Per-heap counters live in each heap and are merged when read.
 *
 * Owns: the global statistics counters.
 * Must never: be updated on an allocation or free fast path.
 */
#include "internal.h"

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
