/*
 * sec.h — helpers shared by the security death-test programs (header only).
 *
 * Each program in tests/security/ commits one kind of heap misuse and is run by death_test.c,
 * which expects it to be killed by SIGABRT after printing exactly one line on stderr:
 *
 *   apexalloc: <what> at 0x<hex> (<size class>)
 *
 * Protocol between a program and the runner:
 *   - just before the misuse, the program calls sec_expect_at(address): it writes
 *       APEX_EXPECT_AT 0x<hex>
 *     on stdout (with write(2), never stdio, which would allocate), naming the address the
 *     allocator must report;
 *   - if the program gets past the misuse alive, it calls sec_survived(), which says so and exits
 *     with status 3; a setup step that did not go as planned calls sec_setup_failed() (status 2).
 * Neither of those ends with SIGABRT, so the runner reports them as failures.
 *
 * The programs use the apex_* API rather than malloc/free, so that the compiler (which knows what
 * free does) neither warns about nor optimizes away the misuse; sec_launder() hides a pointer's
 * provenance for the same reason.
 */
#ifndef APEX_TESTS_SECURITY_SEC_H
#define APEX_TESTS_SECURITY_SEC_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apexalloc.h"

/* Returns p unchanged, with the optimizer unable to see where it came from. */
static inline void *sec_launder(const void *p) {
  void *q = (void *)(uintptr_t)p;
  __asm__ volatile("" : "+r"(q) : : "memory");
  return q;
}

/* Output goes straight to the file descriptor through a stack buffer: stdio would allocate its
 * buffer with malloc, which is ApexAlloc here, and that allocation could land on the very memory
 * a test has just freed and is about to misuse. */
__attribute__((format(printf, 1, 0))) static inline void sec_vsay(const char *fmt, va_list ap) {
  char line[512];
  int n = vsnprintf(line, sizeof line, fmt, ap);
  if (n < 0) return;
  size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  for (size_t done = 0; done < len;) {
    ssize_t w = write(STDOUT_FILENO, line + done, len - done);
    if (w <= 0) return;
    done += (size_t)w;
  }
}

__attribute__((format(printf, 1, 2))) static inline void sec_say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sec_vsay(fmt, ap);
  va_end(ap);
}

static inline void sec_expect_at(const void *where) {
  sec_say("APEX_EXPECT_AT 0x%" PRIxPTR "\n", (uintptr_t)where);
}

__attribute__((noreturn, format(printf, 1, 2))) static inline void sec_setup_failed(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sec_say("test setup failed: ");
  sec_vsay(fmt, ap);
  sec_say("\n");
  va_end(ap);
  _Exit(2);
}

__attribute__((noreturn)) static inline void sec_survived(const char *misuse) {
  sec_say("survived: %s was not detected\n", misuse);
  _Exit(3);
}

/* The variant a program was asked to run (argv[1]), checked against the list it knows. */
static inline const char *sec_variant(int argc, char **argv, const char *const *known, size_t n) {
  if (argc != 2) sec_setup_failed("usage: %s <variant>", argv[0]);
  for (size_t i = 0; i < n; i++)
    if (strcmp(argv[1], known[i]) == 0) return known[i];
  sec_setup_failed("unknown variant '%s'", argv[1]);
}

#define SEC_VARIANT(argc, argv, ...)                                                   \
  sec_variant((argc), (argv), (const char *const[]){__VA_ARGS__},                      \
              sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* Allocates n objects of `size` bytes and never frees them: they keep the block of the objects
 * under test in use, so nothing is retired or reused in the middle of a test. */
static inline void sec_keep(size_t size, int n) {
  static void *kept[64];
  for (int i = 0; i < n && i < 64; i++) {
    kept[i] = apex_malloc(size);
    if (kept[i] == NULL) sec_setup_failed("apex_malloc(%zu) returned NULL", size);
  }
}

/* Writes a word into memory the program is not supposed to touch any more (after a free). */
static inline void sec_poke(void *p, size_t word, uintptr_t value) {
  volatile uintptr_t *w = (volatile uintptr_t *)sec_launder(p);
  w[word] = value;
}

#endif /* APEX_TESTS_SECURITY_SEC_H */
