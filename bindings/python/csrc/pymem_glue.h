/*
 * pymem_glue.h — what the extension adds in C beside the public header: CPython's allocator
 * domains served by ApexAlloc (apexalloc.install), and a heap walk that collects into an array.
 *
 * Plain C declarations only: build_ffi.py reads this file into the cffi declarations the same way
 * as include/apexalloc.h.
 */
#ifndef APEXPY_PYMEM_GLUE_H
#define APEXPY_PYMEM_GLUE_H

#include <stddef.h>
#include "apexalloc.h"

/* CPython's allocator domains, numbered as PyMemAllocatorDomain. */
enum {
  APEXPY_DOMAIN_RAW = 0,
  APEXPY_DOMAIN_MEM = 1,
  APEXPY_DOMAIN_OBJ = 2,
  APEXPY_DOMAIN_COUNT = 3
};

/* Results of apexpy_install. */
enum {
  APEXPY_OK = 0,
  APEXPY_ERR_ACTIVE = 1,         /* already installed (in some domain): uninstall first */
  APEXPY_ERR_FREE_THREADED = 2,  /* a free-threaded build needs CPython's own mimalloc */
  APEXPY_ERR_NOMEM = 3,          /* the allocator could not start */
  APEXPY_ERR_DOMAIN = 4          /* an empty or unknown domain mask */
};

/* Per-domain counters since the extension was loaded (all calls that reached the hooks). */
typedef struct apexpy_domain_stats_s {
  size_t mallocs;          /* malloc calls served by ApexAlloc (zero-size ones included) */
  size_t callocs;          /* calloc calls served by ApexAlloc */
  size_t reallocs;         /* realloc calls of ApexAlloc blocks, or of NULL */
  size_t frees;            /* free calls of ApexAlloc blocks */
  size_t bytes;            /* bytes asked of ApexAlloc by those malloc/calloc/realloc calls */
  size_t foreign_reallocs; /* realloc calls of blocks made by the previous allocator, sent to it */
  size_t foreign_frees;    /* free calls of blocks made by the previous allocator, sent to it */
  size_t forwarded;        /* new allocations sent to the previous allocator after uninstall */
  int hooked;              /* 1 when the hooks sit in this domain (they stay after uninstall) */
  int active;              /* 1 when new allocations of this domain go to ApexAlloc */
} apexpy_domain_stats_t;

/* Routes the domains of `mask` (bit 1 << APEXPY_DOMAIN_*) to ApexAlloc. Takes the GIL itself. */
int apexpy_install(unsigned mask);

/* Sends new allocations back to the previous allocators; frees and reallocs of ApexAlloc blocks
 * keep reaching ApexAlloc. Returns the mask of domains that were active. */
unsigned apexpy_uninstall(void);

/* The mask of domains whose new allocations go to ApexAlloc now. */
unsigned apexpy_active(void);

/* 1 when this extension was compiled for a free-threaded CPython (Py_GIL_DISABLED). */
int apexpy_free_threaded_build(void);

/* Fills *out for one domain; 0, or -1 for a bad domain. */
int apexpy_domain_stats(int domain, apexpy_domain_stats_t *out);

/* The interpreter's own entry points (PyMem_RawMalloc / PyMem_Malloc / PyObject_Malloc and their
 * calloc, realloc, free) for `domain`, called with the GIL held: what tests use to check the
 * rules of the hooks through the real interpreter. */
void *apexpy_pymem_malloc(int domain, size_t size);
void *apexpy_pymem_calloc(int domain, size_t count, size_t size);
void *apexpy_pymem_realloc(int domain, void *p, size_t size);
void apexpy_pymem_free(int domain, void *p);

/* Runs `rounds` random PyMem_RawMalloc / PyMem_RawRealloc / PyMem_RawFree calls (sizes 0 .. 4095,
 * each block filled with a pattern and checked before it is resized or freed) WITHOUT the GIL, as
 * threads that hold no Python state do. Returns how many calls failed or found a pattern broken. */
size_t apexpy_raw_churn(size_t rounds, unsigned seed);

/* One live object of a heap walk. */
typedef struct apexpy_object_s {
  void *ptr;
  size_t size;             /* usable size */
} apexpy_object_t;

/* Walks h and stores up to `capacity` objects in out; *count receives how many the heap has (when
 * it exceeds capacity, call again with more room). The walk's callback never allocates. Returns
 * apex_heap_visit's result (0, or EINVAL for a bad heap). */
int apexpy_heap_objects(apex_heap_t *h, apexpy_object_t *out, size_t capacity, size_t *count);

#endif /* APEXPY_PYMEM_GLUE_H */
