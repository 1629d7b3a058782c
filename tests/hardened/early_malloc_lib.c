/*
 * early_malloc_lib.c — a shared library whose constructor makes the process's first allocation,
 * as libselinux and p11-kit do in ssh and curl. Under LD_PRELOAD=libapexalloc.so the library's
 * constructor runs before ApexAlloc's own (ApexAlloc has no dependency on it), so this malloc is
 * the one that starts the allocator.
 */
#include <stdlib.h>
#include <string.h>

static char *g_early;

__attribute__((constructor)) static void make_early_object(void) {
  g_early = malloc(472);
  if (g_early != NULL) memset(g_early, 'e', 472);
}

/* The object made by the constructor; the program frees it. */
char *early_object(void) { return g_early; }
