-- preload.lua — run by lua5.4 under LD_PRELOAD=libapexalloc.so: the module's own copy of the core
-- (apex_* hidden inside apexalloc.so) and the preloaded copy serving malloc live side by side.
-- arg[1]: path of apexalloc.so.
local so = assert(arg[1], "usage: preload.lua path/to/apexalloc.so")
local apexalloc = require "apexalloc"

-- The preloaded library is really there.
local maps = assert(io.open("/proc/self/maps")):read("a")
assert(maps:find("libapexalloc%.so"), "libapexalloc.so is not mapped: run under LD_PRELOAD")

-- The module exports no apex_* symbol, so nothing of it can bind to the preloaded copy.
local nm = assert(io.popen("nm -D --defined-only '" .. so .. "'"))
local exported = nm:read("a")
nm:close()
assert(exported:find("luaopen_apexalloc"), "nm did not list the module's symbols")
assert(not exported:find("apex_"), "the module exports apex_* symbols:\n" .. exported)

-- The module's copy counts what the module allocates, and only that.
local s0 = apexalloc.stats().allocated
local p = apexalloc.raw.apex_malloc(1 << 20)
local s1 = apexalloc.stats().allocated
assert(s1 >= s0 + (1 << 20), string.format("module stats did not move: %d -> %d", s0, s1))
-- A big string goes through the stock allocator (libc realloc = the preloaded copy): not ours.
local big = string.rep("x", 8 << 20)
local s2 = apexalloc.stats().allocated
assert(s2 < s1 + (1 << 20), "the module's copy served the interpreter's malloc")
assert(#big == 8 << 20)
apexalloc.raw.apex_free(p)
assert(apexalloc.stats().allocated <= s2 - (1 << 20), "free not seen by the module's copy")
-- apex_owns of the module's copy knows nothing of the preloaded copy's blocks (and never aborts).
local h = apexalloc.heap {}
local b = assert(h:alloc(100))
b:write(0, "both copies work")
assert(b:read(0, 16) == "both copies work")
h:destroy()
print("preload: ok")
