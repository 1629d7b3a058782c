/*
 * Pins: when a program links libapexalloc.so, the standard malloc family (malloc, calloc, realloc,
 * reallocarray, free, posix_memalign, aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size)
 * resolves to ApexAlloc, and the two APIs are interchangeable:
 *   - every standard symbol, as the dynamic linker resolves it, lives in the same object as apex_malloc;
 *   - malloc_usable_size(apex_malloc(n)) and apex_usable_size(malloc(n)) work and agree;
 *   - free() of apex_* memory and apex_free() of standard memory both work, as does realloc across;
 *   - valloc and pvalloc are page aligned (pvalloc rounds the size up to whole pages);
 *   - memory that libc allocates internally (strdup, asprintf, getline) is ApexAlloc's: apex_usable_size
 *     accepts it and apex_free frees it;
 *   - a block allocated with malloc on one thread can be freed with apex_free on another, and vice versa.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apexalloc.h"
#include "testutil.h"

static size_t page;

static const char *object_of(void *addr, const char *sym) {
  Dl_info info;
  memset(&info, 0, sizeof info);
  CHECK(dladdr(addr, &info) != 0 && info.dli_fname, "dladdr(%s = %p) found no object", sym, addr);
  return info.dli_fname;
}

static void symbols_resolve_to_apexalloc(void) {
  /* Where apex_malloc lives: libapexalloc.so. */
  void *apex = dlsym(RTLD_DEFAULT, "apex_malloc");
  CHECK(apex != NULL, "dlsym(apex_malloc) failed: %s", dlerror());
  const char *lib = object_of(apex, "apex_malloc");
  CHECK(strstr(lib, "apexalloc") != NULL, "apex_malloc is in %s, not in libapexalloc", lib);
  const char *names[] = {"malloc",        "calloc",   "realloc", "reallocarray", "free",
                         "posix_memalign", "aligned_alloc", "memalign", "valloc",  "pvalloc",
                         "malloc_usable_size"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    void *addr = dlsym(RTLD_DEFAULT, names[i]);
    CHECK(addr != NULL, "dlsym(%s) failed: %s", names[i], dlerror());
    const char *obj = object_of(addr, names[i]);
    CHECK(strcmp(obj, lib) == 0, "%s resolves to %s, not to ApexAlloc's %s", names[i], obj, lib);
  }
}

static void check_block(void *p, size_t n, const char *what) {
  CHECK(p != NULL, "%s returned NULL", what);
  CHECK(tu_aligned(p, 16), "%s = %p is not 16-byte aligned", what, p);
  size_t a = apex_usable_size(p), m = malloc_usable_size(p);
  CHECK(a == m, "%s = %p: apex_usable_size %zu != malloc_usable_size %zu", what, p, a, m);
  CHECK(a >= n, "%s = %p: usable size %zu < %zu", what, p, a, n);
  tu_fill(p, a, n);
}

static void interchangeable(void) {
  const size_t sizes[] = {0, 1, 100, 4000, 70000, 2 * TU_MIB, 6 * TU_MIB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = apex_malloc(n);
    check_block(p, n, "apex_malloc");
    free(p);
    p = malloc(n);
    check_block(p, n, "malloc");
    apex_free(p);
    p = apex_calloc(1, n);
    check_block(p, n, "apex_calloc");
    free(p);
    p = calloc(1, n);
    CHECK(p && tu_first_nonzero(p, n) == SIZE_MAX, "calloc(1, %zu) not zeroed", n);
    check_block(p, n, "calloc");
    apex_free_sized(p, n);

    /* realloc across the two APIs keeps the contents. */
    p = apex_malloc(n);
    check_block(p, n, "apex_malloc");
    tu_fill(p, n, 11);
    void *q = realloc(p, n * 2 + 10);
    CHECK(q && tu_verify(q, n, 11) == SIZE_MAX, "realloc of an apex_malloc block lost contents (n %zu)", n);
    void *r = apex_realloc(q, n / 2 + 1);
    CHECK(r && tu_verify(r, n / 2 + 1 < n ? n / 2 + 1 : n, 11) == SIZE_MAX, "apex_realloc of a realloc block lost contents");
    void *s = reallocarray(r, 3, n + 1);
    CHECK(s && tu_verify(s, n / 2 + 1 < n ? n / 2 + 1 : n, 11) == SIZE_MAX, "reallocarray lost contents");
    apex_free(s);
  }

  void *p = aligned_alloc(64, 640);
  CHECK(p && tu_aligned(p, 64) && apex_usable_size(p) >= 640, "aligned_alloc(64, 640) = %p", p);
  apex_free(p);
  p = NULL;
  CHECK(posix_memalign(&p, 256, 1000) == 0 && p && tu_aligned(p, 256), "posix_memalign(256, 1000) = %p", p);
  CHECK(apex_usable_size(p) >= 1000, "posix_memalign block: usable %zu", apex_usable_size(p));
  apex_free_sized(p, 1000);
  p = memalign(4096, 100);
  CHECK(p && tu_aligned(p, 4096) && apex_usable_size(p) >= 100, "memalign(4096, 100) = %p", p);
  apex_free(p);
  p = apex_aligned_alloc(TU_MIB, 10);
  CHECK(p && tu_aligned(p, TU_MIB) && malloc_usable_size(p) >= 10, "apex_aligned_alloc(1 MiB, 10) = %p", p);
  free(p);
  p = NULL;
  CHECK(apex_posix_memalign(&p, 128, 300) == 0 && p && malloc_usable_size(p) >= 300, "apex_posix_memalign");
  free(p);

  const size_t vs[] = {0, 1, 100, page - 1, page, page + 1, 5 * page + 7, 3 * TU_MIB + 1};
  for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
    size_t n = vs[i];
    p = valloc(n);
    CHECK(p != NULL, "valloc(%zu) returned NULL", n);
    CHECK(tu_aligned(p, page), "valloc(%zu) = %p is not page aligned", n, p);
    CHECK(apex_usable_size(p) >= n, "valloc(%zu): usable %zu", n, apex_usable_size(p));
    tu_fill(p, n, n);
    apex_free(p);
    p = pvalloc(n);
    size_t rounded = n ? (n + page - 1) / page * page : page;
    CHECK(p != NULL, "pvalloc(%zu) returned NULL", n);
    CHECK(tu_aligned(p, page), "pvalloc(%zu) = %p is not page aligned", n, p);
    CHECK(malloc_usable_size(p) >= rounded, "pvalloc(%zu): usable %zu < %zu (the size rounded up to pages)", n,
          malloc_usable_size(p), rounded);
    tu_fill(p, rounded, n); /* the whole rounded size is ours to write */
    CHECK(tu_verify(p, rounded, n) == SIZE_MAX, "pvalloc block changed");
    apex_free(p);
  }
}

