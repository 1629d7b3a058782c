/*
 * Pins the options read from the environment at start-up (APEX_<OPTION>, see docs/API.md), by
 * running this program again as a child with the variables set:
 *   - APEX_SHOW_STATS=1 prints the text statistics on stderr at exit, even when the program closes
 *     stderr in an atexit handler of its own (as coreutils do);
 *   - APEX_HEAP_MAP=<file>.svg writes an SVG heap map (well-formed XML with block rectangles) at
 *     exit, and <file>.json a JSON one; without either variable nothing is printed or written;
 *   - values are parsed: APEX_SUPERBLOCK_CACHE=3, APEX_HUGE_CACHE_BYTES=16m (k/m/g suffixes),
 *     APEX_SHOW_STATS=0 show up through apex_ctl;
 *   - a malformed value (not a number, a bad suffix, a bool that is not 0/1, a number that
 *     overflows, a path too long) prints one warning line each on stderr and keeps the default.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apexalloc.h"
#include "check.h"
#include "reportutil.h"

extern char **environ;

/* ---- The child -------------------------------------------------------------------------------- */
static int child_alloc(void) {
  static void *p[2000];
  for (size_t i = 0; i < 2000; i++) p[i] = apex_malloc(16 + (i * 131) % 3000);
  void *huge = apex_malloc((size_t)6 << 20);
  for (size_t i = 0; i < 2000; i += 2) apex_free(p[i]);
  (void)huge;                      /* left live: it must show in the map written at exit */
  return 0;                        /* exit() runs the reports */
}

/* Like gnulib's close_stdout (coreutils): closes stderr in an atexit handler, which runs before
 * the library's own (registered earlier); the statistics must still reach the original stderr. */
static void close_stderr(void) { fclose(stderr); }

static int child_close_stderr(void) {
  atexit(close_stderr);
  return child_alloc();
}

static int child_options(void) {
  size_t cache = 0, huge = 0, len = sizeof cache;
  int show = -1;
  const char *map = NULL;
  CHECK(apex_ctl("opt.superblock_cache", &cache, &len, NULL, 0) == 0, "opt.superblock_cache");
  len = sizeof huge;
  CHECK(apex_ctl("opt.huge_cache_bytes", &huge, &len, NULL, 0) == 0, "opt.huge_cache_bytes");
  len = sizeof show;
  CHECK(apex_ctl("opt.show_stats", &show, &len, NULL, 0) == 0, "opt.show_stats");
  len = sizeof map;
  CHECK(apex_ctl("opt.heap_map", &map, &len, NULL, 0) == 0, "opt.heap_map");
  printf("superblock_cache=%zu huge_cache_bytes=%zu show_stats=%d heap_map=[%s]\n", cache, huge, show, map);
  return 0;
}

/* ---- The parent ------------------------------------------------------------------------------- */
static char g_out[1 << 20], g_err[4 << 20];

static void read_file(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  CHECK(f != NULL, "cannot open %s", path);
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
}

/* Runs this program with argv[1] = mode and the environment without APEX_* variables plus `env`
 * (NULL-terminated); its stdout and stderr land in g_out and g_err. */
