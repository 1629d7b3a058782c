/*
 * apexalloc_natives.c — the parts of the `apexalloc` module that need the lua_State itself: the
 * state's allocator (install, usage) and heaps as Lua values (heap{...}, with blocks). It is
 * compiled inside the SWIG wrapper (apexalloc.i includes it), so that it can hand out snapshots as
 * the same struct userdata as the raw layer; luaopen_apexalloc then runs the Lua layer
 * (apexalloc.lua) over both. It must never leave a pointer into a destroyed heap reachable from
 * Lua: a block reaches its memory only through its heap, which knows whether it is destroyed.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>

#include "apexlua.h"
#include "apexalloc_lua_layer.h"        /* generated: the text of apexalloc.lua */

#define HEAP_MT  "apexalloc.heap"
#define BLOCK_MT "apexalloc.block"

/* ---- The running state's allocator ----------------------------------------------------------- */
static int options_from_table(lua_State *L, int idx, apex_lua_options_t *o) {
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->track_types = 1;
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  if (lua_getfield(L, idx, "limit") != LUA_TNIL) {
    lua_Integer v = luaL_checkinteger(L, -1);
    if (v < 0) luaL_error(L, "apexalloc: limit must be >= 0 (got %I)", (LUAI_UACINT)v);
    o->limit = (size_t)v;
  }
  if (lua_getfield(L, idx, "track_types") != LUA_TNIL) o->track_types = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return 0;
}

static int native_install(lua_State *L) {
  apex_lua_options_t o;
  options_from_table(L, 1, &o);
  int rc = apex_lua_install(L, &o);
  if (rc == EEXIST) {                    /* already on ApexAlloc: nothing to do */
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "this state already runs on ApexAlloc");
    return 2;
  }
  if (rc != 0) return luaL_error(L, "apexalloc.install: %s", strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

static void set_size(lua_State *L, const char *k, size_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static int native_usage(lua_State *L) {
  apex_lua_usage_t u;
  if (apex_lua_usage_get(L, &u, sizeof u) != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "this state does not run on ApexAlloc (see apexalloc.install)");
    return 2;
  }
  /* Lua's own count, read at the same moment: total + foreign equals it. */
  size_t lua_bytes = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
  lua_createtable(L, 0, APEX_LUA_KINDS + 9);
  for (int k = 0; k < APEX_LUA_KINDS; k++) {
    lua_createtable(L, 0, 4);
    set_size(L, "created_objects", u.created_objects[k]);
    set_size(L, "created_bytes", u.created_bytes[k]);
    if (u.live_exact) {
      set_size(L, "live_objects", u.live_objects[k]);
      set_size(L, "live_bytes", u.live_bytes[k]);
    }
    lua_setfield(L, -2, apex_lua_kind_name(k));
  }
  set_size(L, "total", u.live_total);
  set_size(L, "lua_bytes", lua_bytes);
  set_size(L, "peak", u.live_peak);
  set_size(L, "foreign", u.foreign_live);
  set_size(L, "refused", u.refused);
  set_size(L, "limit", u.limit);
  lua_pushboolean(L, u.live_exact);
  lua_setfield(L, -2, "exact");
  lua_pushboolean(L, u.installed);
  lua_setfield(L, -2, "installed");
  return 1;
}

/* The heap under the running state, as a SWIG snapshot (nil when not on ApexAlloc). */
static int native_state_stats(lua_State *L) {
  apex_heap_t *h = apex_lua_heap(L);
  if (h == NULL) return 0;
  apex_stats_t *s = (apex_stats_t *)calloc(1, sizeof *s);
  if (s == NULL || apex_heap_stats_get(h, s, sizeof *s) != 0) {
    free(s);
    return luaL_error(L, "apexalloc: heap statistics unavailable");
  }
  SWIG_NewPointerObj(L, s, SWIGTYPE_p_apex_stats_s, 1);
  return 1;
}

/* ---- Heaps and their blocks ------------------------------------------------------------------- */
static int block_free_at(lua_State *L, int idx);
typedef struct { apex_heap_t *heap; size_t limit; } lua_heap_t;
typedef struct { void *p; size_t size; } lua_block_t;

static lua_heap_t *check_heap(lua_State *L, int idx, int must_live) {
  lua_heap_t *h = (lua_heap_t *)luaL_checkudata(L, idx, HEAP_MT);
  if (must_live && h->heap == NULL) luaL_error(L, "apexalloc: heap is destroyed");
  return h;
}

static int heap_new(lua_State *L) {
  apex_lua_options_t o;
  options_from_table(L, 1, &o);
  lua_heap_t *h = (lua_heap_t *)lua_newuserdatauv(L, sizeof *h, 0);
  h->heap = NULL;
  h->limit = o.limit;
  luaL_setmetatable(L, HEAP_MT);
  apex_heap_options_t ho = { sizeof ho, o.limit };
  h->heap = apex_heap_new_ex(&ho);
  if (h->heap == NULL) return luaL_error(L, "apexalloc.heap: %s", strerror(errno));
  return 1;
}

static int heap_destroy(lua_State *L) {
  lua_heap_t *h = check_heap(L, 1, 0);
  if (h->heap != NULL) {
    apex_heap_t *dying = h->heap;
    h->heap = NULL;                      /* first: no block can reach it any more */
    apex_heap_destroy(dying);
  }
  return 0;
}

static int heap_alloc(lua_State *L) {
  lua_heap_t *h = check_heap(L, 1, 1);
  lua_Integer size = luaL_checkinteger(L, 2);
  lua_Integer align = luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, size >= 0, 2, "size must be >= 0");
  luaL_argcheck(L, align >= 0 && (align & (align - 1)) == 0, 3, "alignment must be 0 or a power of two");
  lua_block_t *b = (lua_block_t *)lua_newuserdatauv(L, sizeof *b, 1);
  b->p = NULL;
  b->size = 0;
  luaL_setmetatable(L, BLOCK_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);           /* the block keeps its heap alive (and knows its fate) */
  void *p = apex_heap_alloc(h->heap, (size_t)size, (size_t)align);
  if (p == NULL) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "apexalloc: %s (%I bytes%s)", strerror(e), (LUAI_UACINT)size,
                    h->limit ? ", heap limit reached" : "");
    return 2;
  }
  b->p = p;
  b->size = (size_t)size;
  return 1;
}

