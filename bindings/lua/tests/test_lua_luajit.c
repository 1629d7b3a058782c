/* LuaJIT on ApexAlloc: lua_newstate(apex_lua_alloc, ctx) with Debian's libluajit-5.1 (a GC64
 * build on x86-64, which accepts custom allocators; a non-GC64 build refuses them on 64-bit
 * hosts and returns NULL). LuaJIT's API is the 5.1 one, so the few functions needed are looked up
 * with dlsym rather than compiled against a second lua.h. The GC workload must give the same
 * answer as on LuaJIT's own allocator, the accounting must equal LuaJIT's count, and every
 * pointer must stay below 2^47 as LuaJIT requires. LuaJIT passes no type tags: all is "other". */
#define _GNU_SOURCE 1   /* RTLD_DEEPBIND */
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include "apexlua.h"
#include "check.h"

typedef struct jit_state jit_State;
typedef void *(*jit_Alloc)(void *, void *, size_t, size_t);
static jit_State *(*jit_newstate)(jit_Alloc, void *);
static jit_State *(*jit_L_newstate)(void);
static void (*jit_openlibs)(jit_State *);
static int (*jit_loadfile)(jit_State *, const char *);
static int (*jit_pcall)(jit_State *, int, int, int);
static void (*jit_pushinteger)(jit_State *, ptrdiff_t);
static double (*jit_tonumber)(jit_State *, int);
static const char *(*jit_tolstring)(jit_State *, int, size_t *);
static int (*jit_gc)(jit_State *, int, int);
static void (*jit_close)(jit_State *);
enum { JIT_GCCOUNT = 3, JIT_GCCOUNTB = 4, JIT_GCCOLLECT = 2 };

static void *sym(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  CHECK(p != NULL, "LuaJIT lacks %s", name);
  return p;
}

/* Highest pointer handed to LuaJIT, checked against its 47-bit limit. */
static uintptr_t highest;
static void *watching_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  void *p = apex_lua_alloc(ud, ptr, osize, nsize);
  if ((uintptr_t)p > highest) highest = (uintptr_t)p;
  return p;
}

static double run_workload(jit_State *L, const char *path) {
  CHECK(jit_loadfile(L, path) == 0, "load: %s", jit_tolstring(L, -1, NULL));
  CHECK(jit_pcall(L, 0, 1, 0) == 0, "chunk: %s", jit_tolstring(L, -1, NULL));
  jit_pushinteger(L, 1);
  CHECK(jit_pcall(L, 1, 1, 0) == 0, "workload: %s", jit_tolstring(L, -1, NULL));
  return jit_tonumber(L, -1);
}

int main(int argc, char **argv) {
  CHECK(argc == 3, "usage: test_lua_luajit LIBLUAJIT TESTS_DIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/gc_workload.lua", argv[2]);
  /* DEEPBIND: LuaJIT must bind to its own lua_* symbols, not to the Lua 5.4 this test links. */
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  CHECK(lib != NULL, "dlopen: %s", dlerror());
  jit_newstate = (jit_State * (*)(jit_Alloc, void *))sym(lib, "lua_newstate");
  jit_L_newstate = (jit_State * (*)(void))sym(lib, "luaL_newstate");
  jit_openlibs = (void (*)(jit_State *))sym(lib, "luaL_openlibs");
  jit_loadfile = (int (*)(jit_State *, const char *))sym(lib, "luaL_loadfile");
  jit_pcall = (int (*)(jit_State *, int, int, int))sym(lib, "lua_pcall");
  jit_pushinteger = (void (*)(jit_State *, ptrdiff_t))sym(lib, "lua_pushinteger");
  jit_tonumber = (double (*)(jit_State *, int))sym(lib, "lua_tonumber");
  jit_tolstring = (const char *(*)(jit_State *, int, size_t *))sym(lib, "lua_tolstring");
  jit_gc = (int (*)(jit_State *, int, int))sym(lib, "lua_gc");
  jit_close = (void (*)(jit_State *))sym(lib, "lua_close");

  jit_State *stock = jit_L_newstate();
  jit_openlibs(stock);
  double want = run_workload(stock, path);
  jit_close(stock);

  apex_lua_ctx_t *ctx = apex_lua_context_new(NULL);
  CHECK(ctx != NULL, "context");
  jit_State *L = jit_newstate(watching_alloc, ctx);
  CHECK(L != NULL, "this LuaJIT refuses custom allocators (not a GC64 build): use luaL_newstate");
  jit_openlibs(L);
  double got = run_workload(L, path);
  CHECK(got == want, "LuaJIT on ApexAlloc computed %.0f, on its own allocator %.0f", got, want);
  jit_gc(L, JIT_GCCOLLECT, 0);
  apex_lua_usage_t u;
  CHECK(apex_lua_context_usage(ctx, &u, sizeof u) == 0, "usage");
  size_t counted = (size_t)jit_gc(L, JIT_GCCOUNT, 0) * 1024 + (size_t)jit_gc(L, JIT_GCCOUNTB, 0);
  CHECK(u.live_total == counted, "accounting %zu, LuaJIT counts %zu", u.live_total, counted);
  CHECK(u.created_objects[APEX_LUA_OTHER] > 100000, "LuaJIT's allocations not seen (%zu)", u.created_objects[APEX_LUA_OTHER]);
  CHECK(u.live_peak > u.live_total, "no collection happened");
  CHECK(highest < ((uintptr_t)1 << 47), "pointer %#lx above LuaJIT's 47-bit limit", (unsigned long)highest);
  jit_close(L);
  CHECK(apex_lua_context_usage(ctx, &u, sizeof u) == 0 && u.live_total == 0, "%zu bytes left after lua_close", u.live_total);
  CHECK(apex_lua_context_destroy(ctx) == 0, "destroy");
  printf("LuaJIT on ApexAlloc: workload %.0f, peak %zu bytes\n", got, u.live_peak);
  return 0;
}
