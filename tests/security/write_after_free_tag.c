/*
 * Write after free into the second word of a freed chunk, where ApexAlloc keeps the keyed free
 * tag. The write is caught when the chunk is reused:
 *   local   the owner freed p; the next allocation of the class pops p and finds the tag changed.
 *   remote  another thread freed p (it waits in the remote list); the owner collects the list
 *           when its local list runs dry and finds the tag changed.
 *   expects: apexalloc: write after free at <p> (size class 3, 48 bytes)
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "sec.h"

static void *g_victim;

static void *free_victim(void *arg) {
  (void)arg;
  apex_free(g_victim);
  return NULL;
}

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "local", "remote");
  sec_keep(48, 8);
  char *p = apex_malloc(48);
  if (p == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  memset(p, 0x5a, 48);
  if (strcmp(v, "local") == 0) {
    apex_free(p);
  } else {
    g_victim = p;
    pthread_t t;
    if (pthread_create(&t, NULL, free_victim, NULL) != 0) sec_setup_failed("pthread_create");
    pthread_join(t, NULL);
  }
  sec_poke(p, 1, 0x4141414141414141u);      /* the dangling pointer's second word */
  sec_expect_at(p);
  for (int i = 0; i < 100000; i++)
    if (apex_malloc(48) == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  sec_survived("a write after free into the free tag");
}
