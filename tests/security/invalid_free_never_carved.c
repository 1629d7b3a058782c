/*
 * Free of a chunk-aligned address that no allocation ever covered: past the part of its block
 * that has been carved so far (a fresh 48-byte block carves about 8 KiB at a time, so p + 600
 * chunks lies in the block but was never handed out):
 *   small      the default heap's block, freed by its owner
 *   last-live  an explicit heap's block whose only live chunk is p: accepting the free would
 *              count the block empty and retire it under p (the old behaviour)
 *   remote     the address is freed by another thread
 *   expects: apexalloc: invalid free (never allocated) at <p + 600 * 48> (size class 3, 48 bytes)
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "sec.h"

static char *g_target;

static void *free_it(void *arg) {
  (void)arg;
  apex_free(sec_launder(g_target));
  return NULL;
}

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "small", "last-live", "remote");
  char *p;
  if (strcmp(v, "last-live") == 0) {
    apex_heap_t *heap = apex_heap_new();
    if (heap == NULL) sec_setup_failed("apex_heap_new returned NULL");
    p = apex_heap_alloc(heap, 48, 0);
  } else {
    p = apex_malloc(48);
  }
  if (p == NULL) sec_setup_failed("the 48-byte allocation returned NULL");
  memset(p, 0x5a, 48);
  g_target = p + 600 * 48;
  sec_expect_at(g_target);
  if (strcmp(v, "remote") == 0) {
    pthread_t t;
    if (pthread_create(&t, NULL, free_it, NULL) != 0) sec_setup_failed("pthread_create");
    pthread_join(t, NULL);
  } else {
    apex_free(sec_launder(g_target));
  }
  sec_survived("free of a never-carved chunk address");
}
