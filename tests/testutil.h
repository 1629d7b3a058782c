/*
 * testutil.h — small helpers shared by the ApexAlloc C tests (header only, all static inline).
 *
 *   - a fast deterministic PRNG (splitmix64),
 *   - APEX_TEST_SCALE: a factor read from the environment that shrinks (or grows) the work of a
 *     test; CTest sets it for the valgrind and sanitizer runs,
 *   - fill/verify of a per-object byte pattern, so that any two live objects hold different data
 *     and an overlap or a stray write is caught when the object is checked,
 *   - a disjointness check for a batch of live [start, end) ranges,
 *   - the resident set size of the process, from /proc/self/statm.
 */
#ifndef APEX_TESTS_TESTUTIL_H
#define APEX_TESTS_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* Defined to 1 by tests/CMakeLists.txt when the standard malloc family of the test programs is not
 * ApexAlloc's (ThreadSanitizer interposes malloc itself, ahead of libapexalloc.so). Tests then check
 * the apex_* API strictly and only the portable behaviour of the standard functions. */
#ifndef APEX_TEST_FOREIGN_MALLOC
#define APEX_TEST_FOREIGN_MALLOC 0
#endif

/* Tests that run the same checks over {apex_* API, standard API} run only the first when the standard
 * family is not ApexAlloc's: checking the sanitizer's own malloc would prove nothing. */
#define TU_NUM_APIS(apis) (APEX_TEST_FOREIGN_MALLOC ? (size_t)1 : sizeof(apis) / sizeof((apis)[0]))

/* Defined to 1 under ThreadSanitizer, whose shadow memory and bookkeeping add to the resident set. */
#ifndef APEX_TEST_TSAN
#define APEX_TEST_TSAN 0
#endif

#define TU_KIB ((size_t)1024)
#define TU_MIB ((size_t)1024 * 1024)

/* Hides a value from the optimizer, so that calls such as malloc(SIZE_MAX) are really made and do
 * not trip -Walloc-size-larger-than at compile time. */
static inline size_t tu_opaque(size_t x) {
  volatile size_t v = x;
  return v;
}

/* ---- PRNG ---------------------------------------------------------------------------------- */

static inline uint64_t tu_mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

typedef struct {
  uint64_t s;
} tu_rng;

static inline void tu_rng_seed(tu_rng *r, uint64_t seed) { r->s = seed * 0x9E3779B97F4A7C15ull + 1; }

static inline uint64_t tu_rng_next(tu_rng *r) {
  r->s += 0x9E3779B97F4A7C15ull;
  return tu_mix64(r->s);
}

/* Uniform in [lo, hi] (inclusive). */
static inline size_t tu_rng_range(tu_rng *r, size_t lo, size_t hi) {
  return lo + (size_t)(tu_rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* ---- Work scale ---------------------------------------------------------------------------- */

static inline double tu_scale(void) {
  const char *e = getenv("APEX_TEST_SCALE");
  if (!e || !*e) return 1.0;
  char *end = NULL;
  double d = strtod(e, &end);
  CHECK(end && *end == '\0' && d > 0.0 && d <= 100.0, "APEX_TEST_SCALE='%s' is not a number in (0, 100]", e);
  return d;
}

/* n scaled by APEX_TEST_SCALE, at least `min`. */
static inline size_t tu_scaled(size_t n, size_t min) {
  double d = (double)n * tu_scale();
  size_t r = (size_t)d;
  return r < min ? min : r;
}

/* ---- Patterns ------------------------------------------------------------------------------ */

static inline uint64_t tu_pattern_word(uint64_t seed, size_t k) { return seed ^ ((uint64_t)k * 0x9E3779B97F4A7C15ull); }

/* Fills n bytes at p with the pattern of `seed`. Byte i of the pattern depends only on seed and i. */
static inline void tu_fill(void *p, size_t n, uint64_t seed) {
  unsigned char *b = (unsigned char *)p;
  size_t words = n / 8, k;
  for (k = 0; k < words; k++) {
    uint64_t w = tu_pattern_word(seed, k);
    memcpy(b + 8 * k, &w, 8);
  }
  if (n % 8) {
    uint64_t w = tu_pattern_word(seed, k);
    memcpy(b + 8 * k, &w, n % 8);
  }
}

/* Returns the offset of the first byte of [p, p+n) that differs from the pattern of `seed`, or
 * SIZE_MAX when all n bytes match. */
static inline size_t tu_verify(const void *p, size_t n, uint64_t seed) {
  const unsigned char *b = (const unsigned char *)p;
  size_t words = n / 8, k;
  for (k = 0; k < words; k++) {
    uint64_t w = tu_pattern_word(seed, k), got;
    memcpy(&got, b + 8 * k, 8);
    if (got != w) {
      const unsigned char *wb = (const unsigned char *)&w;
      for (size_t i = 0; i < 8; i++)
        if (b[8 * k + i] != wb[i]) return 8 * k + i;
    }
  }
  if (n % 8) {
    uint64_t w = tu_pattern_word(seed, k);
    const unsigned char *wb = (const unsigned char *)&w;
    for (size_t i = 0; i < n % 8; i++)
      if (b[8 * k + i] != wb[i]) return 8 * k + i;
  }
  return SIZE_MAX;
}

/* Returns the offset of the first non-zero byte in [p, p+n), or SIZE_MAX when all are zero. */
static inline size_t tu_first_nonzero(const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, b + i, 8);
    if (w) break;
  }
  for (; i < n; i++)
    if (b[i]) return i;
  return SIZE_MAX;
}

