/*
 * Pins apex_stats_print: APEX_FORMAT_JSON is one valid JSON object (checked by Python's json
 * module) whose numbers are all integers, whose global figures are those of apex_stats_get at the
 * same moment, and which lists the size classes in use (1000 objects of 48 bytes show up in the
 * 48-byte bin, a large object in bin 0) and the live heaps (this thread's default heap and a heap
 * it created); APEX_FORMAT_TEXT has the global figures, one line per size class in use and the
 * fragmentation figures; write == NULL writes to stderr; other formats are EINVAL; and the write
 * function may itself allocate and free (no allocator lock is held while it runs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "apexalloc.h"
#include "check.h"
#include "reportutil.h"

static char g_buf[8 << 20];
static ru_capture g_cap = { g_buf, 0, sizeof g_buf, 0 };

static void allocating_write(void *opaque, const char *text, size_t len) {
  void *p = apex_malloc(len + 1);          /* a Python or Lua callback allocates: that must be fine */
  CHECK(p != NULL, "apex_malloc inside the write callback");
  memcpy(p, text, len);
  ru_write(opaque, (const char *)p, len);
  apex_free(p);
}

/* Checks the JSON; argv[2] is stats.allocated measured right after printing. */
static const char *const check_json =
    "import json, sys\n"
    "d = json.load(open(sys.argv[1]))\n"
    "def ints(x, path):\n"
    "    if isinstance(x, float): sys.exit(\"not an integer at \" + path)\n"
    "    if isinstance(x, dict): [ints(v, path + \".\" + k) for k, v in x.items()]\n"
    "    if isinstance(x, list): [ints(v, path + \"[%d]\" % i) for i, v in enumerate(x)]\n"
    "ints(d, \"\")\n"
    "g = d[\"global\"]\n"
    "for k in (\"allocated\", \"mapped\", \"mapped_peak\", \"active\", \"resident\", \"metadata\", \"superblocks\",\n"
    "          \"heaps\", \"requested\", \"requested_usable\", \"free_in_blocks\", \"blocks\", \"blocks_partial\",\n"
    "          \"large_count\", \"large_allocated\", \"huge_count\", \"allocated_huge\"):\n"
    "    assert k in g, \"global.\" + k + \" missing\"\n"
    "assert g[\"allocated\"] == int(sys.argv[2]), (g[\"allocated\"], sys.argv[2])\n"
    "assert g[\"huge_count\"] >= 1 and g[\"large_count\"] >= 1, g\n"
    "bins = {b[\"bin\"]: b for b in d[\"bins\"]}\n"
    "assert 3 in bins and bins[3][\"chunk_size\"] == 48 and bins[3][\"count\"] >= 1000, bins.get(3)\n"
    "assert 0 in bins and bins[0][\"count\"] >= 1, bins.get(0)\n"
    "f = d[\"fragmentation\"]\n"
    "assert 0 <= f[\"internal_waste_permille\"] <= 1000, f\n"
    "kinds = [h[\"default\"] for h in d[\"heaps\"]]\n"
    "assert True in kinds and False in kinds, d[\"heaps\"]\n"
    "created = [h for h in d[\"heaps\"] if not h[\"default\"]]\n"
    "assert any(h[\"allocated\"] >= 100 * 64 for h in created), created\n"
    "print(\"json ok:\", len(d[\"bins\"]), \"bins,\", len(d[\"heaps\"]), \"heaps\")\n";

static size_t stat_allocated(void) {
  apex_stats_t s;
  CHECK(apex_stats_get(&s, sizeof s) == 0, "apex_stats_get");
  return s.allocated;
}

