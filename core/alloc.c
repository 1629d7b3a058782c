/*
 * alloc.c — the public entry points of the malloc family and their fast paths.
 *
 * Owns: apex_malloc/free/realloc/... and the validation every free goes through.
 * Must never: block, lock or call the OS on a fast path; accept a pointer it cannot vouch for.
 *
 * Cost of the fast paths (x86-64, release build):
 *   malloc <= 1 KiB: a TLS load, a table lookup, a free-list pop with a decoded and range-checked
 *     link, and setting the chunk's live bit — about 20 instructions with two untaken branches.
 *   free: a registry bit test (is this ours?), the block descriptor, a multiply-shift to find the
 *     chunk index (rejects interior pointers), a live-bit test (rejects double frees), then either
 *     a push onto the block's local list or one CAS onto the owner's remote stack.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <string.h>

#define NO_CLASS ((size_t)-1)

/* ---- Allocation ------------------------------------------------------------------------------ */

/* A large run must start at a multiple of the alignment (in slices) and not at slice 0. */
static bool large_fits(size_t size, size_t alignment) {
  size_t slices = size == 0 ? 1 : (size + SLICE_SIZE - 1) >> SLICE_SHIFT;
  size_t first = alignment > SLICE_SIZE ? alignment >> SLICE_SHIFT : 1;
  return alignment < SB_SIZE && first + slices <= SLICES_PER_SB;
}

/* Everything the inline fast path does not handle: first use by a thread, empty free lists,
 * sizes above 1 KiB, alignment, zeroing, large and huge objects. */
apex_noinline void *apex_alloc_aligned(size_t size, size_t alignment, bool zero) {
  heap_t *heap = heap_for_thread();
  if (apex_unlikely(heap == NULL)) {
    void *p = bootstrap_alloc(size, alignment);       /* static memory: already zero */
    if (p == NULL) errno = ENOMEM;
    return p;
  }
  void *p;
  if (size <= SMALL_MAX && alignment <= SLICE_SIZE) {
    /* Chunks sit at multiples of their size from a slice boundary, so a class whose size is a
     * multiple of the alignment gives aligned chunks; the power-of-two classes always qualify. */
    size_t cls = class_of(size);
    while (g_class_size[cls] & (alignment - 1)) cls++;
    block_t *b = heap->current[cls];
    p = b->free != NULL ? block_pop(heap, b, b->free) : heap_malloc_slow(heap, size, cls);
    if (p != NULL && zero) memset(p, 0, size);
  } else if (size <= LARGE_MAX && large_fits(size, alignment)) {
    p = heap_malloc_large(heap, size, alignment);
    if (p != NULL && zero) {
      block_t *b = block_of(superblock_base(p), p);
      if (!(b->flags & BLOCK_FRESH)) memset(p, 0, size);
    }
  } else {
    p = huge_alloc(size, alignment, zero);
  }
  if (apex_unlikely(p == NULL)) errno = ENOMEM;
  return p;
}

apex_export void *apex_malloc(size_t size) {
  if (apex_likely(size <= 1024)) {
    heap_t *heap = tls_heap;
    block_t *b = heap->current[g_class_of_small[(size + 15) >> 4]];
    chunk_t *c = b->free;
    if (apex_likely(c != NULL)) return block_pop(heap, b, c);
  }
  return apex_alloc_aligned(size, APEX_MIN_ALIGN, false);
}

