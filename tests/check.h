/*
 * check.h — the one assertion macro of the ApexAlloc C tests.
 *
 *   CHECK(cond, fmt, ...)
 *
 * When `cond` is false, prints
 *   <file>:<line>: CHECK(<cond>) failed: <message>
 * on stderr and ends the process with exit status 1. It uses _Exit so that a failure seen by
 * one thread of a stress test ends the process at once, without running atexit handlers or
 * library destructors while other threads are still inside the allocator. stderr is
 * unbuffered, so the message is never lost.
 */
#ifndef APEX_TESTS_CHECK_H
#define APEX_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);            \
      fprintf(stderr, __VA_ARGS__);                                                       \
      fputc('\n', stderr);                                                                \
      fflush(stderr);                                                                     \
      _Exit(1);                                                                           \
    }                                                                                     \
  } while (0)

#endif /* APEX_TESTS_CHECK_H */
