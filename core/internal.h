/*
 * internal.h — the shared vocabulary of the core: the memory hierarchy's data structures,
 * constants, and the few inline helpers the fast paths need.
 *
 * Owns: the layout of superblocks, blocks, heaps; nothing here allocates or makes a system call.
 * Must never: be included by the public header or by bindings.
 *
 * The hierarchy (see docs/ARCHITECTURE.md):
 *   superblock  4 MiB, 4 MiB-aligned mapping; slice 0 holds all its metadata, slices 1..63 user data.
 *   block       a run of 1..N 64 KiB slices serving one size class (or one large object).
 *   chunk       one user object; while free, its second word holds a keyed "free" tag.
 */
#ifndef APEX_INTERNAL_H
#define APEX_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "apexalloc.h"

/* ---- Compiler helpers ------------------------------------------------------------------------ */
#define apex_likely(x)   __builtin_expect(!!(x), 1)
#define apex_unlikely(x) __builtin_expect(!!(x), 0)
#define apex_cold        __attribute__((cold, noinline))
#define apex_noinline    __attribute__((noinline))
#define apex_inline      static inline __attribute__((always_inline))
/* The public entry points. In the embeddable form (APEX_EMBED) they stay inside the module that
 * links the core, so two copies in one process (a binding's and a preloaded libapexalloc.so)
 * never bind to each other. */
#if defined(APEX_EMBED) && APEX_EMBED
#define apex_export      __attribute__((visibility("hidden")))
#else
#define apex_export      __attribute__((visibility("default")))
#endif
#define apex_noreturn    __attribute__((noreturn))

