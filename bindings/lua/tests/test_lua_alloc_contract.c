/* apex_lua_alloc follows the lua_Alloc contract of the Lua 5.4 manual case by case, and its
 * per-type accounting moves with every call: called directly, as Lua would call it. */
#include <errno.h>
#include <string.h>

#include "apexlua.h"
#include "check.h"

static apex_lua_usage_t usage_of(apex_lua_ctx_t *c) {
  apex_lua_usage_t u;
  CHECK(apex_lua_context_usage(c, &u, sizeof u) == 0, "usage refused");
  return u;
}

int main(void) {
  apex_lua_ctx_t *c = apex_lua_context_new(NULL);
  CHECK(c != NULL, "context");
  /* (NULL, tag, 0) asks for nothing and gets NULL. */
  CHECK(apex_lua_alloc(c, NULL, LUA_TTABLE, 0) == NULL, "(NULL, tag, 0) returned memory");
  /* (NULL, tag, n): a new object of that type; the tag is counted, never used as a size. */
  char *s = apex_lua_alloc(c, NULL, LUA_TSTRING, 40);
  CHECK(s != NULL && ((uintptr_t)s & 15) == 0, "string not allocated or misaligned");
  memset(s, 'x', 40);
  apex_lua_usage_t u = usage_of(c);
  CHECK(u.created_objects[APEX_LUA_STRING] == 1 && u.created_bytes[APEX_LUA_STRING] == 40, "string not counted");
  CHECK(u.live_objects[APEX_LUA_STRING] == 1 && u.live_bytes[APEX_LUA_STRING] == 40, "live string not counted");
  CHECK(u.live_total == 40 && u.live_exact, "total %zu", u.live_total);
  /* Tags Lua 5.4 passes for every type, and "other" for anything else (0, upvalues, protos). */
  static const struct { size_t tag; int kind; } tags[] = {
    { LUA_TTABLE, APEX_LUA_TABLE }, { LUA_TFUNCTION, APEX_LUA_FUNCTION },
    { LUA_TUSERDATA, APEX_LUA_USERDATA }, { LUA_TTHREAD, APEX_LUA_THREAD },
    { 0, APEX_LUA_OTHER }, { LUA_NUMTYPES + 1, APEX_LUA_OTHER }, { 12345, APEX_LUA_OTHER },
  };
  void *objs[7];
  for (int i = 0; i < 7; i++) {
    objs[i] = apex_lua_alloc(c, NULL, tags[i].tag, 100 + (size_t)i);
    CHECK(objs[i] != NULL, "tag %zu", tags[i].tag);
  }
  u = usage_of(c);
  CHECK(u.created_objects[APEX_LUA_OTHER] == 3 && u.live_objects[APEX_LUA_OTHER] == 3, "other: %zu", u.created_objects[APEX_LUA_OTHER]);
  CHECK(u.live_bytes[APEX_LUA_OTHER] == 104 + 105 + 106, "other bytes %zu", u.live_bytes[APEX_LUA_OTHER]);
  for (int k = APEX_LUA_TABLE; k <= APEX_LUA_THREAD; k++)
    CHECK(u.live_objects[k] == 1 && u.live_bytes[k] == 100 + (size_t)k - 1, "kind %s", apex_lua_kind_name(k));
  /* (p, osize, n): realloc keeps the contents, for plain and typed blocks alike. */
  char *v = apex_lua_alloc(c, NULL, 0, 16);
  memcpy(v, "lua vector", 11);
  for (size_t n = 16; n < 200000; n *= 3) {
    v = apex_lua_alloc(c, v, n, n * 3);
    CHECK(v != NULL && strcmp(v, "lua vector") == 0, "grow to %zu lost data", n * 3);
  }
  char *s2 = apex_lua_alloc(c, s, 40, 4000);
  CHECK(s2 != NULL && s2[39] == 'x' && s2[0] == 'x', "typed realloc lost data");
  u = usage_of(c);
  CHECK(u.live_bytes[APEX_LUA_STRING] == 4000, "typed realloc not accounted: %zu", u.live_bytes[APEX_LUA_STRING]);
  /* (p, osize, 0) frees and returns NULL. */
  CHECK(apex_lua_alloc(c, s2, 4000, 0) == NULL, "free returned memory");
  CHECK(apex_lua_alloc(c, v, 314928, 0) == NULL, "free of a vector returned memory");
  for (int i = 0; i < 7; i++) CHECK(apex_lua_alloc(c, objs[i], 100 + (size_t)i, 0) == NULL, "free");
  u = usage_of(c);
  for (int k = 0; k < APEX_LUA_KINDS; k++)
    CHECK(u.live_objects[k] == 0 && u.live_bytes[k] == 0, "%s still live: %zu objects, %zu bytes",
          apex_lua_kind_name(k), u.live_objects[k], u.live_bytes[k]);
  CHECK(u.created_objects[APEX_LUA_STRING] == 1, "a realloc counted as a creation");
  CHECK(apex_lua_context_destroy(c) == 0, "destroy");

  /* Under a limit: growing fails with NULL (the block stays valid), a shrink never fails. */
  apex_lua_options_t o = { .size = sizeof o, .limit = 1 << 20, .track_types = 1 };
  c = apex_lua_context_new(&o);
  CHECK(c != NULL, "limited context");
  void *big = apex_lua_alloc(c, NULL, 0, 600 << 10);
  CHECK(big != NULL, "600 KiB under a 1 MiB limit");
  memset(big, 7, 600 << 10);
  void *fill[4096];
  size_t n = 0;
  while (n < 4096 && (fill[n] = apex_lua_alloc(c, NULL, LUA_TSTRING, 200)) != NULL) n++;
  CHECK(n > 100 && n < 4096, "%zu strings of 200 bytes before the limit", n);
  CHECK(apex_lua_alloc(c, big, 600 << 10, 700 << 10) == NULL, "grew past the limit");
  CHECK(((unsigned char *)big)[(600 << 10) - 1] == 7, "failed grow damaged the block");
  /* 100 bytes would move to a small chunk, and there is no room: it must stay in place. */
  void *q = apex_lua_alloc(c, big, 600 << 10, 100);
  CHECK(q != NULL && ((unsigned char *)q)[99] == 7, "a shrink failed at the limit");
  u = usage_of(c);
  CHECK(u.refused >= 2 && u.limit == (1 << 20), "refusals %zu", u.refused);
  for (size_t i = 0; i < n; i++) apex_lua_alloc(c, fill[i], 200, 0);
  CHECK(apex_lua_alloc(c, NULL, LUA_TSTRING, 200) != NULL, "no allocation after frees");
  CHECK(apex_lua_context_destroy(c) == 0, "destroy limited");

  /* Without type records: totals only. */
  o.track_types = 0;
  o.limit = 0;
  c = apex_lua_context_new(&o);
  void *t = apex_lua_alloc(c, NULL, LUA_TTABLE, 56);
  u = usage_of(c);
  CHECK(!u.live_exact && u.live_bytes[APEX_LUA_TABLE] == 0 && u.created_objects[APEX_LUA_TABLE] == 1 &&
        u.live_total == 56, "untracked figures");
  CHECK(apex_owns(t), "an untracked object is a plain chunk");
  apex_lua_alloc(c, t, 56, 0);
  CHECK(apex_lua_context_destroy(c) == 0, "destroy untracked");

  /* Bad options and contexts. */
  apex_lua_options_t bad = { .size = 3 };
  errno = 0;
  CHECK(apex_lua_context_new(&bad) == NULL && errno == EINVAL, "bad options accepted");
  CHECK(apex_lua_context_destroy(NULL) == EINVAL, "NULL destroyed");
  return 0;
}
