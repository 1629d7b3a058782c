/* apexalloc.i — SWIG interface of the raw layer (apexalloc.raw): every declaration comes from
 * include/apexalloc.h through %include; this file only teaches SWIG how Lua passes the
 * out-parameters and callbacks. tests/swig_coverage.lua fails when a function of the header is
 * missing from the generated module.
 *
 * Conventions of the raw layer (the idiomatic layer, apexalloc.lua, builds on them):
 *   size_t                     a Lua integer (SWIG's default is a float)
 *   (T *out, size_t size)      not passed: the call returns (rc, struct) — a SWIG struct userdata
 *   (void **out)               not passed: returns (rc, pointer)
 *   apex_ctl(name, type [, value])   the value's C type comes from `type` (APEX_CTL_*): returns
 *                              (rc, value read) for a read, rc for a write or a command
 *   (apex_write_fn, void *)    one Lua function receiving each piece of text
 *   (apex_visit_fn, void *)    one Lua function (ptr, usable_size) -> true to stop; called after
 *                              the walk (the core may hold a lock during it), in the walk's order
 */
%module apexalloc_raw

%{
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "apexalloc.h"
%}

/* The struct fields of type const char * are read-only in practice; setting them is never done. */
#pragma SWIG nowarn=451

/* ---- size_t as a Lua integer ----------------------------------------------------------------- */
%typemap(in, checkfn="lua_isinteger") size_t {
  lua_Integer v = lua_tointeger(L, $input);
  if (v < 0) SWIG_fail_arg("$symname", $argnum, "non-negative integer");
  $1 = (size_t)v;
}
%typemap(out) size_t %{ lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++; %}
%typemap(typecheck) size_t = int;
%typemap(out) int %{ lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++; %}

/* ---- Snapshots: (T *out, size_t size) become a returned struct ------------------------------- */
%define APEX_OUT_STRUCT(TYPE)
%typemap(in, numinputs=0) (TYPE *out, size_t size) (TYPE *tmp) {
  tmp = (TYPE *)calloc(1, sizeof(TYPE));
  if (tmp == NULL) SWIG_fail_arg("$symname", 0, "memory for the snapshot");
  $1 = tmp;
  $2 = sizeof(TYPE);
}
%typemap(argout) (TYPE *out, size_t size) {
  SWIG_NewPointerObj(L, tmp$argnum, $descriptor(TYPE *), 1); SWIG_arg++;
}
%enddef
APEX_OUT_STRUCT(apex_stats_t)
APEX_OUT_STRUCT(apex_bin_stats_t)
APEX_OUT_STRUCT(apex_ctl_info_t)

/* ---- posix_memalign's out pointer ------------------------------------------------------------ */
%typemap(in, numinputs=0) void **out (void *tmp = NULL) %{ $1 = &tmp; %}
%typemap(argout) void **out %{ SWIG_NewPointerObj(L, tmp$argnum, SWIGTYPE_p_void, 0); SWIG_arg++; %}

/* ---- apex_ctl: the value buffers, typed by the key's registry type --------------------------- */
/* Two typemaps share one buffer: (oldp, oldlenp) takes the type (APEX_CTL_*) and offers a read;
 * (newp, newlen) takes the optional value and turns the call into a write. Their code is emitted
 * without braces so that the buffer is visible to both and to the argout. */
