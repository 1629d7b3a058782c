/*
 * security.c — security levels and the hardened mode.
 *
 * Level 1 (the default) is built into the fast paths elsewhere: registry check, interior-pointer
 * test, keyed free tags, encoded and range-checked free-list links, shuffled fresh chunks.
 * Level 2 (APEX_SECURE=2, "hardened") adds, at a measured price:
 *   - a size trailer at the end of every chunk and a canary pattern in the slack between the
 *     requested size and the trailer, both checked at free: a linear overflow is caught;
 *   - freed chunks are filled with a pattern (or zeros, with APEX_ZERO_ON_FREE=1) and kept in a
 *     bounded quarantine, evicted at random; the pattern is verified on eviction, so a write after
 *     free is caught, and a freed address is not handed out again soon (use-after-free is harder);
 *   - guard pages behind huge objects, and no reuse of freed huge mappings.
 * Level 0 is not a run-time setting: the checks of level 1 are inline in the fast paths, and
 * measuring their cost needs the build without them (APEX_CHECKS=0, bench target
 * libapexalloc_nochecks.so). APEX_SECURE=0 at run time says so on stderr and keeps level 1.
 *
 * Owns: the level, the hardened allocation/free/realloc/usable-size paths, the quarantine.
 * Must never: be on the path of level 1 beyond one predictable branch.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

bool g_hardened;
int g_secure_level = 1;

#define TRAILER      sizeof(uint64_t)
#define CANARY_BYTE  0xA5
#define FREED_BYTE   0xDE
#define QUARANTINE_SLOTS 4096

static char *put(char *out, const char *s) { while (*s) *out++ = *s++; return out; }

static void warn(const char *text) {
  char line[200];
  char *out = put(line, "apexalloc: ");
  out = put(out, text);
  *out++ = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, (size_t)(out - line));
  (void)ignored;
}

/* Called from global_init, before any allocation is served. */
static void crc_init(void);

/* Called from global_init after options_init (which read APEX_SECURE, APEX_ZERO_ON_FREE and
 * APEX_QUARANTINE_BYTES), before any allocation is served. */
void security_init(void) {
  crc_init();
  if (g_opt.secure == 0)
    warn("APEX_SECURE=0 needs the build without checks (APEX_CHECKS=0); keeping level 1");
  g_secure_level = g_opt.secure == 2 ? 2 : 1;
  g_hardened = g_secure_level >= 2;
  if (g_hardened) atomic_store_explicit(&g_opt.huge_cache_bytes, 0, memory_order_relaxed);
}

/* ---- Metadata checksums ----------------------------------------------------------------------
 * The fixed line of each block descriptor (where its chunks are, how big, its link key) is what
 * every freeing thread trusts. It carries a CRC32-C keyed with a secret from getrandom, sealed
 * whenever the owner changes the block and verified on the slow paths (remote frees, collection,
 * carving, retirement), so a wild write or an overflow into the metadata is caught before the
 * allocator acts on it. The local fast path does not pay for it. CRC32-C uses the SSE4.2 crc32
 * instruction when the CPU has it (checked once at start-up), a table otherwise. */
static uint32_t g_crc_table[256];
static bool g_crc_hw;
static uint32_t g_crc_key;

static uint32_t crc32c_table(uint32_t crc, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) crc = g_crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  crc = (uint32_t)c;
  for (; n > 0; n--, p++) crc = __builtin_ia32_crc32qi(crc, *p);
  return crc;
}
#endif

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));   /* Castagnoli */
    g_crc_table[i] = c;
  }
#if defined(__x86_64__)
  __builtin_cpu_init();
  g_crc_hw = __builtin_cpu_supports("sse4.2");
#endif
  g_crc_key = (uint32_t)g_secret ^ (uint32_t)(g_secret >> 32);
}

/* The fixed fields, two byte ranges around the atomic `limit`. Of the limit only whether the block
 * is in use (non-zero) is covered: the owner raises it as it carves, while other threads verify,
 * so block_verify checks its value against the covered geometry instead. */
static uint32_t crc_bytes(uint32_t crc, const void *p, size_t n) {
#if defined(__x86_64__)
  if (g_crc_hw) return crc32c_hw(crc, p, n);
#endif
  return crc32c_table(crc, p, n);
}

