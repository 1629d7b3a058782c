/* States on ApexAlloc: a GC-heavy workload in both collector modes with the accounting equal to
 * Lua's own count; per-type figures that follow the script; a limit that becomes "not enough
 * memory" inside pcall with the state usable afterwards; closing gives the memory back. */
#include <errno.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "apexlua.h"
#include "check.h"

static size_t lua_bytes(lua_State *L) {
  return (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
}

static apex_lua_usage_t usage(lua_State *L) {
  apex_lua_usage_t u;
  CHECK(apex_lua_usage_get(L, &u, sizeof u) == 0, "usage refused");
  /* The accounting's total is exactly what Lua believes it holds. */
  CHECK(u.live_total == lua_bytes(L), "live_total %zu, Lua counts %zu", u.live_total, lua_bytes(L));
  size_t sum = 0;
  for (int k = 0; k < APEX_LUA_KINDS; k++) sum += u.live_bytes[k];
  CHECK(sum == u.live_total, "types add up to %zu, total %zu", sum, u.live_total);
  return u;
}

static void run(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) CHECK(0, "%s: %s", code, lua_tostring(L, -1));
}

static size_t mapped(void) {
  apex_stats_t s;
  CHECK(apex_stats_get(&s, sizeof s) == 0, "stats");
  return s.mapped;
}

