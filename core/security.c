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

/* What free leaves in every word of a quarantined chunk but the second (its free tag): the
 * pattern, or zeros with APEX_ZERO_ON_FREE=1 (read-only after start-up, so fixed here once). */
static uint64_t g_freed_word = 0x0101010101010101ULL * FREED_BYTE;

#define TRAILER_DOMAIN 0x747261696C65726BULL                             /* "trailerk" */
static uint64_t g_trailer_k, g_trailer_k_rotated;              /* see trailer_key */

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
static uint64_t trailer_key(const void *p);

/* Called from global_init after options_init (which read APEX_SECURE, APEX_ZERO_ON_FREE and
 * APEX_QUARANTINE_BYTES), before any allocation is served. */
void security_init(void) {
  crc_init();
  if (g_opt.secure == 0)
    warn("APEX_SECURE=0 needs the build without checks (APEX_CHECKS=0); keeping level 1");
  g_secure_level = g_opt.secure == 2 ? 2 : 1;
  g_hardened = g_secure_level >= 2;
  if (g_opt.zero_on_free) g_freed_word = 0;
  g_trailer_k = (uint64_t)g_secret ^ (TRAILER_DOMAIN * 0x9E3779B97F4A7C15ULL);
  g_trailer_k_rotated = (g_trailer_k << 35) | (g_trailer_k >> 29);
  uint64_t probe = (uintptr_t)&probe;
  apex_assert(trailer_key(&probe) == keyed_hash(&probe, 1, TRAILER_DOMAIN));
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
#if defined(__x86_64__)
static bool g_avx2;                       /* for the pattern loops below */
#endif
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
#if defined(__x86_64__)
  g_avx2 = __builtin_cpu_supports("avx2");
#endif
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

/* keyed_hash(&address, 1, TRAILER_DOMAIN) (superblock.c), unrolled for its one word, with the key
 * derived once in security_init: the same value without a call and a loop (twice per pair). */
static uint64_t trailer_key(const void *p) {
  uint64_t h = (g_trailer_k ^ (uintptr_t)p) * 0xFF51AFD7ED558CCDULL;
  h ^= h >> 32;
  return fmix64(h ^ g_trailer_k_rotated);
}

/* The inverses modulo 2^64 of the two odd multipliers (Newton's iteration x *= 2 - a * x, done
 * once offline, checked below), so decoding costs two multiplies, not the twelve of computing them. */
#define MIX1_INVERSE 0x4f74430c22a54005ULL
#define MIX2_INVERSE 0x9cb4b2f8129337dbULL
_Static_assert(MIX1 * MIX1_INVERSE == 1 && MIX2 * MIX2_INVERSE == 1, "trailer_unmix must invert trailer_mix");

static uint64_t trailer_mix(uint64_t x) {
  x ^= x >> 33; x *= MIX1; x ^= x >> 33; x *= MIX2; x ^= x >> 33;
  return x;
}

static uint64_t trailer_unmix(uint64_t x) {        /* x ^= x >> 33 is its own inverse */
  x ^= x >> 33; x *= MIX2_INVERSE; x ^= x >> 33; x *= MIX1_INVERSE; x ^= x >> 33;
  return x;
}

static uint64_t *trailer_of(void *p, size_t usable) { return (uint64_t *)((uint8_t *)p + usable - TRAILER); }

/* ---- Filling and checking patterns -----------------------------------------------------------
 * Every free fills its whole chunk and every eviction reads it all back; the canary is written at
 * every allocation and read at every free. These loops were most of what hardened mode cost (a
 * compare and a branch per 8 bytes, and one per canary byte), so they work 128 bytes per iteration
 * in vector registers (the compiler's vector extension: two SSE2 registers per 32-byte vector on
 * any x86-64, one AVX2 register when the CPU has it, checked once at start-up), OR the differences
 * together instead of branching per word, and look for the first differing byte only once they
 * know there is one. Chunks are 16-byte aligned and a multiple of 16 bytes long. */
typedef uint64_t vec32_t __attribute__((vector_size(32), aligned(16)));
typedef uint64_t vec16_t __attribute__((vector_size(16)));

apex_inline uint64_t load64(const uint8_t *p) { uint64_t v; memcpy(&v, p, sizeof v); return v; }
apex_inline void store64(uint8_t *p, uint64_t v) { memcpy(p, &v, sizeof v); }

/* [p, p + n) := pattern; p 16-byte aligned, n a multiple of 8. */
apex_inline void fill_aligned_body(uint8_t *p, size_t n, uint64_t pattern) {
  vec32_t v = { pattern, pattern, pattern, pattern };
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    *(vec32_t *)(p + i) = v; *(vec32_t *)(p + i + 32) = v;
    *(vec32_t *)(p + i + 64) = v; *(vec32_t *)(p + i + 96) = v;
  }
  for (; i + 32 <= n; i += 32) *(vec32_t *)(p + i) = v;
  if (i + 16 <= n) { *(vec16_t *)(p + i) = (vec16_t){ pattern, pattern }; i += 16; }
  if (i < n) store64(p + i, pattern);
}

