/* apex_heap_delete: the handle goes away, the objects stay valid, keep their contents, and can be
 * freed later with apex_free, also by another thread. */
#include <apexalloc.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

enum { N = 5000 };
static unsigned char *objects[N];

static size_t size_of(int i) { return i % 500 == 0 ? 200000 : (size_t)(i % 700) + 8; }

static void *free_half(void *arg) {
  int start = (int)(intptr_t)arg;
  for (int i = start; i < N; i += 2) {
    for (size_t k = 0; k < size_of(i); k++)
      CHECK(objects[i][k] == (unsigned char)(i + k), "object %d byte %zu changed after delete", i, k);
    apex_free(objects[i]);
  }
  return NULL;
}

int main(void) {
  apex_heap_t *h = apex_heap_new();
  CHECK(h != NULL, "apex_heap_new failed");
  for (int i = 0; i < N; i++) {
    objects[i] = apex_heap_alloc(h, size_of(i), i % 3 == 0 ? 64 : 0);
    CHECK(objects[i] != NULL, "allocation %d failed", i);
    for (size_t k = 0; k < size_of(i); k++) objects[i][k] = (unsigned char)(i + k);
  }
  CHECK(apex_heap_delete(h) == 0, "apex_heap_delete failed");
  CHECK(apex_heap_delete(apex_heap_default()) == EINVAL, "a default heap was deleted");
  for (int i = 0; i < N; i++) CHECK(apex_owns(objects[i]), "object %d is no longer live after delete", i);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_half, (void *)(intptr_t)1) == 0, "pthread_create failed");
  free_half((void *)(intptr_t)0);
  CHECK(pthread_join(t, NULL) == 0, "pthread_join failed");
  for (int i = 0; i < N; i++) CHECK(!apex_owns(objects[i]), "object %d still live after its free", i);
  return 0;
}
