/*
 * fuzz_alloc_ops.c — a libFuzzer harness for the ApexAlloc API.
 *
 * The input is read as a stream of operations on a table of up to 256 live allocations:
 *
 *   byte 0      operation (below), modulo OP_COUNT
 *   byte 1      slot (0..255)
 *   then        the operation's arguments: a size (a class byte then 1-3 bytes: mostly below
 *               1 KiB, sometimes up to 128 KiB, up to 4 MiB, or up to about 8 MiB), an alignment
 *               (a byte: 2^(4 + b % 17), 16 B .. 1 MiB), a count, ...
 *
 * Missing bytes read as zero, so every input is a valid program. Operations:
 *   malloc, calloc, realloc, aligned_alloc, posix_memalign, apex_heap_alloc, apex_heap_calloc,
 *   apex_heap_realloc (on a heap created for the input, and on one with a 1 MiB limit), free,
 *   apex_free_sized (any size from the requested to the usable one), apex_usable_size, apex_owns,
 *   apex_heap_destroy of the input's heap, apex_collect, rewriting an object.
 *
 * Every allocation is checked: aligned as asked (and to 16 bytes), usable size >= size, owned
 * (apex_owns), not overlapping any other live allocation, zeroed when it comes from calloc. Every
 * allocation holds a pattern (all of it up to 16 KiB; above, the first and last 4 KiB and one
 * word per 64 KiB), verified before realloc (the kept prefix, after it too), before free and
 * at the end of the input. Any mismatch prints what went wrong and aborts, which libFuzzer
 * reports as a crash (and saves the input). A heap-corruption abort of ApexAlloc itself (its
 * `apexalloc: ...` line) is a crash too: no input of this harness misuses the API.
 *
 * With APEX_FUZZ_TRACE=1 in the environment every operation is printed on stderr (to read what a
 * crashing input does: `APEX_FUZZ_TRACE=1 ./apex_fuzz_alloc_ops crash-...`).
 *
 * Linked with apexalloc_embed (no malloc replacement): libFuzzer's own memory stays the C
 * library's. Built only with clang: see tests/fuzz/CMakeLists.txt and docs/SECURITY.md.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apexalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The pattern and overlap loops are bookkeeping, not code under test: without coverage
 * instrumentation they run several times faster and do not flood the fuzzer with comparisons. */
#if defined(__clang__)
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define NO_COVERAGE
#endif

#define SLOTS 256
#define FULL_PATTERN_MAX ((size_t)16 * 1024)
#define EDGE ((size_t)4096)
#define STRIDE ((size_t)64 * 1024)

/* ---- Input ------------------------------------------------------------------------------- */
typedef struct {
  const uint8_t *data;
  size_t len, pos;
} input_t;

static unsigned next8(input_t *in) { return in->pos < in->len ? in->data[in->pos++] : 0; }
static unsigned next16(input_t *in) { unsigned lo = next8(in); return lo | (next8(in) << 8); }
static size_t next24(input_t *in) { size_t lo = next16(in); return lo | ((size_t)next8(in) << 16); }

/* Mostly small (the size classes up to 1 KiB), often up to 128 KiB, sometimes a large object
 * (up to 4 MiB), rarely a huge one (4 to 8 MiB). */
static size_t read_size(input_t *in) {
  unsigned cls = next8(in);
  if (cls < 176) return next8(in) | ((size_t)(cls & 3) << 8);                 /* 0 .. 1023 */
  if (cls < 240) return next16(in) | ((size_t)(cls & 1) << 16);               /* 0 .. 128 KiB */
  if (cls < 252) return next24(in) % ((size_t)4 << 20);                        /* 0 .. 4 MiB */
  return ((size_t)4 << 20) + ((size_t)next16(in) << 6);                       /* 4 .. 8 MiB */
}

static size_t read_alignment(input_t *in) { return (size_t)1 << (4 + next8(in) % 17); }

/* ---- Live allocations -------------------------------------------------------------------- */
enum { FROM_DEFAULT = 0, FROM_HEAP = 1, FROM_LIMITED = 2 };