int main(void) {
  const char *dir = getenv("APEX_LUA_TESTS");
  CHECK(dir != NULL, "APEX_LUA_TESTS (the tests' folder) not set");
  char path[4096];
  snprintf(path, sizeof path, "%s/gc_workload.lua", dir);

  /* The core keeps heap descriptors for reuse (in 64 KiB of metadata): one state opened and
   * closed first sets that up, so what follows measures the states themselves. */
  CHECK(apex_lua_close(apex_lua_newstate(NULL)) == 0, "first state");
  apex_collect();
  size_t mapped_before = mapped();
  long long checksum[2];
  for (int mode = 0; mode < 2; mode++) {
    lua_State *L = apex_lua_newstate(NULL);
    CHECK(L != NULL, "newstate");
    luaL_openlibs(L);
    lua_gc(L, mode == 0 ? LUA_GCINC : LUA_GCGEN, 0, 0);
    apex_lua_usage_t u0 = usage(L);
    CHECK(u0.created_objects[APEX_LUA_THREAD] == 1, "the main thread was not tagged");
    CHECK(u0.created_objects[APEX_LUA_USERDATA] >= 3, "io's standard files are userdata");
    CHECK(luaL_dofile(L, path) == LUA_OK, "%s", lua_tostring(L, -1));
    lua_pushinteger(L, 2);
    CHECK(lua_pcall(L, 1, 1, 0) == LUA_OK, "workload: %s", lua_tostring(L, -1));
    checksum[mode] = lua_tointeger(L, -1);
    lua_pop(L, 1);
    apex_lua_usage_t u1 = usage(L);
    /* 40 rounds: 80000 records (2 tables and 1+ strings each), 40000 closures, 2000 coroutines. */
    CHECK(u1.created_objects[APEX_LUA_TABLE] - u0.created_objects[APEX_LUA_TABLE] >= 160000, "tables %zu",
          u1.created_objects[APEX_LUA_TABLE] - u0.created_objects[APEX_LUA_TABLE]);
    CHECK(u1.created_objects[APEX_LUA_STRING] - u0.created_objects[APEX_LUA_STRING] >= 80000, "strings");
    CHECK(u1.created_objects[APEX_LUA_FUNCTION] - u0.created_objects[APEX_LUA_FUNCTION] >= 40000, "closures");
    CHECK(u1.created_objects[APEX_LUA_THREAD] - u0.created_objects[APEX_LUA_THREAD] == 2000, "coroutines %zu",
          u1.created_objects[APEX_LUA_THREAD] - u0.created_objects[APEX_LUA_THREAD]);
    CHECK(u1.live_peak > u1.live_total, "the collector never freed anything");

    /* Per-type live figures follow what the script holds, and drop when it lets go (the
     * collector is stopped meanwhile, so nothing else can go down). */
    run(L, "collectgarbage() collectgarbage('stop')");
    u1 = usage(L);
    run(L, "held = {} for i = 1, 20000 do held[i] = {} end");
    apex_lua_usage_t u2 = usage(L);
    CHECK(u2.live_objects[APEX_LUA_TABLE] >= u1.live_objects[APEX_LUA_TABLE] + 20000, "live tables %zu -> %zu",
          u1.live_objects[APEX_LUA_TABLE], u2.live_objects[APEX_LUA_TABLE]);
    CHECK(u2.live_bytes[APEX_LUA_TABLE] >= u1.live_bytes[APEX_LUA_TABLE] + 20000 * 56, "live table bytes");
    run(L, "strs = {} for i = 1, 10000 do strs[i] = ('s'):rep(100) .. i end");
    apex_lua_usage_t u3 = usage(L);
    CHECK(u3.live_bytes[APEX_LUA_STRING] >= u2.live_bytes[APEX_LUA_STRING] + 10000 * 100, "live string bytes");
    lua_newuserdatauv(L, 12345, 0);
    apex_lua_usage_t u4 = usage(L);
    CHECK(u4.live_objects[APEX_LUA_USERDATA] == u3.live_objects[APEX_LUA_USERDATA] + 1 &&
          u4.live_bytes[APEX_LUA_USERDATA] >= u3.live_bytes[APEX_LUA_USERDATA] + 12345, "userdata");
    lua_pop(L, 1);
    run(L, "held = nil strs = nil collectgarbage('restart') collectgarbage() collectgarbage()");
    apex_lua_usage_t u5 = usage(L);
    CHECK(u5.live_objects[APEX_LUA_TABLE] + 20000 <= u4.live_objects[APEX_LUA_TABLE], "tables not freed");
    CHECK(u5.live_bytes[APEX_LUA_STRING] + 10000 * 100 <= u4.live_bytes[APEX_LUA_STRING], "strings not freed");
    CHECK(u5.live_objects[APEX_LUA_USERDATA] < u4.live_objects[APEX_LUA_USERDATA] && u5.live_bytes[APEX_LUA_USERDATA] + 12345 <= u4.live_bytes[APEX_LUA_USERDATA], "userdata not freed: %zu, %zu, %zu", u3.live_objects[APEX_LUA_USERDATA], u4.live_objects[APEX_LUA_USERDATA], u5.live_objects[APEX_LUA_USERDATA]);
    CHECK(apex_lua_close(L) == 0, "close");
  }
  CHECK(checksum[0] == checksum[1], "the two collector modes computed %lld and %lld", checksum[0], checksum[1]);

  /* A limit: Lua's own "not enough memory", caught by pcall; the state goes on afterwards. */
  apex_lua_options_t o = { .size = sizeof o, .limit = 8 << 20, .track_types = 1 };
  lua_State *L = apex_lua_newstate(&o);
  CHECK(L != NULL, "limited state");
  luaL_openlibs(L);
  run(L, "ok, err = pcall(function() local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(64) .. i end end)");
  run(L, "assert(ok == false, 'the loop ended without an error') "
         "assert(err:find('not enough memory'), 'error was: ' .. tostring(err))");
  apex_lua_usage_t u = usage(L);
  CHECK(u.refused > 0, "no refusal counted");
  CHECK(u.live_peak > (6 << 20), "peak %zu never came near the 8 MiB limit", u.live_peak);
  run(L, "local t = {} for i = 1, 10000 do t[i] = tostring(i) end "
         "assert(#table.concat(t) == 38894, 'state broken after the error')");
  /* And again: the limit keeps holding. */
  run(L, "ok, err = pcall(string.rep, 'x', 64 << 20) assert(not ok and err:find('not enough memory'))");
  CHECK(apex_lua_close(L) == 0, "close limited");

  /* A limit too small for an empty state: NULL, ENOMEM. */
  o.limit = 1000;
  errno = 0;
  CHECK(apex_lua_newstate(&o) == NULL && errno == ENOMEM, "a 1000-byte state was created");

  /* What the states mapped went back when they were closed. */
  size_t mapped_after = mapped();
  CHECK(mapped_after <= mapped_before, "mapped %zu before the states, %zu after closing them",
        mapped_before, mapped_after);

  /* Not a state of ours: refused. */
  lua_State *stock = luaL_newstate();
  apex_lua_usage_t ux;
  CHECK(apex_lua_usage_get(stock, &ux, sizeof ux) == EINVAL, "usage of a stock state");
  CHECK(apex_lua_close(stock) == EINVAL, "closed a stock state");
  lua_close(stock);
  return 0;
}
