/*
 * apexlua.c — the lua_Alloc over an ApexAlloc heap, the states made on it, and their accounting
 * per Lua type. It owns the allocator context of a state (heap, counters, the previous allocator
 * after an install); it must never free a block through the wrong allocator: every pointer it did
 * not make goes back to the allocator that did.
 */
#include "apexlua.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

enum { CTX_MAGIC = 0x6170784c7561U };   /* "apxLua" */

struct apex_lua_ctx_s {
  uint64_t magic;
  apex_heap_t *heap;
  int track_types;
  lua_Alloc prev_alloc;                  /* install mode: the allocator of the blocks we did not make */
  void *prev_ud;
  int warn_on;                           /* the warning handler's state (@on / @off) */
  int warn_continuing;                   /* inside a warning made of several pieces */
  apex_lua_usage_t u;
};
typedef struct apex_lua_ctx_s ctx_t;

/* The record in front of an object created with a type tag (track_types). `check` ties it to its
 * address and state, so a pointer that only looks like ours is never taken for one. */
typedef struct type_record_s {
  uint64_t check;
  uint64_t kind;                         /* APEX_LUA_STRING .. APEX_LUA_THREAD */
} type_record_t;
_Static_assert(sizeof(type_record_t) == APEX_MIN_ALIGN, "the record keeps Lua's 16-byte alignment");

static const char *const kind_names[APEX_LUA_KINDS] = {
  "string", "table", "function", "userdata", "thread", "other"
};

const char *apex_lua_kind_name(int kind) {
  return kind >= 0 && kind < APEX_LUA_KINDS ? kind_names[kind] : NULL;
}

static int kind_of_tag(size_t tag) {
  switch (tag) {
    case LUA_TSTRING:   return APEX_LUA_STRING;
    case LUA_TTABLE:    return APEX_LUA_TABLE;
    case LUA_TFUNCTION: return APEX_LUA_FUNCTION;
    case LUA_TUSERDATA: return APEX_LUA_USERDATA;
    case LUA_TTHREAD:   return APEX_LUA_THREAD;
    default:            return APEX_LUA_OTHER;
  }
}

static uint64_t record_check(const ctx_t *c, const type_record_t *r, uint64_t kind) {
  return ((uint64_t)(uintptr_t)r * 0x9e3779b97f4a7c15ULL) ^ (uint64_t)(uintptr_t)c ^ kind;
}

/* ---- Where a block lives ------------------------------------------------------------------- */
enum { BLOCK_PLAIN, BLOCK_TYPED, BLOCK_FOREIGN };

/* Plain blocks start a chunk (apex_owns knows them); typed ones sit 16 bytes into one. Asking
 * apex_owns about ptr - 16 before reading the record means a foreign pointer is never read. */
static int block_kind(const ctx_t *c, void *ptr) {
  if (!c->track_types && c->prev_alloc == NULL) return BLOCK_PLAIN;
  if (apex_owns(ptr)) return BLOCK_PLAIN;
  if (c->track_types) {
    type_record_t *r = (type_record_t *)ptr - 1;
    if (apex_owns(r) && r->kind < APEX_LUA_KINDS && r->check == record_check(c, r, r->kind))
      return BLOCK_TYPED;
  }
  if (c->prev_alloc != NULL) return BLOCK_FOREIGN;
  /* Neither ours nor anyone else's: let the core say so loudly (apex_usable_size aborts). */
  apex_usable_size(ptr);
  return BLOCK_PLAIN;
}

static void live_add(ctx_t *c, size_t n) {
  c->u.live_total += n;
  if (c->u.live_total > c->u.live_peak) c->u.live_peak = c->u.live_total;
}
static void live_sub(ctx_t *c, size_t n) { c->u.live_total -= n < c->u.live_total ? n : c->u.live_total; }

static void *refused(ctx_t *c) {
  c->u.refused++;
  return NULL;
}

/* ---- The allocator --------------------------------------------------------------------------- */
static void *create(ctx_t *c, size_t tag, size_t nsize) {
  int kind = kind_of_tag(tag);
  void *p;
  if (c->track_types && kind != APEX_LUA_OTHER) {
    type_record_t *r = nsize > SIZE_MAX - sizeof *r ? NULL : apex_heap_alloc(c->heap, nsize + sizeof *r, 0);
    if (r == NULL) return refused(c);
    r->kind = (uint64_t)kind;
    r->check = record_check(c, r, r->kind);
    c->u.live_objects[kind]++;
    c->u.live_bytes[kind] += nsize;
    p = r + 1;
  } else {
    p = apex_heap_alloc(c->heap, nsize, 0);
    if (p == NULL) return refused(c);
    c->u.live_objects[APEX_LUA_OTHER]++;
  }
  c->u.created_objects[kind]++;
  c->u.created_bytes[kind] += nsize;
  live_add(c, nsize);
  return p;
}

