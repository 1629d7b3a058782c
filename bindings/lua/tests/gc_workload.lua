-- gc_workload.lua — a GC-heavy workload: tables, closures, strings, coroutines, churned over many
-- cycles with a live set that grows and shrinks. Returns a checksum so every run can be compared.
-- Usage: dofile("gc_workload.lua")(scale) or `apexlua gc_workload.lua [scale]`.
local function workload(scale)
  scale = scale or 1
  local sum = 0
  local keep = {}
  for round = 1, 20 * scale do
    -- tables and strings: a live set of records, half replaced each round
    for i = 1, 2000 do
      local r = { id = i, name = "record-" .. round .. "-" .. i, tags = { i % 7, i % 11 } }
      if i % 2 == 0 then keep[i] = r end
      sum = sum + #r.name
    end
    -- closures capturing upvalues
    local fns = {}
    for i = 1, 1000 do
      local k = i * round
      fns[i] = function(x) return x + k end
    end
    for i = 1, #fns, 97 do sum = sum + fns[i](1) end
    -- coroutines, each with its own stack
    for i = 1, 50 do
      local co = coroutine.wrap(function(a)
        local acc = {}
        for j = 1, 20 do acc[j] = a .. j; a = coroutine.yield(#acc) end
        return #acc
      end)
      local v = co("c")
      for _ = 1, 19 do v = co("d") end
      sum = sum + v
    end
    -- string building
    local parts = {}
    for i = 1, 300 do parts[i] = string.format("%05d", i * round) end
    sum = sum + #table.concat(parts, ",")
    if round % 5 == 0 then keep = {} end
  end
  return sum
end

if arg and arg[0] and arg[0]:find("gc_workload%.lua$") then   -- run as a script
  print(workload(tonumber(arg[1]) or 1))
end
return workload