int main(void) {
  static void *small[1000];
  for (size_t i = 0; i < 1000; i++) CHECK((small[i] = apex_malloc(40)) != NULL, "apex_malloc(40)");
  void *large = apex_malloc(512 * 1024);
  void *huge = apex_malloc((size_t)8 << 20);
  CHECK(large != NULL && huge != NULL, "large/huge");
  apex_heap_t *heap = apex_heap_new();
  CHECK(heap != NULL, "apex_heap_new");
  static void *mine[100];
  for (size_t i = 0; i < 100; i++) CHECK((mine[i] = apex_heap_alloc(heap, 64, 0)) != NULL, "apex_heap_alloc");

  /* JSON, checked against apex_stats_get taken right after (nothing allocates in between). */
  ru_reset(&g_cap);
  CHECK(apex_stats_print(ru_write, &g_cap, APEX_FORMAT_JSON) == 0, "apex_stats_print(JSON)");
  size_t allocated = stat_allocated();
  CHECK(g_cap.len > 0 && g_cap.buf[0] == '{', "JSON does not start with '{'");
  char path[256], num[32];
  ru_save(&g_cap, "stats", "json", path, sizeof path);
  snprintf(num, sizeof num, "%zu", allocated);
  const char *args[] = { path, num };
  CHECK(ru_python(check_json, args, 2) == 0, "the JSON of apex_stats_print failed its checks (%s)", path);
  unlink(path);

  /* Text. */
  ru_reset(&g_cap);
  CHECK(apex_stats_print(ru_write, &g_cap, APEX_FORMAT_TEXT) == 0, "apex_stats_print(TEXT)");
  static const char *const sections[] = { "Global", "allocated", "mapped_peak", "Size classes", "Fragmentation",
                                          "internal waste", "free bytes in blocks", "partial blocks", "Heaps" };
  for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
    CHECK(strstr(g_cap.buf, sections[i]) != NULL, "text output lacks \"%s\":\n%s", sections[i], g_cap.buf);
  /* The 48-byte class has its line: "  <bin> <chunk size> <objects> ...". */
  const char *line = strstr(g_cap.buf, "\n     3         48 ");
  CHECK(line != NULL, "no line for bin 3 (48 bytes) in:\n%s", g_cap.buf);
  size_t objects = 0;
  CHECK(sscanf(line, " %*u %*u %zu", &objects) == 1 && objects >= 1000, "bin 3 shows %zu objects", objects);
  CHECK(strstr(g_cap.buf, "large") != NULL, "no line for large objects");

  /* A write function that allocates. */
  ru_reset(&g_cap);
  CHECK(apex_stats_print(allocating_write, &g_cap, APEX_FORMAT_JSON) == 0, "allocating writer");
  CHECK(g_cap.len > 100 && g_cap.buf[g_cap.len - 2] == '}', "allocating writer: output incomplete");

  /* write == NULL: stderr. */
  char err_path[256];
  snprintf(err_path, sizeof err_path, "/tmp/apex_stats_stderr_%d.txt", (int)getpid());
  int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0, "open %s", err_path);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  CHECK(saved >= 0 && dup2(fd, STDERR_FILENO) == STDERR_FILENO, "dup2");
  int rc = apex_stats_print(NULL, NULL, APEX_FORMAT_TEXT);
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(fd);
  CHECK(rc == 0, "apex_stats_print(NULL writer) = %d", rc);
  FILE *f = fopen(err_path, "r");
  CHECK(f != NULL, "reopen %s", err_path);
  size_t n = fread(g_buf, 1, sizeof g_buf - 1, f);
  g_buf[n] = '\0';
  fclose(f);
  unlink(err_path);
  CHECK(strstr(g_buf, "Fragmentation") != NULL, "write == NULL did not reach stderr (%zu bytes)", n);

  /* Formats it does not have. */
  CHECK(apex_stats_print(ru_write, &g_cap, APEX_FORMAT_SVG) == EINVAL, "SVG statistics must be EINVAL");
  CHECK(apex_stats_print(ru_write, &g_cap, 42) == EINVAL, "format 42 must be EINVAL");
  CHECK(apex_stats_print(ru_write, &g_cap, -1) == EINVAL, "format -1 must be EINVAL");

  for (size_t i = 0; i < 1000; i++) apex_free(small[i]);
  apex_free(large);
  apex_free(huge);
  CHECK(apex_heap_destroy(heap) == 0, "apex_heap_destroy");
  printf("stats_print_formats: OK\n");
  return 0;
}
