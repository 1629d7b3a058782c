/*
 * apexlua_main.c — `apexlua`, a Lua 5.4 interpreter whose state lives on an ApexAlloc heap.
 *
 *   apexlua [options] [script [args...]]
 *     -e stat         run the string `stat`           -l mod / -l g=mod   require a module
 *     -i              interactive after the script    -v                  version
 *     -               run standard input              --                  stop handling options
 *     --stats         statistics and per-type figures on stderr at exit
 *     --heap-map F    write the heap map at exit (F.svg: picture, F.json: JSON)
 *     --limit BYTES   cap the state's heap (suffixes K, M, G); over it Lua raises "not enough memory"
 *     --no-types      skip the per-object type records (live-per-type figures are then not kept)
 * With no script (and no -e), it reads statements interactively. `require "apexalloc"` gives the
 * module built in, sharing this process's one copy of the core.
 * It owns option handling and the read-eval-print loop; it must never run Lua outside a
 * protected call, so that every error (out of memory included) is reported and the state closed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "apexlua.h"

int luaopen_apexalloc(lua_State *L);

static const char *progname = "apexlua";

typedef struct {
  const char *heap_map;
  int stats, interactive, version, no_types;
  size_t limit;
  int script;                            /* index of the script in argv (0: none) */
  int ran_code;                          /* -e or -l seen */
} options_t;

static void usage(void) {
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "  -e stat        run the string 'stat'\n"
          "  -l mod         require library 'mod' into global 'mod' (-l g=mod: into 'g')\n"
          "  -i             enter interactive mode after running the script\n"
          "  -v             show version information\n"
          "  --stats        print heap statistics and per-type figures at exit\n"
          "  --heap-map F   write the heap map to F (.svg or .json) at exit\n"
          "  --limit BYTES  limit the state's heap (K, M, G suffixes)\n"
          "  --no-types     do not record each object's type (no live-per-type figures)\n"
          "  --             stop handling options\n"
          "  -              run stdin and stop handling options\n",
          progname);
}

static int parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s) return 0;
  unsigned long long mul = 1;
  if (*end == 'K' || *end == 'k') mul = 1ULL << 10, end++;
  else if (*end == 'M' || *end == 'm') mul = 1ULL << 20, end++;
  else if (*end == 'G' || *end == 'g') mul = 1ULL << 30, end++;
  if (*end != '\0' || v > (unsigned long long)SIZE_MAX / mul) return 0;
  *out = (size_t)(v * mul);
  return 1;
}

/* First pass: the options that shape the state; -e and -l run later, in order. */
static int parse_args(int argc, char **argv, options_t *o) {
  int i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') break;                                   /* the script */
    if (strcmp(a, "-") == 0) break;                           /* stdin as the script */
    if (strcmp(a, "--") == 0) { i++; break; }
    if (strcmp(a, "-i") == 0) o->interactive = o->version = 1;
    else if (strcmp(a, "-v") == 0) o->version = 1;
    else if (strcmp(a, "--stats") == 0) o->stats = 1;
    else if (strcmp(a, "--no-types") == 0) o->no_types = 1;
    else if (strcmp(a, "--heap-map") == 0 || strcmp(a, "--limit") == 0) {
      if (i + 1 >= argc) { fprintf(stderr, "%s: '%s' needs an argument\n", progname, a); return 0; }
      if (a[2] == 'h') o->heap_map = argv[++i];
      else if (!parse_size(argv[++i], &o->limit)) {
        fprintf(stderr, "%s: bad byte count '%s' for --limit\n", progname, argv[i]);
        return 0;
      }
    } else if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
      if (i + 1 >= argc) { fprintf(stderr, "%s: '%s' needs an argument\n", progname, a); return 0; }
      i++;
      o->ran_code = 1;
    } else if (strncmp(a, "-e", 2) == 0 || strncmp(a, "-l", 2) == 0) {
      o->ran_code = 1;
    } else {
      fprintf(stderr, "%s: unrecognized option '%s'\n", progname, a);
      return 0;
    }
  }
  o->script = i < argc ? i : 0;
  return 1;
}

/* ---- Running code ---------------------------------------------------------------------------- */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  int status = lua_pcall(L, narg, nres, base);
  lua_remove(L, base);
  return status;
}

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s: %s\n", progname, msg ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
  }
  return status;
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

