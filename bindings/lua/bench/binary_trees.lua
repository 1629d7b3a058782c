-- binary_trees.lua [depth] — the classic allocation benchmark: many short-lived trees of small
-- tables and one long-lived tree, checked by counting nodes.
local function make(d)
  if d == 0 then return {} end
  d = d - 1
  return { make(d), make(d) }
end
local function check(t)
  if t[1] then return 1 + check(t[1]) + check(t[2]) end
  return 1
end
local N = tonumber(arg and arg[1]) or 16
local maxdepth = math.max(6, N)
local total = check(make(maxdepth + 1))
local long_lived = make(maxdepth)
for d = 4, maxdepth, 2 do
  local iters = 1 << (maxdepth - d + 4)
  local c = 0
  for _ = 1, iters do c = c + check(make(d)) end
  total = total + c
end
total = total + check(long_lived)
print(total)