apex_export void *apex_calloc(size_t count, size_t size) {
  size_t total;
  if (apex_unlikely(__builtin_mul_overflow(count, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  return apex_alloc_aligned(total, APEX_MIN_ALIGN, true);
}

apex_export void *apex_aligned_alloc(size_t alignment, size_t size) {
  if (apex_unlikely(alignment == 0 || (alignment & (alignment - 1)) != 0)) {
    errno = EINVAL;
    return NULL;
  }
  return apex_alloc_aligned(size, alignment < APEX_MIN_ALIGN ? APEX_MIN_ALIGN : alignment, false);
}

apex_export int apex_posix_memalign(void **out, size_t alignment, size_t size) {
  if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
  int saved = errno;
  void *p = apex_alloc_aligned(size, alignment < APEX_MIN_ALIGN ? APEX_MIN_ALIGN : alignment, false);
  errno = saved;
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

/* ---- Validation ------------------------------------------------------------------------------ */

/* A pointer into a block superblock is valid when it is the start of a chunk of a block in use
 * whose live bit is set. Anything else aborts naming what was wrong. */
apex_cold apex_noreturn static void pointer_invalid(superblock_t *sb, block_t *b, const void *p, const char *op) {
  bool is_free = op[0] == 'f';
  if (b->limit == 0)
    apex_fatal(is_free ? "invalid free (no allocation here)" : "invalid pointer (no allocation here)", p, (size_t)-1);
  if (!chunk_start_ok(b, p))
    apex_fatal(is_free ? "invalid free (interior pointer)" : "invalid pointer (interior pointer)", p, b->cls);
  (void)sb;
  apex_fatal(is_free ? "double free" : "use of a freed pointer", p, b->cls);
}

apex_inline block_t *block_checked(superblock_t *sb, const void *p, const char *op) {
  block_t *b = block_of(sb, p);
  if (apex_unlikely(!chunk_start_ok(b, p) || chunk_is_free((const chunk_t *)p))) pointer_invalid(sb, b, p, op);
  return b;
}

apex_cold static void free_unregistered(void *p, const char *what) {
  if (p == NULL || bootstrap_owns(p)) return;          /* bootstrap memory is never reused */
  apex_fatal(what, p, NO_CLASS);
}

static void huge_check_live(superblock_t *sb, const void *p, const char *what) {
  if (apex_unlikely((const uint8_t *)p != (const uint8_t *)sb + sb->huge_offset))
    apex_fatal("invalid pointer (interior pointer)", p, CLASS_LARGE);
  if (apex_unlikely(atomic_load_explicit(&sb->huge_state, memory_order_acquire) != HUGE_LIVE))
    apex_fatal(what, p, CLASS_LARGE);
}

/* ---- Free ------------------------------------------------------------------------------------ */
apex_export void apex_free(void *p) {
  superblock_t *sb = superblock_of(p);
  if (apex_unlikely(sb == NULL)) { free_unregistered(p, "invalid free (not allocated by apexalloc)"); return; }
  if (apex_unlikely(sb->kind != SB_KIND_BLOCKS)) { huge_free(sb, p); return; }
  block_t *b = block_of(sb, p);
  if (apex_unlikely(!chunk_start_ok(b, p))) pointer_invalid(sb, b, p, "free");
  if (apex_unlikely(chunk_is_free((chunk_t *)p))) pointer_invalid(sb, b, p, "free");
  heap_t *owner = atomic_load_explicit(&sb->heap, memory_order_relaxed);
  if (apex_likely(atomic_load_explicit(&owner->thread_id, memory_order_relaxed) == current_thread_id()))
    heap_free_local(owner, sb, b, (chunk_t *)p);
  else
    remote_free(owner, sb, b, (chunk_t *)p);
}

apex_export size_t apex_usable_size(const void *p) {
  if (p == NULL) return 0;
  superblock_t *sb = superblock_of(p);
  if (sb == NULL) {
    if (bootstrap_owns(p)) return bootstrap_usable_size(p);
    apex_fatal("invalid pointer (not allocated by apexalloc)", p, NO_CLASS);
  }
  if (sb->kind != SB_KIND_BLOCKS) {
    huge_check_live(sb, p, "use of a freed pointer");
    return sb->huge_size;
  }
  return block_checked(sb, p, "usable_size")->chunk_size;
}

apex_export void apex_free_sized(void *p, size_t size) {
  if (p == NULL) return;
  if (apex_unlikely(size > apex_usable_size(p)))
    apex_fatal("invalid free_sized (size larger than the allocation)", p, NO_CLASS);
  apex_free(p);
}

/* ---- Realloc --------------------------------------------------------------------------------- */
apex_export void *apex_realloc(void *p, size_t size) {
  if (p == NULL) return apex_malloc(size);
  if (apex_unlikely(size > HUGE_MAX)) {
    apex_usable_size(p);                               /* still reject a bad pointer loudly */
    errno = ENOMEM;
    return NULL;
  }
  superblock_t *sb = superblock_of(p);
  size_t usable;
  if (sb == NULL) {
    if (!bootstrap_owns(p)) apex_fatal("invalid realloc (not allocated by apexalloc)", p, NO_CLASS);
    usable = bootstrap_usable_size(p);
  } else if (sb->kind != SB_KIND_BLOCKS) {
    huge_check_live(sb, p, "realloc of a freed pointer");
    usable = sb->huge_size;
    if (size > LARGE_MAX) {
      void *q = huge_realloc(sb, p, size);
      if (q != NULL) return q;
    }
  } else {
    block_t *b = block_checked(sb, p, "realloc");
    usable = b->chunk_size;
    /* Stay in place while the new size still uses at least half of the chunk. */
    if (size <= usable && (size >= usable / 2 || usable <= 64)) return p;
    /* A large object stays large: grow into free slices behind it, or give back its tail. */
    if (b->cls == CLASS_LARGE && size > SMALL_MAX && size <= LARGE_MAX &&
        atomic_load_explicit(&sb->heap, memory_order_relaxed) == tls_heap &&
        heap_resize_large(tls_heap, sb, b, size))
      return p;
  }
  void *q = apex_malloc(size);
  if (q == NULL) return NULL;                          /* errno = ENOMEM, p untouched */
  memcpy(q, p, size < usable ? size : usable);
  apex_free(p);
  return q;
}

apex_export void *apex_reallocarray(void *p, size_t count, size_t size) {
  size_t total;
  if (apex_unlikely(__builtin_mul_overflow(count, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  return apex_realloc(p, total);
}

/* ---- Version --------------------------------------------------------------------------------- */
apex_export int apex_version(void) {
  return APEX_VERSION_MAJOR * 10000 + APEX_VERSION_MINOR * 100 + APEX_VERSION_PATCH;
}

/* tests/test_malloc_family.c checks that this string agrees with the enum in the header. */
apex_export const char *apex_version_string(void) { return "0.1.0"; }

#ifdef APEX_OVERRIDE
#include "override.c"
#endif