#if defined(APEX_DEBUG) && APEX_DEBUG
#define apex_assert(cond) \
  ((cond) ? (void)0 : apex_assert_fail(#cond, __FILE__, __LINE__))
#else
#define apex_assert(cond) ((void)0)
#endif

/* ---- Geometry -------------------------------------------------------------------------------- */
#define SB_SHIFT        22
#define SB_SIZE         ((size_t)1 << SB_SHIFT)             /* 4 MiB superblock */
#define SB_MASK         (SB_SIZE - 1)
#define SLICE_SHIFT     16
#define SLICE_SIZE      ((size_t)1 << SLICE_SHIFT)          /* 64 KiB block unit */
#define SLICES_PER_SB   (SB_SIZE / SLICE_SIZE)               /* 64; slice 0 is metadata */
#define ADDRESS_BITS    47                                   /* user-space virtual addresses */

/* Size classes: 16..128 in 16-byte steps, then 8 classes per doubling (<= 12.5% waste) up to
 * SMALL_MAX. Above SMALL_MAX an object gets its own run of slices (a "large" block), and above
 * LARGE_MAX its own mapping ("huge"). */
#define SMALL_MAX       ((size_t)128 * 1024)
#define LARGE_MAX       ((SLICES_PER_SB - 1) * SLICE_SIZE)   /* 63 slices: 3.94 MiB */
#define CLASS_COUNT     89                                   /* classes 1..88; 0 = large/huge */
#define CLASS_LARGE     0
#define HUGE_MAX        ((size_t)1 << 46)                    /* beyond any real mapping */

/* ---- Chunks, blocks, superblocks -------------------------------------------------------------- */
/* A free chunk: its encoded free-list link, and a tag that says "free" (see chunk_tag_free). */
typedef struct chunk_s { uintptr_t next_enc; uintptr_t free_tag; } chunk_t;

enum {
  BLOCK_IN_FULL = 1,   /* no free chunks: removed from its heap's class queue */
  BLOCK_FRESH   = 2,   /* its slices were never used: uncarved chunks read as zero */
  BLOCK_LARGE_GONE = 4,/* a large block whose object was freed, counted out of the statistics */
};

typedef struct apex_heap_s heap_t;   /* the public apex_heap_t is the heap itself */
typedef struct superblock_s superblock_t;

typedef struct block_s {
  /* Line 1: fixed while the block is in use; read by every thread that frees into it. */
  uint8_t *start;              /* first chunk */
  uint64_t div_magic;          /* UINT64_MAX / chunk_size + 1: divisibility test by one multiply */
  uintptr_t key;               /* secret for free-list link encoding */
  _Atomic uint32_t limit;      /* carved * chunk_size: the extent ever handed out; 0 while not in
                                * use (relaxed: see block_limit); only the owner raises it */
  uint32_t chunk_size;
  uint32_t capacity;           /* chunks that fit in the block */
  uint8_t  cls;
  uint8_t  slices;             /* run length in slices */
  uint8_t  index;              /* slice index of the head */
  uint32_t crc;                /* keyed CRC32-C of the fields above (block_seal / block_verify) */
  /* Line 2: the owner's working state, kept apart so remote frees do not bounce line 1. */
  _Alignas(64) chunk_t *free;  /* local free list (owner only), encoded links */
  uint32_t used;               /* chunks handed out, including those waiting in remote queues */
  uint32_t carved;             /* chunks carved from the fresh area so far (bump pointer) */
  uint8_t  flags;              /* BLOCK_IN_FULL, BLOCK_FRESH */
  struct block_s *next, *prev; /* neighbours in the heap's queue for this class */
  /* Line 3: chunks freed by other threads, and whether the owner wants to be told about them. */
  _Alignas(64) _Atomic uintptr_t remote;      /* remote list head | notify state: see below */
  struct block_s *notify_next;                /* link in the owner's `notified` stack */
} block_t;

/* The `remote` word holds two things that must change together: the head of the list of chunks
 * other threads freed (chunks are 16-byte aligned) in its high bits, and the notify state in its
 * low two bits. A block out of its queue because it had no free chunk is FULL; the remote free
 * whose CAS finds FULL publishes its chunk and moves the block to NOTIFIED in that same CAS, then
 * pushes the block on the owner's `notified` stack (only that transition pushes, so a block is
 * never on the stack twice). A NOTIFIED block is never retired, so that freer may still touch it;
 * the owner sets it back to QUEUED after popping it from the stack. Every other remote free
 * touches nothing of the block after its CAS. (remote.c explains the whole protocol.) */
enum { BLOCK_QUEUED = 0, BLOCK_FULL = 1, BLOCK_NOTIFIED = 2 };
#define REMOTE_STATE_MASK ((uintptr_t)3)
apex_inline chunk_t *remote_chunks(uintptr_t word) { return (chunk_t *)(word & ~REMOTE_STATE_MASK); }
apex_inline uintptr_t remote_state(uintptr_t word) { return word & REMOTE_STATE_MASK; }

/* Remote frees a thread has made into one block of another thread's default heap and not yet
 * published (remote.c): a chain head -> ... -> tail through the chunks' encoded links, each chunk
 * already tagged remote. Published with the one CAS a single chunk would take. */
typedef struct { block_t *block; chunk_t *head, *tail; uint32_t count; } remote_batch_t;
#define REMOTE_BATCH_SLOTS     64     /* blocks a thread may hold batches for at once (a mask bit each) */
#define REMOTE_BATCH_MAX       32     /* chunks per batch before it is published */
#define REMOTE_BATCH_CHUNK_MAX 1024   /* larger chunks are published at once */
typedef struct remote_batches_s {
  uint64_t open;                             /* bit i set: slot[i] holds a batch */
  remote_batch_t slot[REMOTE_BATCH_SLOTS];
} remote_batches_t;
extern remote_batches_t g_no_batches;        /* all empty, never written: a heap's table until mapped */

/* Every registered mapping (a superblock, or a huge object's header page) starts with the same
 * three fields: they are all a caller of superblock_of() reads before it knows which kind of
 * header it holds. `check` is a keyed hash of the header fields that frees and reallocs trust
 * (see header_check in superblock.c): a header overwritten by a stray or overflowing write is
 * caught before the allocator acts on it. */
struct superblock_s {
  /* First cache line: what every free reads. */
  _Atomic(heap_t *) heap;                /* owning heap; NULL while cached globally */
  uint32_t kind;                         /* SB_KIND_BLOCKS or SB_KIND_HUGE */
  uint32_t check;                        /* superblock_seal: keyed hash of heap, kind, address */
  uint32_t used_slices;
  uint64_t free_slices;                  /* bit i set: slice i is free (bit 0 never) */
  uint64_t dirty_slices;                 /* bit i set: slice i was ever handed to a block */
  uint16_t slice_desc[SLICES_PER_SB];    /* slice -> byte offset of its block's descriptor: one
                                          * load and an add take free() from a pointer to it */
  uint8_t  slice_head[SLICES_PER_SB];    /* slice -> head slice of its block (slow paths) */
  /* Then the bookkeeping of the slow paths. */
  superblock_t *next, *prev;             /* heap's superblock list, or the global cache */
  superblock_t *all_next, *all_prev;     /* every mapped superblock, under the walk lock */
  uint32_t purged;                       /* cached: its data slices were given back already */
  uint32_t numa_node;                    /* node it was placed on (its cache list) */
  uint64_t lazy_slices;                  /* free slices given back with MADV_FREE (still dirty) */
  uint64_t release_ns;                   /* cached: when it entered the cache */
  _Alignas(128) block_t blocks[SLICES_PER_SB];  /* descriptor per head slice */
};

/* The header of a huge object (its own mapping): one page at superblock_base(user pointer). It
 * shares only the leading heap/kind/check with superblock_t. */
typedef struct huge_s huge_t;
struct huge_s {
  _Atomic(heap_t *) heap;                /* the heap that allocated it: its list, its limit */
  uint32_t kind;                         /* SB_KIND_HUGE */
  uint32_t check;                        /* huge_seal: keyed hash of the fields down to huge_offset */
  uint8_t *map_base;                     /* start of the mapping (may precede the header) */
  size_t   map_size;                     /* bytes mapped at map_base */
  size_t   huge_size;                    /* usable bytes */
  size_t   huge_offset;                  /* user pointer = header + huge_offset */
  huge_t  *all_next, *all_prev;          /* its heap's list of live huge objects (huge_lock) */
  uint32_t link_check;                   /* keyed hash of the two links, checked before unlinking */
  _Atomic(uint32_t) huge_state;          /* HUGE_LIVE / HUGE_FREE */
  uint64_t release_ns;                   /* cached: when it entered the huge cache */
};
_Static_assert(offsetof(huge_t, heap) == offsetof(superblock_t, heap) &&
               offsetof(huge_t, kind) == offsetof(superblock_t, kind) &&
               offsetof(huge_t, check) == offsetof(superblock_t, check), "one common header start");

#define SB_KIND_BLOCKS  1
#define SB_KIND_HUGE    2
#define HUGE_LIVE       1
#define HUGE_FREE       2
#define HUGE_HEADER     ((size_t)4096)

_Static_assert(sizeof(block_t) == 192, "block descriptor: three cache lines");
_Static_assert(sizeof(superblock_t) <= UINT16_MAX, "slice_desc holds descriptor offsets");
_Static_assert(sizeof(superblock_t) <= SLICE_SIZE - 4096, "superblock metadata must fit in slice 0, before its guard page");

/* ---- Heaps ----------------------------------------------------------------------------------- */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define APEX_TSAN_CLANG 1
#endif
#endif
#ifndef APEX_TSAN_CLANG
#define APEX_TSAN_CLANG 0
#endif
/* Written only by the heap's owner (plain load + store, no locked instruction), read by anyone
 * taking statistics; atomics with relaxed order make those reads race-free. */
typedef struct {
  _Atomic size_t alloc_bytes;                /* bytes of chunks handed out by this heap */
  _Atomic size_t requested;                  /* bytes asked for (to measure internal waste) */
  _Atomic size_t free_bytes;                 /* bytes of chunks returned to it (local or remote) */
  _Atomic size_t remote_free_count;          /* of those, chunks that came from other threads */
} heap_counters_t;

/* A release store (a plain move on x86): a reader that sees a free_bytes value sees every
 * alloc_bytes increment made before it (heap_over_limit reads them in that order). */
apex_inline void counter_add(_Atomic size_t *c, size_t n) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) && !APEX_TSAN_CLANG
  /* One add to memory, without a lock prefix: the same single-writer update as the C11 form
   * below (an aligned 8-byte store is never torn, and x86 keeps stores in program order), which
   * compilers emit as a load, an add and a store: three instructions on every malloc and free. */
  __asm__ volatile("addq %1, %0" : "+m"(*(size_t *)c) : "er"(n));
#else
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_release);
#endif
}

