/*
 * alloc.c — the public entry points of the malloc family and their fast paths.
 *
 * Owns: apex_malloc/free/realloc/... and the validation every free goes through.
 * Must never: block, lock or call the OS on a fast path; accept a pointer it cannot vouch for.
 *
 * Cost of the fast paths (x86-64, gcc 12, release build; docs/ARCHITECTURE.md has the breakdown):
 *   malloc <= 8 KiB: a TLS load, a table lookup, a free-list pop whose chunk must carry its free
 *     tag and whose decoded link must stay in the block's carved part, clearing the chunk's first
 *     two words, two counters: 38 instructions, no call, no stack frame.
 *   free: one registry byte (ours, and a block superblock of this mode?), the block descriptor by
 *     one offset load, a range test against the carved extent and a multiply (rejects interior and
 *     never-carved addresses), a free-tag test (rejects double frees), then either a push onto the
 *     block's local list (49 instructions in all) or a remote free (remote.c: into this thread's
 *     batch for that block, published with one CAS per batch after checking the superblock header
 *     and the block descriptor).
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

/* Live bytes of one part of a heap, from counters that may be changing under the reader (the owner
 * allocates while a non-owner reads them, and the other way round). Every byte free_bytes counts
 * was counted in alloc_bytes before (release stores, counter_add), so alloc read after free is
 * never below what was live; but allocations made between the two reads would count on top of
 * objects freed meanwhile, an overestimate that can refuse a request which fits. So the pair is
 * read again until alloc_bytes stood still across the read of free_bytes (a few tries, then the
 * conservative value). */
static size_t part_live_bytes(const heap_t *part) {
  size_t alloc = atomic_load_explicit(&part->counters.alloc_bytes, memory_order_acquire), freed;
  for (int tries = 0; ; tries++) {
    freed = atomic_load_explicit(&part->counters.free_bytes, memory_order_acquire);
    size_t again = atomic_load_explicit(&part->counters.alloc_bytes, memory_order_acquire);
    if (again == alloc || tries == 8) { alloc = again; break; }
    alloc = again;
  }
  return alloc > freed ? alloc - freed : 0;
}

/* A heap with a limit refuses what would take it over: live (usable) bytes of the heap and of its
 * shared sub-heap, plus the usable size of this request. Remote frees not yet collected still
 * count (conservative). */
bool heap_over_limit(heap_t *heap, size_t usable) {
  heap_t *root = heap->parent != NULL ? heap->parent : heap;
  if (root->limit == 0) return false;
  heap_t *parts[2] = { root, __atomic_load_n(&root->shared, __ATOMIC_ACQUIRE) };   /* made by any thread */
  size_t live = 0;
  for (int i = 0; i < 2; i++) {
    if (parts[i] == NULL) continue;
    live += part_live_bytes(parts[i]);
    pthread_mutex_lock(&parts[i]->huge_lock);
    live += parts[i]->huge_bytes;
    pthread_mutex_unlock(&parts[i]->huge_lock);
  }
  return live + usable > root->limit || live + usable < live;
}

/* Over the limit: frees by other threads that were not collected yet still count as live. Collect
 * them (the caller's own part; the owner also collects the shared sub-heap's, under its lock,
 * which nobody holding it waits for us to release) and look again, so that a program that keeps
 * under its limit is not refused because its frees crossed threads. Frees into the root from
 * non-owner threads stay counted for a non-owner caller until the owner collects them. */
apex_cold static bool heap_refuses(heap_t *heap, size_t usable) {
  if (!heap_over_limit(heap, usable)) return false;
  heap_collect_all_remote(heap);
  heap_t *shared = __atomic_load_n(&heap->shared, __ATOMIC_ACQUIRE);
  if (heap->parent == NULL && shared != NULL) {
    /* The second look happens before shared_lock is released: a non-owner that frees after the
     * collection cannot allocate again (which needs the lock) until the decision is made, so its
     * uncollected free never counts together with what it allocates next. */
    pthread_mutex_lock(&heap->shared_lock);
    atomic_store_explicit(&shared->thread_id, current_thread_id(), memory_order_relaxed);
    heap_collect_all_remote(shared);
    atomic_store_explicit(&shared->thread_id, 0, memory_order_relaxed);
    bool over = heap_over_limit(heap, usable);
    pthread_mutex_unlock(&heap->shared_lock);
    return over;
  }
  return heap_over_limit(heap, usable);
}

