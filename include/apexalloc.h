/*
 * apexalloc.h — the public contract of ApexAlloc.
 *
 * This header is the single source of truth: the Python, Rust and Lua bindings are generated
 * from it. Keep it plain C11 declarations (no macros in prototypes, no inline bodies) so that
 * cffi's cdef extraction, bindgen and SWIG all read it the same way.
 *
 * General contract (every function below follows it unless its comment says otherwise):
 *   - Every pointer returned is aligned to at least 16 bytes (APEX_MIN_ALIGN).
 *   - A request that cannot be satisfied (size too large, out of memory) returns NULL and sets
 *     errno to ENOMEM; nothing aborts on a legal call.
 *   - An invalid alignment (not a power of two, or not a multiple of sizeof(void*) where POSIX
 *     asks for it) returns NULL / EINVAL as documented per function.
 *   - Freeing NULL is a no-op.
 *   - Freeing a pointer that ApexAlloc did not hand out, freeing twice, or freeing an interior
 *     pointer is heap corruption: the process aborts with one line on stderr of the form
 *       apexalloc: <what> at <address> (<size class>)
 *     Such misuse is never silently ignored.
 *   - Memory may be freed by any thread, including threads that never allocated.
 *
 * When built as libapexalloc.so the whole malloc family (malloc, free, calloc, realloc, ...)
 * is replaced as well, so the apex_* functions and the standard ones are interchangeable. Each
 * keeps its own library's edge cases: aligned_alloc rejects an alignment that is not a power of
 * two (EINVAL), while memalign, like glibc's, rounds it up to the next power of two.
 */
#ifndef APEXALLOC_H
#define APEXALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version ------------------------------------------------------------------------------ */

enum {
  APEX_VERSION_MAJOR = 0,
  APEX_VERSION_MINOR = 1,
  APEX_VERSION_PATCH = 0,
  /* Minimum alignment of every pointer returned by ApexAlloc. */
  APEX_MIN_ALIGN = 16
};

/* Returns the library version as MAJOR*10000 + MINOR*100 + PATCH. Lets a program compare the
 * library it runs against with the header it was compiled with. */
int apex_version(void);

/* Returns the version as a static string such as "0.1.0"; never NULL, never to be freed. */
const char *apex_version_string(void);

/* ---- The malloc family -------------------------------------------------------------------- */

/* Allocates `size` bytes. size 0 returns a unique pointer that can be freed.
 * Returns NULL with errno = ENOMEM when size is impossible (e.g. SIZE_MAX) or memory runs out. */
void *apex_malloc(size_t size);

/* Allocates count*size zero-filled bytes. An overflowing product returns NULL / ENOMEM. */
void *apex_calloc(size_t count, size_t size);

/* Resizes `p` to `size` bytes, keeping the first min(old, size) bytes.
 *   - p == NULL behaves as apex_malloc(size).
 *   - size == 0 frees p and returns a fresh minimal allocation (never NULL unless out of memory),
 *     so the result is always either NULL (failure, p untouched) or a pointer to free.
 *   - On failure returns NULL, sets errno = ENOMEM, and p stays valid and unchanged. A shrink
 *     (size <= apex_usable_size(p)) never fails: if it cannot move, p is returned, errno unchanged.
 *   - p stays in place while size fits its usable size and uses at least half of it (or the
 *     usable size is 64 bytes or less): every growth within the object's slack, and shrinks down
 *     to half. A bigger shrink moves to a smaller object to give memory back; a large object
 *     (above 128 KiB) of the caller's thread grows or shrinks in place by whole 64 KiB slices when
 *     it can. A move copies min(size, apex_usable_size(p)) bytes. In hardened mode
 *     (APEX_SECURE=2) realloc always moves, so a stale pointer never aliases the new object.
 *   - An object of a heap made with apex_heap_new / apex_heap_new_ex stays in that heap when it
 *     moves (so apex_heap_destroy and the heap's limit still cover it; growing past the limit
 *     fails with ENOMEM, p untouched); an object of a default heap moves to the caller's. */
void *apex_realloc(void *p, size_t size);

/* Like apex_realloc(p, count*size) but returns NULL / ENOMEM when the product overflows. */
void *apex_reallocarray(void *p, size_t count, size_t size);

/* Frees `p`. NULL is a no-op; any other pointer must come from ApexAlloc and be live. */
void apex_free(void *p);

/* Frees `p`, which was allocated with `size` bytes (the size asked for, or any value up to
 * apex_usable_size(p)). A size that cannot belong to p is heap corruption and aborts. */
void apex_free_sized(void *p, size_t size);

