-- table_churn.lua [rounds] — tables grown, rehashed and dropped: arrays, hashes with string and
-- integer keys, records held in a sliding window so the collector works on a live set.
local rounds = tonumber(arg and arg[1]) or 60
local window, sum = {}, 0
for r = 1, rounds do
  local t = {}
  for i = 1, 20000 do t[i] = i end                      -- array part growing by doubling
  local h = {}
  for i = 1, 5000 do h["k" .. (i % 997) .. "_" .. r] = i end   -- hash part with rehashes
  for i = 1, 5000 do
    window[(r * 5000 + i) % 40000] = { r, i, tag = i % 3 == 0 and "x" or nil }
  end
  for k, v in pairs(h) do sum = sum + v end
  sum = sum + #t
end
print(sum)
