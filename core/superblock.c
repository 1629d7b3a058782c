/*
 * superblock.c — 4 MiB superblocks: where they come from, which heap owns them, how their 63
 * data slices are handed out as block runs, and the registry that tells whether an address
 * belongs to ApexAlloc at all.
 *
 * Owns: the superblock registry (one byte per 4 MiB of address space) and the rule that nothing is
 *       unmapped while apex_owns reads it, the keyed check of mapping headers, the global cache of
 *       empty superblocks and its lock, the per-superblock slice bitmap, purging free slices.
 * Must never: touch chunk contents or a block's free list; decide size classes.
 */
#include "internal.h"

#include <string.h>

/* One byte per possible superblock in the 47-bit user address space (REG_* values): 2^25 bytes =
 * 32 MiB of .bss, of which only the pages covering addresses actually used are ever touched (one
 * page covers 16 GiB). Lets free() reject a foreign pointer, and tell a huge object from a block,
 * before reading any memory near it. */
_Atomic uint8_t g_registry[REGISTRY_UNITS];
uint8_t g_reg_blocks = REG_BLOCKS;

void registry_set(void *base, unsigned kind) {
  atomic_store_explicit(&g_registry[(uintptr_t)base >> SB_SHIFT], (uint8_t)kind, memory_order_release);
}

/* ---- Reading headers of memory that may be unmapped (apex_owns) ------------------------------
 * apex_owns may be asked about a freed pointer while another thread unmaps its superblock or huge
 * mapping. A reader announces itself in one of a few counters (spread over cache lines by thread,
 * so concurrent readers do not share one), then re-tests the registry entry; whoever unmaps clears
 * the bit first, then waits until no reader is announced. Both sides are sequentially consistent
 * (a Dekker pair): either the reader sees the bit cleared and reads nothing, or the unmapper sees
 * the reader and waits for it. Frees need none of this: a pointer being freed is live, so its
 * memory cannot go away underneath (a concurrent double free is undefined either way). */
#define OWNS_SHARDS 8
static struct { _Alignas(64) _Atomic size_t readers; } g_owns_readers[OWNS_SHARDS];

static size_t owns_shard(void) {
  return (size_t)((current_thread_id() * 0x9E3779B97F4A7C15ULL) >> 61) & (OWNS_SHARDS - 1);
}

void registry_read_begin(void) {
  atomic_fetch_add_explicit(&g_owns_readers[owns_shard()].readers, 1, memory_order_seq_cst);
  atomic_thread_fence(memory_order_seq_cst);
}

void registry_read_end(void) {
  atomic_fetch_sub_explicit(&g_owns_readers[owns_shard()].readers, 1, memory_order_release);
}

void registry_quiesce(void) {
  atomic_thread_fence(memory_order_seq_cst);
  for (size_t i = 0; i < OWNS_SHARDS; i++)
    while (atomic_load_explicit(&g_owns_readers[i].readers, memory_order_seq_cst) != 0) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
}

/* ---- Keyed header checks -----------------------------------------------------------------------
 * The fields of a mapping's header that frees and reallocs act on (owning heap, kind, geometry,
 * list links) carry a 32-bit keyed hash, so a header rewritten by a stray or overflowing write is
 * caught before it is trusted (it sits at the start of a 4 MiB unit, where a linear overflow out
 * of the mapping below lands). Not CRC32-C, whose output is an affine function of the data (one
 * leaked header and its check would let anyone forge the check of any other contents): each word
 * goes through a multiply and a xor-shift starting from a key derived from g_secret, and the
 * result through murmur3's finalizer with the key mixed in again (superblock_check in internal.h:
 * the same idea unrolled for two words, about 15 instructions, since every remote free pays it). It is not a cryptographic MAC; a blind guess
 * succeeds with probability 2^-32 and aborts the process otherwise. */
uint64_t keyed_hash(const uint64_t *words, size_t n, uint64_t domain) {
  uint64_t k = (uint64_t)g_secret ^ (domain * 0x9E3779B97F4A7C15ULL);
  uint64_t h = k;
  for (size_t i = 0; i < n; i++) {
    h = (h ^ words[i]) * 0xFF51AFD7ED558CCDULL;
    h ^= h >> 32;
  }
  return fmix64(h ^ ((k << 35) | (k >> 29)));
}

