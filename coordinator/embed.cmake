# embed.cmake - cmake -DIN=file -DOUT=file.c -DNAME=sym -P embed.cmake writes
# OUT, a C file defining `const char NAME[]` (IN's bytes and a NUL) and
# `const size_t NAME_len` (IN's size), so that a page is built into a binary.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE "${OUT}" "/* Generated from ${IN} by embed.cmake: do not edit. */\n#include <stddef.h>\n\nconst char ${NAME}[] = {\n${body}0};\nconst size_t ${NAME}_len = ${len};\n")