static int dolibrary(lua_State *L, const char *spec) {
  const char *eq = strchr(spec, '=');
  const char *mod = eq ? eq + 1 : spec;
  lua_getglobal(L, "require");
  lua_pushstring(L, mod);
  int status = docall(L, 1, 1);
  if (status == LUA_OK) {
    if (eq) lua_pushlstring(L, spec, (size_t)(eq - spec));
    else lua_pushstring(L, mod);
    lua_insert(L, -2);
    lua_setglobal(L, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  return report(L, status);
}

/* LUA_INIT_5_4 (or LUA_INIT): "@file" runs a file, anything else is a chunk, before the options. */
static int run_lua_init(lua_State *L) {
  const char *name = "=LUA_INIT_5_4";
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return 1;
  if (init[0] == '@') return dochunk(L, luaL_loadfile(L, init + 1)) == LUA_OK;
  return dochunk(L, luaL_loadbuffer(L, init, strlen(init), name)) == LUA_OK;
}

/* Runs -e and -l in order; 0 on the first failure. */
static int run_args(lua_State *L, char **argv, int upto) {
  for (int i = 1; i < upto; i++) {
    const char *a = argv[i];
    int is_e = strncmp(a, "-e", 2) == 0, is_l = strncmp(a, "-l", 2) == 0;
    if (!is_e && !is_l) {
      if (strcmp(a, "--heap-map") == 0 || strcmp(a, "--limit") == 0) i++;
      continue;
    }
    const char *val = a[2] ? a + 2 : argv[++i];
    int status = is_e ? dochunk(L, luaL_loadbuffer(L, val, strlen(val), "=(command line)"))
                      : dolibrary(L, val);
    if (status != LUA_OK) return 0;
  }
  return 1;
}

/* The global `arg`: script at 0, its arguments at 1.., the interpreter's options below 0. */
static void create_arg(lua_State *L, int argc, char **argv, int script) {
  int base = script ? script : argc;
  lua_createtable(L, argc - base, base + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - base);
  }
  lua_setglobal(L, "arg");
}

static int run_script(lua_State *L, int argc, char **argv, int script) {
  const char *fname = argv[script];
  if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0) fname = NULL;   /* stdin */
  int status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = argc - script - 1;
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
    status = docall(L, n, LUA_MULTRET);
  }
  return report(L, status);
}

/* ---- The interactive loop -------------------------------------------------------------------- */
static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    if (len >= 5 && strcmp(msg + len - 5, "<eof>") == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

static void repl(lua_State *L) {
  char line[4096];
  for (;;) {
    fputs("> ", stdout);
    fflush(stdout);
    if (fgets(line, sizeof line, stdin) == NULL) break;
    /* First as an expression, whose values are printed. */
    lua_pushfstring(L, "return %s", line);
    int status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_rawlen(L, -1), "=stdin");
    lua_remove(L, -2);
    if (status != LUA_OK) {
      lua_pop(L, 1);
      lua_pushstring(L, line);           /* the chunk so far */
      for (;;) {
        size_t len;
        const char *code = lua_tolstring(L, -1, &len);
        status = luaL_loadbuffer(L, code, len, "=stdin");
        if (!incomplete(L, status)) break;
        fputs(">> ", stdout);
        fflush(stdout);
        if (fgets(line, sizeof line, stdin) == NULL) break;
        lua_pushstring(L, line);
        lua_concat(L, 2);
      }
      lua_remove(L, -2);                 /* the text; the function or error stays */
    }
    if (status == LUA_OK) {
      int base = lua_gettop(L);
      status = docall(L, 0, LUA_MULTRET);
      int n = lua_gettop(L) - base + 1;
      if (status == LUA_OK && n > 0) {
        lua_getglobal(L, "print");
        lua_insert(L, -n - 1);
        status = docall(L, n, 0);
      }
    }
    report(L, status);
    lua_settop(L, 0);
  }
  fputs("\n", stdout);
}

