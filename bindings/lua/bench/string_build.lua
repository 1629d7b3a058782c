-- string_build.lua [n] — strings made and dropped: concatenation, formatting, gsub, table.concat
-- of growing buffers, interning of short strings.
local n = tonumber(arg and arg[1]) or 300000
local total = 0
local buf = {}
for i = 1, n do
  local s = "item-" .. i .. ":" .. string.format("%08x", i * 2654435761 % 4294967296)
  s = s:gsub("%d", "#")
  buf[#buf + 1] = s
  if #buf == 500 then
    local joined = table.concat(buf, ";")
    total = total + #joined + #joined:upper()
    buf = {}
  end
end
local acc = ""
for i = 1, 3000 do acc = acc .. i end            -- quadratic growth of one string
print(total + #acc)
