/*
 * pymem_glue.c — CPython's allocator domains on ApexAlloc, in C (no Python code runs on an
 * allocation), and a heap walk that never allocates. Compiled into the extension module as the
 * preamble of the cffi source (build_ffi.py), after Python.h.
 *
 * Owns: the hook functions given to PyMem_SetAllocator, the previous allocators they wrap, the
 * per-domain counters. Must never: free or resize a block with an allocator that did not make it,
 * return NULL for a zero-byte request, or depend on the GIL in the RAW domain.
 *
 * The rules (CPython's "Customize Memory Allocators" documentation; gh-96997 on why an allocator
 * installed after start-up must wrap the previous one):
 *   - Blocks made before install() belong to the previous allocator: free and realloc route by
 *     apex_owns(p), which never aborts, and hand foreign blocks to the previous allocator.
 *   - malloc(0), calloc(0, n) and realloc(p, 0) return a unique live pointer (apex_malloc(0) does;
 *     realloc asks for at least one byte, so apex_heap_realloc's Lua-style NULL never arises).
 *   - The RAW domain is called without the GIL: the hooks use the thread-safe apex_* functions
 *     (the calling thread's default heap) and atomic counters.
 *   - The hooks ignore their ctx argument: PyMem_SetAllocator stores the function pointers and ctx
 *     one by one, and a thread calling the RAW domain meanwhile may see one new and one old.
 *   - uninstall() never puts the old allocators back (blocks made by ApexAlloc would then reach an
 *     allocator that does not know them); it flips a flag so new blocks come from the previous
 *     allocator, while frees of ApexAlloc blocks still reach ApexAlloc.
 */
#include <Python.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

typedef struct {
  PyMemAllocatorEx prev;           /* the allocator this domain had before install() */
  _Atomic int active;              /* new allocations go to ApexAlloc */
  int hooked;                      /* our hooks are this domain's allocator (set under the GIL) */
  _Atomic size_t mallocs, callocs, reallocs, frees, bytes;
  _Atomic size_t foreign_reallocs, foreign_frees, forwarded;
} glue_domain_t;

static glue_domain_t g_domain[APEXPY_DOMAIN_COUNT];

/* The counters of the RAW domain, which threads call without the GIL, are atomic additions. MEM
 * and OBJ are called with the GIL held, so a plain load and store is enough there and avoids a
 * locked instruction on every object's allocation (with several interpreters each holding its own
 * GIL, 3.12 and later, those two counts may miss a few updates; nothing else depends on them). */
#define BUMP(d, field, n)                                                                         \
  ((d) == &g_domain[APEXPY_DOMAIN_RAW]                                                            \
       ? (void)atomic_fetch_add_explicit(&(d)->field, (n), memory_order_relaxed)                 \
       : atomic_store_explicit(&(d)->field,                                                      \
                               atomic_load_explicit(&(d)->field, memory_order_relaxed) + (n),    \
                               memory_order_relaxed))

static inline void *glue_malloc(glue_domain_t *d, size_t size) {
  if (!atomic_load_explicit(&d->active, memory_order_relaxed)) {
    BUMP(d, forwarded, 1);
    return d->prev.malloc(d->prev.ctx, size);
  }
  BUMP(d, mallocs, 1);
  BUMP(d, bytes, size);
  return apex_malloc(size);                       /* size 0: a unique pointer */
}

static inline void *glue_calloc(glue_domain_t *d, size_t count, size_t size) {
  if (!atomic_load_explicit(&d->active, memory_order_relaxed)) {
    BUMP(d, forwarded, 1);
    return d->prev.calloc(d->prev.ctx, count, size);
  }
  BUMP(d, callocs, 1);
  BUMP(d, bytes, count * size);
  return apex_calloc(count, size);                /* overflow: NULL / ENOMEM; 0: unique */
}

static inline void *glue_realloc(glue_domain_t *d, void *p, size_t size) {
  if (p == NULL) return glue_malloc(d, size);
  if (apex_owns(p)) {
    BUMP(d, reallocs, 1);
    BUMP(d, bytes, size);
    return apex_realloc(p, size ? size : 1);      /* resizes: never frees, never NULL for 0 */
  }
  BUMP(d, foreign_reallocs, 1);
  return d->prev.realloc(d->prev.ctx, p, size);
}

static inline void glue_free(glue_domain_t *d, void *p) {
  if (p == NULL) return;
  if (apex_owns(p)) {
    BUMP(d, frees, 1);
    apex_free(p);
  } else {
    BUMP(d, foreign_frees, 1);
    d->prev.free(d->prev.ctx, p);
  }
}

