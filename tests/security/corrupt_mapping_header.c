/*
 * A write into the header at the start of another mapping (what a linear overflow out of the
 * mapping below reaches) is caught by the header's keyed check before a free or a realloc acts on
 * it. The program reaches the victim's header by pointer arithmetic from its own object, as an
 * overflowing write would, using the allocator's private layout:
 *   huge-link       a huge header's list link           -> free aborts before unlinking
 *   huge-size       a huge header's usable size          -> free aborts
 *   huge-heap       a huge header's heap pointer         -> free aborts
 *   huge-realloc    a huge header's mapping size         -> realloc aborts
 *     expects: apexalloc: corrupted huge header at <header> (large object)
 *   sb-heap-remote  a superblock's heap pointer, then another thread frees a chunk of it
 *   sb-heap-local   a superblock's heap pointer, pointing at a fake heap that claims the freeing
 *                   thread as its owner; the free empties the block
 *     expects: apexalloc: corrupted superblock header at <superblock> (no size class)
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "sec.h"
#include "internal.h"

static void *g_victim;
static heap_t g_fake_heap;

static void *free_it(void *arg) {
  (void)arg;
  apex_free(sec_launder(g_victim));
  return NULL;
}

/* The address `target` reached from `from` by pointer arithmetic, as an overflowing write would. */
static void *reach(void *from, void *target) {
  return (uint8_t *)sec_launder(from) + ((uint8_t *)target - (uint8_t *)from);
}

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "huge-link", "huge-size", "huge-heap", "huge-realloc",
                              "sb-heap-remote", "sb-heap-local");
  if (strncmp(v, "huge", 4) == 0) {
    size_t size = (size_t)8 << 20;
    char *mine = apex_malloc(size), *victim = apex_malloc(size);
    if (mine == NULL || victim == NULL) sec_setup_failed("apex_malloc(8 MiB) returned NULL");
    huge_t *h = (huge_t *)superblock_base(victim);
    sec_expect_at(h);
    if (strcmp(v, "huge-link") == 0) {
      *(uintptr_t *)reach(mine, &h->all_next) = (uintptr_t)0x4141414141414140ULL;
    } else if (strcmp(v, "huge-size") == 0) {
      *(size_t *)reach(mine, &h->huge_size) += (size_t)1 << 20;
    } else if (strcmp(v, "huge-heap") == 0) {
      *(uintptr_t *)reach(mine, &h->heap) = (uintptr_t)&g_fake_heap;
    } else {
      *(size_t *)reach(mine, &h->map_size) += (size_t)4 << 20;
      sec_launder(apex_realloc(sec_launder(victim), (size_t)16 << 20));
      sec_survived("a realloc through a corrupted huge header");
    }
    apex_free(sec_launder(victim));
    sec_survived("a free through a corrupted huge header");
  }
  char *mine;
  if (strcmp(v, "sb-heap-local") == 0) {
    apex_heap_t *heap = apex_heap_new();             /* a block whose one live chunk is the victim */
    if (heap == NULL) sec_setup_failed("apex_heap_new returned NULL");
    g_victim = apex_heap_alloc(heap, 48, 0);
    mine = g_victim;
  } else {
    sec_keep(48, 8);
    mine = apex_malloc(48);
    g_victim = apex_malloc(48);
  }
  if (g_victim == NULL || mine == NULL) sec_setup_failed("the 48-byte allocations returned NULL");
  superblock_t *sb = superblock_base(g_victim);
  sec_expect_at(sb);
  g_fake_heap.thread_id = strcmp(v, "sb-heap-local") == 0 ? (uintptr_t)__builtin_thread_pointer() : 0;
  *(uintptr_t *)reach(mine, &sb->heap) = (uintptr_t)&g_fake_heap;
  if (strcmp(v, "sb-heap-remote") == 0) {
    pthread_t t;
    if (pthread_create(&t, NULL, free_it, NULL) != 0) sec_setup_failed("pthread_create");
    pthread_join(t, NULL);
  } else {
    apex_free(sec_launder(g_victim));
  }
  sec_survived("a free through a corrupted superblock header");
}
