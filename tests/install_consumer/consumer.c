/* Uses the installed header and library; exits 0 only if ApexAlloc really served the calls. */
#include <apexalloc.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  char *p = apex_malloc(100);
  if (p == NULL) return 1;
  strcpy(p, "installed");
  size_t usable = apex_usable_size(p);
  apex_free(p);
  apex_stats_t s;
  if (apex_stats_get(&s, sizeof s) != 0 || s.mapped == 0) return 2;
  printf("consumer: ApexAlloc %s, usable %zu, mapped %zu\n", apex_version_string(), usable, s.mapped);
  return usable >= 100 && apex_version() == APEX_VERSION_MAJOR * 10000 + APEX_VERSION_MINOR * 100 + APEX_VERSION_PATCH ? 0 : 3;
}