typedef struct {
  uint8_t *p;
  size_t size;       /* bytes requested */
  size_t align;      /* alignment asked for (16 when none) */
  uint64_t seed;     /* of the pattern it holds */
  int from;          /* FROM_*: which heap, so destroying a heap drops its objects */
} slot_t;

static slot_t g_slots[SLOTS];
static apex_heap_t *g_heap, *g_limited;
static uint64_t g_seed_counter;
static const uint8_t g_zeros[4096];
static int g_trace = -1;

static const char *const op_names[] = {
  "malloc", "calloc", "realloc", "aligned_alloc", "posix_memalign", "apex_heap_alloc",
  "apex_heap_calloc", "free", "apex_free_sized", "apex_usable_size", "apex_owns", "rewrite",
  "apex_heap_destroy", "apex_collect", "malloc", "free",
};

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fuzz_alloc_ops: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

/* Pattern byte at offset i of an object with pattern `seed`. */
static inline uint64_t pattern_word(uint64_t seed, size_t k) {
  uint64_t z = seed + (uint64_t)k * 0x9E3779B97F4A7C15ull;
  return z ^ (z >> 29);
}

/* Writes (check == false) or verifies (check == true) the pattern over [lo, hi). Returns the
 * offset of the first mismatch, or SIZE_MAX. */
NO_COVERAGE static size_t pattern_range(uint8_t *p, size_t lo, size_t hi, uint64_t seed, bool check) {
  size_t i = lo;
  while (i < hi) {
    size_t k = i / 8, in_word = i % 8, n = 8 - in_word;
    if (n > hi - i) n = hi - i;
    uint64_t w = pattern_word(seed, k);
    const uint8_t *wb = (const uint8_t *)&w + in_word;
    if (check) {
      if (memcmp(p + i, wb, n) != 0) {
        for (size_t j = 0; j < n; j++)
          if (p[i + j] != wb[j]) return i + j;
      }
    } else {
      memcpy(p + i, wb, n);
    }
    i += n;
  }
  return SIZE_MAX;
}

/* The pattern covers the whole object up to 16 KiB; above, the first and last 4 KiB and the
 * first word of each 64 KiB slice (touching every page of a multi-MiB object would make page
 * faults, not the allocator, the cost of an input). Only the first `limit` bytes are touched. */
NO_COVERAGE static size_t pattern_apply(uint8_t *p, size_t size, size_t limit, uint64_t seed, bool check) {
  if (limit > size) limit = size;
  if (size <= FULL_PATTERN_MAX) return pattern_range(p, 0, limit, seed, check);
  size_t bad = pattern_range(p, 0, EDGE < limit ? EDGE : limit, seed, check);
  if (bad != SIZE_MAX) return bad;
  for (size_t page = STRIDE; page + 8 <= limit && page < size - EDGE; page += STRIDE)
    if ((bad = pattern_range(p, page, page + 8, seed, check)) != SIZE_MAX) return bad;
  if (limit > size - EDGE) return pattern_range(p, size - EDGE, limit, seed, check);
  return SIZE_MAX;
}

static void slot_verify(int i, const char *when, size_t limit) {
  slot_t *s = &g_slots[i];
  size_t bad = pattern_apply(s->p, s->size, limit, s->seed, true);
  if (bad != SIZE_MAX)
    fail("slot %d (%p, %zu bytes): pattern broken at offset %zu %s", i, (void *)s->p, s->size, bad, when);
}

static void slot_fill(int i) {
  slot_t *s = &g_slots[i];
  s->seed = ++g_seed_counter * 0xD1B54A32D192ED03ull;
  pattern_apply(s->p, s->size, s->size, s->seed, false);
}

/* The live slot other than i whose bytes overlap slot i's, or -1. */
NO_COVERAGE static int overlapping_slot(int i) {
  uintptr_t a = (uintptr_t)g_slots[i].p;
  size_t len = g_slots[i].size ? g_slots[i].size : 1;
  for (int j = 0; j < SLOTS; j++) {
    const slot_t *o = &g_slots[j];
    if (j == i || o->p == NULL) continue;
    size_t olen = o->size ? o->size : 1;
    if (a < (uintptr_t)o->p + olen && (uintptr_t)o->p < a + len) return j;
  }
  return -1;
}