/* Allocates `size` bytes aligned to `alignment`, which must be a power of two (any power of two
 * is accepted, including ones larger than a page). Otherwise returns NULL with errno = EINVAL.
 * Unlike C11's aligned_alloc, size need not be a multiple of alignment. */
void *apex_aligned_alloc(size_t alignment, size_t size);

/* POSIX posix_memalign: stores an allocation of `size` bytes aligned to `alignment` in *out.
 * Returns 0, EINVAL (alignment not a power of two multiple of sizeof(void *)) or ENOMEM.
 * *out is left untouched on error; errno is not changed. */
int apex_posix_memalign(void **out, size_t alignment, size_t size);

/* Returns the number of bytes usable at p (>= the size requested). 0 for NULL.
 * A pointer that is not a live ApexAlloc allocation aborts as an invalid pointer. */
size_t apex_usable_size(const void *p);

/* ---- Heaps -------------------------------------------------------------------------------
 *
 * Every thread has a default heap; a program may create more. A heap is a handle to a set of
 * superblocks owned by one thread (its creator, or for a default heap its thread):
 *   - the owner allocates from it on the fast path, with no lock and no TLS lookup;
 *   - any other thread may allocate from it too and is correct, at the price of a per-heap
 *     mutex (about the cost of an uncontended lock per call);
 *   - any thread may free any pointer with apex_free / apex_free_sized / free(), whichever heap it
 *     came from (a free from a non-owner thread costs one atomic push).
 * This suits the three hosts the bindings serve: Rust's GlobalAlloc (size and alignment on every
 * call), Lua's lua_Alloc (old and new size on every call, one heap per lua_State) and CPython's
 * PyMemAllocatorEx (a context pointer, called from any thread).
 */
typedef struct apex_heap_s apex_heap_t;

typedef struct apex_heap_options_s {
  size_t size;            /* sizeof(apex_heap_options_t): lets the struct grow compatibly */
  size_t limit;           /* most bytes live in the heap at once (usable sizes); 0 = no limit.
                             An allocation, or a realloc growing an object, that would exceed it
                             returns NULL with ENOMEM. Objects freed by other threads count until
                             the heap collects them, which it does before refusing. */
} apex_heap_options_t;

/* Creates a heap owned by the calling thread. NULL with ENOMEM when out of memory. */
apex_heap_t *apex_heap_new(void);

/* Like apex_heap_new, with options. NULL with EINVAL for opts == NULL or a bad opts->size. */
apex_heap_t *apex_heap_new_ex(const apex_heap_options_t *opts);

/* Frees everything allocated from h at once and returns its memory; h is invalid afterwards.
 * No other thread may use h or its objects meanwhile; objects of h that other threads have already
 * freed are fine, even while they still wait in those threads' hardened-mode quarantines. A default
 * heap cannot be destroyed: returns EINVAL (also for NULL or a stale handle); EBUSY while
 * apex_heap_visit walks h (e.g. from its callback); 0 on success. */
int apex_heap_destroy(apex_heap_t *h);

/* Deletes the heap handle: h is invalid afterwards (for good: the heap is never handed out again
 * as another thread's default heap), but its live objects stay valid and can be freed with
 * apex_free from any thread; their memory is reused by other heaps. Only h's owner may delete it,
 * or any thread once h has no owner (its owner thread exited). Returns 0; EPERM when another live
 * thread owns h (h is untouched); EINVAL for NULL, a stale handle or a default heap; EBUSY while
 * apex_heap_visit walks h. */
int apex_heap_delete(apex_heap_t *h);

/* The calling thread's default heap (where apex_malloc allocates). Never NULL, except out of
 * memory, or in a thread-specific-data destructor running after ApexAlloc's own at thread exit
 * (the thread has no default heap any more; its allocations are still served). Valid until the
 * thread exits. */
apex_heap_t *apex_heap_default(void);

/* Allocates size bytes from h, aligned to `alignment` (0 or any power of two; 0 means the
 * default 16). NULL with EINVAL for a NULL heap or a bad alignment, ENOMEM when out of memory or
 * over the heap's limit. */
void *apex_heap_alloc(apex_heap_t *h, size_t size, size_t alignment);

/* Like apex_heap_alloc for count*size zeroed bytes; NULL with ENOMEM on overflow. */
void *apex_heap_calloc(apex_heap_t *h, size_t count, size_t size, size_t alignment);