uint32_t header_check(const uint64_t *words, size_t n) {
  uint64_t h = keyed_hash(words, n, 0x6865616465726B31ULL);            /* "headerk1" */
  return (uint32_t)(h ^ (h >> 32));
}

/* Whoever changes the owning heap reseals; a thread may verify only while nobody can change it
 * (it holds a live chunk of the superblock, or owns the heap). */
void superblock_seal(superblock_t *sb) { sb->check = superblock_check(sb); }

void superblock_corrupted(const superblock_t *sb) { apex_fatal("corrupted superblock header", sb, (size_t)-1); }

void superblock_verify(const superblock_t *sb) {
  if (apex_unlikely(sb->check != superblock_check(sb) || sb->kind != SB_KIND_BLOCKS)) superblock_corrupted(sb);
}


/* ---- Every mapped superblock, for walkers ----------------------------------------------------
 * Statistics and the heap map walk all superblocks while their owners keep working; holding this
 * lock only guarantees that none is unmapped meanwhile. Mapping and unmapping are rare. */
static pthread_mutex_t g_walk_lock = PTHREAD_MUTEX_INITIALIZER;
static superblock_t *g_all_superblocks;

static void walk_list_add(superblock_t *sb) {
  pthread_mutex_lock(&g_walk_lock);
  sb->all_prev = NULL;
  sb->all_next = g_all_superblocks;
  if (g_all_superblocks) g_all_superblocks->all_prev = sb;
  g_all_superblocks = sb;
  pthread_mutex_unlock(&g_walk_lock);
}

/* Called with g_walk_lock held. */
static void walk_list_remove(superblock_t *sb) {
  if (sb->all_prev) sb->all_prev->all_next = sb->all_next; else g_all_superblocks = sb->all_next;
  if (sb->all_next) sb->all_next->all_prev = sb->all_prev;
}

void superblock_walk_lock(void)       { pthread_mutex_lock(&g_walk_lock); }
void superblock_walk_unlock(void)     { pthread_mutex_unlock(&g_walk_lock); }
void superblock_walk_reset_lock(void) { pthread_mutex_init(&g_walk_lock, NULL); }
superblock_t *superblocks_first(void) { return g_all_superblocks; }

/* Unmaps a superblock for good (it must be empty and owned by nobody). */
static void superblock_unmap(superblock_t *sb) {
  pthread_mutex_lock(&g_walk_lock);
  walk_list_remove(sb);
  registry_set(sb, REG_NONE);
  registry_quiesce();
  atomic_fetch_sub_explicit(&g_superblocks_live, 1, memory_order_relaxed);
  stats_dirty_changed(NULL, sb->dirty_slices, 0);
  os_unmap(sb, SB_SIZE);
  pthread_mutex_unlock(&g_walk_lock);
}

/* ---- Purging --------------------------------------------------------------------------------
 * Gives the free, dirty slices among `mask` back to the OS, a run of adjacent slices per madvise.
 * With MADV_DONTNEED they read as zero again, so they lose their dirty bit (and a block carved
 * there later is BLOCK_FRESH: calloc skips its memset); with MADV_FREE their contents are
 * unknown, so they stay dirty and are only marked lazy (not purged twice). Called by the owner of
 * the superblock, or with the cache lock held for a cached one. */
static size_t purge_slices(superblock_t *sb, uint64_t mask) {
  size_t purged = 0;
  uint64_t todo = mask & sb->free_slices & sb->dirty_slices & ~sb->lazy_slices & ~(uint64_t)1;
  while (todo != 0) {
    size_t first = (size_t)__builtin_ctzll(todo);
    size_t len = (size_t)__builtin_ctzll(~(todo >> first));
    uint64_t run = slice_run_mask(first, len);
    if (os_purge((uint8_t *)sb + (first << SLICE_SHIFT), len << SLICE_SHIFT)) {
      stats_dirty_changed(atomic_load_explicit(&sb->heap, memory_order_relaxed), sb->dirty_slices,
                          sb->dirty_slices & ~run);
      sb->dirty_slices &= ~run;
    } else {
      sb->lazy_slices |= run;
    }
    todo &= ~run;
    purged += len;
  }
  return purged;
}

