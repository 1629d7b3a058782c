/*
 * Delayed double free (48 bytes, class 3): p is freed, then many other objects of the same class
 * are freed and some allocated again (none of them p: p stays on the free list, deeper and
 * deeper), and only then is p freed a second time. The free tag still marks p.
 *   expects: apexalloc: double free at <p> (size class 3, 48 bytes)
 */
#define _GNU_SOURCE
#include "sec.h"

#define N 2000

int main(void) {
  static void *other[N];
  char *p = apex_malloc(48);
  if (p == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  for (int i = 0; i < N; i++) {
    other[i] = apex_malloc(48);
    if (other[i] == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  }
  apex_free(p);
  /* Free every other object after p (they go on the list in front of it), then allocate back
   * fewer than were freed, so p is never handed out again. */
  for (int i = 0; i < N; i += 2) apex_free(other[i]);
  for (int i = 0; i < N; i += 2) {
    other[i] = (i % 4 == 0) ? apex_malloc(48) : NULL;
    if (other[i] == p) sec_setup_failed("p was handed out again: the double free would be legal");
  }
  for (int i = 1; i < N; i += 4) { apex_free(other[i]); other[i] = NULL; }
  void *q = apex_malloc(48);
  if (q == p) sec_setup_failed("p was handed out again: the double free would be legal");
  sec_expect_at(p);
  apex_free(sec_launder(p));
  sec_survived("delayed double free");
}