/* What the statistics need of a heap's blocks, kept on the slow paths where blocks change state
 * (init, parking as full, unparking, retiring; superblocks joining and leaving), so that a snapshot
 * sums these per heap instead of walking every superblock (stats.c). Updated with atomic
 * read-modify-writes: all writers are on slow paths, and some (purging) are not the owner. */
typedef struct {
  _Atomic size_t blocks[CLASS_COUNT];        /* blocks in use per class (bin 0: one per large object) */
  _Atomic size_t full[CLASS_COUNT];          /* of those, parked full (BLOCK_IN_FULL): every chunk live */
  _Atomic size_t large_live, large_bytes;    /* live large objects and their usable bytes */
  _Atomic size_t dirty_slices;               /* slices of its superblocks ever touched, not purged */
} heap_block_counts_t;

apex_inline void count_add(_Atomic size_t *c, ptrdiff_t n) {
  atomic_fetch_add_explicit(c, (size_t)n, memory_order_relaxed);
}

struct apex_heap_s {
  /* The owner's identity shares the first line with the queue heads, which change only on slow
   * paths, so other threads can read it without bouncing the owner's hot data. */
  _Atomic uintptr_t thread_id;           /* owner's thread pointer; 0 while it has no owner */
  block_t *current[CLASS_COUNT];         /* head of each class queue, or &g_empty_block */
  block_t *last[CLASS_COUNT];            /* tail of each class queue, NULL when empty */
  superblock_t *superblocks;             /* owned superblocks (doubly linked), oldest first */
  superblock_t *superblocks_last;
  size_t superblock_count;
  /* The line other threads touch: `abandoned` on every remote free, the rest rarely. */
  _Alignas(64) _Atomic(block_t *) notified; /* full blocks that received remote frees */
  _Atomic bool abandoned;                /* on the abandoned list: only g_heaps_lock holders touch it */
  _Atomic bool remote_pending;           /* abandoned heap has uncollected remote frees */
  char remote_pad[64 - sizeof(void *) - 2 * sizeof(bool)];
  uint64_t rng;                          /* per-heap random state */
  heap_counters_t counters;
  heap_t *all_next;                      /* global list of every heap ever made */
  heap_t *abandoned_next;                /* global list of heaps without a thread */
  bool retire_all;                       /* owner is leaving: retire empty blocks and superblocks */
  uint64_t abandoned_ns;                 /* when it lost its thread (purge thread: decay) */
  bool idle_purged;                      /* abandoned and its free slices purged since */
  size_t active_slices;                  /* slices of its superblocks given to blocks (owner only) */
  uint64_t over_budget_since;            /* when dirty_free went over its budget (0: it is not) */
  size_t dirty_free;                     /* free slices of its superblocks still backed by memory
                                          * (approximate; owner only); see opt.heap_dirty_max */
  /* The handle side (apex_heap_t is a heap_t). */
  uint64_t magic;                        /* HEAP_MAGIC ^ address while the handle is valid */
  _Atomic bool is_default;               /* a thread's default heap: not destroyable/deletable
                                          * (other threads read it: remote_free batches for it) */
  _Atomic(heap_t *) explicit_root;       /* the apex_heap_new handle this heap (or its shared part)
                                          * serves while that handle is valid, else NULL: realloc
                                          * keeps such a heap's objects in it (any thread reads it) */
  size_t limit;                          /* most live bytes (apex_heap_options_t.limit); 0 = none */
  heap_t *parent;                        /* for a shared sub-heap: the heap it serves */
  heap_t *shared;                        /* sub-heap serving allocations by non-owner threads */
  pthread_mutex_t shared_lock;           /* serializes those allocations */
  pthread_mutex_t huge_lock;             /* guards the huge list and its totals */
  huge_t *huge_list;                     /* live huge objects allocated from this heap */
  size_t huge_bytes, huge_count;         /* live huge objects */
  size_t huge_total_in, huge_total_out;  /* cumulative bytes of huge objects made / freed */
  heap_t *free_next;                     /* destroyed heap structs waiting for reuse */
  bool explicit_handle;                  /* made by apex_heap_new: once deleted, never adopted as
                                          * a default heap (its old handle must stay invalid) */
  _Atomic uint32_t visiting;             /* apex_heap_visit walks in progress (destroy/delete: EBUSY) */
  _Atomic size_t retired_blocks;         /* blocks retired so far (owner-written): a visit re-checks
                                          * its snapshot when this moves */
  struct quarantined_s *quarantine;      /* hardened mode: this thread's freed chunks held back */
  size_t quarantine_count, quarantine_bytes;
  _Atomic uint64_t destroyed;            /* times destroyed (kept when the struct is reused) */
  _Atomic size_t quarantine_pins;        /* threads releasing a quarantined chunk of this heap */
  remote_batches_t *outgoing;            /* this thread's unpublished remote frees (its default heap
                                          * only; remote.c): g_no_batches until it first holds one */
  size_t huge_mapped;                    /* bytes mapped for its live huge objects (huge_lock) */
  heap_block_counts_t block_counts;      /* for the statistics (see above); last: no hot offset moves */
};

/* ---- Global state ---------------------------------------------------------------------------- */
extern block_t g_empty_block;
extern heap_t  g_empty_heap;
extern uintptr_t g_secret;                /* from getrandom at init */

#if defined(APEX_EMBED_TLS) || !defined(APEX_OVERRIDE)
#define APEX_TLS __thread
#else
#define APEX_TLS __thread __attribute__((tls_model("initial-exec")))
#endif
extern APEX_TLS heap_t *tls_heap;
extern APEX_TLS heap_t *tls_fast_heap;    /* what apex_malloc pops from: see there */

