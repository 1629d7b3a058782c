-- apexlua_cli.lua APEXLUA TESTS_DIR — the apexlua interpreter from the outside, as a user runs it:
-- scripts and their arguments, -e, -l, stdin, the interactive loop, --stats, --heap-map, --limit,
-- errors and exit statuses; and that it runs a Lua program exactly as the stock lua5.4 does.
local apexlua, dir = assert(arg[1]), assert(arg[2])
local tmp = os.tmpname()

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
-- Runs a shell command; returns stdout, stderr, exit code.
local function run(cmd, input)
  if input then
    local f = assert(io.open(tmp .. ".in", "w")); f:write(input); f:close()
    cmd = cmd .. " < " .. tmp .. ".in"
  end
  local p = assert(io.popen(cmd .. " 2>" .. tmp .. ".err"))
  local out = p:read("a")
  local _, _, code = p:close()
  local f = assert(io.open(tmp .. ".err")); local err = f:read("a"); f:close()
  return out, err, code
end
local function check(cond, what, out, err)
  if not cond then
    error(string.format("%s\n--- stdout:\n%s\n--- stderr:\n%s", what, out or "", err or ""), 2)
  end
end
local A = q(apexlua)

-- A script with arguments; `arg` as lua.c builds it.
local script = tmp .. ".lua"
local f = assert(io.open(script, "w"))
f:write('local a, b = ...\nprint(select("#", ...), a, b, arg[0] == "' .. script .. '", arg[-1] ~= nil)\n')
f:close()
local out, err, code = run(A .. " --stats " .. q(script) .. " one two")
check(code == 0 and out == "2\tone\ttwo\ttrue\ttrue\n", "script arguments", out, err)

-- -e, -l and -l g=mod, in order.
out, err, code = run(A .. " -e 'x = 20' -l apexalloc -e 'print(x + 1, type(apexalloc.usage))' -l ax=apexalloc -e 'print(ax == apexalloc)'")
check(code == 0 and out == "21\tfunction\ntrue\n", "-e / -l", out, err)

-- warn(): off until "@on", pieces joined, as in lua5.4.
out, err, code = run(A .. [[ -e 'warn("hidden") warn("@on") warn("a", "b") warn("c")']])
check(code == 0 and err == "Lua warning: ab\nLua warning: c\n", "warn()", out, err)

-- LUA_INIT_5_4 before the options, as lua5.4 does it.
out, err, code = run("LUA_INIT_5_4='greeting = \"hi\"' " .. A .. " -e 'print(greeting)'")
check(code == 0 and out == "hi\n", "LUA_INIT_5_4", out, err)

-- Standard input as the script, and with no script when stdin is not a terminal.
out, err, code = run(A .. " - a1", 'print("stdin", ...)')
check(code == 0 and out == "stdin\ta1\n", "'-' runs stdin", out, err)
out, err, code = run(A, 'print("piped")')
check(code == 0 and out == "piped\n", "piped stdin without a script", out, err)

-- The interactive loop: expressions print their values, statements run, blocks continue.
out, err, code = run(A .. " -i", "1 + 2\nx = 5\nprint(x * 2)\nfor i = 1, 2 do\n  print('i', i)\nend\nerror('oops')\nprint('still here')\n")
check(code == 0 and out:find("\n?> 3\n") and out:find("10\n") and out:find("i\t1\n") and out:find("i\t2\n")
      and out:find("still here") and err:find("oops"), "interactive loop", out, err)

-- --stats: per-type figures and the heap at exit, on stderr.
out, err, code = run(A .. " --stats -e 't = {} for i = 1, 5000 do t[i] = {tostring(i)} end'")
check(code == 0, "--stats run", out, err)
local tables = tonumber(err:match("\n%s*table%s+(%d+)"))
local strings = tonumber(err:match("\n%s*string%s+(%d+)"))
check(tables and tables >= 5000 and strings and strings >= 5000, "--stats per-type lines", out, err)
check(err:find("live %d+ bytes, peak %d+") and err:find("heap: %d+ bytes allocated"), "--stats totals", out, err)
-- --no-types: created figures stay, live ones are not kept.
out, err, code = run(A .. " --no-types --stats -e 'x = {}'")
check(code == 0 and err:find("\n%s*table%s+%d+%s+%d+%s+%-%s+%-"), "--no-types shows no live figures", out, err)

-- --heap-map FILE.svg
local svg = tmp .. ".svg"
out, err, code = run(A .. " --heap-map " .. q(svg) .. " -e 'x = {} for i = 1, 1e4 do x[i] = {} end'")
f = io.open(svg)
local pic = f and f:read("a")
if f then f:close() end
os.remove(svg)
check(code == 0 and pic and pic:find("<svg") and pic:find("</svg>%s*$"), "--heap-map", out, err)

-- --limit: an uncaught "not enough memory" ends the run with status 1 ...
local hog = "local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(50) .. i end"
out, err, code = run(A .. " --limit 4M -e " .. q(hog))
check(code == 1 and err:find("not enough memory"), "--limit, uncaught", out, err)
-- ... pcall catches it and the program goes on.
out, err, code = run(A .. " --limit 4M -e " .. q("print(pcall(function() " .. hog .. " end)) print(#table.concat({'a','b'}))"))
check(code == 0 and out == "false\tnot enough memory\n2\n", "--limit under pcall", out, err)
out, err, code = run(A .. " --limit lots -e 'print(1)'")
check(code == 1 and err:find("bad byte count"), "bad --limit", out, err)

-- Errors: message, traceback, status 1.
out, err, code = run(A .. " -e 'error(\"boom\")'")
check(code == 1 and err:find("boom") and err:find("stack traceback"), "error status", out, err)
out, err, code = run(A .. " --frobnicate")
check(code == 1 and err:find("unrecognized option"), "unknown option", out, err)

-- Any Lua 5.4 program: the GC workload gives stock lua5.4's answer, in both collector modes.
local lua = "lua5.4"
local wl = q(dir .. "/gc_workload.lua")
local want = run(lua .. " " .. wl .. " 1")
check(want:match("^%d+\n$"), "stock lua5.4 ran the workload", want)
for _, mode in ipairs { "incremental", "generational" } do
  out, err, code = run(A .. " -e 'collectgarbage(\"" .. mode .. "\")' " .. wl .. " 1")
  check(code == 0 and out == want, "workload under " .. mode, out, err)
end
os.remove(script); os.remove(tmp .. ".in"); os.remove(tmp .. ".err"); os.remove(tmp)
print("apexlua cli: ok")
