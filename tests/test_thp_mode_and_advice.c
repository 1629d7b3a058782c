/*
 * Pins: transparent huge pages. os.thp_mode names the bracketed word of
 * /sys/kernel/mm/transparent_hugepage/enabled ("unknown" without the file); with opt.thp = 1 a new
 * superblock is advised MADV_HUGEPAGE (VmFlags "hg" in /proc/self/smaps); with opt.thp = 0 it is
 * advised MADV_NOHUGEPAGE ("nh") exactly when the system mode is "always", else left alone;
 * stats.thp_bytes reads (a multiple of 2 MiB pages, or 0).
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "decayutil.h"

/* The VmFlags line of the mapping holding p, into flags. */
static int vmflags_of(const void *p, char *flags, size_t size) {
  FILE *f = fopen("/proc/self/smaps", "r");
  CHECK(f != NULL, "open /proc/self/smaps");
  char line[512];
  int inside = 0, found = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
      continue;
    }
    if (inside && strncmp(line, "VmFlags:", 8) == 0) {
      size_t n = strlen(line + 8);
      if (n >= size) n = size - 1;
      memcpy(flags, line + 8, n);
      flags[n] = '\0';
      found = 1;
      break;
    }
  }
  fclose(f);
  return found;
}

/* An object in a freshly mapped superblock: the cache is emptied and kept empty meanwhile. */
static void *fresh_superblock_object(apex_heap_t **heap) {
  *heap = apex_heap_new();
  CHECK(*heap != NULL, "apex_heap_new");
  void *p = apex_heap_alloc(*heap, 100 * 1024, 16);
  CHECK(p != NULL, "apex_heap_alloc");
  return p;
}

static void set_int(const char *name, int v) {
  CHECK(apex_ctl(name, NULL, NULL, &v, sizeof v) == 0, "set %s", name);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  char sys[256] = "";
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f) { if (!fgets(sys, sizeof sys, f)) sys[0] = '\0'; fclose(f); }
  const char *mode = NULL;
  size_t len = sizeof mode;
  CHECK(apex_ctl("os.thp_mode", &mode, &len, NULL, 0) == 0 && mode != NULL, "os.thp_mode");
  char want[32] = "unknown";
  const char *open_br = strchr(sys, '['), *close_br = open_br ? strchr(open_br, ']') : NULL;
  if (open_br && close_br && close_br - open_br - 1 < (long)sizeof want) {
    memcpy(want, open_br + 1, (size_t)(close_br - open_br - 1));
    want[close_br - open_br - 1] = '\0';
  }
  CHECK(strcmp(mode, want) == 0, "os.thp_mode = \"%s\", sysfs says \"%s\"", mode, want);

  size_t zero = 0, old_cache = du_ctl_size("opt.superblock_cache");
  CHECK(apex_ctl("opt.superblock_cache", NULL, NULL, &zero, sizeof zero) == 0, "opt.superblock_cache = 0");
  apex_collect();

  char flags[256];
  apex_heap_t *h;
  set_int("opt.thp", 1);
  void *p = fresh_superblock_object(&h);
  CHECK(vmflags_of(p, flags, sizeof flags), "no smaps entry for %p", p);
  printf("thp_mode_and_advice: mode %s; opt.thp=1 VmFlags:%s", mode, flags);
  if (strcmp(mode, "never") != 0) CHECK(strstr(flags, " hg") != NULL, "opt.thp=1: no hg flag:%s", flags);
  CHECK(apex_heap_destroy(h) == 0, "destroy");

  set_int("opt.thp", 0);
  p = fresh_superblock_object(&h);
  CHECK(vmflags_of(p, flags, sizeof flags), "no smaps entry for %p", p);
  printf("thp_mode_and_advice: opt.thp=0 VmFlags:%s", flags);
  CHECK(strstr(flags, " hg") == NULL, "opt.thp=0: hg flag:%s", flags);
  if (strcmp(mode, "always") == 0) CHECK(strstr(flags, " nh") != NULL, "THP always, opt.thp=0: no nh flag:%s", flags);
  else CHECK(strstr(flags, " nh") == NULL, "THP %s: nh flag set needlessly:%s", mode, flags);
  CHECK(apex_heap_destroy(h) == 0, "destroy");

  size_t thp = du_ctl_size("stats.thp_bytes");
  CHECK(thp % (2 * TU_MIB) == 0, "stats.thp_bytes = %zu", thp);
  CHECK(apex_ctl("opt.superblock_cache", NULL, NULL, &old_cache, sizeof old_cache) == 0, "restore");
  printf("thp_mode_and_advice: stats.thp_bytes %zu; OK\n", thp);
  return 0;
}