/* The calling thread's identity without a TLS lookup: its thread pointer (%fs:0 on x86-64),
 * unique among live threads. Lets free() recognize the owner even in the dlopen-safe build,
 * where reading a TLS variable costs a call. */
apex_inline uintptr_t current_thread_id(void) { return (uintptr_t)__builtin_thread_pointer(); }

/* ---- os.c ------------------------------------------------------------------------------------ */
void  *os_map(size_t size);
void  *os_map_aligned(size_t size, size_t alignment);
void  *os_map_at(void *hint, size_t size);
void   os_unmap(void *p, size_t size);
void   os_protect_none(void *p, size_t size);
bool   os_remap_grow(void *p, size_t old_size, size_t new_size);
void  *os_remap_move_aligned(void *p, size_t old_size, size_t new_size, size_t alignment);
void   os_random(void *buf, size_t len);
size_t os_page_size(void);
bool   os_purge(void *p, size_t size);                /* true: the range now reads as zero */
uint64_t os_now_ns(void);
#include <sys/types.h>
ssize_t os_read_file(const char *path, char *buf, size_t size);
void   os_thp_advise(void *p, size_t size);
extern _Atomic size_t g_purged_bytes;                 /* stats.purged */
enum { THP_UNKNOWN = 0, THP_ALWAYS, THP_MADVISE, THP_NEVER };
extern int g_thp_mode;                                /* system THP mode, read at init */
const char *thp_mode_name(void);
size_t thp_process_bytes(void);                       /* AnonHugePages of the process */
#define NUMA_MAX_NODES 64
extern size_t g_numa_nodes;                           /* nodes (detected, or opt.numa_nodes); >= 1 */
size_t numa_current_node(void);                       /* 0 when there is one node */
void   numa_bind(void *p, size_t size, size_t node);  /* prefer `node` for these pages (mbind) */

/* ---- decay.c: giving memory back over time ------------------------------------------------ */
void   purger_kick(void);                             /* asks for the purge thread (memory entered a cache) */
void   purger_after_fork_child(void);
/* purger_defer (below, after the options) brackets an allocator operation that must not be
 * re-entered (a lock held, a queue or list being walked). The purge thread is only ever started,
 * and inline decay only ever runs, when the outermost bracket of a thread closes: a clean point
 * (see decay.c). */
extern APEX_TLS int tls_purger_depth;
extern _Atomic int g_purger_pending;
void   purger_clean_point(void);
void   decay_init(void);                              /* reads THP and NUMA facts; no malloc */
bool   purger_running(void);

/* ---- sizeclass.c ----------------------------------------------------------------------------- */
extern uint32_t g_class_size[CLASS_COUNT];
extern uint8_t  g_class_slices[CLASS_COUNT];
#define CLASS_TABLE_MAX 8192                          /* class_of() by table up to here */
extern uint8_t  g_class_of_size[CLASS_TABLE_MAX / 16 + 1];
void sizeclass_init(void);

/* Size class of a request of `size` bytes (size <= SMALL_MAX): a table load up to 8 KiB, a bit
 * scan and two shifts above. */
apex_inline size_t class_of(size_t size) {
  if (apex_likely(size <= CLASS_TABLE_MAX)) return g_class_of_size[(size + 15) >> 4];
  size_t w = size - 1;
  size_t b = 63 - (size_t)__builtin_clzll(w);           /* b >= 10 here */
  return 9 + (b - 7) * 8 + ((w >> (b - 3)) & 7);
}

/* ---- superblock.c ---------------------------------------------------------------------------- */
superblock_t *superblock_acquire(heap_t *heap);
void          superblock_release(heap_t *heap, superblock_t *sb);
block_t      *superblock_take_slices(heap_t *heap, size_t slices, size_t align_slices);
void          superblock_give_slices(heap_t *heap, superblock_t *sb, block_t *b);
void          registry_set(void *base, unsigned kind);  /* REG_*; REG_NONE clears */
void          registry_quiesce(void);                 /* after clearing an entry, before unmapping */
void          registry_read_begin(void);              /* apex_owns: nothing is unmapped until ... */
void          registry_read_end(void);                /* ... this (see superblock.c) */
uint64_t      keyed_hash(const uint64_t *words, size_t n, uint64_t domain);  /* see superblock.c */
uint32_t      header_check(const uint64_t *words, size_t n);   /* keyed hash for mapping headers */
void          superblock_seal(superblock_t *sb);
void          superblock_verify(const superblock_t *sb);       /* aborts when the header was overwritten */
apex_noreturn void superblock_corrupted(const superblock_t *sb);
void          superblock_cache_lock(void);
void          superblock_cache_unlock(void);
void          superblock_cache_reset_lock(void);
void          superblock_cache_flush(void);
void          superblock_cache_decay(uint64_t now_ns, uint64_t decay_ns);  /* purger thread */
void          superblock_purge_free(heap_t *heap, superblock_t *sb);  /* owner: free dirty slices back */
void          superblock_walk_lock(void);
void          superblock_walk_unlock(void);
void          superblock_walk_reset_lock(void);
superblock_t *superblocks_first(void);

/* What the 4 MiB unit holding an address is, as the registry records it: one byte per unit, so a
 * free learns "ours, and which kind of mapping" from a single load, before it reads any memory
 * near the pointer. A block superblock made in hardened mode is registered as such, so the default
 * free path's one comparison also sends hardened-mode frees to their own path. */
enum { REG_NONE = 0, REG_BLOCKS = 1, REG_HUGE = 2, REG_BLOCKS_HARDENED = 3 };
#define REGISTRY_UNITS ((size_t)1 << (ADDRESS_BITS - SB_SHIFT))
extern _Atomic uint8_t g_registry[REGISTRY_UNITS];
extern uint8_t g_reg_blocks;                          /* REG_BLOCKS, or REG_BLOCKS_HARDENED */

/* Uses the byte before p so that an object starting exactly on a 4 MiB boundary (huge,
 * 4 MiB-aligned) still finds the header in front of it; NULL and addresses outside the user
 * address space give REG_NONE. */
