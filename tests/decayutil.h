/*
 * decayutil.h — helpers of the tests that watch memory go back to the OS (decay, purge thread):
 * a burst of mixed sizes whose pages are all touched, counting mappings, sleeping without calling
 * the allocator. Header only; uses only the apex_* API, so the tests measure ApexAlloc even where
 * a sanitizer owns malloc.
 */
#ifndef APEX_TESTS_DECAYUTIL_H
#define APEX_TESTS_DECAYUTIL_H

#include <time.h>

#include "apexalloc.h"
#include "testutil.h"

/* Milliseconds of a monotonic clock: tests poll for what they wait for up to a deadline, never
 * sleep a fixed time and hope (a loaded machine can be slow by seconds). */
static inline uint64_t du_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sleeps without calling malloc (nanosleep is a plain system call): one step of a poll. */
static inline void du_sleep_ms(unsigned ms) {
  struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) != 0) {}
}

/* The memory the tests watch come back: the resident set, except under ThreadSanitizer, whose
 * shadow memory for every address ever touched stays resident after the allocator purged it;
 * there ApexAlloc's own estimate of what it keeps backed (stats.resident) stands in. */
static inline size_t du_ctl_size(const char *name);
static inline size_t du_footprint(void) {
  return APEX_TEST_TSAN ? du_ctl_size("stats.resident") : tu_rss_bytes();
}

/* Lines of /proc/self/maps (one per mapping), read into a static buffer: no allocation. */
static inline size_t du_mapping_count(void) {
  static char buf[1 << 16];
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0, "cannot open /proc/self/maps: errno %d", errno);
  size_t lines = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
  }
  close(fd);
  return lines;
}

static inline size_t du_ctl_size(const char *name) {
  size_t v = 0, len = sizeof v;
  CHECK(apex_ctl(name, &v, &len, NULL, 0) == 0, "apex_ctl(%s)", name);
  return v;
}

static inline int du_ctl_bool(const char *name) {
  int v = 0;
  size_t len = sizeof v;
  CHECK(apex_ctl(name, &v, &len, NULL, 0) == 0, "apex_ctl(%s)", name);
  return v;
}

/* Sizes of a burst: mostly small objects, some medium and large ones (runs of slices), a few
 * huge ones (their own mappings), so every path that keeps memory back is exercised. */
static inline size_t du_burst_size(tu_rng *rng) {
  unsigned r = (unsigned)(tu_rng_next(rng) % 1000);
  if (r < 700) return tu_rng_range(rng, 1, 1024);
  if (r < 950) return tu_rng_range(rng, 1025, 128 * TU_KIB);
  if (r < 995) return tu_rng_range(rng, 128 * TU_KIB + 1, 3 * TU_MIB);
  return tu_rng_range(rng, 4 * TU_MIB + 1, 12 * TU_MIB);
}

/* Allocates about `total` bytes in objects of mixed sizes, touching every page; fills slots[]
 * (capacity cap) and returns how many objects it made. */
static inline size_t du_burst(void **slots, size_t cap, size_t total, uint64_t seed) {
  tu_rng rng;
  tu_rng_seed(&rng, seed);
  size_t n = 0, bytes = 0;
  while (bytes < total && n < cap) {
    size_t size = du_burst_size(&rng);
    void *p = apex_malloc(size);
    CHECK(p != NULL, "apex_malloc(%zu) failed", size);
    memset(p, 0xA5, size);
    slots[n++] = p;
    bytes += size;
  }
  return n;
}

/* Frees the objects in a shuffled order. */
static inline void du_free_all(void **slots, size_t n, uint64_t seed) {
  tu_rng rng;
  tu_rng_seed(&rng, seed ^ 0x5EED);
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)(tu_rng_next(&rng) % i);
    void *t = slots[i - 1]; slots[i - 1] = slots[j]; slots[j] = t;
  }
  for (size_t i = 0; i < n; i++) apex_free(slots[i]);
}

#endif /* APEX_TESTS_DECAYUTIL_H */