/* What heap_alloc will count for a request: the chunk, the slice run, or the huge mapping's
 * usable part (SIZE_MAX when it cannot be served at all). */
static size_t usable_of_request(size_t size, size_t alignment) {
  if (size <= SMALL_MAX && alignment <= SLICE_SIZE) {
    size_t cls = class_of(size);
    while (g_class_size[cls] & (alignment - 1)) cls++;
    return g_class_size[cls];
  }
  if (size <= LARGE_MAX && large_fits(size, alignment))
    return (size == 0 ? 1 : (size + SLICE_SIZE - 1) >> SLICE_SHIFT) << SLICE_SHIFT;
  size_t offset = alignment > HUGE_HEADER ? alignment : HUGE_HEADER, page = os_page_size();
  if (size > HUGE_MAX || offset > HUGE_MAX) return SIZE_MAX;
  return ((offset + size + page - 1) & ~(page - 1)) - offset;
}

/* Everything the inline fast path does not handle, for a heap the caller owns: empty free lists,
 * sizes above 1 KiB, alignment, zeroing, large and huge objects, heap limits. */
apex_noinline void *heap_alloc(heap_t *heap, size_t size, size_t alignment, bool zero) {
  heap_t *root = heap->parent != NULL ? heap->parent : heap;
  if (apex_unlikely(root->limit != 0) && heap_refuses(heap, usable_of_request(size, alignment))) {
    errno = ENOMEM;
    return NULL;
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
    p = huge_alloc(heap, size, alignment, zero);
  }
  if (apex_unlikely(p == NULL)) errno = ENOMEM;
  else counter_add(&heap->counters.requested, size);
  return p;
}

/* The calling thread's default heap, or the bootstrap area while the allocator is starting. */
void *apex_alloc_unhardened(size_t size, size_t alignment, bool zero) {
  heap_t *heap = heap_for_thread();
  if (apex_unlikely(heap == NULL)) {
    if (heap_thread_exited()) return heap_alloc_late(size, alignment, zero);  /* a key destructor */
    void *p = bootstrap_alloc(size, alignment);       /* static memory: already zero */
    if (p == NULL) errno = ENOMEM;
    return p;
  }
  return heap_alloc(heap, size, alignment, zero);
}

/* Every allocation that is not served by the inline fast path comes here, and the first one in
 * the process always does (a thread without a heap has empty queues). The level is read only after
 * initialization, so an object is armed exactly when it was made in hardened mode: the level never
 * changes once the allocator is ready, and nothing is served from a heap before that. */
apex_noinline void *apex_alloc_aligned(size_t size, size_t alignment, bool zero) {
  apex_ensure_init();
  if (apex_unlikely(g_hardened)) return hardened_alloc(NULL, size, alignment, zero);
  return apex_alloc_unhardened(size, alignment, zero);
}

/* Everything apex_malloc's inline path leaves: sizes above the class table, a dry head block,
 * a thread without a heap yet, and hardened mode. */
apex_noinline static void *apex_malloc_miss(heap_t *heap, size_t size) {
  if (size <= SMALL_MAX && heap != &g_empty_heap) {
    void *p = heap_pop_class(heap, class_of(size), size);
    return p != NULL ? p : heap_alloc(heap, size, APEX_MIN_ALIGN, false);
  }
  return apex_alloc_aligned(size, APEX_MIN_ALIGN, false);
}

/* tls_fast_heap is the thread's heap in the default mode, and the empty heap (every queue empty)
 * before the thread has one and in hardened mode, so the one test of an empty free list also sends
 * those cases to the slow path. */
apex_export void *apex_malloc(size_t size) {
  heap_t *heap = tls_fast_heap;
  if (apex_likely(size <= CLASS_TABLE_MAX)) {
    void *p = heap_pop_class(heap, g_class_of_size[(size + 15) >> 4], size);
    if (apex_likely(p != NULL)) return p;
  }
  return apex_malloc_miss(heap, size);
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
  uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)b->start);
  bool on_grid = b->chunk_size != 0 && chunk_offset_ok(b, off, (uint64_t)b->capacity * b->chunk_size);
  if (block_limit(b) == 0) {
    /* A retired block keeps its geometry: a pointer to one of its former chunks was freed before
     * (the block emptied and went away). */
    if (on_grid) apex_fatal(is_free ? "double free" : "use of a freed pointer", p, b->cls);
    apex_fatal(is_free ? "invalid free (no allocation here)" : "invalid pointer (no allocation here)", p, (size_t)-1);
  }
  if (!on_grid)
    apex_fatal(is_free ? "invalid free (interior pointer)" : "invalid pointer (interior pointer)", p, b->cls);
  /* A chunk start of a block in use, past what the block has carved: never handed out. */
  if (off >= block_limit(b))
    apex_fatal(is_free ? "invalid free (never allocated)" : "invalid pointer (never allocated)", p, b->cls);
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
  if (huge_recently_unmapped(p)) apex_fatal("double free", p, CLASS_LARGE);
  apex_fatal(what, p, NO_CLASS);
}