apex_inline unsigned registry_kind(const void *p) {
  uintptr_t unit = ((uintptr_t)p - 1) >> SB_SHIFT;
  if (apex_unlikely(unit >= REGISTRY_UNITS)) return REG_NONE;
  return atomic_load_explicit(&g_registry[unit], memory_order_acquire);
}

apex_inline superblock_t *superblock_base(const void *p) {
  return (superblock_t *)(((uintptr_t)p - 1) & ~(uintptr_t)SB_MASK);
}

/* The superblock (or huge header) holding p, or NULL when p is not ApexAlloc memory. */
apex_inline superblock_t *superblock_of(const void *p) {
  return registry_kind(p) != REG_NONE ? superblock_base(p) : NULL;
}

/* The keyed check of a superblock header's heap and kind (with its address); see header_check in
 * superblock.c. Inline and unrolled for these two words, about 15 instructions: every publication
 * of a batch of remote frees pays it (remote_publish in remote.c). */
apex_inline uint32_t superblock_check(const superblock_t *sb) {
  uint64_t k = (uint64_t)g_secret ^ 0x73757065726B6579ULL;                 /* "superkey" */
  uint64_t h = ((uint64_t)(uintptr_t)atomic_load_explicit(&sb->heap, memory_order_relaxed) ^ k) *
               0xFF51AFD7ED558CCDULL;
  h ^= h >> 32;
  h = (h ^ (uint64_t)(uintptr_t)sb ^ sb->kind) * 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 32;
  h = (h ^ ((k << 35) | (k >> 29))) * 0x9E3779B97F4A7C15ULL;
  return (uint32_t)(h >> 32);
}

/* The bits of `count` slices starting at slice `first` (count 64: the whole superblock). */
apex_inline uint64_t slice_run_mask(size_t first, size_t count) {
  return (count >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << count) - 1)) << first;
}

apex_inline block_t *block_of(superblock_t *sb, const void *p) {
  size_t slice = ((uintptr_t)p & SB_MASK) >> SLICE_SHIFT;
  return (block_t *)((uint8_t *)sb + sb->slice_desc[slice]);
}

/* Slice `slice` now belongs to the block whose head is slice `head` (both maps together). */
apex_inline void slice_map_set(superblock_t *sb, size_t slice, size_t head) {
  sb->slice_head[slice] = (uint8_t)head;
  sb->slice_desc[slice] = (uint16_t)(offsetof(superblock_t, blocks) + head * sizeof(block_t));
}

apex_inline void heap_dirty_sub(heap_t *heap, size_t slices) {
  heap->dirty_free = heap->dirty_free > slices ? heap->dirty_free - slices : 0;
}

/* ---- block.c --------------------------------------------------------------------------------- */
void     block_init(block_t *b, heap_t *heap, size_t cls, size_t chunk_size);
bool     block_extend(block_t *b);                    /* carve fresh chunks onto the free list */
bool     block_free_slow(heap_t *heap, superblock_t *sb, block_t *b);  /* true: retired */
void     block_retire_if_empty(heap_t *heap, superblock_t *sb, block_t *b);

apex_inline uintptr_t link_encode(const block_t *b, const chunk_t *slot, const chunk_t *next) {
  return (uintptr_t)next ^ b->key ^ ((uintptr_t)slot >> 4);
}
apex_inline chunk_t *link_decode(const block_t *b, const chunk_t *slot) {
  return (chunk_t *)(slot->next_enc ^ b->key ^ ((uintptr_t)slot >> 4));
}
/* Free chunks are tagged in their second word with g_tag_secret ^ address: on a local free list
 * exactly that, in a remote list with TAG_REMOTE flipped. A free of a chunk that carries either
 * tag is a double free; allocation clears the tag. The tag shares the cache line of the link, so
 * the check costs no extra memory traffic, and a secret-keyed value is not something live data
 * holds by accident (or that an attacker can forge without first leaking the secret). */
#define TAG_REMOTE ((uintptr_t)8)
/* The tag word is read and written with relaxed atomics (plain moves on x86): apex_owns may read
 * a freed chunk while its owner re-tags it, and the answer is "free" either way. */
apex_inline uintptr_t tag_load(const chunk_t *c) { return __atomic_load_n(&c->free_tag, __ATOMIC_RELAXED); }
apex_inline void tag_store(chunk_t *c, uintptr_t v) { __atomic_store_n(&c->free_tag, v, __ATOMIC_RELAXED); }
extern uintptr_t g_tag_secret;
apex_inline uintptr_t chunk_tag_free(const chunk_t *c) { return g_tag_secret ^ (uintptr_t)c; }
apex_inline bool chunk_is_free(const chunk_t *c) {
  return ((tag_load(c) ^ chunk_tag_free(c)) | TAG_REMOTE) == TAG_REMOTE;
}

/* The block's carved extent: chunks at or past it were never handed out, so a free of one is
 * rejected by the same test that rejects interior pointers, and a decoded free-list link cannot
 * point there. Relaxed atomics (plain moves on x86): the owner raises it in block_extend before
 * any chunk of the new batch is handed out, so a thread freeing a chunk (which it got, through
 * some synchronization, after the carve) sees a large enough value; apex_owns on a freed pointer
 * may read it while the owner retires the block, and either answer is then correct. */
apex_inline uint32_t block_limit(const block_t *b) { return atomic_load_explicit(&b->limit, memory_order_relaxed); }
apex_inline void block_set_limit(block_t *b, uint32_t v) { atomic_store_explicit(&b->limit, v, memory_order_relaxed); }

/* True when p is the start of a chunk of b: inside the block, and its offset divisible by the
 * chunk size (Lemire's test: for n < 2^32, d divides n iff n * ceil(2^64/d) mod 2^64 < ceil(2^64/d)). */
