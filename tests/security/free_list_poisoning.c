/*
 * Free-list poisoning: the first word of a free chunk holds its free-list link; an attacker with a
 * use-after-free write overwrites it with an address of their choice (here the address of a
 * global array, `g_target`) and waits for the allocator to hand that address out.
 *
 *   head             free p; overwrite p's link; allocate twice from p's class. The first
 *                    allocation pops p and decodes its link: the result leaves p's block.
 *                    expects: apexalloc: corrupted free list at <p> (size class 3, 48 bytes)
 *   second           free a, then b (the list is b -> a); overwrite a's link; allocate twice:
 *                    the first returns b, the second pops a and finds its link corrupted.
 *                    expects: apexalloc: corrupted free list at <a> (size class 3, 48 bytes)
 *   remote           another thread frees p, so p waits in its block's remote list (its link is
 *                    encoded like a local one); overwrite p's link with &g_target; the owner
 *                    allocates until it collects the list and decodes p's link: it leaves the block.
 *                    expects: apexalloc: corrupted free list at <p> (size class 3, 48 bytes)
 *   remote-unmapped  as remote, but the link is overwritten with an address where nothing is
 *                    mapped (a page mapped and unmapped again): the collector must reject the link
 *                    before following it (no SIGSEGV).
 *                    expects: apexalloc: corrupted free list at <p> (size class 3, 48 bytes)
 *
 * In every case the program checks each allocation against the attacker's address: getting it
 * back ends the program with status 4 (and a message), which the runner reports as a failure.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>

#include "sec.h"

_Alignas(64) static char g_target[256];

static void *g_victim;

static void *free_victim(void *arg) {
  (void)arg;
  apex_free(g_victim);
  return NULL;
}

static void check_not_attacker(const void *q, uintptr_t attacker) {
  if ((uintptr_t)q == attacker) {
    sec_say("the allocator handed out the attacker's address 0x%" PRIxPTR "\n", attacker);
    _Exit(4);
  }
}

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "head", "second", "remote", "remote-unmapped");
  sec_keep(48, 8);
  char *a = apex_malloc(48), *b = apex_malloc(48);
  if (a == NULL || b == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  memset(a, 0x11, 48);
  memset(b, 0x22, 48);
  uintptr_t attacker = (uintptr_t)g_target;

  if (strcmp(v, "head") == 0 || strcmp(v, "second") == 0) {
    char *victim = a;
    apex_free(a);
    if (strcmp(v, "second") == 0) apex_free(b);
    sec_poke(victim, 0, attacker);
    sec_expect_at(victim);
    for (int i = 0; i < 2; i++) check_not_attacker(apex_malloc(48), attacker);
    sec_survived("a poisoned free-list link");
  }

  if (strcmp(v, "remote-unmapped") == 0) {
    void *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) sec_setup_failed("mmap");
    munmap(page, 4096);
    attacker = (uintptr_t)page;
  }
  g_victim = a;
  pthread_t t;
  if (pthread_create(&t, NULL, free_victim, NULL) != 0) sec_setup_failed("pthread_create");
  pthread_join(t, NULL);
  sec_poke(a, 0, attacker);
  sec_expect_at(a);
  /* The owner collects the block's remote list once its local list runs dry. */
  for (int i = 0; i < 100000; i++) check_not_attacker(apex_malloc(48), attacker);
  sec_survived("a poisoned remote free-list link");
}