NO_COVERAGE static size_t first_nonzero(const uint8_t *p, size_t n) {
  for (size_t k = 0; k < n; k += sizeof g_zeros) {
    size_t chunk = n - k < sizeof g_zeros ? n - k : sizeof g_zeros;
    if (memcmp(p + k, g_zeros, chunk) != 0) return k;
  }
  return SIZE_MAX;
}

/* Every new (or moved) allocation: alignment, usable size, ownership, no overlap. */
static void check_new(int i, const char *op) {
  slot_t *s = &g_slots[i];
  uintptr_t a = (uintptr_t)s->p;
  size_t align = s->align < APEX_MIN_ALIGN ? APEX_MIN_ALIGN : s->align;
  if (a & (align - 1)) fail("%s: %p not aligned to %zu", op, (void *)s->p, align);
  size_t usable = apex_usable_size(s->p);
  if (usable < s->size) fail("%s: usable size %zu < requested %zu at %p", op, usable, s->size, (void *)s->p);
  if (!apex_owns(s->p)) fail("%s: apex_owns(%p) is 0 for a live allocation", op, (void *)s->p);
  int j = overlapping_slot(i);
  if (j >= 0)
    fail("%s: [%p, +%zu) overlaps slot %d [%p, +%zu)", op, (void *)s->p, s->size, j, (void *)g_slots[j].p,
         g_slots[j].size);
}

static void slot_set(int i, void *p, size_t size, size_t align, int from, const char *op) {
  g_slots[i] = (slot_t){.p = p, .size = size, .align = align, .from = from};
  if (g_trace) fprintf(stderr, "  -> %p, %zu bytes, alignment %zu, heap %d\n", p, size, align, from);
  check_new(i, op);
  slot_fill(i);
}

/* Frees slot i (verifying its pattern first). With `sized`, through apex_free_sized with a size
 * between the requested and the usable one, picked by `pick`. */
static void slot_free(int i, bool sized, unsigned pick) {
  slot_t *s = &g_slots[i];
  if (s->p == NULL) return;
  slot_verify(i, "before free", s->size);
  if (sized) {
    size_t extra = apex_usable_size(s->p) - s->size;
    apex_free_sized(s->p, s->size + pick % (extra + 1));
  } else {
    apex_free(s->p);
  }
  s->p = NULL;
}

static apex_heap_t *heap_of(int from) { return from == FROM_HEAP ? g_heap : g_limited; }

/* An allocation that failed: only a limited heap may refuse, with ENOMEM. */
static void check_refusal(int from, const char *op, size_t size) {
  if (g_trace) fprintf(stderr, "  -> NULL (errno %d)\n", errno);
  if (from == FROM_LIMITED && errno == ENOMEM) return;
  fail("%s(%zu) returned NULL (errno %d) from %s", op, size, errno,
       from == FROM_DEFAULT ? "the default heap" : from == FROM_HEAP ? "a heap" : "the limited heap");
}

/* ---- Operations ------------------------------------------------------------------------- */
enum {
  OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_ALIGNED, OP_MEMALIGN, OP_HEAP_ALLOC, OP_HEAP_CALLOC,
  OP_FREE, OP_FREE_SIZED, OP_USABLE, OP_OWNS, OP_REWRITE, OP_HEAP_DESTROY, OP_COLLECT,
  OP_MALLOC2, OP_FREE2, OP_COUNT
};