apex_inline bool chunk_offset_ok(const block_t *b, uint64_t off, uint64_t extent) {
  return off < extent && off * b->div_magic < b->div_magic;
}
apex_inline bool chunk_start_ok(const block_t *b, const void *p) {
  return chunk_offset_ok(b, (uint64_t)((uintptr_t)p - (uintptr_t)b->start), block_limit(b));
}
/* A decoded free-list link is NULL or the start of a chunk of b, tested in a loop over one block's
 * list (block_collect) with the block's fields read once (the limit cannot change under the owner,
 * who alone collects and carves). Slow paths only: the division test costs a multiply the fast
 * path's range-only test does not pay (see block_pop). */
typedef struct { uintptr_t start; uint64_t limit, magic; } link_bounds_t;
apex_inline link_bounds_t link_bounds(const block_t *b) {
  return (link_bounds_t){ (uintptr_t)b->start, block_limit(b), b->div_magic };
}
apex_inline bool link_ok_in(link_bounds_t k, const chunk_t *next) {
  uint64_t off = (uint64_t)((uintptr_t)next - k.start);
  return next == NULL || ((off < k.limit) & (off * k.magic < k.magic));
}
/* ---- remote.c -------------------------------------------------------------------------------- */
void   remote_free(heap_t *owner, block_t *b, chunk_t *c);
/* Collects b's remote frees; returns how many. Sets *retired when the block was retired (its
 * superblock may then be gone too: touch neither again). */
size_t block_collect(heap_t *heap, superblock_t *sb, block_t *b, bool *retired);
bool   block_arm_full(block_t *b);                    /* true: a remote free raced in */
void   block_set_queued(block_t *b);                  /* popped from `notified`: -> QUEUED, chunks kept */
void   block_unarm_full(block_t *b);                  /* FULL -> QUEUED; NOTIFIED stays */
void   heap_collect_notified(heap_t *heap);
void   heap_collect_all_remote(heap_t *heap);
void   remote_flush_all(heap_t *mine);                /* publishes this thread's batches */

/* Debug builds only: a test may stop a thread at a named point of a protocol, to force a window
 * that is otherwise one instruction wide (tests/test_remote_free_window.c). */
enum { APEX_PAUSE_AFTER_REMOTE_PUBLISH = 1, APEX_PAUSE_BEFORE_REMOTE_PUBLISH = 2,
       APEX_PAUSE_HEAP_STRUCT_CLEARED = 3 };   /* heap_new_locked: a reused struct cleared, not yet set up */
#if defined(APEX_DEBUG) && APEX_DEBUG
extern void (*volatile apex_debug_pause_hook)(int point);
extern volatile bool apex_debug_kernel_placement;     /* superblocks where the kernel puts them */
#define apex_debug_pause(point) \
  do { void (*hook_)(int) = apex_debug_pause_hook; if (hook_ != NULL) hook_(point); } while (0)
#else
#define apex_debug_pause(point) ((void)0)
#endif

apex_inline superblock_t *superblock_of_block(const block_t *b) {
  return (superblock_t *)((uintptr_t)b & ~(uintptr_t)SB_MASK);   /* descriptors live in slice 0 */
}

/* ---- heap.c: a heap's life ------------------------------------------------------------------- */
#define HEAP_MAGIC 0x41504558484541ULL     /* "APEXHEA" */
heap_t *heap_for_thread(void);                        /* creates or adopts on first use */
bool    heap_thread_exited(void);                     /* past this thread's heap destructor */
void    heap_thread_done(heap_t *heap);
bool    heap_handle_ok(const heap_t *heap);
heap_t *heap_new_locked(void);                        /* a zeroed heap struct; heaps lock held */
void    heap_recycle_locked(heap_t *heap);            /* a destroyed heap's struct; heaps lock held */
void    heaps_lock(void);
bool    heaps_trylock(void);                          /* never waits: true with the lock held */
void    heaps_unlock(void);
heap_t *heaps_first(void);
void    heaps_after_fork_child(void);
void    heaps_fork_prepare(void);                     /* heaps lock, then every shared_lock, every huge_lock */
void    heaps_fork_parent(void);

/* ---- queue.c: class queues and the small-object slow path ------------------------------------ */
void    heap_queue_push_front(heap_t *heap, block_t *b);
void    heap_queue_push_back(heap_t *heap, block_t *b);
block_t *heap_queue_to_front(heap_t *heap, block_t *b);
void    heap_queue_remove(heap_t *heap, block_t *b);
void   *heap_malloc_slow(heap_t *heap, size_t size, size_t cls);

/* ---- large.c: large objects (runs of slices) ------------------------------------------------- */
void   *heap_malloc_large(heap_t *heap, size_t size, size_t alignment);
bool    heap_resize_large(heap_t *heap, superblock_t *sb, block_t *b, size_t size);

/* ---- abandon.c: losing and regaining an owner ------------------------------------------------ */
void    heap_abandon(heap_t *heap);                   /* thread exit, apex_heap_delete */
heap_t *heap_take_abandoned_locked(void);             /* for adoption; heaps lock held */
bool    heap_try_claim_abandoned(heap_t *heap);
void    heap_collect_now(heap_t *heap);
void    heap_collect_abandoned(heap_t *helper);
void    heap_collect_abandoned_all(void);             /* apex_collect: waits for the heaps lock */
void    heap_collect_abandoned_idle(uint64_t now_ns, uint64_t decay_ns);  /* purge thread */

/* ---- explicit_heap.c: the explicit-heap API, shared sub-heaps, the late heap ----------------- */
void   *heap_alloc_shared(heap_t *heap, size_t size, size_t alignment, bool zero);
void   *heap_alloc_late(size_t size, size_t alignment, bool zero);
/* visit.c (apex_heap_visit, apex_collect) declares nothing beyond the public header. */

/* Used by the files above, defined elsewhere. */
void   *heap_alloc(heap_t *heap, size_t size, size_t alignment, bool zero);   /* alloc.c */
void    superblock_discard(heap_t *heap, superblock_t *sb);                    /* superblock.c */