/* Free slices that are still backed by memory (neither purged nor lazily freed). */
static size_t dirty_free_of(const superblock_t *sb) {
  return (size_t)__builtin_popcountll(sb->free_slices & sb->dirty_slices & ~sb->lazy_slices & ~(uint64_t)1);
}

void superblock_purge_free(heap_t *heap, superblock_t *sb) {
  heap_dirty_sub(heap, purge_slices(sb, ~(uint64_t)1));
}

/* The owner's budget of free-but-resident slices: opt.heap_dirty_max, or a quarter of the slices
 * in use if that is more (the ratio jemalloc 3 used, there 1/8, for its dirty pages). Once over it,
 * the free slices of its newest superblocks go back to the OS until half the budget is left. The
 * purge thread cannot do this (the owner may reuse a free slice at any moment), and a thread that
 * frees everything and then sleeps makes no further call that could: the budget bounds what such
 * a heap keeps, while a heap with a large working set that churns keeps a proportional reserve
 * and does not madvise on every swing. The oldest superblocks, where blocks are placed first,
 * stay warm. */
static void heap_over_dirty_budget(heap_t *heap, superblock_t *just_freed) {
  size_t budget = atomic_load_explicit(&g_opt.heap_dirty_max, memory_order_relaxed) >> SLICE_SHIFT;
  if (budget < heap->active_slices / 4) budget = heap->active_slices / 4;
  if (heap->dirty_free <= budget) {
    heap->over_budget_since = 0;
    return;
  }
  /* A heap that churns around a working set waits decay_ms over budget before it purges, so a
   * steady churn costs at most one purge per decay period and slices freed a moment ago are reused,
   * not faulted in again. A heap that has shrunk to a fraction of what it holds free (a program
   * that freed what it had, and may now sleep) gives it back at once. */
  if (heap->dirty_free <= 2 * heap->active_slices) {
    uint64_t now = os_now_ns();
    uint64_t decay_ns = (uint64_t)atomic_load_explicit(&g_opt.decay_ms, memory_order_relaxed) * 1000000u;
    if (heap->over_budget_since == 0) heap->over_budget_since = now;
    if (now - heap->over_budget_since < decay_ns) return;
  }
  heap->over_budget_since = 0;
  /* The superblock just freed into is the likeliest to serve the next allocation: last. */
  for (superblock_t *sb = heap->superblocks_last; sb != NULL && heap->dirty_free > budget / 2; sb = sb->prev)
    if (sb != just_freed) superblock_purge_free(heap, sb);
  if (heap->dirty_free > budget / 2 && just_freed != NULL) superblock_purge_free(heap, just_freed);
  if (heap->dirty_free > budget / 2) heap->dirty_free = 0;   /* the estimate drifted: start again */
}

/* ---- The global cache of empty superblocks -------------------------------------------------- */
static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;
/* One list per NUMA node (a single list on a one-node machine): a superblock is reused on the
 * node its pages were placed on. The cache limit applies to each list. */
static superblock_t *g_cache[NUMA_MAX_NODES];
static size_t g_cache_node_count[NUMA_MAX_NODES];
static _Atomic size_t g_cache_count;     /* all lists; read without the lock as a hint */

void superblock_cache_lock(void)       { pthread_mutex_lock(&g_cache_lock); }
void superblock_cache_unlock(void)     { pthread_mutex_unlock(&g_cache_lock); }
void superblock_cache_reset_lock(void) { pthread_mutex_init(&g_cache_lock, NULL); }

static superblock_t *cache_pop(size_t node) {
  if (atomic_load_explicit(&g_cache_count, memory_order_relaxed) == 0) return NULL;
  pthread_mutex_lock(&g_cache_lock);
  superblock_t *sb = g_cache[node];
  if (sb) { g_cache[node] = sb->next; g_cache_node_count[node]--; g_cache_count--; }
  pthread_mutex_unlock(&g_cache_lock);
  return sb;
}

