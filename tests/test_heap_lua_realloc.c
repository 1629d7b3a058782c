/* apex_heap_realloc follows lua_Alloc's contract, and heaps honour limits and alignment. */
#include <apexalloc.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

int main(void) {
  apex_heap_t *h = apex_heap_new();
  CHECK(h != NULL, "apex_heap_new failed");
  /* (NULL, osize, nsize>0) allocates; (p, osize, 0) frees and returns NULL; growing keeps data. */
  char *p = apex_heap_realloc(h, NULL, 7, 40, 0);
  CHECK(p != NULL, "allocation through realloc failed");
  strcpy(p, "lua strings stay put");
  for (size_t n = 41; n < 300000; n = n * 3 / 2) {
    p = apex_heap_realloc(h, p, n, n, 0);
    CHECK(p != NULL && strcmp(p, "lua strings stay put") == 0, "contents lost growing to %zu", n);
  }
  p = apex_heap_realloc(h, p, 300000, 10, 0);
  CHECK(p != NULL && memcmp(p, "lua strin", 9) == 0, "contents lost shrinking");
  CHECK(apex_heap_realloc(h, p, 10, 0, 0) == NULL, "(p, osize, 0) did not return NULL");
  CHECK(!apex_owns(p), "(p, osize, 0) did not free");
  CHECK(apex_heap_realloc(h, NULL, 0, 0, 0) == NULL, "(NULL, 0, 0) returned memory");
  /* Alignment on every call, as Rust's GlobalAlloc asks. */
  for (size_t a = 1; a <= (1u << 21); a <<= 1) {
    void *q = apex_heap_alloc(h, 24, a);
    CHECK(q != NULL && ((uintptr_t)q & (a - 1)) == 0, "alignment %zu not honoured (%p)", a, q);
    void *r = apex_heap_realloc(h, q, 24, 5000, a);
    CHECK(r != NULL && ((uintptr_t)r & (a - 1)) == 0, "realloc lost alignment %zu", a);
    apex_free(r);
  }
  errno = 0;
  CHECK(apex_heap_alloc(h, 8, 24) == NULL && errno == EINVAL, "alignment 24 accepted");
  errno = 0;
  CHECK(apex_heap_alloc(NULL, 8, 0) == NULL && errno == EINVAL, "NULL heap accepted");
  void *z = apex_heap_calloc(h, 1000, 3, 0);
  CHECK(z != NULL, "calloc failed");
  for (int i = 0; i < 3000; i++) CHECK(((unsigned char *)z)[i] == 0, "calloc byte %d not zero", i);
  errno = 0;
  CHECK(apex_heap_calloc(h, SIZE_MAX, 2, 0) == NULL && errno == ENOMEM, "calloc overflow not refused");
  CHECK(apex_heap_destroy(h) == 0, "destroy failed");
  /* A limit: allocation stops with ENOMEM near the limit, and works again after frees. */
  apex_heap_options_t o = { .size = sizeof o, .limit = 1 << 20 };
  apex_heap_t *limited = apex_heap_new_ex(&o);
  CHECK(limited != NULL, "apex_heap_new_ex failed");
  void *held[2048];
  size_t n = 0;
  while (n < 2048 && (held[n] = apex_heap_alloc(limited, 1000, 0)) != NULL) n++;
  CHECK(n >= 900 && n <= 1100 && errno == ENOMEM, "%zu allocations of 1000 bytes under a 1 MiB limit", n);
  CHECK(apex_heap_alloc(limited, 4u << 20, 0) == NULL, "a huge object passed the limit");
  apex_free(held[0]);
  CHECK((held[0] = apex_heap_alloc(limited, 1000, 0)) != NULL, "no allocation possible after a free");
  apex_heap_options_t bad = { .size = 1 };
  errno = 0;
  CHECK(apex_heap_new_ex(&bad) == NULL && errno == EINVAL, "bad options accepted");
  CHECK(apex_heap_destroy(limited) == 0, "destroy failed");
  return 0;
}