/* ---- huge.c: huge objects (their own mappings) ----------------------------------------------- */
void   *huge_alloc(heap_t *heap, size_t size, size_t alignment, bool zero);
void    huge_discard_all(heap_t *heap);
void    huge_cache_flush(void);
void    huge_cache_decay(uint64_t now_ns, uint64_t decay_ns);  /* purger thread */
bool    huge_recently_unmapped(const void *p);
void    huge_free(huge_t *h, void *p);
void   *huge_realloc(huge_t *h, void *p, size_t size);
void    huge_verify(const huge_t *h, const void *p);      /* aborts when the header was overwritten */
void    huge_cache_lock(void);
void    huge_cache_unlock(void);
void    huge_cache_reset_lock(void);

/* ---- alloc.c --------------------------------------------------------------------------------- */
void  *apex_alloc_aligned(size_t size, size_t alignment, bool zero);
bool   heap_over_limit(heap_t *heap, size_t usable);   /* false when the heap has no limit */

/* ---- init.c ---------------------------------------------------------------------------------- */
extern _Atomic int g_init_state;                      /* 0 none, 1 running, 2 ready */
void   apex_init_slow(void);
bool   bootstrap_owns(const void *p);
void  *bootstrap_alloc(size_t size, size_t alignment);
size_t bootstrap_usable_size(const void *p);
void   thread_register(heap_t *heap);

apex_noreturn void apex_fatal(const char *what, const void *where, size_t cls);
apex_noreturn void apex_assert_fail(const char *cond, const char *file, int line);

apex_inline void apex_ensure_init(void) {
  if (apex_unlikely(atomic_load_explicit(&g_init_state, memory_order_acquire) != 2))
    apex_init_slow();
}

/* ---- ctl.c: options ---------------------------------------------------------------------------
 * Every run-time option lives here. Defaults are set statically; options_init() (called once from
 * global_init, before any heap exists) overrides them from APEX_<NAME> environment variables, and
 * apex_ctl("opt.<name>") reads/writes them. The core only ever reads these fields. */
typedef struct {
  _Atomic size_t superblock_cache;     /* empty superblocks kept mapped for reuse (default 8) */
  _Atomic size_t huge_cache_bytes;     /* bytes of freed huge mappings kept for reuse (32 MiB) */
  _Atomic size_t quarantine_bytes;     /* hardened mode: bytes of freed chunks held back per thread (256 KiB) */
  _Atomic size_t decay_ms;             /* cached memory goes back to the OS after this long (1000) */
  _Atomic size_t heap_dirty_max;       /* free-but-resident bytes a heap keeps before purging (8 MiB) */
  size_t numa_nodes;                   /* APEX_NUMA_NODES: node count override (0: detect) */
  int purge_madv_free;                 /* purge with MADV_FREE instead of MADV_DONTNEED (0) */
  int purge_thread;                    /* APEX_PURGE_THREAD: background purge thread allowed (1) */
  int thp;                             /* madvise(MADV_HUGEPAGE) new superblocks (0) */
  int secure;                          /* APEX_SECURE: requested security level (1 or 2) */
  int zero_on_free;                    /* hardened mode: fill freed chunks with zeros, not a pattern */
  int show_stats;                      /* APEX_SHOW_STATS: print statistics to stderr at exit */
  char heap_map[256];                  /* APEX_HEAP_MAP: write the heap map to this file at exit */
} apex_options_t;
extern apex_options_t g_opt;

/* Inline: a bracket costs an increment and a decrement, and a call only when the outermost one
 * closes with something to do (a start asked for, or decay to run inline). */
apex_inline void purger_defer(bool on) {
  if (on) { tls_purger_depth++; return; }
  if (--tls_purger_depth == 0 &&
      (atomic_load_explicit(&g_purger_pending, memory_order_relaxed) | !__atomic_load_n(&g_opt.purge_thread, __ATOMIC_RELAXED)))
    purger_clean_point();
}
void options_init(void);               /* reads the environment; must not allocate */
void stats_reset_peak(void);           /* ctl.c: stats.reset */
void report_keep_stderr(void);         /* report.c: keep a copy of stderr for the exit report */
const char *ctl_key_env(size_t index); /* ctl.c: environment variable of registry entry `index` */
void report_at_exit(void);             /* APEX_SHOW_STATS / APEX_HEAP_MAP, registered by init */

/* ---- security.c: levels and the hardened mode -------------------------------------------------- */
#ifndef APEX_CHECKS
#define APEX_CHECKS 1                  /* 0 only in the benchmark build that measures their cost */
#endif
extern bool g_hardened;                /* APEX_SECURE=2 */
extern int g_secure_level;
void    security_init(void);
void   *hardened_alloc(heap_t *heap, size_t size, size_t alignment, bool zero);
void    hardened_free(void *p);
size_t  hardened_usable_size(const void *p);
void   *hardened_realloc(heap_t *heap, void *p, size_t size, size_t alignment);
void    quarantine_flush(heap_t *heap);
void    quarantine_heap_destroyed(heap_t *heap);   /* apex_heap_destroy, before the memory goes */
void    quarantine_after_fork_child(void);         /* other threads' pins are gone in the child */
void    block_seal(block_t *b);
void    block_verify(const block_t *b);
/* The ordinary paths, which the hardened ones wrap (alloc.c). */
void   *apex_alloc_unhardened(size_t size, size_t alignment, bool zero);
void   *heap_alloc_unhardened(heap_t *heap, size_t size, size_t alignment, bool zero);
void    apex_free_unhardened(void *p);
size_t  apex_usable_size_unhardened(const void *p);
size_t  usable_size_checked(const void *p, const char *op);

/* ---- Walking the process's memory (stats.c) ----------------------------------------------------
 * Calls fn for every mapped block superblock, then for every live huge object's header, with a
 * lock held that keeps them all mapped (it must not allocate through ApexAlloc, or free). Block
 * descriptors may change under the walk when their owner is busy: readers take what they see as
 * an approximation (fields are read racily on purpose; see APEX_RACY_READER). */
