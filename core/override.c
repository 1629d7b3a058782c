/*
 * override.c — ApexAlloc as the process allocator: the whole malloc family of the C library,
 * plus glibc's __libc_* entry points, so that no pointer from glibc's allocator ever reaches us
 * and none of ours reaches it. Only compiled into libapexalloc.so.
 *
 * Owns: the standard names and their POSIX/glibc edge cases.
 * Must never: hold logic of its own beyond argument conventions; everything forwards.
 * Compiled as the tail of alloc.c (only when APEX_OVERRIDE is defined), since an alias must live in
 * the translation unit of its target.
 */
#include "internal.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

/* The hot names are aliases of the implementations themselves (this file is compiled as part of
 * alloc.c), so a call through the PLT lands directly in apex_malloc, without a second jump. */
#define APEX_ALIAS(target) __attribute__((alias(#target), visibility("default")))
void *malloc(size_t size) APEX_ALIAS(apex_malloc);
void *calloc(size_t count, size_t size) APEX_ALIAS(apex_calloc);
void *realloc(void *p, size_t size) APEX_ALIAS(apex_realloc);
void *reallocarray(void *p, size_t count, size_t size) APEX_ALIAS(apex_reallocarray);
void free(void *p) APEX_ALIAS(apex_free);
void cfree(void *p) APEX_ALIAS(apex_free);
void free_sized(void *p, size_t size) APEX_ALIAS(apex_free_sized);
int posix_memalign(void **out, size_t alignment, size_t size) APEX_ALIAS(apex_posix_memalign);
void *__libc_malloc(size_t size) APEX_ALIAS(apex_malloc);
void *__libc_calloc(size_t count, size_t size) APEX_ALIAS(apex_calloc);
void *__libc_realloc(void *p, size_t size) APEX_ALIAS(apex_realloc);
void __libc_free(void *p) APEX_ALIAS(apex_free);
int __posix_memalign(void **out, size_t alignment, size_t size) APEX_ALIAS(apex_posix_memalign);

#define APEX_OVERRIDE_API apex_export

APEX_OVERRIDE_API void free_aligned_sized(void *p, size_t alignment, size_t size) {
  (void)alignment;
  apex_free_sized(p, size);
}
void *aligned_alloc(size_t alignment, size_t size) APEX_ALIAS(apex_aligned_alloc);
/* glibc's memalign accepts any alignment: one that is not a power of two is rounded up to the
 * next one, one below the minimum is raised to it, and only one above SIZE_MAX/2 + 1 (no power of
 * two is that large) fails, with EINVAL. aligned_alloc keeps C's stricter rule (EINVAL). */
APEX_OVERRIDE_API void *memalign(size_t alignment, size_t size) {
  if (alignment > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  if (alignment < APEX_MIN_ALIGN) alignment = APEX_MIN_ALIGN;
  if ((alignment & (alignment - 1)) != 0) alignment = (size_t)1 << (64 - __builtin_clzll(alignment));
  return apex_aligned_alloc(alignment, size);
}
APEX_OVERRIDE_API void *valloc(size_t size) { return apex_aligned_alloc(os_page_size(), size); }
APEX_OVERRIDE_API void *pvalloc(size_t size) {
  size_t page = os_page_size();
  size_t rounded = (size + page - 1) & ~(page - 1);
  if (rounded < size) { errno = ENOMEM; return NULL; }
  return apex_aligned_alloc(page, rounded ? rounded : page);
}
APEX_OVERRIDE_API size_t malloc_usable_size(void *p) { return apex_usable_size(p); }

/* glibc's internal names (the hot ones are aliased above): some programs call them directly. */
APEX_OVERRIDE_API void *__libc_memalign(size_t alignment, size_t size) { return memalign(alignment, size); }
APEX_OVERRIDE_API void *__libc_valloc(size_t size) { return valloc(size); }
APEX_OVERRIDE_API void *__libc_pvalloc(size_t size) { return pvalloc(size); }

