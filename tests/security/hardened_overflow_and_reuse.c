/*
 * Hardened mode (APEX_SECURE=2): what the size trailer, the canary, the quarantine and the guard
 * pages catch. Each variant commits one misuse:
 *   canary            a one-byte overflow of a 20-byte object into the slack of its 32-byte chunk;
 *                     caught at free, reported at the overwritten canary byte
 *                     expects: apexalloc: heap overflow (canary overwritten) at <p+20> (size class 2, 32 bytes)
 *   trailer           a one-byte overflow of a 40-byte object, whose 48-byte chunk has no slack:
 *                     the byte is the first of the size trailer; caught at free
 *                     expects: apexalloc: heap overflow (size trailer overwritten) at <p> (size class 3, 48 bytes)
 *   trailer-small     the same, with a byte that leaves the trailer's low byte xor 40: were the
 *                     trailer only the size xor a key, it would now decode to 0, a size that fits,
 *                     and the overflow would pass for a canary overwrite at p (an overflow of an
 *                     unknown byte does that in 41 runs of 256); the mixed trailer decodes to
 *                     garbage whatever the byte
 *                     expects: the same line as trailer
 *   quarantine-evict  a write into a freed 40-byte object (word 3, not the free tag) while it waits
 *                     in the quarantine; caught when later frees push it out
 *                     expects: apexalloc: write after free at <p+24> (size class 3, 48 bytes)
 *   quarantine-collect  the same write, caught when apex_collect empties the quarantine
 *   guard             a linear overflow of an 8 MiB (huge) object runs into the PROT_NONE page
 *                     behind it: SIGSEGV at the guard page's first byte (death_test --fault)
 */
#define _GNU_SOURCE
#include <signal.h>

#include "sec.h"

/* The guard variant: report where the fault happened, then die of it. */
static void on_segv(int sig, siginfo_t *info, void *context) {
  (void)context;
  sec_say("APEX_FAULT_AT 0x%" PRIxPTR "\n", (uintptr_t)info->si_addr);
  signal(sig, SIG_DFL);
  raise(sig);
}

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "canary", "trailer", "trailer-small", "quarantine-evict", "quarantine-collect", "guard");
  size_t level = 0, len = sizeof level;
  if (apex_ctl("opt.secure", &level, &len, NULL, 0) != 0 || level != 2)
    sec_setup_failed("hardened mode is off (run with APEX_SECURE=2)");
  sec_keep(40, 8);
  if (strcmp(v, "canary") == 0) {
    unsigned char *p = apex_malloc(20);
    if (p == NULL) sec_setup_failed("apex_malloc(20)");
    memset(p, 'a', 20);
    sec_expect_at(p + 20);
    ((volatile unsigned char *)sec_launder(p))[20] = 'a';     /* one byte too far */
    apex_free(p);
    sec_survived("a one-byte overflow into the canary");
  }
  if (strncmp(v, "trailer", 7) == 0) {
    unsigned char *p = apex_malloc(40);
    if (p == NULL) sec_setup_failed("apex_malloc(40)");
    memset(p, 'a', 40);
    sec_expect_at(p);
    volatile unsigned char *q = sec_launder(p);
    if (strcmp(v, "trailer") == 0) q[40] = (unsigned char)~q[40];   /* one byte too far, surely changed */
    else q[40] = (unsigned char)(q[40] ^ 40);
    apex_free(p);
    sec_survived("a one-byte overflow into the size trailer");
  }
  if (strncmp(v, "quarantine", 10) == 0) {
    unsigned char *p = apex_malloc(40);
    if (p == NULL) sec_setup_failed("apex_malloc(40)");
    apex_free(p);
    sec_poke(p, 3, 0x4141414141414141u);                       /* the dangling pointer's fourth word */
    sec_expect_at(p + 24);
    if (strcmp(v, "quarantine-collect") == 0) {
      apex_collect();
    } else {
      for (int i = 0; i < 200000; i++) {                       /* the quarantine holds 4096 chunks */
        void *o = apex_malloc(40);
        if (o == NULL) sec_setup_failed("apex_malloc(40)");
        apex_free(o);
      }
    }
    sec_survived("a write after free while the chunk was in quarantine");
  }
  /* guard */
  size_t size = (size_t)8 << 20;
  unsigned char *p = apex_malloc(size);
  if (p == NULL) sec_setup_failed("apex_malloc(8 MiB)");
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t guard = ((uintptr_t)p + size + 8 + page - 1) & ~(uintptr_t)(page - 1);   /* after the trailer */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, NULL);
  sec_expect_at((void *)guard);
  volatile unsigned char *q = sec_launder(p);
  for (size_t i = size; i < size + 2 * page; i++) q[i] = 'o';   /* a linear overflow */
  sec_survived("a linear overflow of a huge object");
}