static void op_realloc(int i, input_t *in) {
  slot_t *s = &g_slots[i];
  size_t size = read_size(in);
  if (s->p == NULL) {
    int from = (int)(next8(in) % 3);
    errno = 0;
    void *p = from == FROM_DEFAULT ? apex_realloc(NULL, size) : apex_heap_realloc(heap_of(from), NULL, 0, size, 0);
    if (p == NULL) {
      if (from != FROM_DEFAULT && size == 0) return;           /* lua_Alloc rule: (NULL, 0) is NULL */
      check_refusal(from, "realloc(NULL)", size);
      return;
    }
    slot_set(i, p, size, APEX_MIN_ALIGN, from, "realloc(NULL)");
    return;
  }
  slot_verify(i, "before realloc", s->size);
  size_t old = s->size;
  errno = 0;
  void *p;
  if (s->from == FROM_DEFAULT) {
    p = apex_realloc(s->p, size);
    if (p == NULL) fail("realloc(%p, %zu) returned NULL (errno %d)", (void *)s->p, size, errno);
    s->align = APEX_MIN_ALIGN;
  } else {
    size_t align = (next8(in) & 1) ? read_alignment(in) : 0;
    p = apex_heap_realloc(heap_of(s->from), s->p, old, size, align);
    if (p == NULL && size == 0) { s->p = NULL; return; }       /* freed */
    if (p == NULL) {
      check_refusal(s->from, "apex_heap_realloc", size);
      slot_verify(i, "after a failed realloc", s->size);          /* untouched */
      return;
    }
    s->align = align ? align : APEX_MIN_ALIGN;
  }
  s->p = p;
  s->size = size;
  if (g_trace) fprintf(stderr, "  -> %p, %zu bytes\n", p, size);
  check_new(i, "realloc");
  /* The kept prefix still holds the old pattern (positions of the old size). */
  slot_t before = *s;
  before.size = old;
  size_t bad = pattern_apply(p, old, size < old ? size : old, before.seed, true);
  if (bad != SIZE_MAX) fail("realloc %zu -> %zu: kept byte %zu changed (now at %p)", old, size, bad, p);
  slot_fill(i);
}