/* Whether [p, p + n) holds only pattern; p 16-byte aligned, n a multiple of 8. */
apex_inline bool equal_aligned_body(const uint8_t *p, size_t n, uint64_t pattern) {
  vec32_t v = { pattern, pattern, pattern, pattern }, diff = { 0, 0, 0, 0 };
  size_t i = 0;
  for (; i + 128 <= n; i += 128)
    diff |= (*(const vec32_t *)(p + i) ^ v) | (*(const vec32_t *)(p + i + 32) ^ v) |
            (*(const vec32_t *)(p + i + 64) ^ v) | (*(const vec32_t *)(p + i + 96) ^ v);
  for (; i + 32 <= n; i += 32) diff |= *(const vec32_t *)(p + i) ^ v;
  uint64_t rest = 0;
  for (; i < n; i += 8) rest |= load64(p + i) ^ pattern;
  return (diff[0] | diff[1] | diff[2] | diff[3] | rest) == 0;
}

static void fill_aligned_generic(uint8_t *p, size_t n, uint64_t pattern) { fill_aligned_body(p, n, pattern); }
static bool equal_aligned_generic(const uint8_t *p, size_t n, uint64_t pattern) { return equal_aligned_body(p, n, pattern); }

#if defined(__x86_64__)
__attribute__((target("avx2"))) static void fill_aligned_avx2(uint8_t *p, size_t n, uint64_t pattern) {
  fill_aligned_body(p, n, pattern);
}
__attribute__((target("avx2"))) static bool equal_aligned_avx2(const uint8_t *p, size_t n, uint64_t pattern) {
  return equal_aligned_body(p, n, pattern);
}
#define PICK(generic, avx2) (g_avx2 ? avx2 : generic)
#else
#define PICK(generic, avx2) (generic)
#endif

static void fill_aligned(void *p, size_t n, uint64_t pattern) {
  PICK(fill_aligned_generic, fill_aligned_avx2)((uint8_t *)p, n, pattern);
}

static bool equal_aligned(const void *p, size_t n, uint64_t pattern) {
  return PICK(equal_aligned_generic, equal_aligned_avx2)((const uint8_t *)p, n, pattern);
}

/* The same for any address and length (the canary: from the end of the requested size to the
 * trailer): unaligned 8- or 16-byte ends that may overlap, the aligned middle in vectors. */
static void fill_bytes(uint8_t *p, size_t n, uint8_t byte) {
  uint64_t pattern = 0x0101010101010101ULL * byte;
  if (n < 8) { for (size_t i = 0; i < n; i++) p[i] = byte; return; }
  if (n < 32) {
    for (size_t i = 0; i + 8 <= n; i += 8) store64(p + i, pattern);
    store64(p + n - 8, pattern);
    return;
  }
  store64(p, pattern); store64(p + 8, pattern); store64(p + n - 16, pattern); store64(p + n - 8, pattern);
  uint8_t *a = (uint8_t *)(((uintptr_t)p + 15) & ~(uintptr_t)15), *e = (uint8_t *)((uintptr_t)(p + n) & ~(uintptr_t)15);
  fill_aligned(a, (size_t)(e - a), pattern);
}

