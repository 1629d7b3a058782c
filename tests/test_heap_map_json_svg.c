/*
 * Pins apex_heap_map: APEX_FORMAT_JSON is one valid JSON object describing every superblock
 * (address, owner heap, kind) and its blocks (slice, slices, size class, chunk size, capacity,
 * used), consistent in itself (blocks inside their superblock and not overlapping, used <= capacity,
 * owners among the listed heaps) and with what the program allocated (1000 objects of 48 bytes in
 * blocks of that class, a huge object of 8 MiB, a heap created with apex_heap_new);
 * APEX_FORMAT_SVG of the same moment is well-formed XML (Python's xml.etree) with exactly one
 * <rect class="block"> per block of the JSON and one <rect class="huge"> per huge object, a title
 * and a legend; write == NULL writes to stderr; APEX_FORMAT_TEXT and unknown formats are EINVAL;
 * the write function may allocate.
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

static char g_json[16 << 20], g_svg[32 << 20];
static ru_capture g_json_cap = { g_json, 0, sizeof g_json, 0 };
static ru_capture g_svg_cap = { g_svg, 0, sizeof g_svg, 0 };

static void allocating_write(void *opaque, const char *text, size_t len) {
  void *p = apex_malloc(len + 1);
  CHECK(p != NULL, "apex_malloc inside the write callback");
  memcpy(p, text, len);
  ru_write(opaque, (const char *)p, len);
  apex_free(p);
}

static const char *const check_map =
    "import json, sys, xml.etree.ElementTree as ET\n"
    "m = json.load(open(sys.argv[1]))\n"
    "ids = {h[\"id\"] for h in m[\"heaps\"]}\n"
    "assert any(h[\"kind\"] == \"created\" for h in m[\"heaps\"]), m[\"heaps\"]\n"
    "assert any(h[\"kind\"] == \"default\" for h in m[\"heaps\"]), m[\"heaps\"]\n"
    "slices = m[\"slices_per_superblock\"]\n"
    "blocks = 0; huge = []; used48 = 0\n"
    "for sb in m[\"superblocks\"]:\n"
    "    assert sb[\"kind\"] in (\"blocks\", \"cached\", \"huge\"), sb[\"kind\"]\n"
    "    assert sb[\"heap\"] is None or sb[\"heap\"] in ids, sb[\"heap\"]\n"
    "    int(sb[\"address\"], 16)\n"
    "    if sb[\"kind\"] == \"huge\": huge.append(sb); continue\n"
    "    taken = set()\n"
    "    for b in sb[\"blocks\"]:\n"
    "        assert 1 <= b[\"slice\"] and b[\"slice\"] + b[\"slices\"] <= slices, b\n"
    "        span = set(range(b[\"slice\"], b[\"slice\"] + b[\"slices\"]))\n"
    "        assert not (span & taken), (\"overlapping blocks\", sb[\"address\"], b)\n"
    "        taken |= span\n"
    "        assert 0 <= b[\"used\"] <= b[\"capacity\"], b\n"
    "        assert b[\"capacity\"] * b[\"chunk_size\"] <= b[\"slices\"] * m[\"slice_size\"], b\n"
    "        if b[\"chunk_size\"] == 48 and b[\"class\"] != 0: used48 += b[\"used\"]\n"
    "        blocks += 1\n"
    "assert used48 >= 1000, used48\n"
    "assert any(h[\"size\"] >= 8 << 20 for h in huge), huge\n"
    "assert m[\"omitted\"] == 0, m[\"omitted\"]\n"
    "svg = ET.parse(sys.argv[2]).getroot()\n"
    "ns = \"{http://www.w3.org/2000/svg}\"\n"
    "assert svg.tag == ns + \"svg\", svg.tag\n"
    "rects = list(svg.iter(ns + \"rect\"))\n"
    "nblock = sum(1 for r in rects if r.get(\"class\") == \"block\")\n"
    "nhuge = sum(1 for r in rects if r.get(\"class\") == \"huge\")\n"
    "assert nblock == blocks, (\"SVG block rectangles\", nblock, \"JSON blocks\", blocks)\n"
    "assert nhuge == len(huge), (\"SVG huge bars\", nhuge, \"JSON huge objects\", len(huge))\n"
    "text = \" \".join(t.text or \"\" for t in svg.iter(ns + \"text\"))\n"
    "assert \"heap map\" in text and \"occupancy\" in text, \"no title or legend\"\n"
    "print(\"map ok:\", len(m[\"superblocks\"]), \"superblocks,\", blocks, \"blocks,\", len(huge), \"huge\")\n";

int main(void) {
  /* Objects in 48-byte chunks: in hardened mode (APEX_SECURE=2) each request gets an 8-byte size
   * trailer in its chunk, so 40 bytes are asked for there. */
  size_t level = 0, level_len = sizeof level;
  CHECK(apex_ctl("opt.secure", &level, &level_len, NULL, 0) == 0, "opt.secure");
  size_t n48 = level == 2 ? 40 : 48;
  static void *small[1000];
  for (size_t i = 0; i < 1000; i++) CHECK((small[i] = apex_malloc(n48)) != NULL, "apex_malloc(%zu)", n48);
  for (size_t i = 0; i < 1000; i += 3) { apex_free(small[i]); small[i] = NULL; }   /* partial blocks */
  for (size_t i = 0; i < 1000; i += 3) CHECK((small[i] = apex_malloc(n48)) != NULL, "apex_malloc(%zu)", n48);
  static void *mixed[300];
  for (size_t i = 0; i < 300; i++) CHECK((mixed[i] = apex_malloc(16 + (i * 997) % 20000)) != NULL, "mixed");
  void *large = apex_malloc(700 * 1024);
  void *huge = apex_malloc((size_t)8 << 20);
  CHECK(large != NULL && huge != NULL, "large/huge");
  apex_heap_t *heap = apex_heap_new();
  CHECK(heap != NULL, "apex_heap_new");
  for (size_t i = 0; i < 50; i++) CHECK(apex_heap_alloc(heap, 200, 0) != NULL, "apex_heap_alloc");

  /* The two pictures of one moment: capturing allocates nothing. */
  ru_reset(&g_json_cap);
  ru_reset(&g_svg_cap);
  CHECK(apex_heap_map(ru_write, &g_json_cap, APEX_FORMAT_JSON) == 0, "apex_heap_map(JSON)");
  CHECK(apex_heap_map(ru_write, &g_svg_cap, APEX_FORMAT_SVG) == 0, "apex_heap_map(SVG)");
  CHECK(strncmp(g_svg, "<?xml", 5) == 0, "SVG does not start with an XML declaration");
  char json_path[256], svg_path[256];
  ru_save(&g_json_cap, "map", "json", json_path, sizeof json_path);
  ru_save(&g_svg_cap, "map", "svg", svg_path, sizeof svg_path);
  const char *args[] = { json_path, svg_path };
  CHECK(ru_python(check_map, args, 2) == 0, "the heap map failed its checks (%s, %s)", json_path, svg_path);
  unlink(json_path);
  unlink(svg_path);

  /* A write function that allocates, in both formats. */
  ru_reset(&g_json_cap);
  CHECK(apex_heap_map(allocating_write, &g_json_cap, APEX_FORMAT_JSON) == 0, "allocating writer (JSON)");
  CHECK(g_json_cap.len > 100 && g_json[g_json_cap.len - 2] == '}', "allocating writer: JSON incomplete");
  ru_reset(&g_svg_cap);
  CHECK(apex_heap_map(allocating_write, &g_svg_cap, APEX_FORMAT_SVG) == 0, "allocating writer (SVG)");
  CHECK(strstr(g_svg, "</svg>") != NULL, "allocating writer: SVG incomplete");

  /* write == NULL: stderr. */
  char err_path[256];
  snprintf(err_path, sizeof err_path, "/tmp/apex_map_stderr_%d.txt", (int)getpid());
  int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0, "open %s", err_path);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  CHECK(saved >= 0 && dup2(fd, STDERR_FILENO) == STDERR_FILENO, "dup2");
  int rc = apex_heap_map(NULL, NULL, APEX_FORMAT_JSON);
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(fd);
  CHECK(rc == 0, "apex_heap_map(NULL writer) = %d", rc);
  FILE *f = fopen(err_path, "r");
  CHECK(f != NULL, "reopen %s", err_path);
  size_t n = fread(g_json, 1, sizeof g_json - 1, f);
  g_json[n] = '\0';
  fclose(f);
  unlink(err_path);
  CHECK(strstr(g_json, "\"superblocks\"") != NULL, "write == NULL did not reach stderr (%zu bytes)", n);

  CHECK(apex_heap_map(ru_write, &g_json_cap, APEX_FORMAT_TEXT) == EINVAL, "a text heap map must be EINVAL");
  CHECK(apex_heap_map(ru_write, &g_json_cap, 7) == EINVAL, "format 7 must be EINVAL");

  for (size_t i = 0; i < 1000; i++) apex_free(small[i]);
  for (size_t i = 0; i < 300; i++) apex_free(mixed[i]);
  apex_free(large);
  apex_free(huge);
  CHECK(apex_heap_destroy(heap) == 0, "apex_heap_destroy");
  printf("heap_map_json_svg: OK\n");
  return 0;
}