/* ---- At exit ----------------------------------------------------------------------------------- */
static void print_stats(lua_State *L) {
  apex_lua_usage_t u;
  if (apex_lua_usage_get(L, &u, sizeof u) != 0) return;
  fprintf(stderr, "apexlua: memory by Lua type (bytes as Lua counts them)\n");
  fprintf(stderr, "  %-9s %12s %14s %12s %14s\n", "type", "created", "created bytes", "live", "live bytes");
  for (int k = 0; k < APEX_LUA_KINDS; k++) {
    fprintf(stderr, "  %-9s %12zu %14zu", apex_lua_kind_name(k), u.created_objects[k], u.created_bytes[k]);
    if (u.live_exact) fprintf(stderr, " %12zu %14zu\n", u.live_objects[k], u.live_bytes[k]);
    else fprintf(stderr, " %12s %14s\n", "-", "-");
  }
  fprintf(stderr, "  live %zu bytes, peak %zu, refused requests %zu, limit %zu%s\n", u.live_total,
          u.live_peak, u.refused, u.limit, u.limit ? "" : " (none)");
  apex_stats_t s;
  if (apex_heap_stats_get(apex_lua_heap(L), &s, sizeof s) == 0)
    fprintf(stderr, "apexlua: heap: %zu bytes allocated (usable), %zu in %zu blocks, %zu free in blocks\n",
            s.allocated, s.blocks * 65536, s.blocks, s.free_in_blocks);
  if (apex_stats_get(&s, sizeof s) == 0)
    fprintf(stderr, "apexlua: process: %zu bytes mapped (peak %zu), %zu superblocks\n", s.mapped,
            s.mapped_peak, s.superblocks);
}

static void write_file(void *opaque, const char *text, size_t len) { fwrite(text, 1, len, (FILE *)opaque); }

static int write_heap_map(const char *path) {
  FILE *f = fopen(path, "wb");
  if (f == NULL) {
    fprintf(stderr, "%s: cannot write heap map '%s': %s\n", progname, path, strerror(errno));
    return 0;
  }
  size_t n = strlen(path);
  int json = n >= 5 && strcmp(path + n - 5, ".json") == 0;
  int rc = apex_heap_map(write_file, f, json ? APEX_FORMAT_JSON : APEX_FORMAT_SVG);
  return fclose(f) == 0 && rc == 0;
}

static int open_libs(lua_State *L) {
  luaL_openlibs(L);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 0 && argv[0][0]) progname = argv[0];
  options_t o = { 0 };
  if (!parse_args(argc, argv, &o)) {
    usage();
    return 1;
  }
  apex_lua_options_t lo = { .size = sizeof lo, .limit = o.limit, .track_types = !o.no_types };
  lua_State *L = apex_lua_newstate(&lo);
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create state: %s\n", progname, strerror(errno));
    return 1;
  }
  int ok = 1;
  /* The libraries, then the module built in (package.preload), all under protection. */
  lua_pushcfunction(L, msghandler);
  lua_pushcfunction(L, open_libs);
  ok = report(L, lua_pcall(L, 0, 0, 1)) == LUA_OK;
  lua_settop(L, 0);
  if (ok) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_apexalloc);
    lua_setfield(L, -2, "apexalloc");
    lua_pop(L, 1);
    create_arg(L, argc, argv, o.script);
    lua_gc(L, LUA_GCRESTART);
    lua_gc(L, LUA_GCGEN, 0, 0);          /* as lua.c: generational mode by default */
    if (o.version) printf("%s (on ApexAlloc %s)\n", LUA_COPYRIGHT, apex_version_string());
    ok = run_lua_init(L) && run_args(L, argv, o.script ? o.script : argc);
    if (ok && o.script) ok = run_script(L, argc, argv, o.script) == LUA_OK;
    if (ok && o.interactive) repl(L);
    else if (ok && !o.script && !o.ran_code && !o.version) {
      if (isatty(0)) {
        printf("%s (on ApexAlloc %s)\n", LUA_COPYRIGHT, apex_version_string());
        repl(L);
      } else {
        ok = dochunk(L, luaL_loadfile(L, NULL)) == LUA_OK;   /* as lua.c: run stdin */
      }
    }
  }
  if (o.heap_map && !write_heap_map(o.heap_map)) ok = 0;
  if (o.stats) print_stats(L);
  apex_lua_close(L);
  return ok ? 0 : 1;
}
