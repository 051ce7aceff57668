/*
 * export.h - RL_API marks the declarations the shared library exports.
 *
 * The library is compiled with -fvisibility=hidden, so only functions
 * declared with RL_API (the rl_ API of lib/include/ringleader/) are in
 * libringleader.so's dynamic symbol table; internal rli_ functions are not.
 * See docs/install.md, "What is exported".
 */
#ifndef RINGLEADER_EXPORT_H
#define RINGLEADER_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define RL_API __attribute__((visibility("default")))
#else
#define RL_API
#endif

#endif
