# cmake -DIN=file.lua -DOUT=header.h -DNAME=symbol -P embed_lua.cmake
# Writes the bytes of IN as `static const unsigned char NAME[]` (no terminating NUL), so the module
# carries its Lua layer without a file to find at run time.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}" "/* Generated from ${IN} by embed_lua.cmake: do not edit. */\nstatic const unsigned char ${NAME}[] = {\n${bytes}\n};\n")