static uint32_t block_crc(const block_t *b) {
  const uint8_t *base = (const uint8_t *)b;
  uint32_t in_use = block_limit(b) != 0;
  uint32_t crc = crc_bytes(g_crc_key, base, offsetof(block_t, limit));
  crc = crc_bytes(crc, base + offsetof(block_t, chunk_size), offsetof(block_t, index) + 1 - offsetof(block_t, chunk_size));
  return crc_bytes(crc, &in_use, sizeof in_use);
}

void block_seal(block_t *b) { b->crc = block_crc(b); }

void block_verify(const block_t *b) {
  if (apex_unlikely(b->crc != block_crc(b) || block_limit(b) > (uint64_t)b->capacity * b->chunk_size))
    apex_fatal("corrupted block metadata", b->start, b->cls);
}

/* ---- Trailer and canary ----------------------------------------------------------------------
 * The trailer holds the requested size, keyed with a hash of the address, then mixed by a
 * bijection that spreads every bit over the whole word (the finalizer of MurmurHash3, whose
 * multipliers are odd and so invertible modulo 2^64). Decoding inverts the mix: after any change to
 * the stored word, even one byte of a one-byte overflow, the decoded size is a random 64-bit number,
 * which fits the chunk with probability below 2^-18, so the overwrite is reported as such instead
 * of passing as a smaller size. The key is a keyed hash of the address, not an invertible function
 * of a process secret: the slack of a live object can be read (an over-read, an uninitialized
 * send), and its trailer must not give away g_tag_secret (the free tags) or let the trailer of
 * another address be computed. */
#define MIX1 0xff51afd7ed558ccdULL
#define MIX2 0xc4ceb9fe1a85ec53ULL

static uint64_t trailer_key(const void *p) {
  uint64_t a = (uintptr_t)p;
  return keyed_hash(&a, 1, 0x747261696C65726BULL);                      /* "trailerk" */
}

static uint64_t inverse_odd(uint64_t a) {          /* Newton's iteration: a * x == 1 mod 2^64 */
  uint64_t x = a;                                   /* right in 3 bits for odd a; each step doubles */
  for (int i = 0; i < 5; i++) x *= 2 - a * x;
  return x;
}

static uint64_t trailer_mix(uint64_t x) {
  x ^= x >> 33; x *= MIX1; x ^= x >> 33; x *= MIX2; x ^= x >> 33;
  return x;
}

static uint64_t trailer_unmix(uint64_t x) {        /* x ^= x >> 33 is its own inverse */
  x ^= x >> 33; x *= inverse_odd(MIX2); x ^= x >> 33; x *= inverse_odd(MIX1); x ^= x >> 33;
  return x;
}

static uint64_t *trailer_of(void *p, size_t usable) { return (uint64_t *)((uint8_t *)p + usable - TRAILER); }

/* Lays out a fresh allocation: [0, size) user data, [size, usable - 8) canary, then the encoded
 * size. */
static void arm(void *p, size_t size, size_t usable) {
  memset((uint8_t *)p + size, CANARY_BYTE, usable - TRAILER - size);
  uint64_t value = trailer_mix(size ^ trailer_key(p));
  memcpy(trailer_of(p, usable), &value, sizeof value);
}

/* The requested size of a live hardened allocation, after checking its trailer and canary. */
static size_t checked_size(void *p, size_t usable, size_t cls) {
  uint64_t value;
  memcpy(&value, trailer_of(p, usable), sizeof value);
  size_t size = (size_t)(trailer_unmix(value) ^ trailer_key(p));
  if (apex_unlikely(size > usable - TRAILER)) apex_fatal("heap overflow (size trailer overwritten)", p, cls);
  const uint8_t *slack = (const uint8_t *)p + size;
  for (size_t i = 0; i < usable - TRAILER - size; i++)
    if (apex_unlikely(slack[i] != CANARY_BYTE)) apex_fatal("heap overflow (canary overwritten)", slack + i, cls);
  return size;
}

static size_t class_of_pointer(const void *p) {
  superblock_t *sb = superblock_of(p);
  if (sb == NULL || sb->kind != SB_KIND_BLOCKS) return CLASS_LARGE;
  return block_of(sb, p)->cls;
}