static bool bytes_equal(const uint8_t *p, size_t n, uint8_t byte) {
  uint64_t pattern = 0x0101010101010101ULL * byte;
  if (n < 8) {
    uint8_t diff = 0;
    for (size_t i = 0; i < n; i++) diff |= p[i] ^ byte;
    return diff == 0;
  }
  uint64_t diff = load64(p + n - 8) ^ pattern;
  if (n < 32) {
    for (size_t i = 0; i + 8 <= n; i += 8) diff |= load64(p + i) ^ pattern;
    return diff == 0;
  }
  diff |= (load64(p) ^ pattern) | (load64(p + 8) ^ pattern) | (load64(p + n - 16) ^ pattern);
  const uint8_t *a = (const uint8_t *)(((uintptr_t)p + 15) & ~(uintptr_t)15);
  const uint8_t *e = (const uint8_t *)((uintptr_t)(p + n) & ~(uintptr_t)15);
  return diff == 0 && equal_aligned(a, (size_t)(e - a), pattern);
}

static size_t class_of_pointer(const void *p);

/* Lays out a fresh allocation: [0, size) user data, [size, usable - 8) canary, then the encoded
 * size. */
static void arm(void *p, size_t size, size_t usable) {
  fill_bytes((uint8_t *)p + size, usable - TRAILER - size, CANARY_BYTE);
  uint64_t value = trailer_mix(size ^ trailer_key(p));
  memcpy(trailer_of(p, usable), &value, sizeof value);
}

apex_cold apex_noreturn static void canary_overwritten(const uint8_t *slack, size_t n, const void *p) {
  size_t i = 0;
  while (i < n && slack[i] == CANARY_BYTE) i++;
  apex_fatal("heap overflow (canary overwritten)", slack + i, class_of_pointer(p));
}

/* The requested size of a live hardened allocation, after checking its trailer and canary. */
static size_t checked_size(void *p, size_t usable) {
  uint64_t value;
  memcpy(&value, trailer_of(p, usable), sizeof value);
  size_t size = (size_t)(trailer_unmix(value) ^ trailer_key(p));
  if (apex_unlikely(size > usable - TRAILER))
    apex_fatal("heap overflow (size trailer overwritten)", p, class_of_pointer(p));
  const uint8_t *slack = (const uint8_t *)p + size;
  if (apex_unlikely(!bytes_equal(slack, usable - TRAILER - size, CANARY_BYTE)))
    canary_overwritten(slack, usable - TRAILER - size, p);
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
 * count and pins, which reuse never clears even for an instant: heap_new_locked), so reading the
 * count of a destroyed heap is safe. */
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

/* Evictions happen EVICT_BATCH at a time: the pin on the entries' heap (two atomic read-modify-
 * writes on a line other threads write too) is then taken once per heap and batch. */
#define EVICT_BATCH 8

apex_cold apex_noreturn static void freed_chunk_changed(const uint64_t *words, size_t usable) {
  for (size_t i = 0; i < usable / sizeof(uint64_t); i++) {
    if (words[i] == (i == 1 ? chunk_tag_free((const chunk_t *)words) : g_freed_word)) continue;
    if (i == 1) apex_fatal("write after free", &words[1], class_of_pointer(words));
    const uint8_t *bytes = (const uint8_t *)&words[i];
    size_t k = 0;
    while (bytes[k] == (uint8_t)g_freed_word) k++;
    apex_fatal("write after free", bytes + k, class_of_pointer(words));
  }
  apex_fatal("write after free", words, class_of_pointer(words));   /* not reached */
}

/* A chunk leaving the quarantine must still hold exactly what free left in it: the pattern
 * everywhere, and its free tag in the second word (all of it is compared; the first difference is
 * looked for only once there is one). Then the ordinary free path takes it. */