/* A block of the previous allocator: freed by it, or moved to our heap when it must change. */
static void *foreign_resize(ctx_t *c, void *ptr, size_t osize, size_t nsize) {
  if (nsize == 0) {
    c->prev_alloc(c->prev_ud, ptr, osize, 0);
    c->u.foreign_live -= osize < c->u.foreign_live ? osize : c->u.foreign_live;
    return NULL;
  }
  void *q = apex_heap_alloc(c->heap, nsize, 0);
  if (q == NULL) {
    /* A shrink never fails: the previous allocator shrinks its own block. */
    if (nsize <= osize) {
      c->u.foreign_live -= osize - nsize < c->u.foreign_live ? osize - nsize : c->u.foreign_live;
      return c->prev_alloc(c->prev_ud, ptr, osize, nsize);
    }
    return refused(c);
  }
  memcpy(q, ptr, osize < nsize ? osize : nsize);
  c->prev_alloc(c->prev_ud, ptr, osize, 0);
  c->u.foreign_live -= osize < c->u.foreign_live ? osize : c->u.foreign_live;
  c->u.live_objects[APEX_LUA_OTHER]++;
  live_add(c, nsize);
  return q;
}

/* Lua 5.4 never resizes an object created with a type tag, but the contract allows it: the
 * record moves with the object. */
static void *typed_resize(ctx_t *c, void *ptr, size_t osize, size_t nsize) {
  type_record_t *r = (type_record_t *)ptr - 1;
  uint64_t kind = r->kind;
  if (nsize == 0) {
    r->check = 0;                        /* a stale copy of this pointer can never pass again */
    apex_free(r);
    c->u.live_objects[kind]--;
    c->u.live_bytes[kind] -= osize;      /* Lua 5.4 passes the exact old size */
    live_sub(c, osize);
    return NULL;
  }
  if (nsize > SIZE_MAX - sizeof *r) return refused(c);
  type_record_t *q = apex_heap_realloc(c->heap, r, osize + sizeof *r, nsize + sizeof *r, 0);
  if (q == NULL) return refused(c);
  q->check = record_check(c, q, kind);
  c->u.live_bytes[kind] += nsize - osize;
  live_sub(c, osize);
  live_add(c, nsize);
  return q + 1;
}

void *apex_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  ctx_t *c = ud;
  if (ptr == NULL) return nsize == 0 ? NULL : create(c, osize, nsize);
  switch (block_kind(c, ptr)) {
    case BLOCK_FOREIGN: return foreign_resize(c, ptr, osize, nsize);
    case BLOCK_TYPED:   return typed_resize(c, ptr, osize, nsize);
    default: break;
  }
  live_sub(c, osize);
  if (nsize == 0) {                      /* the commonest call after allocation: straight to free */
    apex_free(ptr);
    c->u.live_objects[APEX_LUA_OTHER]--;
    return NULL;
  }
  /* apex_heap_realloc follows lua_Alloc: a shrink stays in place when it cannot move. */
  void *q = apex_heap_realloc(c->heap, ptr, osize, nsize, 0);
  if (q == NULL) {
    live_add(c, osize);
    return refused(c);
  }
  live_add(c, nsize);
  return q;
}

/* ---- Contexts and states --------------------------------------------------------------------- */
static ctx_t *ctx_of(lua_State *L) {
  void *ud = NULL;
  if (L == NULL || lua_getallocf(L, &ud) != apex_lua_alloc || ud == NULL) return NULL;
  ctx_t *c = ud;
  return c->magic == CTX_MAGIC ? c : NULL;
}

static ctx_t *ctx_new(const apex_lua_options_t *opts) {
  apex_lua_options_t o = { .size = sizeof o, .limit = 0, .track_types = 1 };
  if (opts != NULL) {
    if (opts->size < offsetof(apex_lua_options_t, track_types) || opts->size > sizeof o) {
      errno = EINVAL;
      return NULL;
    }
    memcpy(&o, opts, opts->size);
  }
  /* The context outlives every block of the state, so it never lives in the state's heap. */
  ctx_t *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  apex_heap_options_t ho = { .size = sizeof ho, .limit = o.limit };
  c->heap = apex_heap_new_ex(&ho);
  if (c->heap == NULL) {
    free(c);
    errno = ENOMEM;
    return NULL;
  }
  c->magic = CTX_MAGIC;
  c->track_types = o.track_types != 0;
  c->u.size = sizeof c->u;
  c->u.limit = o.limit;
  c->u.live_exact = c->track_types;
  return c;
}