/* ---- Quarantine ------------------------------------------------------------------------------
 * One per thread (in its heap), so freeing never takes a lock: a chunk freed by any thread waits
 * in that thread's quarantine, and leaves it through the ordinary free path (remote if needed).
 *
 * An entry names the heap that owned the chunk's block when it was freed and how many times that
 * heap had been destroyed then. apex_heap_destroy may run while other threads' quarantines still
 * hold chunks of the heap (they were freed, so the program is done with them): the heap's memory
 * goes away, or to another heap, under those entries. So an entry leaves only while it holds a pin
 * on its heap taken while the heap's destroy count was still the one it recorded; destroy first
 * bumps the count, then waits for the pins to go. An entry of a destroyed heap is dropped without
 * touching its memory. Heap structs are never unmapped (they are reused, keeping their destroy
 * count), so reading the count of a destroyed heap is safe. */
typedef struct quarantined_s {
  void *p;
  size_t usable;
  heap_t *heap;                /* owner of the chunk's block at free time */
  uint64_t destroyed;          /* heap->destroyed at free time */
} quarantined_t;

/* True with a pin on q.heap when the heap has not been destroyed since the chunk was freed. The
 * pin and destroy's count are a Dekker pair: each side writes its own word, then reads the other's,
 * all sequentially consistent, so at least one of the two sees the other. */
static bool quarantine_pin(quarantined_t q) {
  atomic_fetch_add_explicit(&q.heap->quarantine_pins, 1, memory_order_seq_cst);
  if (atomic_load_explicit(&q.heap->destroyed, memory_order_seq_cst) == q.destroyed) return true;
  atomic_fetch_sub_explicit(&q.heap->quarantine_pins, 1, memory_order_release);
  return false;
}

/* apex_heap_destroy, before the heap's memory goes: entries of this heap in any quarantine are
 * from now on dropped, and none is being released any more when this returns. */
void quarantine_heap_destroyed(heap_t *heap) {
  atomic_fetch_add_explicit(&heap->destroyed, 1, memory_order_seq_cst);
  while (atomic_load_explicit(&heap->quarantine_pins, memory_order_seq_cst) != 0) sched_yield();
}

/* fork: only the forking thread lives on in the child, and it held no pin (it was in fork). The
 * pins of the others would stay forever and hang a destroy of their heap in the child. */
void quarantine_after_fork_child(void) {
  for (heap_t *heap = heaps_first(); heap != NULL; heap = heap->all_next)
    atomic_store_explicit(&heap->quarantine_pins, 0, memory_order_relaxed);
}

/* A chunk leaving the quarantine must still hold exactly what free left in it, 8 bytes at a time:
 * the pattern everywhere, and its free tag in the second word. */
static void release_quarantined(quarantined_t q) {
  if (!quarantine_pin(q)) return;        /* its heap was destroyed: the memory is not ours any more */
  chunk_t *c = q.p;
  uint64_t expect = g_opt.zero_on_free ? 0 : 0x0101010101010101ULL * FREED_BYTE;
  const uint64_t *words = q.p;
  for (size_t i = 0; i < q.usable / sizeof(uint64_t); i++) {
    if (apex_likely(words[i] == (i == 1 ? chunk_tag_free(c) : expect))) continue;
    if (i == 1) apex_fatal("write after free", &words[1], class_of_pointer(q.p));
    const uint8_t *bytes = (const uint8_t *)&words[i];
    size_t k = 0;
    while (bytes[k] == (uint8_t)expect) k++;
    apex_fatal("write after free", bytes + k, class_of_pointer(q.p));
  }
  tag_store(c, 0);                       /* from here the ordinary free path takes over */
  apex_free_unhardened(q.p);
  atomic_fetch_sub_explicit(&q.heap->quarantine_pins, 1, memory_order_release);
}

/* Adds a freed chunk to the thread's quarantine; when it is over its slots or bytes, entries
 * chosen at random leave (so when a freed address comes back is not predictable). */
static void quarantine_add(void *p, size_t usable, heap_t *owner) {
  heap_t *heap = heap_for_thread();
  size_t budget = atomic_load_explicit(&g_opt.quarantine_bytes, memory_order_relaxed);
  quarantined_t entry = { p, usable, owner, atomic_load_explicit(&owner->destroyed, memory_order_relaxed) };
  if (heap != NULL && heap->quarantine == NULL)
    heap->quarantine = os_map(QUARANTINE_SLOTS * sizeof(quarantined_t));
  if (heap == NULL || heap->quarantine == NULL || usable > budget) {
    release_quarantined(entry);
    return;
  }
  while (heap->quarantine_count > 0 &&
         (heap->quarantine_count == QUARANTINE_SLOTS || heap->quarantine_bytes + usable > budget)) {
    size_t k = (size_t)(heap_random(heap) % heap->quarantine_count);
    quarantined_t out = heap->quarantine[k];
    heap->quarantine[k] = heap->quarantine[--heap->quarantine_count];
    heap->quarantine_bytes -= out.usable;
    release_quarantined(out);
  }
  heap->quarantine[heap->quarantine_count++] = entry;
  heap->quarantine_bytes += usable;
}