static void verify_and_free(void *p, size_t usable) {
  const uint64_t *words = p;
  if (apex_unlikely((words[1] != chunk_tag_free((const chunk_t *)p)) | (words[0] != g_freed_word)) ||
      apex_unlikely(!equal_aligned(words + 2, usable - 2 * sizeof(uint64_t), g_freed_word)))
    freed_chunk_changed(words, usable);
  tag_store((chunk_t *)p, 0);
  apex_free_unhardened(p);
}

/* Releases n entries taken out of a quarantine, each under a pin on its heap (quarantine_pin).
 * The entries of one heap leave under one pin: its counter is a cache line shared by every thread
 * that frees that heap's chunks (in a producer/consumer program, all the consumers), so it is
 * touched once per heap and batch, not once per chunk. Released entries are cleared in `out`. */
static void release_batch(quarantined_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (out[i].p == NULL) continue;                       /* left with an earlier entry's heap */
    heap_t *heap = out[i].heap;
    uint64_t destroyed = out[i].destroyed;
    bool live = quarantine_pin(out[i]);
    for (size_t j = i; j < n; j++) {
      if (out[j].p == NULL || out[j].heap != heap || out[j].destroyed != destroyed) continue;
      if (live) verify_and_free(out[j].p, out[j].usable);   /* else its heap was destroyed: not ours */
      out[j].p = NULL;
    }
    if (live) atomic_fetch_sub_explicit(&heap->quarantine_pins, 1, memory_order_release);
  }
}

/* Adds a freed chunk to the thread's quarantine; when it is over its slots or bytes, entries
 * chosen at random leave, EVICT_BATCH at a time (so when a freed address comes back is not
 * predictable). Only the owning thread touches its quarantine (apex_collect and thread exit flush
 * their own), so there is no lock: the pins protect the heaps the entries point into, not the
 * quarantine. */
static void quarantine_add(void *p, size_t usable, heap_t *owner) {
  heap_t *heap = tls_heap;
  if (apex_unlikely(heap == &g_empty_heap)) heap = heap_for_thread();
  size_t budget = atomic_load_explicit(&g_opt.quarantine_bytes, memory_order_relaxed);
  quarantined_t entry = { p, usable, owner, atomic_load_explicit(&owner->destroyed, memory_order_relaxed) };
  if (apex_unlikely(heap == NULL || heap->quarantine == NULL)) {
    if (heap != NULL) heap->quarantine = os_map(QUARANTINE_SLOTS * sizeof(quarantined_t));
    if (heap == NULL || heap->quarantine == NULL) { release_batch(&entry, 1); return; }
  }
  if (apex_unlikely(usable > budget)) { release_batch(&entry, 1); return; }
  while (heap->quarantine_count > 0 &&
         (heap->quarantine_count == QUARANTINE_SLOTS || heap->quarantine_bytes + usable > budget)) {
    quarantined_t out[EVICT_BATCH];
    size_t n = 0;
    do {
      /* uniform in [0, count) by a multiply and a shift (Lemire), not a division */
      size_t k = (size_t)(((heap_random(heap) >> 32) * heap->quarantine_count) >> 32);
      out[n] = heap->quarantine[k];
      heap->quarantine[k] = heap->quarantine[--heap->quarantine_count];
      heap->quarantine_bytes -= out[n++].usable;
    } while (n < EVICT_BATCH && heap->quarantine_count > 0);
    release_batch(out, n);
  }
  heap->quarantine[heap->quarantine_count++] = entry;
  heap->quarantine_bytes += usable;
}

/* Thread exit and apex_collect: empty the heap's quarantine. */
void quarantine_flush(heap_t *heap) {
  while (heap->quarantine_count > 0) {
    quarantined_t out[EVICT_BATCH];
    size_t n = heap->quarantine_count < EVICT_BATCH ? heap->quarantine_count : EVICT_BATCH;
    heap->quarantine_count -= n;
    memcpy(out, heap->quarantine + heap->quarantine_count, n * sizeof out[0]);
    for (size_t i = 0; i < n; i++) heap->quarantine_bytes -= out[i].usable;
    release_batch(out, n);
  }
}

