/*
 * apexlua.h — ApexAlloc as a Lua 5.4 allocator (lua_Alloc), for programs that embed Lua.
 *
 *   lua_State *L = apex_lua_newstate(NULL);      // a state on its own ApexAlloc heap
 *   luaL_openlibs(L); ... ; apex_lua_close(L);    // closing destroys the heap
 *
 * The allocator follows the lua_Alloc contract of the Lua 5.4 manual (section 4.6) case by case:
 *   (ud, NULL, tag, n)   n > 0: allocates n bytes; `tag` is the type of the object being created
 *                        (LUA_TSTRING .. LUA_TTHREAD) or another value for other memory;
 *   (ud, NULL, tag, 0)   returns NULL;
 *   (ud, p, osize, 0)    frees p and returns NULL;
 *   (ud, p, osize, n)    resizes p like realloc; returns NULL (p untouched) only when it cannot
 *                        grow; a shrink (n <= osize) never fails.
 * On NULL, Lua runs an emergency collection, retries, and then raises its own "not enough memory"
 * error, which pcall catches: a state with a byte limit stays usable after hitting it.
 *
 * Per-type accounting (apex_lua_usage_get). Exact, always: objects and bytes created per type, from
 * the tag Lua passes when it creates an object; bytes live in the state in total (the same number
 * as collectgarbage("count") * 1024, since Lua passes every old size). After creation Lua passes
 * only sizes, never types, so live figures per type need a record per object: with `track_types`
 * (the default) each object created with a type tag carries a 16-byte record in front of it (its
 * type and size), which makes live objects and bytes per type exact, at the price of 16 bytes per
 * string, table, closure, userdata and thread. Without it, the live-per-type fields are zero and
 * `live_exact` is 0; only the totals are kept.
 * "other" is everything created without one of those five tags: table arrays and hash parts,
 * stacks, prototypes, upvalues, buffers; its live bytes are the total minus the five types.
 */
#ifndef APEXLUA_H
#define APEXLUA_H

#include <stddef.h>

#include <apexalloc.h>
#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct apex_lua_options_s {
  size_t size;          /* sizeof(apex_lua_options_t) */
  size_t limit;         /* most bytes the state's heap may hold (ApexAlloc usable sizes, type
                           records included); 0 = no limit */
  int track_types;      /* 1: exact live figures per type (16 bytes per typed object); 0: totals */
} apex_lua_options_t;

/* What the accounting calls a type. */
enum {
  APEX_LUA_STRING = 0,
  APEX_LUA_TABLE,
  APEX_LUA_FUNCTION,
  APEX_LUA_USERDATA,
  APEX_LUA_THREAD,
  APEX_LUA_OTHER,
  APEX_LUA_KINDS
};

typedef struct apex_lua_usage_s {
  size_t size;                             /* bytes of this struct filled in */
  size_t created_objects[APEX_LUA_KINDS];  /* exact: allocations made with that type tag */
  size_t created_bytes[APEX_LUA_KINDS];    /* exact: their sizes as Lua asked */
  size_t live_objects[APEX_LUA_KINDS];     /* exact when live_exact, else 0 */
  size_t live_bytes[APEX_LUA_KINDS];       /* exact when live_exact, else 0 */
  size_t live_total;      /* exact: bytes of the state's memory on ApexAlloc, as Lua counts them */
  size_t live_peak;       /* highest live_total */
  size_t foreign_live;    /* after apex_lua_install: bytes still held by the previous allocator */
  size_t refused;         /* requests answered with NULL (limit or out of memory) */
  size_t limit;           /* the heap's byte limit, 0 = none */
  int live_exact;         /* 1 when the state records types (track_types) */
  int installed;          /* 1 when put in place by apex_lua_install on a running state */
} apex_lua_usage_t;

/* The name of a type of the accounting ("string", ..., "other"); NULL for a bad kind. */
const char *apex_lua_kind_name(int kind);

/* The lua_Alloc itself; `ud` is the state's context made by apex_lua_newstate / apex_lua_install. */
void *apex_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* The allocator's context (`ud`), for hosts that create the state themselves — another Lua of the
 * same lua_Alloc contract (5.1, 5.3, LuaJIT in its GC64 build): lua_newstate(apex_lua_alloc, ctx),
 * then after lua_close, apex_lua_context_destroy(ctx). Such hosts do not pass type tags, so all
 * their memory counts as "other". NULL with errno EINVAL (bad opts) or ENOMEM. */
typedef struct apex_lua_ctx_s apex_lua_ctx_t;
apex_lua_ctx_t *apex_lua_context_new(const apex_lua_options_t *opts);
/* Destroys the context's heap (every block of it) and the context; EINVAL for NULL or a context
 * still attached by apex_lua_install. */
int apex_lua_context_destroy(apex_lua_ctx_t *ctx);
/* apex_lua_usage_get for a context. */
int apex_lua_context_usage(const apex_lua_ctx_t *ctx, apex_lua_usage_t *out, size_t size);

/* A new state on a new heap owned by the calling thread (other threads may use the state too, at
 * the cost of a lock per allocation). opts NULL: no limit, types tracked. NULL when opts is bad
 * (errno EINVAL), or memory (or the limit) does not allow even an empty state (errno ENOMEM).
 * Like lua_newstate, no library is opened; a panic handler and a warning handler are set. */
lua_State *apex_lua_newstate(const apex_lua_options_t *opts);

/* Closes a state made by apex_lua_newstate, then destroys its heap and returns the core's cached
 * memory (apex_collect): every byte the state mapped goes back to the system. Returns 0, or EINVAL (nothing done) when L is not such a state. */
int apex_lua_close(lua_State *L);

/* Switches a running state (made by any allocator) to a new ApexAlloc heap with lua_setallocf.
 * Blocks the previous allocator made stay with it: they are freed (and moved when they grow) by
 * routing every pointer apex_owns does not know to the previous allocator. Returns 0, EEXIST when
 * L already runs on apex_lua_alloc, EINVAL for bad opts, ENOMEM. The heap lives until the process
 * ends (the state's last frees may come from lua_close, after any finalizer could release it). */
int apex_lua_install(lua_State *L, const apex_lua_options_t *opts);

/* Fills *out (size = sizeof *out, or less for an older caller) for a state running on
 * apex_lua_alloc. Returns 0, or EINVAL when L runs on another allocator or out/size is bad. */
int apex_lua_usage_get(lua_State *L, apex_lua_usage_t *out, size_t size);

/* The heap under L, or NULL when L runs on another allocator. */
apex_heap_t *apex_lua_heap(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif /* APEXLUA_H */