%typemap(in) (void *oldp, size_t *oldlenp) %{
  int ctl_type = (int)luaL_checkinteger(L, $input);
  int ctl_int = 0; size_t ctl_size = 0; const char *ctl_str = NULL; size_t ctl_len = 0;
  void *ctl_buf = NULL;
  switch (ctl_type) {
    case APEX_CTL_BOOL:   ctl_buf = &ctl_int;  ctl_len = sizeof ctl_int;  break;
    case APEX_CTL_SIZE:   ctl_buf = &ctl_size; ctl_len = sizeof ctl_size; break;
    case APEX_CTL_STRING: ctl_buf = (void *)&ctl_str; ctl_len = sizeof ctl_str; break;
    case APEX_CTL_COMMAND: break;
    default: SWIG_fail_arg("$symname", $argnum, "APEX_CTL_* type");
  }
  $1 = ctl_buf; $2 = ctl_buf ? &ctl_len : NULL;
%}
%typemap(default) (void *newp, size_t newlen) %{ $1 = NULL; $2 = 0; %}
%typemap(in) (void *newp, size_t newlen) %{
  if (!lua_isnil(L, $input) && ctl_buf != NULL) {
    switch (ctl_type) {
      case APEX_CTL_BOOL:
        ctl_int = lua_isboolean(L, $input) ? lua_toboolean(L, $input) : (int)luaL_checkinteger(L, $input);
        break;
      case APEX_CTL_SIZE: {
        lua_Integer v = luaL_checkinteger(L, $input);
        if (v < 0) SWIG_fail_arg("$symname", $argnum, "non-negative integer");
        ctl_size = (size_t)v;
        break;
      }
      default: ctl_str = luaL_checkstring(L, $input); break;
    }
    $1 = ctl_buf; $2 = ctl_len;
    arg2 = NULL; arg3 = NULL;            /* a write reads nothing back */
  }
%}
%typemap(argout) (void *oldp, size_t *oldlenp) %{
  if (result == 0 && $1 != NULL) {
    switch (ctl_type) {
      case APEX_CTL_BOOL: lua_pushboolean(L, ctl_int); break;
      case APEX_CTL_SIZE: lua_pushinteger(L, (lua_Integer)ctl_size); break;
      default:            lua_pushstring(L, ctl_str); break;
    }
    SWIG_arg++;
  }
%}

/* ---- Callbacks --------------------------------------------------------------------------------- */
%{
/* apex_write_fn -> a Lua function. An error in it is kept and raised once the core has returned. */
typedef struct { lua_State *L; int fn; int failed; } apex_lua_writer_t;
static void apex_lua_write_trampoline(void *opaque, const char *text, size_t len) {
  apex_lua_writer_t *w = (apex_lua_writer_t *)opaque;
  if (w->failed) return;
  lua_pushvalue(w->L, w->fn);
  lua_pushlstring(w->L, text, len);
  if (lua_pcall(w->L, 1, 0, 0) != LUA_OK) w->failed = lua_gettop(w->L);
}

/* apex_visit_fn: the walk only records (no allocation from the walked heap while it runs). */
typedef struct { void **ptr; size_t *size; size_t n, cap; int oom; } apex_lua_visits_t;
static int apex_lua_visit_record(void *ptr, size_t usable, void *arg) {
  apex_lua_visits_t *v = (apex_lua_visits_t *)arg;
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 256;
    void **p = (void **)realloc(v->ptr, cap * sizeof *p);
    if (p != NULL) v->ptr = p;
    size_t *s = (size_t *)realloc(v->size, cap * sizeof *s);
    if (s != NULL) v->size = s;
    if (p == NULL || s == NULL) { v->oom = 1; return ENOMEM; }
    v->cap = cap;
  }
  v->ptr[v->n] = ptr;
  v->size[v->n] = usable;
  v->n++;
  return 0;
}
%}

%typemap(in) (apex_write_fn write, void *opaque) (apex_lua_writer_t w) {
  if (lua_isnoneornil(L, $input)) { $1 = NULL; $2 = NULL; }
  else {
    luaL_checktype(L, $input, LUA_TFUNCTION);
    w.L = L; w.fn = $input; w.failed = 0;
    $1 = apex_lua_write_trampoline; $2 = &w;
  }
}
%typemap(argout) (apex_write_fn write, void *opaque) {
  if ($1 != NULL && w$argnum.failed) lua_error(L);
}

%typemap(in) (apex_visit_fn visit, void *arg) (apex_lua_visits_t v, int fn) {
  luaL_checktype(L, $input, LUA_TFUNCTION);
  fn = $input;
  memset(&v, 0, sizeof v);
  $1 = apex_lua_visit_record; $2 = &v;
}
%typemap(argout) (apex_visit_fn visit, void *arg) {
  int stopped = 0;
  for (size_t i = 0; i < v$argnum.n && !stopped; i++) {
    lua_pushvalue(L, fn$argnum);
    SWIG_NewPointerObj(L, v$argnum.ptr[i], SWIGTYPE_p_void, 0);
    lua_pushinteger(L, (lua_Integer)v$argnum.size[i]);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) { free(v$argnum.ptr); free(v$argnum.size); lua_error(L); }
    stopped = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  free(v$argnum.ptr); free(v$argnum.size);
}

%include "apexalloc.h"

/* The natives (state allocator, heaps as Lua values) and luaopen_apexalloc. */
%{
#include "apexalloc_natives.c"
%}