static void libc_internal_allocations(void) {
  char *s = strdup("ApexAlloc serves libc too");
  CHECK(s != NULL, "strdup failed");
  CHECK(apex_usable_size(s) >= strlen(s) + 1, "apex_usable_size(strdup result) = %zu", apex_usable_size(s));
  apex_free(s);

  char *a = NULL;
  int len = asprintf(&a, "%s-%d-%0500d", "asprintf", 42, 7);
  CHECK(len > 500 && a != NULL, "asprintf failed");
  CHECK(apex_usable_size(a) >= (size_t)len + 1, "apex_usable_size(asprintf result) = %zu", apex_usable_size(a));
  apex_free(a);

  static char text[] = "first line\nsecond, a longer line than the first one\nthird\n";
  FILE *f = fmemopen(text, strlen(text), "r");
  CHECK(f != NULL, "fmemopen failed");
  char *line = NULL;
  size_t cap = 0;
  int lines = 0;
  while (getline(&line, &cap, f) > 0) lines++;
  fclose(f);
  CHECK(lines == 3, "getline read %d lines", lines);
  CHECK(line != NULL && apex_usable_size(line) >= strlen(line) + 1, "getline buffer is not an ApexAlloc block");
  apex_free(line);
}

/* ---- across threads -------------------------------------------------------------------------- */

enum { XN = 3000 };
static void *xblocks[XN];

static void *alloc_std(void *arg) {
  (void)arg;
  for (size_t i = 0; i < XN; i++) {
    size_t n = (i * 37) % 5000 + (i % 100 == 0 ? 300000 : 0);
    xblocks[i] = (i % 2) ? malloc(n) : calloc(1, n);
    CHECK(xblocks[i] != NULL, "malloc(%zu) failed in thread", n);
    tu_fill(xblocks[i], n, i);
  }
  return NULL;
}

static void *alloc_apex(void *arg) {
  (void)arg;
  for (size_t i = 0; i < XN; i++) {
    size_t n = (i * 53) % 3000 + 1;
    xblocks[i] = apex_malloc(n);
    CHECK(xblocks[i] != NULL, "apex_malloc(%zu) failed in thread", n);
    tu_fill(xblocks[i], n, i);
  }
  return NULL;
}

static void across_threads(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, alloc_std, NULL) == 0 && pthread_join(t, NULL) == 0, "thread failed");
  for (size_t i = 0; i < XN; i++) {
    size_t n = (i * 37) % 5000 + (i % 100 == 0 ? 300000 : 0);
    CHECK(tu_verify(xblocks[i], n, i) == SIZE_MAX, "block %zu from the other thread changed", i);
    apex_free(xblocks[i]);
  }
  CHECK(pthread_create(&t, NULL, alloc_apex, NULL) == 0 && pthread_join(t, NULL) == 0, "thread failed");
  for (size_t i = 0; i < XN; i++) {
    size_t n = (i * 53) % 3000 + 1;
    CHECK(tu_verify(xblocks[i], n, i) == SIZE_MAX, "block %zu from the other thread changed", i);
    free(xblocks[i]);
  }
}

int main(void) {
  if (APEX_TEST_FOREIGN_MALLOC) {
    printf("malloc_family: skipped: this build's sanitizer interposes malloc ahead of ApexAlloc\n");
    return 77;
  }
  page = tu_page_size();
  symbols_resolve_to_apexalloc();
  interchangeable();
  libc_internal_allocations();
  across_threads();
  printf("malloc_family: OK\n");
  return 0;
}