/* One set of hook functions per domain, each bound to its domain at compile time (ctx unused). */
#define GLUE_HOOKS(name, index)                                                                   \
  static void *name##_malloc(void *ctx, size_t size) {                                            \
    (void)ctx; return glue_malloc(&g_domain[index], size);                                        \
  }                                                                                               \
  static void *name##_calloc(void *ctx, size_t count, size_t size) {                              \
    (void)ctx; return glue_calloc(&g_domain[index], count, size);                                 \
  }                                                                                               \
  static void *name##_realloc(void *ctx, void *p, size_t size) {                                  \
    (void)ctx; return glue_realloc(&g_domain[index], p, size);                                    \
  }                                                                                               \
  static void name##_free(void *ctx, void *p) { (void)ctx; glue_free(&g_domain[index], p); }
GLUE_HOOKS(glue_raw, APEXPY_DOMAIN_RAW)
GLUE_HOOKS(glue_mem, APEXPY_DOMAIN_MEM)
GLUE_HOOKS(glue_obj, APEXPY_DOMAIN_OBJ)

static PyMemAllocatorEx glue_hooks(int index) {
  PyMemAllocatorEx a;
  a.ctx = &g_domain[index];
  switch (index) {
    case APEXPY_DOMAIN_RAW:
      a.malloc = glue_raw_malloc; a.calloc = glue_raw_calloc;
      a.realloc = glue_raw_realloc; a.free = glue_raw_free; break;
    case APEXPY_DOMAIN_MEM:
      a.malloc = glue_mem_malloc; a.calloc = glue_mem_calloc;
      a.realloc = glue_mem_realloc; a.free = glue_mem_free; break;
    default:
      a.malloc = glue_obj_malloc; a.calloc = glue_obj_calloc;
      a.realloc = glue_obj_realloc; a.free = glue_obj_free; break;
  }
  return a;
}

static const PyMemAllocatorDomain glue_py_domain[APEXPY_DOMAIN_COUNT] = {
  PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ
};

int apexpy_free_threaded_build(void) {
#ifdef Py_GIL_DISABLED
  return 1;
#else
  return 0;
#endif
}

unsigned apexpy_active(void) {
  unsigned mask = 0;
  for (int i = 0; i < APEXPY_DOMAIN_COUNT; i++)
    if (atomic_load_explicit(&g_domain[i].active, memory_order_relaxed)) mask |= 1u << i;
  return mask;
}

int apexpy_install(unsigned mask) {
  if (mask == 0 || mask >> APEXPY_DOMAIN_COUNT) return APEXPY_ERR_DOMAIN;
  if (apexpy_free_threaded_build()) return APEXPY_ERR_FREE_THREADED;
  /* Start the allocator (and this thread's heap) before any hook can run. */
  void *probe = apex_malloc(1);
  if (probe == NULL) return APEXPY_ERR_NOMEM;
  apex_free(probe);
  PyGILState_STATE gil = PyGILState_Ensure();     /* cffi calls us with the GIL released */
  int result = APEXPY_OK;
  if (apexpy_active() != 0) {
    result = APEXPY_ERR_ACTIVE;
  } else {
    for (int i = 0; i < APEXPY_DOMAIN_COUNT; i++) {
      if (!(mask & (1u << i))) continue;
      glue_domain_t *d = &g_domain[i];
      if (!d->hooked) {
        PyMem_GetAllocator(glue_py_domain[i], &d->prev);
        atomic_thread_fence(memory_order_release);
        PyMemAllocatorEx hooks = glue_hooks(i);
        d->hooked = 1;
        atomic_store_explicit(&d->active, 1, memory_order_release);
        PyMem_SetAllocator(glue_py_domain[i], &hooks);
      } else {
        atomic_store_explicit(&d->active, 1, memory_order_release);
      }
    }
  }
  PyGILState_Release(gil);
  return result;
}

unsigned apexpy_uninstall(void) {
  unsigned was = apexpy_active();
  for (int i = 0; i < APEXPY_DOMAIN_COUNT; i++)
    atomic_store_explicit(&g_domain[i].active, 0, memory_order_release);
  return was;
}

int apexpy_domain_stats(int domain, apexpy_domain_stats_t *out) {
  if (domain < 0 || domain >= APEXPY_DOMAIN_COUNT || out == NULL) return -1;
  glue_domain_t *d = &g_domain[domain];
#define LOAD(field) atomic_load_explicit(&d->field, memory_order_relaxed)
  out->mallocs = LOAD(mallocs);
  out->callocs = LOAD(callocs);
  out->reallocs = LOAD(reallocs);
  out->frees = LOAD(frees);
  out->bytes = LOAD(bytes);
  out->foreign_reallocs = LOAD(foreign_reallocs);
  out->foreign_frees = LOAD(foreign_frees);
  out->forwarded = LOAD(forwarded);
  out->active = LOAD(active);
#undef LOAD
  out->hooked = d->hooked;
  return 0;
}