static void run_op(input_t *in) {
  unsigned op = next8(in) % OP_COUNT;
  int i = (int)next8(in);
  slot_t *s = &g_slots[i];
  if (g_trace) fprintf(stderr, "op %-17s slot %3d (before: %p, %zu bytes)\n", op_names[op], i, (void *)s->p, s->size);
  switch (op) {
    case OP_MALLOC:
    case OP_MALLOC2: {
      slot_free(i, false, 0);
      size_t size = read_size(in);
      void *p = apex_malloc(size);
      if (p == NULL) fail("apex_malloc(%zu) returned NULL (errno %d)", size, errno);
      slot_set(i, p, size, APEX_MIN_ALIGN, FROM_DEFAULT, "malloc");
      break;
    }
    case OP_CALLOC:
    case OP_HEAP_CALLOC: {
      slot_free(i, false, 0);
      size_t count = 1 + next8(in) % 16, size = read_size(in) / count;
      int from = op == OP_CALLOC ? FROM_DEFAULT : 1 + (int)(next8(in) % 2);
      size_t align = op == OP_CALLOC ? APEX_MIN_ALIGN : read_alignment(in);
      errno = 0;
      uint8_t *p = op == OP_CALLOC ? apex_calloc(count, size) : apex_heap_calloc(heap_of(from), count, size, align);
      if (p == NULL) { check_refusal(from, "calloc", count * size); break; }
      size_t dirty = first_nonzero(p, count * size);
      if (dirty != SIZE_MAX) fail("calloc(%zu, %zu) = %p: not zeroed near byte %zu", count, size, (void *)p, dirty);
      slot_set(i, p, count * size, align, from, "calloc");
      break;
    }
    case OP_REALLOC:
      op_realloc(i, in);
      break;
    case OP_ALIGNED:
    case OP_MEMALIGN: {
      slot_free(i, false, 0);
      size_t align = read_alignment(in), size = read_size(in);
      void *p = NULL;
      if (op == OP_ALIGNED) {
        p = apex_aligned_alloc(align, size);
        if (p == NULL) fail("apex_aligned_alloc(%zu, %zu) returned NULL (errno %d)", align, size, errno);
      } else {
        int r = apex_posix_memalign(&p, align, size);
        if (r != 0) fail("apex_posix_memalign(%zu, %zu) returned %d", align, size, r);
      }
      slot_set(i, p, size, align, FROM_DEFAULT, op == OP_ALIGNED ? "aligned_alloc" : "posix_memalign");
      break;
    }
    case OP_HEAP_ALLOC: {
      slot_free(i, false, 0);
      int from = 1 + (int)(next8(in) % 2);
      size_t align = (next8(in) & 1) ? read_alignment(in) : 0, size = read_size(in);
      errno = 0;
      void *p = apex_heap_alloc(heap_of(from), size, align);
      if (p == NULL) { check_refusal(from, "apex_heap_alloc", size); break; }
      slot_set(i, p, size, align ? align : APEX_MIN_ALIGN, from, "apex_heap_alloc");
      break;
    }
    case OP_FREE:
    case OP_FREE2:
      slot_free(i, false, 0);
      break;
    case OP_FREE_SIZED:
      slot_free(i, true, next16(in));                     /* the two bytes are read in any case */
      break;
    case OP_USABLE:
      if (s->p != NULL) {
        size_t usable = apex_usable_size(s->p);
        if (usable < s->size) fail("apex_usable_size(%p) = %zu < %zu", (void *)s->p, usable, s->size);
        slot_verify(i, "at a usable_size check", s->size);
      }
      break;
    case OP_OWNS: {
      int local = 0;
      if (apex_owns(&local)) fail("apex_owns(stack address) is 1");
      if (apex_owns(g_slots)) fail("apex_owns(global) is 1");
      if (s->p != NULL) {
        if (!apex_owns(s->p)) fail("apex_owns(%p) is 0 for a live allocation", (void *)s->p);
        size_t off = 1 + next8(in) % 15;                  /* never a start: starts are 16-aligned */
        if (apex_owns(s->p + off)) fail("apex_owns(%p + %zu) is 1 for an interior pointer", (void *)s->p, off);
      }
      break;
    }
    case OP_REWRITE:
      if (s->p != NULL) {
        slot_verify(i, "before a rewrite", s->size);
        slot_fill(i);
      }
      break;
    case OP_HEAP_DESTROY: {
      /* Everything allocated from the heap goes at once; the slots forget those objects. */
      int from = 1 + (int)(next8(in) % 2);
      apex_heap_t *h = heap_of(from);
      for (int j = 0; j < SLOTS; j++)
        if (g_slots[j].p != NULL && g_slots[j].from == from) {
          slot_verify(j, "before its heap was destroyed", g_slots[j].size);
          g_slots[j].p = NULL;
        }
      if (apex_heap_destroy(h) != 0) fail("apex_heap_destroy failed");
      if (from == FROM_HEAP) {
        g_heap = apex_heap_new();
        if (g_heap == NULL) fail("apex_heap_new failed");
      } else {
        apex_heap_options_t opts = {.size = sizeof opts, .limit = (size_t)1 << 20};
        g_limited = apex_heap_new_ex(&opts);
        if (g_limited == NULL) fail("apex_heap_new_ex failed");
      }
      break;
    }
    case OP_COLLECT:
      apex_collect();
      break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (g_trace < 0) g_trace = getenv("APEX_FUZZ_TRACE") != NULL;
  /* The two heaps live across inputs (like the default heap); OP_HEAP_DESTROY replaces them. */
  if (g_heap == NULL) g_heap = apex_heap_new();
  if (g_limited == NULL) {
    apex_heap_options_t opts = {.size = sizeof opts, .limit = (size_t)1 << 20};
    g_limited = apex_heap_new_ex(&opts);
  }
  if (g_heap == NULL || g_limited == NULL) fail("apex_heap_new failed");
  input_t in = {data, size, 0};
  while (in.pos < in.len) run_op(&in);
  /* The end: every object verified and freed (alternating free and free_sized). */
  for (int i = 0; i < SLOTS; i++) slot_free(i, i & 1, (unsigned)i * 2654435761u);
  return 0;
}