static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "apexlua: unprotected error in call to Lua API (%s)\n", msg ? msg : "error object is not a string");
  return 0;                              /* Lua then aborts */
}

/* Lua's warn(): pieces joined until the last one; "@on" / "@off" switch it (as luaL_newstate's). */
static void warn_handler(void *ud, const char *msg, int tocont) {
  ctx_t *c = ud;
  if (!c->warn_continuing && !tocont && msg[0] == '@') {
    if (strcmp(msg, "@on") == 0) c->warn_on = 1;
    else if (strcmp(msg, "@off") == 0) c->warn_on = 0;
    return;
  }
  if (c->warn_on) fprintf(stderr, "%s%s%s", c->warn_continuing ? "" : "Lua warning: ", msg, tocont ? "" : "\n");
  c->warn_continuing = tocont;
}

lua_State *apex_lua_newstate(const apex_lua_options_t *opts) {
  ctx_t *c = ctx_new(opts);
  if (c == NULL) return NULL;
  lua_State *L = lua_newstate(apex_lua_alloc, c);
  if (L == NULL) {
    apex_heap_destroy(c->heap);
    free(c);
    errno = ENOMEM;
    return NULL;
  }
  lua_atpanic(L, panic);
  lua_setwarnf(L, warn_handler, c);
  return L;
}

int apex_lua_close(lua_State *L) {
  ctx_t *c = ctx_of(L);
  if (c == NULL || c->u.installed) return EINVAL;
  lua_close(L);
  return apex_lua_context_destroy(c);
}

int apex_lua_install(lua_State *L, const apex_lua_options_t *opts) {
  if (L == NULL) return EINVAL;
  if (ctx_of(L) != NULL) return EEXIST;
  void *prev_ud = NULL;
  lua_Alloc prev = lua_getallocf(L, &prev_ud);
  ctx_t *c = ctx_new(opts);
  if (c == NULL) return errno == EINVAL ? EINVAL : ENOMEM;
  c->prev_alloc = prev;
  c->prev_ud = prev_ud;
  c->u.installed = 1;
  /* Everything Lua holds now is the previous allocator's (Lua's own count, exact). */
  c->u.foreign_live = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
  lua_setallocf(L, apex_lua_alloc, c);
  return 0;
}

apex_lua_ctx_t *apex_lua_context_new(const apex_lua_options_t *opts) { return ctx_new(opts); }

int apex_lua_context_destroy(apex_lua_ctx_t *c) {
  if (c == NULL || c->magic != CTX_MAGIC || c->u.installed) return EINVAL;
  apex_heap_destroy(c->heap);
  /* The destroyed heap's superblocks would wait in the core's cache; a closed state should give
   * its memory back now (apex_collect also returns other cached memory, which is harmless). */
  apex_collect();
  c->magic = 0;
  free(c);
  return 0;
}

int apex_lua_usage_get(lua_State *L, apex_lua_usage_t *out, size_t size) {
  return apex_lua_context_usage(ctx_of(L), out, size);
}

int apex_lua_context_usage(const apex_lua_ctx_t *c, apex_lua_usage_t *out, size_t size) {
  if (c == NULL || c->magic != CTX_MAGIC || out == NULL || size < sizeof(size_t) || size > sizeof *out) return EINVAL;
  apex_lua_usage_t u = c->u;
  if (!u.live_exact) {
    memset(u.live_objects, 0, sizeof u.live_objects);
    memset(u.live_bytes, 0, sizeof u.live_bytes);
  } else {
    /* "other" is the total minus the five types, which absorbs blocks moved off the previous
     * allocator and blocks resized across the typed/plain line. */
    size_t typed = 0;
    for (int k = 0; k < APEX_LUA_OTHER; k++) typed += u.live_bytes[k];
    u.live_bytes[APEX_LUA_OTHER] = u.live_total > typed ? u.live_total - typed : 0;
  }
  u.size = size;
  memcpy(out, &u, size);
  return 0;
}

apex_heap_t *apex_lua_heap(lua_State *L) {
  ctx_t *c = ctx_of(L);
  return c ? c->heap : NULL;
}
