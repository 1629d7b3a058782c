-- module.lua — the `apexalloc` module as a Lua program uses it, in the stock lua5.4 interpreter
-- (and in apexlua, where it is built in). Every check can fail; the script exits 1 on the first.
local apexalloc = require "apexalloc"

local function expect_error(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern), "error '" .. tostring(err) .. "' does not match " .. pattern)
  return err
end

-- stats(): a plain table with the header's fields, integers.
local s = apexalloc.stats()
for _, field in ipairs { "allocated", "mapped", "superblocks", "heaps", "blocks", "metadata" } do
  assert(math.type(s[field]) == "integer", "stats()." .. field .. " is not an integer")
end
assert(s.size == nil, "stats() exposes the struct's version field")
assert(math.type(apexalloc.thread_stats().allocated) == "integer")

-- bins(): one table per size class, in order, bin 0 = large objects.
local bins = apexalloc.bins()
assert(#bins == apexalloc.raw.APEX_BIN_COUNT, "bins: " .. #bins)
assert(bins[1].bin == 0 and bins[1].chunk_size == 0, "bin 0 is not the large bin")
for i = 3, #bins do assert(bins[i].chunk_size > bins[i - 1].chunk_size, "bins out of order at " .. i) end

-- keys(): the registry; every value key reads back with its own Lua type.
local keys = apexalloc.keys()
assert(#keys >= 20, "only " .. #keys .. " keys")
local seen = {}
for _, k in ipairs(keys) do
  seen[k.name] = k
  assert(type(k.description) == "string" and k.description ~= "", k.name .. " has no description")
  if k.type ~= "command" then
    local name = k.name:gsub("<i>", "1")
    local v = apexalloc.ctl(name)
    local want = ({ bool = "boolean", size = "number", string = "string" })[k.type]
    assert(type(v) == want, name .. " read as " .. type(v) .. ", registry says " .. k.type)
  end
end
assert(seen["stats.allocated"] and seen["heap.collect"], "registry lacks well-known keys")

-- ctl errors name the key and the reason, at the caller's line.
local err = expect_error("apexalloc%.ctl%('no%.such%.key'%): unknown key %(ENOENT%)",
                         function() local v = apexalloc.ctl("no.such.key"); return v end)
assert(err:find("module.lua:%d+:"), "error not reported at the caller: " .. err)
expect_error("'stats%.allocated'%): read%-only key %(EPERM%)", apexalloc.ctl, "stats.allocated", 5)
expect_error("'heap%.collect'%).*a command", apexalloc.ctl, "heap.collect")
expect_error("run%('stats%.allocated'%).*not a command", apexalloc.run, "stats.allocated")
expect_error("index 999 not in 0%.%.88", apexalloc.ctl, "stats.bins.999.count")
expect_error("key must be a string", apexalloc.ctl, 42)

-- A writable bool and size option round-trips, and bad values are refused by name.
local bool_key, size_key
for _, k in ipairs(keys) do
  if k.writable and k.type == "bool" and not bool_key then bool_key = k.name end
  if k.writable and k.type == "size" and k.index_count == 0 and not size_key then size_key = k.name end
end
assert(bool_key and size_key, "no writable bool/size option in the registry")
local old = apexalloc.ctl(bool_key)
apexalloc.ctl(bool_key, not old)
assert(apexalloc.ctl(bool_key) == not old, bool_key .. " did not change")
apexalloc.ctl(bool_key, old)
expect_error("a bool key takes true or false", apexalloc.ctl, bool_key, 1)
local oldsize = apexalloc.ctl(size_key)
apexalloc.ctl(size_key, oldsize)
expect_error("a size key takes an integer", apexalloc.ctl, size_key, 1.5)

apexalloc.run("heap.collect")
apexalloc.collect()

-- heap_map: an SVG (to a string or a file) and JSON.
local svg = apexalloc.heap_map()
assert(svg:find("^<svg") or svg:find("<svg"), "heap_map() is not SVG")
local path = os.tmpname() .. ".svg"
assert(apexalloc.heap_map(path) == true)
local f = assert(io.open(path)); local filed = f:read("a"); f:close(); os.remove(path)
assert(filed:find("</svg>%s*$"), "the SVG file is incomplete")
local json = apexalloc.heap_map(nil, "json")
assert(json:match("^%s*{") and json:match("}%s*$"), "heap_map JSON")
local text = apexalloc.print_stats()
assert(#text > 100, "print_stats text")
assert(apexalloc.print_stats("json"):match("^%s*{"), "print_stats json")

-- Heaps as Lua values.
local h = apexalloc.heap { limit = 1 << 20 }
local before = h:stats().allocated
local b = assert(h:alloc(1000))
b:write(0, "hello")
b:write(995, "world")
assert(b:read(0, 5) == "hello" and b:read(995, 5) == "world")
local asked, usable = b:size()
assert(asked == 1000 and usable >= 1000)
assert(h:stats().allocated >= before + 1000, "heap stats did not move")
expect_error("outside the block", b.write, b, 998, "xyz")
expect_error("outside the block", b.read, b, -1, 2)
local none, msg = h:alloc(2 << 20)
assert(none == nil and msg:find("heap limit"), "a 2 MiB block passed a 1 MiB limit: " .. tostring(msg))
local sizes = h:visit()
assert(#sizes == 1 and sizes[1] >= 1000, "visit: " .. #sizes .. " objects")
local other = apexalloc.heap {}
local ob = other:alloc(8)
expect_error("block of another heap", h.free, h, ob)
other:destroy()
h:free(b)
assert(#h:visit() == 0, "visit after free")
expect_error("block already freed", b.read, b)
local b2 = assert(h:alloc(64))
h:destroy()
assert(not h:alive())
expect_error("block of a destroyed heap", b2.read, b2)
expect_error("block of a destroyed heap", b2.free, b2)
expect_error("heap is destroyed", h.alloc, h, 10)
h:destroy()                                           -- twice is fine
assert(tostring(h):find("destroyed"))

-- __close: a to-be-closed heap is destroyed at the end of its scope.
local escaped, escaped_block
do
  local scoped <close> = apexalloc.heap {}
  escaped, escaped_block = scoped, scoped:alloc(10)
  assert(scoped:alive())
end
assert(not escaped:alive(), "__close did not destroy the heap")
expect_error("destroyed heap", escaped_block.read, escaped_block)

-- __gc: unreachable heaps (with blocks) are destroyed by the collector; heaps go back.
local heaps_before = apexalloc.stats().heaps
for _ = 1, 200 do
  local t = apexalloc.heap {}
  for _ = 1, 10 do t:alloc(100) end
end
collectgarbage() collectgarbage()
for _ = 1, 200 do local t = apexalloc.heap {} ; t:alloc(1) end
collectgarbage() collectgarbage()
assert(apexalloc.stats().heaps <= heaps_before + 220, "heaps are not reused after __gc: " ..
       apexalloc.stats().heaps - heaps_before .. " more")

-- The raw layer is there too, with out-parameters as results.
local rc, st = apexalloc.raw.apex_stats_get()
assert(rc == 0 and math.type(st.allocated) == "integer")
local rc2, p = apexalloc.raw.apex_posix_memalign(64, 100)
assert(rc2 == 0 and p ~= nil)
apexalloc.raw.apex_free(p)
local visited = 0
local rh = apexalloc.raw.apex_heap_new()
local p1 = apexalloc.raw.apex_heap_alloc(rh, 100, 0)
local p2 = apexalloc.raw.apex_heap_alloc(rh, 5000, 0)
assert(apexalloc.raw.apex_heap_visit(rh, function(ptr, size) visited = visited + 1; assert(size >= 100) end) == 0)
assert(visited == 2, "visit saw " .. visited .. " objects")
assert(apexalloc.raw.apex_owns(p1) == 1 and apexalloc.raw.apex_owns(p2) == 1)
assert(apexalloc.raw.apex_heap_destroy(rh) == 0)

-- In apexlua the state already runs on ApexAlloc: install() says so, usage() describes it.
local u = apexalloc.usage()
if u then
  local again, why = apexalloc.install()
  assert(again == false and why:find("already"), "install() on an ApexAlloc state")
  assert(u.total == u.lua_bytes and u.foreign == 0 and not u.installed, "usage() inside apexlua")
  assert(apexalloc.state_stats().allocated >= u.total, "state heap smaller than what Lua holds")
end

print("module: ok")