typedef void (*superblock_walk_fn)(superblock_t *sb, void *arg);
typedef void (*huge_walk_fn)(huge_t *h, void *arg);
void superblocks_walk(superblock_walk_fn blocks_fn, huge_walk_fn huge_fn, void *arg);
#if defined(__SANITIZE_THREAD__)
#define APEX_RACY_READER __attribute__((no_sanitize("thread")))
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define APEX_RACY_READER __attribute__((no_sanitize("thread")))
#endif
#endif
#ifndef APEX_RACY_READER
#define APEX_RACY_READER
#endif

/* ---- stats.c --------------------------------------------------------------------------------- */
extern _Atomic size_t g_mapped_bytes;     /* bytes currently mapped from the OS */
extern _Atomic size_t g_mapped_peak;
extern _Atomic size_t g_superblocks_live;
extern _Atomic size_t g_huge_live_bytes;
extern _Atomic size_t g_heap_metadata;   /* bytes mapped for heap structs */
extern _Atomic size_t g_dirty_slices;    /* slices of every mapped superblock ever touched, not purged */
void stats_mapped(ptrdiff_t delta);
/* A superblock's dirty bits become `now`: the global and its owner's (if any) counts follow. */
void stats_dirty_changed(heap_t *owner, uint64_t before, uint64_t now);
/* Debug builds: superblocks_walk calls so far (tests/test_stats_do_not_walk.c). */
#if defined(APEX_DEBUG) && APEX_DEBUG
extern _Atomic size_t apex_debug_superblock_walks;
#endif

/* murmur3's 64-bit finalizer: a bijection that mixes every input bit into every output bit. */
apex_inline uint64_t fmix64(uint64_t x) {
  x ^= x >> 33; x *= 0xFF51AFD7ED558CCDULL;
  x ^= x >> 33; x *= 0xC4CEB9FE1A85EC53ULL;
  x ^= x >> 33;
  return x;
}

/* xorshift64*: fast, good enough for randomizing layout (the quarantine's eviction order); seeded
 * from getrandom. Its output is an invertible function of its state: anything that may leak (block
 * keys) goes through keyed_hash first. */
apex_inline uint64_t heap_random(heap_t *heap) {
  uint64_t x = heap->rng;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  heap->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* ---- Fast-path helpers shared by alloc.c and remote.c -------------------------------------- */
/* Counts chunk c as handed out; the block's free list is the caller's business. */
apex_inline void *chunk_hand_out(heap_t *heap, block_t *b, chunk_t *c) {
  b->used++;
  counter_add(&heap->counters.alloc_bytes, b->chunk_size);
  return c;
}

/* Pops c off b's free list. The chunk must still carry its free tag (else something wrote to it
 * after it was freed) and its decoded link must point inside the carved part of the same block,
 * or be NULL (else the list was overwritten, and following it could hand out an attacker-chosen
 * address). Only the range is tested here: the divisibility test (link_ok_in) costs two more
 * instructions per malloc (callgrind, bench_malloc_loop), so it runs where links are collected
 * (block_collect), and a link that passes the range test still needs a forged free tag on the
 * chunk it points to before it is handed out. Both words are cleared: a fresh object never shows its tag, nor its encoded link
 * (which, for the last chunk of a list, is the block's key itself mixed with the address). */
apex_noreturn void block_pop_corrupted(const block_t *b, const chunk_t *c);   /* block.c */
/* The two checks of a pop: c still carries its free tag, and `next` (its decoded link) is the
 * list's end or inside the block's carved part. A NULL link fails the range test too, and is told
 * apart only then. */
apex_inline bool chunk_tag_ok(const chunk_t *c) { return !APEX_CHECKS || tag_load(c) == chunk_tag_free(c); }
apex_inline bool link_in_block(const block_t *b, const chunk_t *next) {
  return !APEX_CHECKS || apex_likely((uintptr_t)next - (uintptr_t)b->start < block_limit(b)) || next == NULL;
}
apex_inline bool block_pop_ok(const block_t *b, const chunk_t *c, const chunk_t *next) {
  return chunk_tag_ok(c) && link_in_block(b, next);
}
/* Hands out c, which block_pop_ok passed, and makes `next` the head of b's list. */
apex_inline void *block_take(heap_t *heap, block_t *b, chunk_t *c, chunk_t *next) {
  b->free = next;
  c->next_enc = 0;
  tag_store(c, 0);
  return chunk_hand_out(heap, b, c);
}
apex_inline void *block_pop(heap_t *heap, block_t *b, chunk_t *c) {
  chunk_t *next = link_decode(b, c);
  if (apex_unlikely(!block_pop_ok(b, c, next))) block_pop_corrupted(b, c);
  return block_take(heap, b, c, next);
}

/* Pops a chunk of class `cls` from the head block of its queue, or returns NULL when that block
 * has no free chunk (the caller takes a slow path). The fast path of apex_malloc, of the owner
 * of an explicit heap and of a hardened allocation. */
apex_inline void *heap_pop_class(heap_t *heap, size_t cls, size_t size) {
  block_t *b = heap->current[cls];
  chunk_t *c = b->free;
  if (apex_unlikely(c == NULL)) return NULL;
  /* A chunk that fails a check stays where it is: the slow path (heap_alloc) pops the same chunk
   * with block_pop, which names the problem and aborts. This path then needs no call of its own,
   * nor the stack frame a call would cost. */
  if (apex_unlikely(!chunk_tag_ok(c))) return NULL;
  chunk_t *next = link_decode(b, c);
  if (apex_unlikely(!link_in_block(b, next))) return NULL;
  counter_add(&heap->counters.requested, size);
  return block_take(heap, b, c, next);
}

/* Returns a chunk (already checked not to be free) to its block, on the owner thread. */
apex_inline void heap_free_local(heap_t *heap, superblock_t *sb, block_t *b, chunk_t *c) {
  tag_store(c, chunk_tag_free(c));
  c->next_enc = link_encode(b, c, b->free);
  b->free = c;
  counter_add(&heap->counters.free_bytes, b->chunk_size);
  if (apex_unlikely((--b->used == 0) | ((b->flags & BLOCK_IN_FULL) != 0))) block_free_slow(heap, sb, b);
}

#endif /* APEX_INTERNAL_H */