static inline int tu_aligned(const void *p, size_t align) { return ((uintptr_t)p & (align - 1)) == 0; }

static inline size_t tu_page_size(void) {
  long ps = sysconf(_SC_PAGESIZE);
  return ps > 0 ? (size_t)ps : 4096;
}

/* ---- Disjointness of live ranges ----------------------------------------------------------- */

typedef struct {
  uintptr_t lo, hi; /* [lo, hi) */
  size_t index;     /* caller's index, for the message */
} tu_range;

static inline int tu_range_cmp(const void *a, const void *b) {
  const tu_range *x = (const tu_range *)a, *y = (const tu_range *)b;
  return x->lo < y->lo ? -1 : x->lo > y->lo ? 1 : 0;
}

/* Sorts r[0..n) by start and fails (like CHECK, naming the caller's line) if two ranges overlap.
 * `what` names the batch. */
static inline void tu_check_disjoint_at(tu_range *r, size_t n, const char *what, const char *file, int line) {
  qsort(r, n, sizeof(tu_range), tu_range_cmp);
  for (size_t i = 1; i < n; i++) {
    if (r[i - 1].hi > r[i].lo) {
      fprintf(stderr, "%s:%d: %s: live blocks overlap: #%zu [%p, %p) and #%zu [%p, %p)\n", file, line, what,
              r[i - 1].index, (void *)r[i - 1].lo, (void *)r[i - 1].hi, r[i].index, (void *)r[i].lo,
              (void *)r[i].hi);
      fflush(stderr);
      _Exit(1);
    }
  }
}
#define TU_CHECK_DISJOINT(r, n, what) tu_check_disjoint_at((r), (n), (what), __FILE__, __LINE__)

/* ---- Resident set size --------------------------------------------------------------------- */

/* The first two fields of /proc/self/statm (address space and resident set, in bytes), read
 * without allocating. */
static inline void tu_statm_bytes(size_t *vm_size, size_t *resident) {
  char buf[256];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0, "cannot open /proc/self/statm: errno %d", errno);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  CHECK(n > 0, "cannot read /proc/self/statm");
  buf[n] = '\0';
  char *end = NULL;
  size_t size = strtoul(buf, &end, 10);
  size_t rss = strtoul(end, NULL, 10);
  if (vm_size != NULL) *vm_size = size * tu_page_size();
  if (resident != NULL) *resident = rss * tu_page_size();
}

/* Resident set size in bytes. */
static inline size_t tu_rss_bytes(void) {
  size_t resident;
  tu_statm_bytes(NULL, &resident);
  return resident;
}

/* ---- One case per process ------------------------------------------------------------------ */

/* A program whose cases CTest runs one per process (each from a fresh allocator, so a crash names
 * its case): runs the case named by argv[1] and exits 0, or prints the usage and exits 2. */
typedef struct { const char *name; void (*run)(void); } tu_case;

static inline int tu_run_case(int argc, char **argv, const tu_case *cases, size_t count) {
  for (size_t i = 0; argc == 2 && i < count; i++) {
    if (strcmp(argv[1], cases[i].name) != 0) continue;
    cases[i].run();
    printf("%s: ok\n", cases[i].name);
    return 0;
  }
  fprintf(stderr, "usage: %s CASE, one of:", argv[0]);
  for (size_t i = 0; i < count; i++) fprintf(stderr, " %s", cases[i].name);
  fputc('\n', stderr);
  return 2;
}

#endif /* APEX_TESTS_TESTUTIL_H */