/* Resizes p (allocated from any heap) to new_size bytes aligned to `alignment`, allocating from h
 * if it must move. old_size is what the caller believes p's size is (lua_Alloc's osize); it is
 * only a hint and may be 0: when old_size <= new_size <= apex_usable_size(p) (a growth within
 * the slack, e.g. of an over-aligned object) p stays in place. Follows apex_realloc otherwise: p == NULL allocates; on failure NULL,
 * errno = ENOMEM and p unchanged. new_size == 0 frees p and returns NULL (lua_Alloc's contract).
 * A shrink never fails: when p cannot move (out of memory, at the limit) it is returned as it is,
 * and errno is left unchanged. */
void *apex_heap_realloc(apex_heap_t *h, void *p, size_t old_size, size_t new_size, size_t alignment);

/* Called once per live object: return 0 to go on, anything else to stop the walk. */
typedef int (*apex_visit_fn)(void *ptr, size_t usable_size, void *arg);

/* Walks the live objects of h (the calling thread must be h's owner, or h must be quiescent).
 * The callback runs with no allocator lock held: it may allocate (from h too, with or without a
 * limit), read statistics and free objects of h, the visited one included; only destroying or
 * deleting h is refused meanwhile (EBUSY). What the walk reports then: each object live when the
 * walk started and still live when it is reached, exactly once; never an object freed before it is
 * reached (by the callback or another thread); objects allocated during the walk maybe (huge ones
 * never). The walk always ends (it covers what h held when it began). Returns 0 after the whole
 * walk, the callback's non-zero value if it stopped, EINVAL for NULL / a stale handle / a NULL
 * callback, ENOMEM if its scratch memory (mapped from the OS, never from h) cannot be had. */
int apex_heap_visit(apex_heap_t *h, apex_visit_fn visit, void *arg);

/* 1 when p is the start of a live ApexAlloc allocation, 0 otherwise (freed, interior, foreign,
 * NULL, an address inside a block that no allocation has covered yet). Never aborts, and never
 * faults, even for a pointer another thread frees (and unmaps) meanwhile: hosts use it to route
 * foreign pointers to the right allocator. Costs two uncontended atomic operations. */
int apex_owns(const void *p);

/* Frees the memory of heaps whose threads have exited and returns cached memory; also what the
 * ctl command "heap.collect" does. */
void apex_collect(void);

/* ---- Statistics ---------------------------------------------------------------------------
 *
 * Snapshots are versioned by size: pass sizeof the struct and the library fills the fields it
 * knows up to that size, so a program compiled against an older header keeps working with a
 * newer library. Counters are kept per thread and summed when read, so taking a snapshot never
 * slows the allocation fast paths; with other threads running, the figures are approximate,
 * exact when the process is quiescent.
 */
typedef struct apex_stats_s {
  size_t size;            /* bytes of this struct the library filled in */
  size_t allocated;       /* bytes in live allocations (usable sizes) */
  size_t allocated_huge;  /* of which: huge objects (their own mappings) */
  size_t mapped;          /* bytes currently mapped from the operating system */
  size_t mapped_peak;     /* highest value `mapped` has had */
  size_t superblocks;     /* 4 MiB superblocks currently mapped (owned or cached) */
  size_t heaps;           /* heaps created so far (live, abandoned or reusable) */
  size_t heaps_abandoned; /* heaps whose thread has exited, waiting to be adopted */
  size_t remote_frees;    /* chunks freed by a thread other than their owner (collected so far) */
  size_t active;          /* bytes of slices given to blocks, plus huge mappings */
  size_t resident;        /* estimate of bytes backed by memory: pages ever touched, not given back */
  size_t metadata;        /* bytes of allocator metadata (superblock headers, heaps) */
  size_t requested;       /* cumulative bytes asked for by malloc-family calls */
  size_t requested_usable;/* cumulative usable bytes handed out for them: the ratio is the waste */
  size_t thread_allocated;   /* cumulative bytes handed out (this thread / heap; global: all) */
  size_t thread_deallocated; /* cumulative bytes returned (this thread / heap; global: all) */
  size_t large_count;     /* live objects above the size classes, in slice runs */
  size_t large_allocated; /* their bytes */
  size_t huge_count;      /* live huge objects */
  size_t free_in_blocks;  /* bytes of free chunks sitting in blocks (internal fragmentation) */
  size_t blocks;          /* blocks in use */
  size_t blocks_partial;  /* blocks neither full nor empty */
} apex_stats_t;

/* Fills *out with process-wide statistics. `size` must be at least sizeof(size_t) and at most
 * sizeof(apex_stats_t); returns 0, or EINVAL for out == NULL or a bad size. */
int apex_stats_get(apex_stats_t *out, size_t size);

/* The same for one heap (thread_* fields: that heap's cumulative counters). */
int apex_heap_stats_get(apex_heap_t *h, apex_stats_t *out, size_t size);

