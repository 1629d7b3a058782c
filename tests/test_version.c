/*
 * Pins: apex_version() == MAJOR*10000 + MINOR*100 + PATCH of the header's APEX_VERSION_* enum,
 * apex_version_string() is "MAJOR.MINOR.PATCH" of the same numbers (non-NULL, static: the same pointer
 * and text on every call), and both agree with the project version in CMakeLists.txt.
 */
#include <stdio.h>
#include <string.h>

#include "apexalloc.h"
#include "check.h"

#ifndef APEX_TEST_PROJECT_VERSION
#error "APEX_TEST_PROJECT_VERSION must be defined by tests/CMakeLists.txt"
#endif

int main(void) {
  int want = APEX_VERSION_MAJOR * 10000 + APEX_VERSION_MINOR * 100 + APEX_VERSION_PATCH;
  int got = apex_version();
  CHECK(got == want, "apex_version() = %d, but the header says %d.%d.%d (%d)", got, APEX_VERSION_MAJOR,
        APEX_VERSION_MINOR, APEX_VERSION_PATCH, want);

  char expect[64];
  snprintf(expect, sizeof expect, "%d.%d.%d", APEX_VERSION_MAJOR, APEX_VERSION_MINOR, APEX_VERSION_PATCH);
  const char *s = apex_version_string();
  CHECK(s != NULL, "apex_version_string() returned NULL");
  CHECK(strcmp(s, expect) == 0, "apex_version_string() = \"%s\", but the header says \"%s\"", s, expect);
  CHECK(apex_version_string() == s, "apex_version_string() is not one static string");
  CHECK(strcmp(apex_version_string(), expect) == 0, "apex_version_string() changed");

  CHECK(strcmp(expect, APEX_TEST_PROJECT_VERSION) == 0,
        "the header's version %s differs from the project version %s in CMakeLists.txt", expect,
        APEX_TEST_PROJECT_VERSION);
  CHECK(APEX_MIN_ALIGN == 16, "APEX_MIN_ALIGN = %d", (int)APEX_MIN_ALIGN);
  printf("version: %s (%d) OK\n", s, got);
  return 0;
}
