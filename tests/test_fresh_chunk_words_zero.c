/*
 * A fresh allocation never shows the allocator's bookkeeping: while a chunk is free its first
 * word holds its encoded free-list link and its second word its free tag, and both are cleared
 * when it is handed out. (The link of the last chunk of a list is the block's secret key mixed
 * with the chunk's address: reading it from a fresh malloc result would give the key away.)
 * Fresh chunks, reused chunks, chunks collected from other threads' frees, and several classes.
 */
#include <apexalloc.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

#define N 3000

static void *g_objs[N];

static void check_words(void *p, size_t size, const char *when) {
  uint64_t w[2];
  memcpy(w, p, sizeof w);
  CHECK(w[0] == 0 && w[1] == 0, "%s %zu-byte object %p: words 0x%llx 0x%llx, want 0 0", when, size, p,
        (unsigned long long)w[0], (unsigned long long)w[1]);
}

static void *free_all(void *arg) {
  (void)arg;
  for (size_t i = 0; i < N; i++) apex_free(g_objs[i]);
  return NULL;
}

int main(void) {
  const size_t sizes[] = {16, 48, 128, 1000, 4000};
  apex_heap_t *heap = apex_heap_new();
  CHECK(heap != NULL, "apex_heap_new failed");
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t size = sizes[s];
    for (size_t i = 0; i < N; i++) {
      g_objs[i] = apex_malloc(size);
      CHECK(g_objs[i] != NULL, "malloc(%zu) failed", size);
      check_words(g_objs[i], size, "fresh");
      memset(g_objs[i], 0xAB, size);
    }
    for (size_t i = 0; i < N; i++) apex_free(g_objs[i]);                /* local frees */
    for (size_t i = 0; i < N; i++) {
      g_objs[i] = apex_malloc(size);
      CHECK(g_objs[i] != NULL, "malloc(%zu) failed", size);
      check_words(g_objs[i], size, "reused");
      memset(g_objs[i], 0xCD, size);
    }
    pthread_t t;                                                         /* remote frees */
    CHECK(pthread_create(&t, NULL, free_all, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
    for (size_t i = 0; i < N; i++) {
      g_objs[i] = apex_malloc(size);
      CHECK(g_objs[i] != NULL, "malloc(%zu) failed", size);
      check_words(g_objs[i], size, "collected");
    }
    for (size_t i = 0; i < N; i++) apex_free(g_objs[i]);
    /* The owner's fast path of an explicit heap pops the same way. */
    for (size_t i = 0; i < N; i++) {
      g_objs[i] = apex_heap_alloc(heap, size, 0);
      CHECK(g_objs[i] != NULL, "apex_heap_alloc(%zu) failed", size);
      check_words(g_objs[i], size, "explicit-heap");
    }
    for (size_t i = 0; i < N; i++) apex_free(g_objs[i]);
  }
  apex_heap_destroy(heap);
  return 0;
}