/* The same for the calling thread's default heap. */
int apex_thread_stats_get(apex_stats_t *out, size_t size);

enum {
  APEX_BIN_COUNT = 89     /* size classes are numbered 1..88; bin 0 holds large objects */
};

/* One size class ("bin") across the process. */
typedef struct apex_bin_stats_s {
  size_t size;            /* bytes of this struct the library filled in */
  size_t chunk_size;      /* object size of the class (0 for bin 0) */
  size_t count;           /* live objects */
  size_t blocks;          /* blocks serving the class */
  size_t blocks_partial;  /* of which neither full nor empty */
  size_t free_bytes;      /* bytes held free in those blocks */
} apex_bin_stats_t;

/* Fills *out for bin `bin` (< APEX_BIN_COUNT); 0, or EINVAL for a bad bin, NULL or bad size. */
int apex_bin_stats_get(size_t bin, apex_bin_stats_t *out, size_t size);

/* Receives output text in pieces (not NUL-terminated). */
typedef void (*apex_write_fn)(void *opaque, const char *text, size_t len);

enum {
  APEX_FORMAT_TEXT = 0,   /* readable text */
  APEX_FORMAT_JSON = 1,   /* one JSON object */
  APEX_FORMAT_SVG = 2     /* apex_heap_map only: an SVG picture */
};

/* Writes the statistics (global, per size class, per heap) through write(opaque, ...), in
 * APEX_FORMAT_TEXT or APEX_FORMAT_JSON. write == NULL writes to stderr. Returns 0, EINVAL for a
 * bad format, ENOMEM when the scratch memory for the snapshot cannot be mapped. The callback runs
 * with no allocator lock held: it may allocate (a Python or Lua callback will). */
int apex_stats_print(apex_write_fn write, void *opaque, int format);

/* Describes every superblock and block (size class, owner heap, occupancy) as
 * APEX_FORMAT_JSON, or draws it as APEX_FORMAT_SVG: one rectangle per block, coloured by
 * occupancy, grouped by superblock, with a legend. write == NULL writes to stderr. Returns 0,
 * EINVAL or ENOMEM as apex_stats_print; the callback may allocate.
 * With APEX_HEAP_MAP=file.svg (or .json) in the environment, the map is written at exit. */
int apex_heap_map(apex_write_fn write, void *opaque, int format);

/* ---- apex_ctl: named statistics, options and commands ---------------------------------------
 *
 * In the spirit of jemalloc's mallctl. Reading: oldp points to a buffer and *oldlenp holds its
 * size, which must equal the key's type size; writing: newp/newlen likewise. A command key runs
 * when called with newp == NULL and newlen == 0 (and oldp == NULL). Returns 0 or an errno value:
 *   ENOENT  unknown name;
 *   EINVAL  wrong size, bad value, or a read of a command;
 *   EPERM   write to a read-only key.
 * Keys with "<i>" in the registry stand for a family: replace <i> with 0 .. index_count-1
 * (e.g. "stats.bins.3.count"). Options are also read from the environment at start-up as
 * APEX_<OPTION> (upper case, dots as underscores: opt.show_stats -> APEX_SHOW_STATS).
 */
int apex_ctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
/* (name == NULL, or oldp without oldlenp: EINVAL. A call that neither reads nor writes a value key
 * returns 0 after checking the name.) */

enum {
  APEX_CTL_BOOL = 0,      /* int, 0 or 1 */
  APEX_CTL_SIZE = 1,      /* size_t */
  APEX_CTL_STRING = 2,    /* const char *: reading gives a pointer to a static string */
  APEX_CTL_COMMAND = 3    /* no value: an action */
};

/* One entry of the key registry. */
typedef struct apex_ctl_info_s {
  size_t size;              /* bytes of this struct the library filled in */
  const char *name;         /* e.g. "stats.allocated" or "stats.bins.<i>.count" */
  int type;                 /* APEX_CTL_* */
  int writable;             /* 1 when the key can be written (options, commands) */
  const char *unit;         /* "bytes", "count", "ms", "" ... */
  const char *description;  /* one line */
  size_t index_count;       /* for "<i>" keys: how many indices; 0 otherwise */
  const char *env;          /* environment variable read at start-up (options), or NULL */
} apex_ctl_info_t;

/* Number of registry entries. */
size_t apex_ctl_count(void);

/* Fills *out with entry `index` (< apex_ctl_count()); 0, or EINVAL for a bad index/NULL/size. */
int apex_ctl_info(size_t index, apex_ctl_info_t *out, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* APEXALLOC_H */