/* ---- The interpreter's entry points, for tests ------------------------------------------------ */
void *apexpy_pymem_malloc(int domain, size_t size) {
  PyGILState_STATE gil = PyGILState_Ensure();
  void *p = domain == APEXPY_DOMAIN_RAW ? PyMem_RawMalloc(size)
          : domain == APEXPY_DOMAIN_MEM ? PyMem_Malloc(size) : PyObject_Malloc(size);
  PyGILState_Release(gil);
  return p;
}

void *apexpy_pymem_calloc(int domain, size_t count, size_t size) {
  PyGILState_STATE gil = PyGILState_Ensure();
  void *p = domain == APEXPY_DOMAIN_RAW ? PyMem_RawCalloc(count, size)
          : domain == APEXPY_DOMAIN_MEM ? PyMem_Calloc(count, size) : PyObject_Calloc(count, size);
  PyGILState_Release(gil);
  return p;
}

void *apexpy_pymem_realloc(int domain, void *p, size_t size) {
  PyGILState_STATE gil = PyGILState_Ensure();
  void *q = domain == APEXPY_DOMAIN_RAW ? PyMem_RawRealloc(p, size)
          : domain == APEXPY_DOMAIN_MEM ? PyMem_Realloc(p, size) : PyObject_Realloc(p, size);
  PyGILState_Release(gil);
  return q;
}

void apexpy_pymem_free(int domain, void *p) {
  PyGILState_STATE gil = PyGILState_Ensure();
  if (domain == APEXPY_DOMAIN_RAW) PyMem_RawFree(p);
  else if (domain == APEXPY_DOMAIN_MEM) PyMem_Free(p);
  else PyObject_Free(p);
  PyGILState_Release(gil);
}

/* Called by cffi with the GIL released: the RAW domain's promise is that this is legal. */
size_t apexpy_raw_churn(size_t rounds, unsigned seed) {
  enum { SLOTS = 64 };
  unsigned char *slot[SLOTS] = { 0 };
  size_t size[SLOTS] = { 0 }, errors = 0;
  uint32_t x = seed * 2654435761u + 1;
  for (size_t r = 0; r < rounds; r++) {
    x = x * 1664525u + 1013904223u;
    unsigned i = (x >> 8) % SLOTS;
    size_t want = (x >> 16) % 4096;
    unsigned char mark = (unsigned char)(i + 1);
    if (slot[i] != NULL) {
      for (size_t k = 0; k < size[i]; k++) errors += slot[i][k] != mark;
    }
    if (slot[i] == NULL) {
      slot[i] = PyMem_RawMalloc(want);
    } else if (x & 1) {
      unsigned char *q = PyMem_RawRealloc(slot[i], want);
      if (q == NULL) { errors++; continue; }
      size_t kept = size[i] < want ? size[i] : want;
      for (size_t k = 0; k < kept; k++) errors += q[k] != mark;   /* realloc keeps the bytes */
      slot[i] = q;
    } else {
      PyMem_RawFree(slot[i]);
      slot[i] = NULL;
      continue;
    }
    if (slot[i] == NULL) { errors++; continue; }
    size[i] = want;
    memset(slot[i], mark, want);
  }
  for (unsigned i = 0; i < SLOTS; i++) PyMem_RawFree(slot[i]);
  return errors;
}

/* ---- Heap walk --------------------------------------------------------------------------------
 * apex_heap_visit may hold a heap lock around its callback, so the callback only stores into the
 * caller's array (made before the walk) and counts. */
typedef struct {
  apexpy_object_t *out;
  size_t capacity, count;
} glue_walk_t;

static int glue_walk_one(void *ptr, size_t usable_size, void *arg) {
  glue_walk_t *w = arg;
  if (w->count < w->capacity) {
    w->out[w->count].ptr = ptr;
    w->out[w->count].size = usable_size;
  }
  w->count++;
  return 0;
}

int apexpy_heap_objects(apex_heap_t *h, apexpy_object_t *out, size_t capacity, size_t *count) {
  glue_walk_t w = { out, out == NULL ? 0 : capacity, 0 };
  int r = apex_heap_visit(h, glue_walk_one, &w);
  if (count != NULL) *count = w.count;
  return r;
}
