/*
 * os.c — every conversation with the operating system: mappings, decommit, remapping, entropy.
 *
 * Owns: mmap/munmap/madvise/mremap/getrandom calls and the mapped-bytes statistic.
 * Must never: allocate through the allocator itself, take a lock, or abort on an OS refusal
 * (a failed mapping is reported as NULL and becomes ENOMEM for the caller).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

size_t os_page_size(void) {
  static size_t page;
  if (apex_unlikely(page == 0)) page = (size_t)sysconf(_SC_PAGESIZE);
  return page;
}

void *os_map(size_t size) {
  int saved = errno;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  errno = saved;
  if (p == MAP_FAILED) return NULL;
  stats_mapped((ptrdiff_t)size);
  return p;
}

void os_unmap(void *p, size_t size) {
  if (p == NULL || size == 0) return;
  int saved = errno;
  munmap(p, size);
  errno = saved;
  stats_mapped(-(ptrdiff_t)size);
}

/* Maps `size` bytes at an address that is a multiple of `alignment` (a power of two >= page).
 * First try: a plain mapping is often already aligned when the kernel places mappings next to
 * each other. Otherwise over-map and trim both ends. */
void *os_map_aligned(size_t size, size_t alignment) {
  if (size > SIZE_MAX - alignment) return NULL;
  void *p = os_map(size);
  if (p == NULL || ((uintptr_t)p & (alignment - 1)) == 0) return p;
  os_unmap(p, size);

  size_t over = size + alignment;
  uint8_t *raw = os_map(over);
  if (raw == NULL) return NULL;
  uint8_t *aligned = (uint8_t *)(((uintptr_t)raw + alignment - 1) & ~(uintptr_t)(alignment - 1));
  size_t head = (size_t)(aligned - raw);
  size_t tail = over - head - size;
  if (head) os_unmap(raw, head);
  if (tail) os_unmap(aligned + size, tail);
  return aligned;
}

/* Gives the pages of [p, p+size) back to the OS, keeping the range mapped: MADV_DONTNEED by
 * default (the pages read as zero afterwards; returns true), or MADV_FREE with opt.purge_madv_free
 * (the kernel takes them only under memory pressure, so their contents are unknown; returns false).
 * Counts the bytes in the stats.purged statistic. */
_Atomic size_t g_purged_bytes;

bool os_purge(void *p, size_t size) {
  int saved = errno;
  bool zero = true;
#ifdef MADV_FREE
  if (__atomic_load_n(&g_opt.purge_madv_free, __ATOMIC_RELAXED) && madvise(p, size, MADV_FREE) == 0) zero = false;
  else
#endif
  madvise(p, size, MADV_DONTNEED);
  errno = saved;
  atomic_fetch_add_explicit(&g_purged_bytes, size, memory_order_relaxed);
  return zero;
}

/* Monotonic time in nanoseconds (vDSO: no system call). */
uint64_t os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Reads up to size-1 bytes of a (proc or sys) file into buf, NUL-terminated, without allocating.
 * Returns the byte count, or -1. */
ssize_t os_read_file(const char *path, char *buf, size_t size) {
  int saved = errno;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { errno = saved; return -1; }
  size_t got = 0;
  while (got + 1 < size) {
    ssize_t n = read(fd, buf + got, size - 1 - got);
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  buf[got] = '\0';
  errno = saved;
  return (ssize_t)got;
}

/* Transparent huge pages for a fresh mapping: asked for with opt.thp, refused when the system
 * mode is "always" and opt.thp is off (sparsely used superblocks would otherwise be backed by
 * whole 2 MiB pages). */
void os_thp_advise(void *p, size_t size) {
  int saved = errno;
  if (__atomic_load_n(&g_opt.thp, __ATOMIC_RELAXED)) madvise(p, size, MADV_HUGEPAGE);
  else if (g_thp_mode == THP_ALWAYS) madvise(p, size, MADV_NOHUGEPAGE);
  errno = saved;
}

/* Maps `size` bytes at exactly `hint` if that range is free (the kernel treats it as a hint and
 * never replaces an existing mapping); NULL otherwise, with nothing left mapped. */
void *os_map_at(void *hint, size_t size) {
  int saved = errno;
  void *p = mmap(hint, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  errno = saved;
  if (p == MAP_FAILED) return NULL;
  if (p != hint) {
    munmap(p, size);
    return NULL;
  }
  stats_mapped((ptrdiff_t)size);
  return p;
}

/* Makes a range inaccessible (guard pages). */
void os_protect_none(void *p, size_t size) {
  int saved = errno;
  mprotect(p, size, PROT_NONE);
  errno = saved;
}

/* Grows a mapping in place if the address space behind it is free. */
bool os_remap_grow(void *p, size_t old_size, size_t new_size) {
  int saved = errno;
  void *q = mremap(p, old_size, new_size, 0);
  errno = saved;
  if (q == MAP_FAILED) return false;
  stats_mapped((ptrdiff_t)(new_size - old_size));
  return true;
}

/* Moves a mapping to a new aligned address of `new_size` (> old_size) bytes without copying its
 * pages: map an aligned range of the new size, then let mremap move the old pages onto its start. */
void *os_remap_move_aligned(void *p, size_t old_size, size_t new_size, size_t alignment) {
  void *target = os_map_aligned(new_size, alignment);
  if (target == NULL) return NULL;
  int saved = errno;
  /* Only the old pages move: they replace the start of the target range, whose fresh tail is
   * already the zeroed growth. (Moving and growing in one call works too, but valgrind's model
   * of it leaves the grown part unaddressable.) */
  void *q = mremap(p, old_size, old_size, MREMAP_MAYMOVE | MREMAP_FIXED, target);
  errno = saved;
  if (q == MAP_FAILED) {
    os_unmap(target, new_size);
    return NULL;
  }
  stats_mapped(-(ptrdiff_t)old_size);   /* the old range is gone; target was counted when mapped */
  return q;
}

/* Fills buf with entropy from getrandom; falls back to time and addresses if the call is not
 * available (e.g. seccomp), which weakens randomization but never blocks start-up. */
void os_random(void *buf, size_t len) {
  uint8_t *out = buf;
  size_t got = 0;
  int saved = errno;
  while (got < len) {
    ssize_t n = getrandom(out + got, len - got, GRND_NONBLOCK);
    if (n <= 0) break;
    got += (size_t)n;
  }
  errno = saved;
  if (got < len) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)buf ^ (uintptr_t)&ts;
    for (; got < len; got++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      out[got] = (uint8_t)x;
    }
  }
}