/* Superblocks are placed at random 4 MiB-aligned addresses inside a 1 TiB window chosen at
 * random at start-up (between 16 and 96 TiB, far from the program, its libraries and stacks), so
 * the address of one superblock says nothing about the others. A window rather than the whole
 * address space keeps the registry pages and page tables the placement touches few. When a try
 * lands on something already mapped, the kernel's own placement is used. */
#define PLACEMENT_WINDOW ((uintptr_t)1 << 40)

static _Atomic uintptr_t g_window_base;
static _Atomic uint64_t g_placement_count;

static void *random_placement(void) {
  uintptr_t window = atomic_load_explicit(&g_window_base, memory_order_acquire);
  if (window == 0) {
    /* First superblock: threads racing here agree on one window (the first CAS wins). */
    uint64_t r;
    os_random(&r, sizeof r);
    uintptr_t mine = ((uintptr_t)16 << 40) + (uintptr_t)(r % 80) * PLACEMENT_WINDOW;
    if (atomic_compare_exchange_strong(&g_window_base, &window, mine)) window = mine;
  }
  /* A keyed hash of a counter: the addresses already seen (18 bits each) say nothing about the
   * next one, unlike the low bits of a linear generator's state. */
  uint64_t n = atomic_fetch_add_explicit(&g_placement_count, 1, memory_order_relaxed);
  uint64_t x = keyed_hash(&n, 1, 0x706C6163656D6E74ULL);              /* "placemnt" */
  uintptr_t offset = (uintptr_t)(x % (PLACEMENT_WINDOW / SB_SIZE)) * SB_SIZE;
  return (void *)(window + offset);
}

#if defined(APEX_DEBUG) && APEX_DEBUG
/* Debug builds only: a test may turn the random placement off, so that superblocks land where
 * the kernel's placement puts them, next to other mappings (as happens when the window is full,
 * or under ThreadSanitizer's reserved address ranges). */
volatile bool apex_debug_kernel_placement;
#define RANDOM_PLACEMENT_TRIES (apex_debug_kernel_placement ? 0 : 3)
#else
#define RANDOM_PLACEMENT_TRIES 3
#endif

static superblock_t *superblock_map_new(size_t node) {
  superblock_t *sb = NULL;
  for (int attempt = 0; attempt < RANDOM_PLACEMENT_TRIES && sb == NULL; attempt++)
    sb = os_map_at(random_placement(), SB_SIZE);
  if (sb == NULL) sb = os_map_aligned(SB_SIZE, SB_SIZE);
  if (sb == NULL) return NULL;
  os_thp_advise(sb, SB_SIZE);
  numa_bind(sb, SB_SIZE, node);           /* before any page is touched */
  sb->numa_node = (uint32_t)node;
  /* The last page of slice 0 is a guard between the metadata and the first chunk of slice 1: an
   * underflow from user data cannot reach the block descriptors. */
  os_protect_none((uint8_t *)sb + SLICE_SIZE - os_page_size(), os_page_size());
  /* Fresh mappings read as zero, so only the non-zero fields need setting. */
  sb->kind = SB_KIND_BLOCKS;
  superblock_seal(sb);
  sb->free_slices = ~(uint64_t)1;
  sb->dirty_slices = 1;
  for (size_t i = 0; i < SLICES_PER_SB; i++) slice_map_set(sb, i, 0);   /* descriptor 0: never in use */
  stats_dirty_changed(NULL, 0, sb->dirty_slices);
  atomic_fetch_add_explicit(&g_superblocks_live, 1, memory_order_relaxed);
  registry_set(sb, g_reg_blocks);
  walk_list_add(sb);
  return sb;
}

/* New superblocks go to the back: blocks are placed first-fit from the front, so small blocks
 * keep filling older superblocks and fresh ones stay whole for long runs. */
static void heap_link_superblock(heap_t *heap, superblock_t *sb) {
  sb->next = NULL;
  sb->prev = heap->superblocks_last;
  if (heap->superblocks_last) heap->superblocks_last->next = sb; else heap->superblocks = sb;
  heap->superblocks_last = sb;
  heap->superblock_count++;
  count_add(&heap->block_counts.dirty_slices, __builtin_popcountll(sb->dirty_slices));   /* now heap's */
  atomic_store_explicit(&sb->heap, heap, memory_order_release);
  superblock_seal(sb);
}