static huge_t *huge_check_live(superblock_t *sb, const void *p, const char *what) {
  huge_t *h = (huge_t *)sb;
  huge_verify(h, p);
  if (apex_unlikely((const uint8_t *)p != (const uint8_t *)h + h->huge_offset))
    apex_fatal("invalid pointer (interior pointer)", p, CLASS_LARGE);
  if (apex_unlikely(atomic_load_explicit(&h->huge_state, memory_order_acquire) != HUGE_LIVE))
    apex_fatal(what, p, CLASS_LARGE);
  return h;
}

/* ---- Free ------------------------------------------------------------------------------------ */
static void free_off_path(void *p, bool from_apex_free, size_t claimed);

/* free_checked found no chunk of a block in use at p. One pointer that is not an error gets here:
 * a huge object of no bytes at a 4 MiB alignment, whose pointer (the first byte past its mapping)
 * may be where the next superblock starts. It is sorted out by the byte before it, as every other
 * registry lookup does. Anything else aborts. Not declared noreturn, so the fast path reaches it
 * with a jump instead of a call, and needs no stack frame of its own. */
apex_cold apex_noinline static void free_invalid(superblock_t *sb, block_t *b, void *p, bool from_apex_free,
                                                 size_t claimed) {
  if (((uintptr_t)p & SB_MASK) == 0) { free_off_path(p, from_apex_free, claimed); return; }
  pointer_invalid(sb, b, p, "free");
}

apex_cold apex_noinline static void free_sized_too_large(const void *p) {
  apex_fatal("invalid free_sized (size larger than the allocation)", p, NO_CLASS);
}

/* Everything free() does not find registered as a block superblock of the expected kind: a NULL,
 * foreign or bootstrap pointer, a huge object, and in hardened mode every object (`from_apex_free`:
 * the call came from apex_free, whose one registry comparison stands in for the level test); and
 * free_sized of any of those (`claimed`: its size, checked against the usable size). */
apex_cold apex_noinline static void free_off_path(void *p, bool from_apex_free, size_t claimed) {
  if (claimed != 0) {                                  /* free_sized: the claim is checked first */
    if (apex_unlikely(claimed > apex_usable_size(p))) free_sized_too_large(p);
    apex_free(p);
    return;
  }
  if (from_apex_free && g_hardened) { hardened_free(p); return; }
  unsigned kind = registry_kind(p);                    /* by the byte before p: see free_checked */
  if (kind == REG_NONE) { free_unregistered(p, "invalid free (not allocated by apexalloc)"); return; }
  if (kind == REG_HUGE) { huge_free((huge_t *)superblock_base(p), p); return; }
  apex_fatal("invalid free (not allocated by apexalloc)", p, NO_CLASS);   /* the other mode's kind */
}

/* The checked free of level 1, shared by apex_free and the hardened mode's eviction (which expects
 * the hardened registry kind). One registry load says "a block superblock of this mode"; then the
 * descriptor, the chunk-start test, the free tag and the owner. */
apex_inline void free_checked(void *p, unsigned blocks_kind, bool from_apex_free, size_t claimed) {
  /* By p itself, not the byte before it as registry_kind() does: no chunk of a block superblock
   * starts on its 4 MiB boundary (slice 0 holds the header), so this finds the same unit for every
   * chunk. A huge object that starts on a boundary finds its own mapping's unit, unregistered, or,
   * when it has no bytes, possibly the next superblock: free_invalid sorts that out. */
  uintptr_t unit = (uintptr_t)p >> SB_SHIFT;
  if (apex_unlikely(unit >= REGISTRY_UNITS ||
                    atomic_load_explicit(&g_registry[unit], memory_order_acquire) != blocks_kind)) {
    free_off_path(p, from_apex_free, claimed);
    return;
  }
  superblock_t *sb = (superblock_t *)((uintptr_t)p & ~(uintptr_t)SB_MASK);
  block_t *b = block_of(sb, p);
  if (APEX_CHECKS && apex_unlikely(!chunk_start_ok(b, p) || chunk_is_free((chunk_t *)p))) {
    free_invalid(sb, b, p, from_apex_free, claimed);
    return;
  }
  if (apex_unlikely(claimed > b->chunk_size)) { free_sized_too_large(p); return; }
  heap_t *owner = atomic_load_explicit(&sb->heap, memory_order_relaxed);
  if (apex_likely(atomic_load_explicit(&owner->thread_id, memory_order_relaxed) == current_thread_id()))
    heap_free_local(owner, sb, b, (chunk_t *)p);
  else
    remote_free(owner, b, (chunk_t *)p);         /* out of line (remote.c): batched, checked per batch */
}

