/*
 * A wild write into a block descriptor (the metadata every freeing thread trusts) is caught by
 * the descriptor's keyed CRC32-C before the allocator acts on it:
 *   remote-free  the descriptor's link key is overwritten, then another thread frees a chunk of
 *                the block (a remote free verifies the descriptor before pushing)
 *   carve        the chunk size is overwritten, then the owner allocates until the block carves
 *                fresh chunks (carving verifies the descriptor first)
 *   expects: apexalloc: corrupted block metadata at <block start> (size class 3, 48 bytes)
 * The program finds the descriptor through the allocator's private header, as an attacker who
 * knows the layout would.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "sec.h"
#include "internal.h"

static void *g_victim;

static void *free_it(void *arg) {
  (void)arg;
  apex_free(sec_launder(g_victim));
  return NULL;
}

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "remote-free", "carve");
  sec_keep(48, 8);
  g_victim = apex_malloc(48);
  if (g_victim == NULL) sec_setup_failed("apex_malloc(48) returned NULL");
  superblock_t *sb = superblock_base(g_victim);
  block_t *b = block_of(sb, g_victim);
  sec_expect_at(b->start);
  if (strcmp(v, "remote-free") == 0) {
    b->key ^= 0x40;                         /* one flipped bit of the link key */
    pthread_t t;
    if (pthread_create(&t, NULL, free_it, NULL) != 0) sec_setup_failed("pthread_create");
    pthread_join(t, NULL);
  } else {
    b->chunk_size += 16;                    /* the block now claims bigger chunks */
    for (int i = 0; i < 100000; i++) sec_launder(apex_malloc(48));
  }
  sec_survived("a corrupted block descriptor");
}
