/*
 * early_malloc_main.c — frees (after reallocating once) the object that a library constructor
 * allocated as the process's first malloc, and a few made later. Run under
 * LD_PRELOAD=libapexalloc.so with APEX_SECURE=2: every object is freed by the rules it was made
 * under, so the program exits 0 and prints "ok". Before the fix, the first object was served
 * before the level was read, carried no size trailer, and its free aborted with
 * "heap overflow (size trailer overwritten)".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *early_object(void);

int main(void) {
  char *early = early_object();
  if (early == NULL) { fprintf(stderr, "FAIL: the constructor's malloc(472) returned NULL\n"); return 1; }
  for (int i = 0; i < 472; i++)
    if (early[i] != 'e') { fprintf(stderr, "FAIL: byte %d of the early object changed\n", i); return 1; }
  char *later = malloc(472);
  if (later == NULL) { fprintf(stderr, "FAIL: malloc(472)\n"); return 1; }
  memset(later, 'l', 472);
  early = realloc(early, 600);        /* realloc keeps the contents of an object of either kind */
  if (early == NULL) { fprintf(stderr, "FAIL: realloc\n"); return 1; }
  for (int i = 0; i < 472; i++)
    if (early[i] != 'e') { fprintf(stderr, "FAIL: realloc lost byte %d\n", i); return 1; }
  free(early);
  free(later);
  printf("ok\n");
  return 0;
}