apex_export void apex_free(void *p) { free_checked(p, REG_BLOCKS, true, 0); }

void apex_free_unhardened(void *p) { free_checked(p, g_reg_blocks, false, 0); }

/* free_sized with a size that is not 0: a block's chunk checks the claim on the way (one compare
 * in free's own path, so the pointer is looked up once); huge objects, hardened mode and
 * everything else check it against the usable size first. */
apex_export void apex_free_sized(void *p, size_t size) {
  if (p == NULL) return;
  free_checked(p, REG_BLOCKS, true, size);
}

apex_export size_t apex_usable_size(const void *p) {
  if (apex_unlikely(g_hardened)) return hardened_usable_size(p);
  return apex_usable_size_unhardened(p);
}

size_t apex_usable_size_unhardened(const void *p) { return usable_size_checked(p, "usable_size"); }

/* The usable size of a live allocation; anything else aborts, worded for the operation `op`
 * ("free" reports double and invalid frees). */
size_t usable_size_checked(const void *p, const char *op) {
  if (p == NULL) return 0;
  superblock_t *sb = superblock_of(p);
  if (sb == NULL) {
    if (bootstrap_owns(p)) return bootstrap_usable_size(p);
    if (huge_recently_unmapped(p)) apex_fatal(op[0] == 'f' ? "double free" : "use of a freed pointer", p, CLASS_LARGE);
    apex_fatal(op[0] == 'f' ? "invalid free (not allocated by apexalloc)" : "invalid pointer (not allocated by apexalloc)",
               p, NO_CLASS);
  }
  if (sb->kind != SB_KIND_BLOCKS)
    return huge_check_live(sb, p, op[0] == 'f' ? "double free" : "use of a freed pointer")->huge_size;
  return block_checked(sb, p, op)->chunk_size;
}


/* ---- Realloc --------------------------------------------------------------------------------- */
/* The explicit heap (apex_heap_new) an object belongs to, or NULL for the default heaps (a
 * thread's own, an abandoned one, the bootstrap area). A reallocated object stays in its explicit
 * heap, so apex_heap_destroy and the heap's limit still cover it after it moved. Reads the owner of
 * a live object: the object keeps its superblock (or header) from changing hands meanwhile. */
static heap_t *explicit_heap_of(const void *p) {
  superblock_t *sb = superblock_of(p);
  if (sb == NULL) return NULL;
  if (sb->kind == SB_KIND_BLOCKS) superblock_verify(sb);      /* the heap pointer is followed */
  else huge_verify((const huge_t *)sb, p);
  heap_t *owner = atomic_load_explicit(&sb->heap, memory_order_relaxed);
  return owner != NULL ? atomic_load_explicit(&owner->explicit_root, memory_order_relaxed) : NULL;
}

/* When a small or large object stays where it is (docs/API.md, "Realloc: in place or moved"): the
 * new size fits the chunk, and either the chunk would not be much bigger than the new size needs
 * (at least half of it used, or 64 bytes and less), or the caller says the object grows (old_size,
 * when known, at most the new size: an over-aligned chunk's slack is used before it moves). A
 * shrink below half moves to a smaller chunk to give memory back, and stays when that fails. */
static bool realloc_stays(size_t usable, size_t old_size, size_t size) {
  return size <= usable && (size >= usable / 2 || usable <= 64 || (old_size != 0 && old_size <= size));
}

/* Moves p's contents into a new object of the same heap (see explicit_heap_of). The copy covers
 * what the caller could have written: the old object's usable size (apex_usable_size promises all
 * of it), or the new size when that is smaller; never the new object's bytes beyond the old
 * object's end. */
