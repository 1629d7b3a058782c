#define _POSIX_C_SOURCE 200809L
/* A heap used from several threads: its owner on the fast path, others through the shared
 * sub-heap; objects freed across threads; contents checked on every free; visit sees exactly the
 * live objects at the end. */
#include <apexalloc.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "testutil.h"

enum { THREADS = 3, SLOTS = 512 };
static apex_heap_t *g_heap;
static unsigned char *g_slot[SLOTS];
static size_t g_size[SLOTS];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static void fill(unsigned char *p, size_t n) { for (size_t k = 0; k < n; k++) p[k] = (unsigned char)(n + k); }
static void verify(const unsigned char *p, size_t n) {
  for (size_t k = 0; k < n; k++) CHECK(p[k] == (unsigned char)(n + k), "object %p byte %zu corrupted", (const void *)p, k);
}

static void *worker(void *arg) {
  uint64_t seed = (uint64_t)(intptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
  long iterations = (long)(40000 * tu_scale());
  for (long i = 0; i < iterations; i++) {
    seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
    size_t n = seed % 64 == 0 ? 70000 + seed % 100000 : 1 + seed % 900;
    unsigned char *p = apex_heap_alloc(g_heap, n, (seed >> 20) % 4 == 0 ? 128 : 0);
    CHECK(p != NULL, "apex_heap_alloc(%zu) failed", n);
    CHECK(((uintptr_t)p & 15) == 0, "misaligned %p", (void *)p);
    fill(p, n);
    size_t k = (seed >> 32) % SLOTS;
    pthread_mutex_lock(&g_lock);
    unsigned char *old = g_slot[k];
    size_t old_n = g_size[k];
    g_slot[k] = p;
    g_size[k] = n;
    pthread_mutex_unlock(&g_lock);
    if (old != NULL) {
      verify(old, old_n);
      apex_free(old);
    }
  }
  return NULL;
}

static size_t g_seen;
static int count_live(void *p, size_t usable, void *arg) {
  (void)arg;
  int found = 0;
  for (int k = 0; k < SLOTS; k++)
    if (g_slot[k] == p) {
      CHECK(usable >= g_size[k], "visit reports %zu usable bytes for a %zu-byte object", usable, g_size[k]);
      found = 1;
    }
  CHECK(found, "visit reported %p, which is not live", p);
  g_seen++;
  return 0;
}

int main(void) {
  g_heap = apex_heap_new();
  CHECK(g_heap != NULL, "apex_heap_new failed");
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)(i + 1)) == 0, "pthread_create failed");
  worker((void *)(intptr_t)100);                        /* the owner works too */
  for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0, "pthread_join failed");
  size_t live = 0;
  for (int k = 0; k < SLOTS; k++) live += g_slot[k] != NULL;
  CHECK(apex_heap_visit(g_heap, count_live, NULL) == 0, "visit failed");
  CHECK(g_seen == live, "visit saw %zu objects, %zu are live", g_seen, live);
  for (int k = 0; k < SLOTS; k++) {
    if (g_slot[k] == NULL) continue;
    verify(g_slot[k], g_size[k]);
    apex_free(g_slot[k]);
  }
  CHECK(apex_heap_destroy(g_heap) == 0, "destroy failed");
  return 0;
}