static void run_child(const char *mode, const char *const *env) {
  static char *envp[512];
  size_t n = 0;
  for (char **e = environ; *e != NULL && n < 400; e++)
    if (strncmp(*e, "APEX_", 5) != 0 || strncmp(*e, "APEX_TEST_", 10) == 0) envp[n++] = *e;
  for (; *env != NULL; env++) envp[n++] = (char *)*env;
  envp[n] = NULL;
  char out_path[128], err_path[128];
  snprintf(out_path, sizeof out_path, "/tmp/apex_child_out_%d.txt", (int)getpid());
  snprintf(err_path, sizeof err_path, "/tmp/apex_child_err_%d.txt", (int)getpid());
  /* Not execve("/proc/self/exe"): under valgrind that is valgrind itself; readlink is translated. */
  static char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(len > 0, "readlink /proc/self/exe: %d", errno);
  self[len] = '\0';
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  CHECK(pid >= 0, "fork: %d", errno);
  if (pid == 0) {
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(126);
    char *argv[] = { (char *)"test_env_reports_at_exit", (char *)mode, NULL };
    execve(self, argv, envp);
    _exit(127);
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
  read_file(out_path, g_out, sizeof g_out);
  read_file(err_path, g_err, sizeof g_err);
  unlink(out_path);
  unlink(err_path);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %s failed (status %d); stderr:\n%s", mode, status, g_err);
}

static size_t count_lines_with(const char *text, const char *needle) {
  size_t n = 0;
  for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
}

static const char *const check_svg =
    "import sys, xml.etree.ElementTree as ET\n"
    "svg = ET.parse(sys.argv[1]).getroot()\n"
    "ns = \"{http://www.w3.org/2000/svg}\"\n"
    "rects = [r for r in svg.iter(ns + \"rect\") if r.get(\"class\") == \"block\"]\n"
    "huge = [r for r in svg.iter(ns + \"rect\") if r.get(\"class\") == \"huge\"]\n"
    "assert len(rects) >= 10 and len(huge) >= 1, (len(rects), len(huge))\n"
    "print(\"exit svg ok:\", len(rects), \"blocks\")\n";

static const char *const check_json =
    "import sys, json\n"
    "m = json.load(open(sys.argv[1]))\n"
    "assert sum(len(s[\"blocks\"]) for s in m[\"superblocks\"]) >= 10, m\n"
    "assert any(s[\"kind\"] == \"huge\" and s[\"size\"] >= 6 << 20 for s in m[\"superblocks\"])\n"
    "print(\"exit json ok\")\n";

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "alloc") == 0) return child_alloc();
  if (argc > 1 && strcmp(argv[1], "options") == 0) return child_options();
  if (argc > 1 && strcmp(argv[1], "close-stderr") == 0) return child_close_stderr();

  char svg[128], json[128], show[160], map_env[160], json_env[160];
  snprintf(svg, sizeof svg, "/tmp/apex_exit_map_%d.svg", (int)getpid());
  snprintf(json, sizeof json, "/tmp/apex_exit_map_%d.json", (int)getpid());
  unlink(svg);
  unlink(json);

  /* Nothing asked: nothing printed, nothing written. */
  const char *none[] = { NULL };
  run_child("alloc", none);
  CHECK(strstr(g_err, "Global") == NULL && access(svg, F_OK) != 0, "reports without being asked:\n%s", g_err);

  /* Statistics on stderr and an SVG map. */
  snprintf(show, sizeof show, "APEX_SHOW_STATS=1");
  snprintf(map_env, sizeof map_env, "APEX_HEAP_MAP=%s", svg);
  const char *both[] = { show, map_env, NULL };
  run_child("alloc", both);
  CHECK(strstr(g_err, "statistics") != NULL && strstr(g_err, "Global") != NULL &&
        strstr(g_err, "Fragmentation") != NULL, "APEX_SHOW_STATS=1 printed no statistics at exit:\n%s", g_err);
  CHECK(access(svg, F_OK) == 0, "APEX_HEAP_MAP=%s wrote no file", svg);
  const char *svg_args[] = { svg };
  CHECK(ru_python(check_svg, svg_args, 1) == 0, "the SVG written at exit failed its checks (%s)", svg);
  unlink(svg);

  /* The program closes stderr at exit, before the library reports. */
  const char *only_show[] = { show, NULL };
  run_child("close-stderr", only_show);
  CHECK(strstr(g_err, "Fragmentation") != NULL, "statistics lost when the program closes stderr at exit:\n%s", g_err);

  /* A JSON map. */
  snprintf(json_env, sizeof json_env, "APEX_HEAP_MAP=%s", json);
  const char *only_json[] = { json_env, NULL };
  run_child("alloc", only_json);
  CHECK(strstr(g_err, "Global") == NULL, "statistics printed without APEX_SHOW_STATS");
  const char *json_args[] = { json };
  CHECK(ru_python(check_json, json_args, 1) == 0, "the JSON written at exit failed its checks (%s)", json);
  unlink(json);

  /* Parsed values. */
  const char *good[] = { "APEX_SUPERBLOCK_CACHE=3", "APEX_HUGE_CACHE_BYTES=16m", "APEX_SHOW_STATS=0",
                         "APEX_HEAP_MAP=/dev/null", NULL };
  run_child("options", good);
  CHECK(strstr(g_out, "superblock_cache=3 huge_cache_bytes=16777216 show_stats=0 heap_map=[/dev/null]") != NULL,
        "options from the environment: %s", g_out);
  CHECK(g_err[0] == '\0', "good values gave warnings:\n%s", g_err);
  const char *suffixes[] = { "APEX_HUGE_CACHE_BYTES=512K", NULL };
  run_child("options", suffixes);
  CHECK(strstr(g_out, "huge_cache_bytes=524288 ") != NULL, "512K: %s", g_out);

  /* Malformed values: one warning line each, defaults kept. */
  static char long_path[400];
  memcpy(long_path, "APEX_HEAP_MAP=/tmp/", 19);
  memset(long_path + 19, 'x', 300);
  const char *bad[] = { "APEX_SUPERBLOCK_CACHE=eight", "APEX_HUGE_CACHE_BYTES=12q", "APEX_SHOW_STATS=yes",
                        long_path, NULL };
  run_child("options", bad);
  CHECK(strstr(g_out, "superblock_cache=8 huge_cache_bytes=33554432 show_stats=0 heap_map=[]") != NULL,
        "malformed values must keep the defaults: %s", g_out);
  CHECK(count_lines_with(g_err, "apexalloc: ignoring APEX_") == 4 && count_lines_with(g_err, "\n") == 4,
        "expected 4 warning lines, got:\n%s", g_err);
  CHECK(strstr(g_err, "APEX_SUPERBLOCK_CACHE=\"eight\"") != NULL, "the warning names the variable and value:\n%s",
        g_err);
  const char *overflow[] = { "APEX_SUPERBLOCK_CACHE=99999999999999999999999", "APEX_HUGE_CACHE_BYTES=99999999999g",
                             "APEX_SHOW_STATS=", NULL };
  run_child("options", overflow);
  CHECK(strstr(g_out, "superblock_cache=8 huge_cache_bytes=33554432 show_stats=0") != NULL, "overflow: %s", g_out);
  CHECK(count_lines_with(g_err, "apexalloc: ignoring APEX_") == 3, "expected 3 warnings, got:\n%s", g_err);

  printf("env_reports_at_exit: OK\n");
  return 0;
}