/* Thread exit and apex_collect: empty the heap's quarantine. */
void quarantine_flush(heap_t *heap) {
  while (heap->quarantine_count > 0) {
    quarantined_t out = heap->quarantine[--heap->quarantine_count];
    heap->quarantine_bytes -= out.usable;
    release_quarantined(out);
  }
}

/* ---- The hardened entry points ---------------------------------------------------------------
 * Which objects are armed: every object made after initialization, in hardened mode. The level is
 * read once, in global_init, before any heap exists, and never changes (apex_alloc_aligned waits
 * for initialization before it looks at the level); objects of the bootstrap area (allocations made
 * by the C library while ApexAlloc itself starts) are never armed, and their free is a no-op. */
static void *alloc_need(heap_t *heap, size_t need, size_t alignment) {
  return heap == NULL ? apex_alloc_unhardened(need, alignment, false)
                      : heap_alloc_unhardened(heap, need, alignment, false);
}

void *hardened_alloc(heap_t *heap, size_t size, size_t alignment, bool zero) {
  size_t need;
  if (__builtin_add_overflow(size, TRAILER, &need)) { errno = ENOMEM; return NULL; }
  int saved_errno = errno;
  void *p = alloc_need(heap, need, alignment);
  if (p == NULL && heap != NULL && (heap->parent != NULL ? heap->parent : heap)->limit != 0 &&
      tls_heap != &g_empty_heap && tls_heap->quarantine_count > 0) {
    /* A heap's limit counts the chunks still in quarantine: a program that frees and allocates
     * again under its limit must not fail for it. Let this thread's quarantine go and retry. */
    quarantine_flush(tls_heap);
    p = alloc_need(heap, need, alignment);
    if (p != NULL) errno = saved_errno;             /* the first refusal set ENOMEM */
  }
  if (p == NULL || bootstrap_owns(p)) return p;         /* bootstrap memory is never armed */
  size_t usable = apex_usable_size_unhardened(p);
  if (zero) memset(p, 0, size);
  arm(p, size, usable);
  return p;
}

void hardened_free(void *p) {
  if (p == NULL) return;
  size_t usable = usable_size_checked(p, "free");       /* validates p: double/invalid free abort */
  if (bootstrap_owns(p)) return;
  checked_size(p, usable, class_of_pointer(p));
  superblock_t *sb = superblock_of(p);
  if (sb != NULL && sb->kind != SB_KIND_BLOCKS) {       /* huge: unmapped at once, guard page behind */
    apex_free_unhardened(p);
    return;
  }
  memset(p, g_opt.zero_on_free ? 0 : FREED_BYTE, usable);
  tag_store(((chunk_t *)p), chunk_tag_free(p));         /* a second free is a double free */
  quarantine_add(p, usable, atomic_load_explicit(&sb->heap, memory_order_relaxed));
}

size_t hardened_usable_size(const void *p) {
  if (p == NULL) return 0;
  size_t usable = apex_usable_size_unhardened(p);
  if (bootstrap_owns(p)) return usable;
  return checked_size((void *)p, usable, class_of_pointer(p));
}

/* Always a new armed object, the contents copied, and the old one freed (into the quarantine): a
 * stale pointer to the old location never aliases the new object. */
void *hardened_realloc(heap_t *heap, void *p, size_t size, size_t alignment) {
  if (p == NULL) return hardened_alloc(heap, size, alignment, false);
  size_t old = hardened_usable_size(p);
  int saved = errno;
  void *q = hardened_alloc(heap, size, alignment, false);
  if (q == NULL && size <= old && ((uintptr_t)p & (alignment - 1)) == 0) {
    errno = saved;                                     /* a shrink never fails, and keeps errno */
    return p;
  }
  if (q == NULL) return NULL;
  memcpy(q, p, old < size ? old : size);
  hardened_free(p);
  return q;
}