static void heap_unlink_superblock(heap_t *heap, superblock_t *sb) {
  if (sb->prev) sb->prev->next = sb->next; else heap->superblocks = sb->next;
  if (sb->next) sb->next->prev = sb->prev; else heap->superblocks_last = sb->prev;
  sb->next = sb->prev = NULL;
  heap->superblock_count--;
  count_add(&heap->block_counts.dirty_slices, -(ptrdiff_t)__builtin_popcountll(sb->dirty_slices));
}

/* A new superblock for `heap`: from the cache, else after helping abandoned heaps give theirs
 * back, else from the OS. */
superblock_t *superblock_acquire(heap_t *heap) {
  size_t node = numa_current_node();
  superblock_t *sb = cache_pop(node);
  if (sb == NULL) {
    heap_collect_abandoned(heap);
    sb = cache_pop(node);
  }
  if (sb == NULL) sb = superblock_map_new(node);
  if (sb == NULL) return NULL;
  apex_assert(sb->used_slices == 0 && sb->free_slices == ~(uint64_t)1);
  sb->purged = 0;
  heap->dirty_free += dirty_free_of(sb);
  heap_link_superblock(heap, sb);
  return sb;
}

/* An empty superblock leaves its heap: into the global cache, or back to the OS. */
void superblock_release(heap_t *heap, superblock_t *sb) {
  apex_assert(sb->used_slices == 0);
  heap_unlink_superblock(heap, sb);
  heap_dirty_sub(heap, dirty_free_of(sb));
  atomic_store_explicit(&sb->heap, NULL, memory_order_relaxed);
  superblock_seal(sb);
  /* With opt.decay_ms = 0 the pages go back at once; else the purge thread returns them once
   * they have sat in the cache for decay_ms. */
  bool now = atomic_load_explicit(&g_opt.decay_ms, memory_order_relaxed) == 0;
  if (now) purge_slices(sb, ~(uint64_t)1);
  sb->purged = now;
  sb->release_ns = os_now_ns();
  pthread_mutex_lock(&g_cache_lock);
  size_t node = sb->numa_node;
  if (g_cache_node_count[node] < atomic_load_explicit(&g_opt.superblock_cache, memory_order_relaxed)) {
    sb->next = g_cache[node];
    g_cache[node] = sb;
    g_cache_node_count[node]++;
    g_cache_count++;
    pthread_mutex_unlock(&g_cache_lock);
    if (!now) purger_kick();
    return;
  }
  pthread_mutex_unlock(&g_cache_lock);
  superblock_unmap(sb);
}

/* The purge thread: the data slices of superblocks cached for at least decay_ns go back to the
 * OS (the mapping and its metadata slice stay, ready for reuse). */
void superblock_cache_decay(uint64_t now_ns, uint64_t decay_ns) {
  if (atomic_load_explicit(&g_cache_count, memory_order_relaxed) == 0) return;
  pthread_mutex_lock(&g_cache_lock);
  for (size_t node = 0; node < g_numa_nodes; node++) {
    for (superblock_t *sb = g_cache[node]; sb != NULL; sb = sb->next) {
      if (sb->purged || now_ns - sb->release_ns < decay_ns) continue;
      purge_slices(sb, ~(uint64_t)1);
      sb->purged = 1;
    }
  }
  pthread_mutex_unlock(&g_cache_lock);
}

/* Unmaps every cached superblock (apex_collect). */
void superblock_cache_flush(void) {
  for (size_t node = 0; node < g_numa_nodes; node++) {
    for (;;) {
      superblock_t *sb = cache_pop(node);
      if (sb == NULL) break;
      superblock_unmap(sb);
    }
  }
}

/* Drops every block of a superblock, live objects included (apex_heap_destroy), and releases it. */
void superblock_discard(heap_t *heap, superblock_t *sb) {
  for (size_t i = 1; i < SLICES_PER_SB; i++) {
    block_t *b = &sb->blocks[i];
    block_set_limit(b, 0);
    block_seal(b);
    b->free = NULL;
    b->flags = 0;
    b->next = b->prev = NULL;
    atomic_store_explicit(&b->remote, (uintptr_t)BLOCK_QUEUED, memory_order_relaxed);  /* no list */
  }
  sb->free_slices = ~(uint64_t)1;
  heap->active_slices -= sb->used_slices;
  sb->used_slices = 0;
  superblock_release(heap, sb);
}

