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
 * is replaced as well, so the apex_* functions and the standard ones are interchangeable.
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
 *   - On failure returns NULL, sets errno = ENOMEM, and p stays valid and unchanged.
 *   - Resizing within the same size class (and most shrinks) happens in place. */
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

/* ---- Statistics --------------------------------------------------------------------------- */

/* A snapshot of process-wide statistics. Versioned by size: pass sizeof(apex_stats_t) and the
 * library fills the fields it knows up to that size, so a program compiled against an older
 * header keeps working with a newer library. Counters are kept per thread and summed when read,
 * so taking a snapshot never slows the allocation fast paths; with other threads running, the
 * figures are a consistent-enough approximation, exact when the process is quiescent. */
typedef struct apex_stats_s {
  size_t size;            /* bytes of this struct the library filled in */
  size_t allocated;       /* bytes in live allocations (usable sizes, including huge objects) */
  size_t allocated_huge;  /* of which: bytes mapped for live huge objects (their own mappings) */
  size_t mapped;          /* bytes currently mapped from the operating system */
  size_t mapped_peak;     /* highest value `mapped` has had */
  size_t superblocks;     /* 4 MiB superblocks currently mapped (owned or cached) */
  size_t heaps;           /* thread heaps created so far (live, abandoned or reusable) */
  size_t heaps_abandoned; /* heaps whose thread has exited, waiting to be adopted */
  size_t remote_frees;    /* chunks freed by a thread other than their owner (collected so far) */
} apex_stats_t;

/* Fills *out with a snapshot. `size` must be at least sizeof(size_t) and at most
 * sizeof(apex_stats_t) of the library; returns 0, or EINVAL for out == NULL or a bad size. */
int apex_stats_get(apex_stats_t *out, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* APEXALLOC_H */
