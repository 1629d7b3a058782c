-- swig_coverage.lua HEADER — fails when include/apexalloc.h and the SWIG raw layer disagree:
-- every function the header declares must be a function of apexalloc.raw, every apex_* function
-- of apexalloc.raw must be in the header, and so must every enum constant. Run by the stock lua5.4
-- with the module on LUA_CPATH.
local header_path = assert(arg[1], "usage: swig_coverage.lua path/to/apexalloc.h")
local raw = require("apexalloc").raw

local f = assert(io.open(header_path))
local text = f:read("a")
f:close()
local function check(source)
  -- Comments out, so prose never counts as a declaration.
  source = source:gsub("/%*.-%*/", " "):gsub("//[^\n]*", " ")

  local declared, constants = {}, {}
  -- A prototype: a return type, then the name followed by "(" — not "(*name)" (function types).
  for name in source:gmatch("[%w_%*]%s*%*?%s*(apex_[%w_]+)%s*%(") do declared[name] = true end
  for name in source:gmatch("typedef[^;]-%(%*%s*(apex_[%w_]+)%)") do declared[name] = nil end
  for body in source:gmatch("enum%s*{(.-)}") do
    for name in body:gmatch("(APEX_[%w_]+)%s*=") do constants[name] = true end
  end

  local failures, count = {}, 0
  for name in pairs(declared) do
    count = count + 1
    if type(raw[name]) ~= "function" then failures[#failures + 1] = "header function not wrapped: " .. name end
  end
  for name in pairs(constants) do
    if math.type(raw[name]) ~= "integer" then failures[#failures + 1] = "header constant not wrapped: " .. name end
  end
  for name, v in pairs(raw) do
    -- SWIG also makes a constructor per struct type (apex_stats_t ...): those end in _t.
    if type(v) == "function" and name:match("^apex_") and not name:match("_t$") and not declared[name] then
      failures[#failures + 1] = "wrapped but not in the header: " .. name
    end
  end
  if count < 30 then failures[#failures + 1] = "only " .. count .. " functions found in the header" end

  table.sort(failures)
  return failures, count
end

local failures, count = check(text)
if #failures > 0 then
  io.stderr:write(table.concat(failures, "\n"), "\n")
  os.exit(1)
end
-- The check itself must see drift: a header with one more function fails it.
local drift = check(text .. "\nint apex_added_later(const char *name);\n")
if #drift ~= 1 or not drift[1]:find("apex_added_later", 1, true) then
  io.stderr:write("the coverage check did not notice a function added to the header\n")
  os.exit(1)
end
print(string.format("swig coverage: %d functions, all wrapped", count))