/* ---- Slice runs ------------------------------------------------------------------------------ */

/* Bit j of the result is set when slices j .. j+count-1 are all free: shift-and-AND by doubling
 * widths, so a run of 32 costs five steps. */
static uint64_t runs_of(uint64_t free_mask, size_t count) {
  uint64_t m = free_mask;
  size_t len = 1;
  while (len < count) {
    size_t step = len < count - len ? len : count - len;
    m &= m >> step;
    len += step;
  }
  return m;
}

static uint64_t aligned_positions(size_t align_slices) {
  if (align_slices <= 1) return ~(uint64_t)0;
  uint64_t m = 0;
  for (size_t i = 0; i < SLICES_PER_SB; i += align_slices) m |= (uint64_t)1 << i;
  return m;
}

#define LONG_RUN 8        /* slices: 512 KiB and more */

static block_t *take_run(heap_t *heap, superblock_t *sb, size_t count, uint64_t positions) {
  if (SLICES_PER_SB - 1 - sb->used_slices < count) return NULL;
  uint64_t starts = runs_of(sb->free_slices, count) & positions;
  if (starts == 0) return NULL;
  /* Short runs (blocks) are placed low, long ones (large objects) high, so that what is freed
   * between them stays one contiguous range. */
  size_t first = count >= LONG_RUN ? 63 - (size_t)__builtin_clzll(starts) : (size_t)__builtin_ctzll(starts);
  uint64_t mask = slice_run_mask(first, count);
  sb->free_slices &= ~mask;
  sb->used_slices += (uint32_t)count;
  heap->active_slices += count;
  for (size_t i = first; i < first + count; i++) slice_map_set(sb, i, first);
  block_t *b = &sb->blocks[first];
  b->index = (uint8_t)first;
  b->slices = (uint8_t)count;
  heap_dirty_sub(heap, (size_t)__builtin_popcountll(mask & sb->dirty_slices & ~sb->lazy_slices));
  b->flags = (sb->dirty_slices & mask) ? 0 : BLOCK_FRESH;
  stats_dirty_changed(heap, sb->dirty_slices, sb->dirty_slices | mask);
  sb->dirty_slices |= mask;
  sb->lazy_slices &= ~mask;
  return b;
}

/* A run of `count` slices starting at a multiple of `align_slices`, from any superblock of the
 * heap, or from a new one. The caller initializes the block. */
block_t *superblock_take_slices(heap_t *heap, size_t count, size_t align_slices) {
  uint64_t positions = aligned_positions(align_slices);
  for (superblock_t *sb = heap->superblocks; sb != NULL; sb = sb->next) {
    block_t *b = take_run(heap, sb, count, positions);
    if (b) return b;
  }
  superblock_t *sb = superblock_acquire(heap);
  if (sb == NULL) return NULL;
  return take_run(heap, sb, count, positions);
}

/* The slices of a retired block go back to their superblock; an empty superblock is released
 * unless it is the heap's last one (kept so a steady alloc/free loop never returns to the OS). */
void superblock_give_slices(heap_t *heap, superblock_t *sb, block_t *b) {
  superblock_verify(sb);                       /* a local free found `heap` in sb unchecked */
  size_t count = b->slices;
  uint64_t mask = slice_run_mask(b->index, count);
  apex_assert((sb->free_slices & mask) == 0);
  sb->free_slices |= mask;
  sb->used_slices -= (uint32_t)count;
  heap->active_slices -= count;
  heap->dirty_free += count;
  bool released = sb->used_slices == 0 && (heap->retire_all || heap->superblock_count > 1);
  if (released) superblock_release(heap, sb);
  /* A heap without a thread (claimed by a freeing thread, or swept) is purged by the purge
   * thread once it has been abandoned for opt.decay_ms: the freeing thread does not pay for it;
   * a heap retiring everything (collect, thread exit) purges as a whole afterwards. */
  if (!heap->retire_all && !atomic_load_explicit(&heap->abandoned, memory_order_relaxed))
    heap_over_dirty_budget(heap, released ? NULL : sb);
}