/* ---- The hardened entry points ---------------------------------------------------------------
 * Which objects are armed: every object made after initialization, in hardened mode. The level is
 * read once, in global_init, before any heap exists, and never changes (apex_alloc_aligned waits
 * for initialization before it looks at the level); objects of the bootstrap area (allocations made
 * by the C library while ApexAlloc itself starts) are never armed, and their free is a no-op. */
/* The usable size of a chunk this allocator has just handed out (so no need to validate it), or 0
 * for the bootstrap area, which is in no superblock. */
static size_t fresh_usable(const void *p) {
  superblock_t *sb = superblock_of(p);
  if (sb == NULL) return 0;
  if (sb->kind == SB_KIND_BLOCKS) return block_of(sb, p)->chunk_size;
  return ((const huge_t *)sb)->huge_size;
}

/* A chunk for `need` bytes (the request and its trailer) and its usable size (0: bootstrap area).
 * The thread's default heap is looked up once, and a small request takes the same pop as
 * apex_malloc's inline fast path, whose usable size is the block's chunk size: the hardened path
 * does not pay the core's entry points (another TLS lookup) and a validating usable-size lookup on
 * top of its own work. */
static void *alloc_need(heap_t *heap, size_t need, size_t alignment, size_t *usable) {
  void *p;
  heap_t *mine = tls_heap;
  if (heap != NULL) {
    p = heap_alloc_unhardened(heap, need, alignment, false);
  } else if (apex_likely(mine != &g_empty_heap)) {
    if (apex_likely(need <= CLASS_TABLE_MAX && alignment == APEX_MIN_ALIGN)) {
      size_t cls = g_class_of_size[(need + 15) >> 4];
      p = heap_pop_class(mine, cls, need);
      if (apex_likely(p != NULL)) {
        *usable = g_class_size[cls];                    /* a small class's chunk size */
        return p;
      }
    }
    p = heap_alloc(mine, need, alignment, false);
  } else {
    p = apex_alloc_unhardened(need, alignment, false);
  }
  if (p != NULL) *usable = fresh_usable(p);
  return p;
}

void *hardened_alloc(heap_t *heap, size_t size, size_t alignment, bool zero) {
  size_t need, usable = 0;
  if (__builtin_add_overflow(size, TRAILER, &need)) { errno = ENOMEM; return NULL; }
  bool limited = heap != NULL && (heap->parent != NULL ? heap->parent : heap)->limit != 0;
  int saved_errno = limited ? errno : 0;              /* errno is a call away: only when needed */
  void *p = alloc_need(heap, need, alignment, &usable);
  if (p == NULL && limited && tls_heap != &g_empty_heap && tls_heap->quarantine_count > 0) {
    /* A heap's limit counts the chunks still in quarantine: a program that frees and allocates
     * again under its limit must not fail for it. Let this thread's quarantine go and retry. */
    quarantine_flush(tls_heap);
    p = alloc_need(heap, need, alignment, &usable);
    if (p != NULL) errno = saved_errno;             /* the first refusal set ENOMEM */
  }
  if (p == NULL || usable == 0) return p;           /* bootstrap memory is never armed */
  if (zero) memset(p, 0, size);
  arm(p, size, usable);
  return p;
}

void hardened_free(void *p) {
  if (p == NULL) return;
  size_t usable = usable_size_checked(p, "free");       /* validates p: double/invalid free abort */
  superblock_t *sb = superblock_of(p);
  if (sb == NULL) return;                               /* validated: the bootstrap area, a no-op */
  checked_size(p, usable);
  if (sb->kind != SB_KIND_BLOCKS) {                     /* huge: unmapped at once, guard page behind */
    apex_free_unhardened(p);
    return;
  }
  fill_aligned(p, usable, g_freed_word);
  tag_store(((chunk_t *)p), chunk_tag_free(p));         /* a second free is a double free */
  quarantine_add(p, usable, atomic_load_explicit(&sb->heap, memory_order_relaxed));
}

size_t hardened_usable_size(const void *p) {
  if (p == NULL) return 0;
  size_t usable = apex_usable_size_unhardened(p);
  if (superblock_of(p) == NULL) return usable;          /* validated: the bootstrap area */
  return checked_size((void *)p, usable);
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