static int heap_stats_raw(lua_State *L) {
  lua_heap_t *h = check_heap(L, 1, 1);
  apex_stats_t *s = (apex_stats_t *)calloc(1, sizeof *s);
  if (s == NULL || apex_heap_stats_get(h->heap, s, sizeof *s) != 0) {
    free(s);
    return luaL_error(L, "apexalloc: heap statistics unavailable");
  }
  SWIG_NewPointerObj(L, s, SWIGTYPE_p_apex_stats_s, 1);
  return 1;
}

/* h:visit() -> list of the usable sizes of the heap's live objects, in the walk's order. The walk
 * only records into malloc'd memory: the core may hold a lock while it walks. */
typedef struct { size_t *size; size_t n, cap; } sizes_t;
static int record_size(void *ptr, size_t usable, void *arg) {
  (void)ptr;
  sizes_t *v = (sizes_t *)arg;
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 256;
    size_t *grown = (size_t *)realloc(v->size, cap * sizeof *grown);
    if (grown == NULL) return ENOMEM;
    v->size = grown;
    v->cap = cap;
  }
  v->size[v->n++] = usable;
  return 0;
}

static int heap_visit(lua_State *L) {
  lua_heap_t *h = check_heap(L, 1, 1);
  sizes_t v = { NULL, 0, 0 };
  int rc = apex_heap_visit(h->heap, record_size, &v);
  if (rc != 0) {
    free(v.size);
    return luaL_error(L, "apexalloc: heap visit failed: %s", strerror(rc));
  }
  lua_createtable(L, (int)(v.n < INT32_MAX ? v.n : 0), 0);
  for (size_t i = 0; i < v.n; i++) {
    lua_pushinteger(L, (lua_Integer)v.size[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  free(v.size);
  return 1;
}

/* h:free(block): the same as block:free(), checking that the block is this heap's. */
static int heap_free_block(lua_State *L) {
  check_heap(L, 1, 1);
  luaL_checkudata(L, 2, BLOCK_MT);
  lua_getiuservalue(L, 2, 1);
  luaL_argcheck(L, lua_rawequal(L, -1, 1), 2, "block of another heap");
  lua_pop(L, 1);
  return block_free_at(L, 2);
}

static int heap_alive(lua_State *L) {
  lua_pushboolean(L, check_heap(L, 1, 0)->heap != NULL);
  return 1;
}

static int heap_tostring(lua_State *L) {
  lua_heap_t *h = check_heap(L, 1, 0);
  if (h->heap == NULL) lua_pushliteral(L, "apexalloc.heap (destroyed)");
  else lua_pushfstring(L, "apexalloc.heap (%p)", (void *)h->heap);
  return 1;
}

/* A block's memory, or a Lua error when it was freed or its heap destroyed. */
static lua_block_t *live_block(lua_State *L, int idx) {
  lua_block_t *b = (lua_block_t *)luaL_checkudata(L, idx, BLOCK_MT);
  lua_getiuservalue(L, idx, 1);
  lua_heap_t *h = (lua_heap_t *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (h == NULL || h->heap == NULL) luaL_error(L, "apexalloc: block of a destroyed heap");
  if (b->p == NULL) luaL_error(L, "apexalloc: block already freed");
  return b;
}

static int block_free_at(lua_State *L, int idx) {
  lua_block_t *b = live_block(L, idx);
  apex_free(b->p);
  b->p = NULL;
  return 0;
}
static int block_free(lua_State *L) { return block_free_at(L, 1); }

static int block_gc(lua_State *L) {
  lua_block_t *b = (lua_block_t *)lua_touserdata(L, 1);
  lua_getiuservalue(L, 1, 1);
  lua_heap_t *h = (lua_heap_t *)lua_touserdata(L, -1);
  if (b->p != NULL && h != NULL && h->heap != NULL) apex_free(b->p);
  b->p = NULL;
  return 0;
}

static int block_size(lua_State *L) {
  lua_block_t *b = live_block(L, 1);
  lua_pushinteger(L, (lua_Integer)b->size);
  lua_pushinteger(L, (lua_Integer)apex_usable_size(b->p));
  return 2;
}

/* Byte ranges are checked against the size asked for: offsets are 0-based. */
static size_t checked_range(lua_State *L, lua_block_t *b, lua_Integer off, size_t len) {
  if (off < 0 || (size_t)off > b->size || len > b->size - (size_t)off)
    luaL_error(L, "apexalloc: range %I+%I outside the block's %I bytes", (LUAI_UACINT)off,
               (LUAI_UACINT)len, (LUAI_UACINT)b->size);
  return (size_t)off;
}

static int block_write(lua_State *L) {
  lua_block_t *b = live_block(L, 1);
  lua_Integer off = luaL_checkinteger(L, 2);
  size_t len;
  const char *s = luaL_checklstring(L, 3, &len);
  memcpy((char *)b->p + checked_range(L, b, off, len), s, len);
  return 0;
}

static int block_read(lua_State *L) {
  lua_block_t *b = live_block(L, 1);
  lua_Integer off = luaL_optinteger(L, 2, 0);
  lua_Integer len = luaL_optinteger(L, 3, (lua_Integer)b->size - off);
  luaL_argcheck(L, len >= 0, 3, "length must be >= 0");
  size_t at = checked_range(L, b, off, (size_t)len);
  lua_pushlstring(L, (const char *)b->p + at, (size_t)len);
  return 1;
}

static int block_tostring(lua_State *L) {
  lua_block_t *b = (lua_block_t *)luaL_checkudata(L, 1, BLOCK_MT);
  lua_pushfstring(L, "apexalloc.block (%I bytes%s)", (LUAI_UACINT)b->size, b->p ? "" : ", freed");
  return 1;
}

static const luaL_Reg heap_methods[] = {
  { "alloc", heap_alloc }, { "stats_raw", heap_stats_raw }, { "destroy", heap_destroy },
  { "alive", heap_alive }, { "visit", heap_visit }, { "free", heap_free_block }, { NULL, NULL }
};
static const luaL_Reg block_methods[] = {
  { "free", block_free }, { "size", block_size }, { "write", block_write }, { "read", block_read },
  { NULL, NULL }
};

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                      lua_CFunction close, lua_CFunction tostring) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  if (close != NULL) {
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
  }
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
}

/* ---- The module ----------------------------------------------------------------------------- */
int luaopen_apexalloc_raw(lua_State *L);

/* `native` as the Lua layer receives it. */
static void push_natives(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "install", native_install }, { "usage", native_usage }, { "state_stats", native_state_stats },
    { "heap", heap_new }, { NULL, NULL }
  };
  luaL_newlib(L, fns);
  new_class(L, HEAP_MT, heap_methods, heap_destroy, heap_destroy, heap_tostring);
  lua_setfield(L, -2, "heap_class");
  new_class(L, BLOCK_MT, block_methods, block_gc, NULL, block_tostring);
  lua_setfield(L, -2, "block_class");
  static const struct { const char *name; int value; } errnos[] = {
    { "ENOENT", ENOENT }, { "EINVAL", EINVAL }, { "EPERM", EPERM }, { "ENOMEM", ENOMEM },
    { "EEXIST", EEXIST }
  };
  for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++) {
    lua_pushinteger(L, errnos[i].value);
    lua_setfield(L, -2, errnos[i].name);
  }
}

SWIGEXPORT int luaopen_apexalloc(lua_State *L) {
  if (luaL_loadbuffer(L, (const char *)apexalloc_lua_layer, sizeof apexalloc_lua_layer,
                      "=apexalloc.lua") != LUA_OK)
    return lua_error(L);
  lua_pushcfunction(L, luaopen_apexalloc_raw);
  lua_call(L, 0, 1);
  push_natives(L);
  lua_call(L, 2, 1);
  return 1;
}
