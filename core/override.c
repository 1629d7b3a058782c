/*
 * override.c — ApexAlloc as the process allocator: the whole malloc family of the C library,
 * plus glibc's __libc_* entry points, so that no pointer from glibc's allocator ever reaches us
 * and none of ours reaches it. Only compiled into libapexalloc.so.
 *
 * Owns: the standard names and their POSIX/glibc edge cases.
 * Must never: hold logic of its own beyond argument conventions; everything forwards.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

void  *apexi_malloc(size_t size);
void  *apexi_calloc(size_t count, size_t size);
void  *apexi_realloc(void *p, size_t size);
void  *apexi_reallocarray(void *p, size_t count, size_t size);
void   apexi_free(void *p);
void   apexi_free_sized(void *p, size_t size);
void  *apexi_aligned_alloc(size_t alignment, size_t size);
int    apexi_posix_memalign(void **out, size_t alignment, size_t size);
size_t apexi_usable_size(const void *p);

#define APEX_OVERRIDE_API apex_export

APEX_OVERRIDE_API void *malloc(size_t size) { return apexi_malloc(size); }
APEX_OVERRIDE_API void *calloc(size_t count, size_t size) { return apexi_calloc(count, size); }
APEX_OVERRIDE_API void *realloc(void *p, size_t size) { return apexi_realloc(p, size); }
APEX_OVERRIDE_API void *reallocarray(void *p, size_t count, size_t size) { return apexi_reallocarray(p, count, size); }
APEX_OVERRIDE_API void free(void *p) { apexi_free(p); }
APEX_OVERRIDE_API void cfree(void *p) { apexi_free(p); }
APEX_OVERRIDE_API void free_sized(void *p, size_t size) { apexi_free_sized(p, size); }
APEX_OVERRIDE_API void free_aligned_sized(void *p, size_t alignment, size_t size) {
  (void)alignment;
  apexi_free_sized(p, size);
}
APEX_OVERRIDE_API void *aligned_alloc(size_t alignment, size_t size) { return apexi_aligned_alloc(alignment, size); }
APEX_OVERRIDE_API void *memalign(size_t alignment, size_t size) { return apexi_aligned_alloc(alignment, size); }
APEX_OVERRIDE_API int posix_memalign(void **out, size_t alignment, size_t size) {
  return apexi_posix_memalign(out, alignment, size);
}
APEX_OVERRIDE_API void *valloc(size_t size) { return apexi_aligned_alloc(os_page_size(), size); }
APEX_OVERRIDE_API void *pvalloc(size_t size) {
  size_t page = os_page_size();
  size_t rounded = (size + page - 1) & ~(page - 1);
  if (rounded < size) { errno = ENOMEM; return NULL; }
  return apexi_aligned_alloc(page, rounded ? rounded : page);
}
APEX_OVERRIDE_API size_t malloc_usable_size(void *p) { return apexi_usable_size(p); }

/* glibc's internal names: some programs and libraries call them directly. */
APEX_OVERRIDE_API void *__libc_malloc(size_t size) { return apexi_malloc(size); }
APEX_OVERRIDE_API void *__libc_calloc(size_t count, size_t size) { return apexi_calloc(count, size); }
APEX_OVERRIDE_API void *__libc_realloc(void *p, size_t size) { return apexi_realloc(p, size); }
APEX_OVERRIDE_API void __libc_free(void *p) { apexi_free(p); }
APEX_OVERRIDE_API void *__libc_memalign(size_t alignment, size_t size) { return apexi_aligned_alloc(alignment, size); }
APEX_OVERRIDE_API void *__libc_valloc(size_t size) { return valloc(size); }
APEX_OVERRIDE_API void *__libc_pvalloc(size_t size) { return pvalloc(size); }
APEX_OVERRIDE_API int __posix_memalign(void **out, size_t alignment, size_t size) {
  return apexi_posix_memalign(out, alignment, size);
}
