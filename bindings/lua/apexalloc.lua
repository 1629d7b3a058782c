-- apexalloc.lua — what a Lua program sees of ApexAlloc (`local apexalloc = require "apexalloc"`).
--
-- Built on two layers that luaopen_apexalloc hands in:
--   raw     the SWIG wrapper of include/apexalloc.h (apexalloc.raw): snapshots come back as struct
--           userdata, apex_ctl takes the key's registry type;
--   native  C functions that need the lua_State: the state's allocator (install, usage) and heaps
--           as Lua values.
-- Everything here is derived from the header at run time: the fields of a snapshot are those the
-- SWIG struct has, the ctl keys those of the registry, so a new field or key shows up by itself.
-- Errors are Lua errors whose message names the function, the key and the reason.
local raw, native = ...

local M = { raw = raw }
M.version = raw.apex_version_string()

local errno_reason = {
  [native.ENOENT] = "unknown key (ENOENT)",
  [native.EINVAL] = "invalid value, type or size (EINVAL)",
  [native.EPERM]  = "read-only key (EPERM)",
  [native.ENOMEM] = "out of memory (ENOMEM)",
}

-- Raises the error at the caller of the public function (`depth`: how deep fail is called).
local function fail(fn, key, rc, detail, depth)
  local reason = errno_reason[rc] or ("error " .. tostring(rc))
  error(string.format("apexalloc.%s('%s'): %s%s", fn, key, reason, detail or ""), (depth or 1) + 2)
end

-- A SWIG struct userdata as a plain table: every field SWIG knows, except the version field.
local function to_table(snapshot)
  local t = {}
  for field in pairs(getmetatable(snapshot)[".get"]) do
    if field ~= "size" then t[field] = snapshot[field] end
  end
  return t
end

function M.stats()
  local rc, s = raw.apex_stats_get()
  if rc ~= 0 then fail("stats", "stats", rc) end
  return to_table(s)
end

function M.thread_stats()
  local rc, s = raw.apex_thread_stats_get()
  if rc ~= 0 then fail("thread_stats", "stats", rc) end
  return to_table(s)
end

-- The heap under the running state (nil when the state does not run on ApexAlloc).
function M.state_stats()
  local s = native.state_stats()
  return s and to_table(s)
end

