-- install.lua — apexalloc.install() in the stock lua5.4 interpreter, after the state has run for a
-- while on its own allocator: the blocks made before stay with it (freed and moved by routing on
-- apex_owns), new ones come from ApexAlloc, and the accounting always adds up to Lua's own count.
-- Run with the tests' folder as arg[1] (for gc_workload.lua).
local dir = assert(arg[1], "usage: install.lua TESTS_DIR")
local apexalloc = require "apexalloc"

local function check_sum(u, where)
  assert(u.total + u.foreign == u.lua_bytes, string.format("%s: ApexAlloc %d + previous %d ~= Lua's %d",
         where, u.total, u.foreign, u.lua_bytes))
end

-- A state that has been running: strings, tables, closures made by the stock allocator.
local old = {}
for i = 1, 20000 do old[i] = { name = "old-" .. i, f = function() return i end } end
local grows = {}                              -- its array part will have to move later
for i = 1, 1000 do grows[i] = i end
assert(apexalloc.usage() == nil, "usage() of a stock state should be nil")

local ok, msg = apexalloc.install()
assert(ok == true, "install failed: " .. tostring(msg))
local u0 = apexalloc.usage()
assert(u0.installed and u0.exact, "usage after install")
assert(u0.foreign > 20000 * 100, "previous allocator holds only " .. u0.foreign .. " bytes")
check_sum(u0, "after install")

-- Twice: refused politely.
local again, why = apexalloc.install()
assert(again == false and why:find("already"), "second install: " .. tostring(why))

-- New work lands on ApexAlloc and moves the per-type figures.
local workload = dofile(dir .. "/gc_workload.lua")
local sum = workload(1)
assert(sum > 0)
local u1 = apexalloc.usage()
check_sum(u1, "after the workload")
assert(u1.table.created_objects >= 40000, "tables created on ApexAlloc: " .. u1.table.created_objects)
assert(u1.string.created_objects >= 40000, "strings created on ApexAlloc")
assert(u1["function"].created_objects >= 20000, "closures created on ApexAlloc")
assert(u1.thread.created_objects >= 1000, "coroutines created on ApexAlloc")
assert(apexalloc.state_stats().allocated > 0, "the state's heap holds nothing")

-- An old table grows: its block moves from the previous allocator to ApexAlloc.
for i = 1001, 100000 do grows[i] = i end
local u2 = apexalloc.usage()
check_sum(u2, "after growing an old table")
assert(u2.total > u1.total - 1, "growth did not land on ApexAlloc")

-- Dropping the old data frees the previous allocator's blocks through it.
old = nil
collectgarbage() collectgarbage()
local u3 = apexalloc.usage()
check_sum(u3, "after freeing the old data")
assert(u3.foreign < u0.foreign / 4, string.format("previous allocator still holds %d of %d bytes", u3.foreign, u0.foreign))

-- Both collector modes keep working on the mixed state.
collectgarbage("generational")
assert(workload(1) == sum, "generational run differs")
collectgarbage("incremental")
assert(workload(1) == sum, "incremental run differs")
check_sum(apexalloc.usage(), "at the end")
print("install: ok")
-- lua_close at exit frees the rest: blocks of each allocator through that allocator.
