/*
 * Pins: starting the purge thread never changes errno. The first free that puts memory into a
 * cache (here: a huge object entering the huge cache) asks for the purge thread, which starts at
 * the end of that free. errno must read afterwards what it read before:
 *   1. when the start fails: the address space is limited (RLIMIT_AS) so that pthread_create cannot
 *      map the thread's stack (its failed mmap sets errno inside the C library);
 *   2. when the start succeeds (the limit lifted; stats.purge_thread then reads 1).
 * Nothing else in this program creates a thread, so the first start is the one under test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>

#include "decayutil.h"

#if !APEX_TEST_TSAN
/* Bytes of address space in use. */
static size_t vm_size_bytes(void) {
  size_t size;
  tu_statm_bytes(&size, NULL);
  return size;
}
#endif

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  CHECK(du_ctl_bool("stats.purge_thread") == 0, "the purge thread runs before anything entered a cache");

  /* 1. The start fails. Not under ThreadSanitizer, whose runtime maps its own memory (shadow,
   * thread contexts) and cannot live within a tight address-space limit. */
  void *huge;
#if !APEX_TEST_TSAN
  huge = apex_malloc(5 * TU_MIB);
  CHECK(huge != NULL, "apex_malloc(5 MiB)");
  struct rlimit old_limit;
  CHECK(getrlimit(RLIMIT_AS, &old_limit) == 0, "getrlimit");
  struct rlimit tight = old_limit;
  tight.rlim_cur = vm_size_bytes() + 64 * 1024;        /* no room for a 256 KiB thread stack */
  CHECK(setrlimit(RLIMIT_AS, &tight) == 0, "setrlimit(RLIMIT_AS): errno %d", errno);
  errno = EDOM;
  apex_free(huge);                                     /* enters the huge cache: asks for the thread */
  int failed_after = errno;
  CHECK(setrlimit(RLIMIT_AS, &old_limit) == 0, "setrlimit (restore)");
  printf("purge thread start under a tight RLIMIT_AS: errno %d before, %d after; thread running: %d\n", EDOM,
         failed_after, du_ctl_bool("stats.purge_thread"));
  CHECK(failed_after == EDOM, "errno changed from %d to %d across a free that tried to start the purge thread", EDOM,
        failed_after);
#endif

  /* 2. The start succeeds. */
  huge = apex_malloc(6 * TU_MIB);
  CHECK(huge != NULL, "apex_malloc(6 MiB)");
  errno = ERANGE;
  apex_free(huge);
  int after = errno;
  CHECK(after == ERANGE, "errno changed from %d to %d across the free that started the purge thread", ERANGE, after);
  CHECK(du_ctl_bool("stats.purge_thread") == 1, "the purge thread did not start");
  printf("purge_thread_keeps_errno: OK\n");
  return 0;
}