static void *realloc_move(void *p, size_t usable, size_t size) {
  heap_t *heap = explicit_heap_of(p);
  void *q = heap != NULL ? apex_heap_alloc(heap, size, APEX_MIN_ALIGN) : apex_malloc(size);
  /* EINVAL: the heap was deleted meanwhile (its objects stay valid): the default heap, then. */
  if (q == NULL && heap != NULL && errno == EINVAL) q = apex_malloc(size);
  if (q == NULL) return NULL;                          /* errno = ENOMEM, p untouched */
  memcpy(q, p, size < usable ? size : usable);
  apex_free(p);
  return q;
}

apex_export void *apex_realloc(void *p, size_t size) {
  if (apex_unlikely(g_hardened)) {
    if (size > HUGE_MAX) return errno = ENOMEM, NULL;
    if (p != NULL) usable_size_checked(p, "realloc");  /* a bad p aborts before its header is read */
    return hardened_realloc(p != NULL ? explicit_heap_of(p) : NULL, p, size, APEX_MIN_ALIGN);
  }
  if (p == NULL) return apex_malloc(size);
  if (apex_unlikely(size > HUGE_MAX)) {
    apex_usable_size(p);                               /* still reject a bad pointer loudly */
    errno = ENOMEM;
    return NULL;
  }
  superblock_t *sb = superblock_of(p);
  size_t usable;
  if (sb == NULL) {
    if (huge_recently_unmapped(p)) apex_fatal("realloc of a freed pointer", p, CLASS_LARGE);
    if (!bootstrap_owns(p)) apex_fatal("invalid realloc (not allocated by apexalloc)", p, NO_CLASS);
    usable = bootstrap_usable_size(p);
  } else if (sb->kind != SB_KIND_BLOCKS) {
    huge_t *h = huge_check_live(sb, p, "realloc of a freed pointer");
    usable = h->huge_size;
    if (size > LARGE_MAX) {
      /* In place or by moving pages; NULL when that cannot be done, or when the heap's limit
       * refused the growth (the copy below is then refused too, with ENOMEM). */
      void *q = huge_realloc(h, p, size);
      if (q != NULL) return q;
    }
  } else {
    block_t *b = block_checked(sb, p, "realloc");
    usable = b->chunk_size;
    if (realloc_stays(usable, 0, size)) return p;
    /* A large object stays large: grow into free slices behind it, or give back its tail, when
     * the caller owns its heap (and, for growth, the heap has no limit: the move path checks). */
    heap_t *owner = atomic_load_explicit(&sb->heap, memory_order_relaxed);
    if (b->cls == CLASS_LARGE && size > SMALL_MAX && size <= LARGE_MAX &&
        atomic_load_explicit(&owner->thread_id, memory_order_relaxed) == current_thread_id() &&
        (size <= usable || (owner->parent != NULL ? owner->parent : owner)->limit == 0)) {
      superblock_verify(sb);
      if (heap_resize_large(owner, sb, b, size)) return p;
    }
  }
  int saved = errno;
  void *q = realloc_move(p, usable, size);
  /* A shrink that could not move (out of memory, or the heap at its limit: the smaller copy would
   * count on top of the object it replaces) keeps the object where it is, and errno as it was. */
  if (q == NULL && size <= usable) {
    errno = saved;
    return p;
  }
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

/* ---- Explicit heaps ------------------------------------------------------------------------- */
static bool alignment_ok(size_t *alignment) {
  if (*alignment == 0) *alignment = APEX_MIN_ALIGN;
  if ((*alignment & (*alignment - 1)) != 0) return false;
  if (*alignment < APEX_MIN_ALIGN) *alignment = APEX_MIN_ALIGN;
  return true;
}

/* A heap whose owner thread has exited is taken over by the first thread that allocates from it
 * (nobody else can be using its blocks: other threads go through the shared sub-heap). */
static bool heap_owned_by_caller(heap_t *heap) {
  uintptr_t me = current_thread_id();
  uintptr_t owner = atomic_load_explicit(&heap->thread_id, memory_order_relaxed);
  if (apex_likely(owner == me)) return true;
  if (owner != 0 || heap->is_default) return false;
  return atomic_compare_exchange_strong(&heap->thread_id, &owner, me);
}

void *heap_alloc_unhardened(heap_t *heap, size_t size, size_t alignment, bool zero) {
  if (heap_owned_by_caller(heap)) return heap_alloc(heap, size, alignment, zero);
  return heap_alloc_shared(heap, size, alignment, zero);
}

apex_export void *apex_heap_alloc(apex_heap_t *heap, size_t size, size_t alignment) {
  if (apex_unlikely(!heap_handle_ok(heap) || !alignment_ok(&alignment))) {
    errno = EINVAL;
    return NULL;
  }
  if (apex_unlikely(g_hardened)) return hardened_alloc(heap, size, alignment, false);
  if (apex_likely(heap_owned_by_caller(heap))) {
    /* The owner's fast path, with no TLS lookup at all (what lua_Alloc and PyMem calls hit). */
    if (size <= SMALL_MAX && alignment == APEX_MIN_ALIGN && heap->limit == 0) {
      void *p = heap_pop_class(heap, class_of(size), size);
      if (apex_likely(p != NULL)) return p;
    }
    return heap_alloc(heap, size, alignment, false);
  }
  return heap_alloc_shared(heap, size, alignment, false);
}

apex_export void *apex_heap_calloc(apex_heap_t *heap, size_t count, size_t size, size_t alignment) {
  size_t total;
  if (apex_unlikely(!heap_handle_ok(heap) || !alignment_ok(&alignment))) {
    errno = EINVAL;
    return NULL;
  }
  if (apex_unlikely(__builtin_mul_overflow(count, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  if (apex_unlikely(g_hardened)) return hardened_alloc(heap, total, alignment, true);
  return heap_alloc_unhardened(heap, total, alignment, true);
}

apex_export void *apex_heap_realloc(apex_heap_t *heap, void *p, size_t old_size, size_t new_size,
                                    size_t alignment) {
  if (apex_unlikely(!heap_handle_ok(heap) || !alignment_ok(&alignment))) {
    errno = EINVAL;
    return NULL;
  }
  if (p == NULL) return new_size == 0 ? NULL : apex_heap_alloc(heap, new_size, alignment);
  if (new_size == 0) {
    apex_free(p);
    return NULL;
  }
  if (apex_unlikely(new_size > HUGE_MAX)) {
    apex_usable_size(p);
    errno = ENOMEM;
    return NULL;
  }
  if (apex_unlikely(g_hardened)) return hardened_realloc(heap, p, new_size, alignment);
  size_t usable = apex_usable_size(p);                 /* validates p, aborts on a bad pointer */
  bool aligned = ((uintptr_t)p & (alignment - 1)) == 0;
  /* old_size is only a hint (the allocator knows the usable size, and copies all of it): trusted
   * to tell a growth from a shrink, which only decides whether the object may stay. */
  if (aligned && realloc_stays(usable, old_size, new_size)) return p;
  int saved = errno;
  void *q = apex_heap_alloc(heap, new_size, alignment);
  /* Lua requires that a shrink never fails: when moving to a smaller chunk is impossible (out of
   * memory, over the heap's limit), the object simply stays where it is, and errno with it. */
  if (q == NULL && aligned && new_size <= usable) {
    errno = saved;
    return p;
  }
  if (q == NULL) return NULL;
  memcpy(q, p, new_size < usable ? new_size : usable);
  apex_free(p);
  return q;
}

/* ---- Ownership queries ---------------------------------------------------------------------- */
/* 1 for a live object only: 0 for free chunks, never-carved chunk addresses, interior pointers,
 * freed huge objects and anything else. Never aborts, and never faults on a pointer freed (and
 * unmapped) by another thread meanwhile: the reads happen inside registry_read_begin/end, which
 * keeps the registry entry and the mapping behind it together (see superblock.c). For a pointer that
 * is being freed or reused by another thread, the descriptor fields it reads (slice_head, kind,
 * the block's geometry) may change under it: either answer is then right, so those reads are racy
 * on purpose (APEX_RACY_READER, as for the statistics walk); the caller's own live object's
 * fields never change while it is live. */
APEX_RACY_READER apex_export int apex_owns(const void *p) {
  if (p == NULL || superblock_of(p) == NULL) return 0;
  registry_read_begin();
  superblock_t *sb = superblock_of(p);                 /* again, now that no unmap can overtake */
  int owned = 0;
  if (sb == NULL) {
    owned = 0;
  } else if (sb->kind == SB_KIND_HUGE) {
    const huge_t *h = (const huge_t *)sb;
    owned = (const uint8_t *)p == (const uint8_t *)h + h->huge_offset &&
            atomic_load_explicit(&h->huge_state, memory_order_acquire) == HUGE_LIVE;
  } else if (sb->kind == SB_KIND_BLOCKS) {
    block_t *b = block_of(sb, p);
    owned = chunk_start_ok(b, p) && !chunk_is_free((const chunk_t *)p);
  }
  registry_read_end();
  return owned;
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