-- One table per size class, in order; bin 0 holds the large objects.
function M.bins()
  local list = {}
  for bin = 0, raw.APEX_BIN_COUNT - 1 do
    local rc, b = raw.apex_bin_stats_get(bin)
    if rc ~= 0 then fail("bins", tostring(bin), rc) end
    local t = to_table(b)
    t.bin = bin
    list[#list + 1] = t
  end
  return list
end

local type_names = {
  [raw.APEX_CTL_BOOL] = "bool", [raw.APEX_CTL_SIZE] = "size",
  [raw.APEX_CTL_STRING] = "string", [raw.APEX_CTL_COMMAND] = "command",
}

local registry -- name -> entry, read once (the registry is fixed for the life of the library)
local function load_registry()
  if registry then return registry end
  registry = { list = {} }
  for i = 0, raw.apex_ctl_count() - 1 do
    local rc, info = raw.apex_ctl_info(i)
    if rc ~= 0 then fail("keys", tostring(i), rc) end
    local e = {
      name = info.name, type = type_names[info.type] or tostring(info.type), ctl_type = info.type,
      writable = info.writable ~= 0, unit = info.unit, description = info.description,
      index_count = info.index_count, env = info.env,
    }
    registry[e.name] = e
    registry.list[#registry.list + 1] = e
  end
  return registry
end

-- The registry as a list of tables {name, type, writable, unit, description, index_count, env}.
function M.keys()
  local out = {}
  for i, e in ipairs(load_registry().list) do
    local copy = {}
    for k, v in pairs(e) do if k ~= "ctl_type" then copy[k] = v end end
    out[i] = copy
  end
  return out
end

-- The registry entry of a name, "<i>" families included ("stats.bins.3.count").
local function entry_of(fn, name)
  if type(name) ~= "string" then error(string.format("apexalloc.%s: key must be a string", fn), 4) end
  local reg = load_registry()
  local e = reg[name]
  if e then return e end
  for _, f in ipairs(reg.list) do
    if f.index_count > 0 then
      local pattern = "^" .. f.name:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"):gsub("<i>", "(%%d+)") .. "$"
      local i = name:match(pattern)
      if i then
        i = tonumber(i)
        if i >= f.index_count then
          fail(fn, name, native.ENOENT, string.format(": index %d not in 0..%d", i, f.index_count - 1), 2)
        end
        return f
      end
    end
  end
  fail(fn, name, native.ENOENT, nil, 2)
end

-- ctl(name) reads a key; ctl(name, value) writes it (booleans for bool keys, integers for sizes).
function M.ctl(name, value)
  local e = entry_of("ctl", name)
  if e.ctl_type == raw.APEX_CTL_COMMAND then
    fail("ctl", name, native.EINVAL, ": a command, run it with apexalloc.run")
  end
  if value == nil then
    local rc, v = raw.apex_ctl(name, e.ctl_type)
    if rc ~= 0 then fail("ctl", name, rc) end
    return v
  end
  if not e.writable then fail("ctl", name, native.EPERM) end
  if e.ctl_type == raw.APEX_CTL_BOOL and type(value) ~= "boolean" then
    error(string.format("apexalloc.ctl('%s'): a bool key takes true or false, not %s", name, type(value)), 2)
  elseif e.ctl_type == raw.APEX_CTL_SIZE and math.type(value) ~= "integer" then
    error(string.format("apexalloc.ctl('%s'): a size key takes an integer, not %s", name, tostring(value)), 2)
  end
  local rc = raw.apex_ctl(name, e.ctl_type, value)
  if rc ~= 0 then fail("ctl", name, rc, ": value " .. tostring(value)) end
end

function M.run(name)
  local e = entry_of("run", name)
  if e.ctl_type ~= raw.APEX_CTL_COMMAND then
    fail("run", name, native.EINVAL, ": not a command, read it with apexalloc.ctl")
  end
  local rc = raw.apex_ctl(name, raw.APEX_CTL_COMMAND)
  if rc ~= 0 then fail("run", name, rc) end
end

-- Per-type figures of the running state: {string = {created_objects, created_bytes,
-- live_objects, live_bytes}, table = ..., function, userdata, thread, other, total, peak, ...}.
-- nil and a message when the state does not run on ApexAlloc.
M.usage = native.usage

-- Puts the running state on an ApexAlloc heap (blocks made before stay with their allocator).
-- install{limit = bytes, track_types = false}; true, or false and a message when already done.
M.install = native.install

function M.collect() raw.apex_collect() end

-- Text of a report: print_stats() / print_stats("json") returns it; print_stats(fmt, file) writes.
local function capture(fn, format, name)
  local parts = {}
  local rc = fn(function(s) parts[#parts + 1] = s end, format)
  if rc ~= 0 then fail(name, tostring(format), rc) end
  return table.concat(parts)
end

function M.print_stats(format, file)
  local fmt = format == "json" and raw.APEX_FORMAT_JSON or raw.APEX_FORMAT_TEXT
  local text = capture(raw.apex_stats_print, fmt, "print_stats")
  if file then file:write(text) return nil end
  return text
end

-- heap_map("x.svg") / heap_map("x.json") writes the picture or the JSON; heap_map() or
-- heap_map(nil, "json") returns it as a string.
function M.heap_map(path, format)
  format = format or (path and path:match("%.json$") and "json") or "svg"
  local fmt = format == "json" and raw.APEX_FORMAT_JSON or raw.APEX_FORMAT_SVG
  local text = capture(raw.apex_heap_map, fmt, "heap_map")
  if not path then return text end
  local f, err = io.open(path, "wb")
  if not f then error("apexalloc.heap_map: " .. err, 2) end
  f:write(text)
  f:close()
  return true
end

-- Heaps as Lua values: apexalloc.heap{limit = bytes}; h:alloc(n [, align]) -> block or nil, msg;
-- h:stats(); h:destroy() (also __gc and __close). A block: b:write(off, s), b:read(off, n),
-- b:size(), b:free(); it raises an error once freed or once its heap is destroyed.
local heap_methods = native.heap_class.__index
function heap_methods.stats(h) return to_table(h:stats_raw()) end
M.heap = native.heap

return M
