/*
 * block.c — one block: a run of slices serving one size class. Carving fresh chunks off its
 * bump pointer, and what happens when a free leaves it empty or makes a full block usable again.
 *
 * Owns: block initialization, the fresh-area bump pointer, block retirement.
 * Must never: be called by a thread that does not own the block's heap; take a lock.
 */
#include "internal.h"

void block_init(block_t *b, heap_t *heap, size_t cls, size_t chunk_size) {
  superblock_t *sb = (superblock_t *)((uintptr_t)b & ~(uintptr_t)SB_MASK);  /* in slice 0 */
  b->free = NULL;
  /* Through a keyed hash: the generator's output is invertible, and a leaked key must not give
   * away the heap's generator state (every other key and shuffle order of the heap). */
  uint64_t r = heap_random(heap);
  b->key = (uintptr_t)keyed_hash(&r, 1, 0x626C6F636B6B6579ULL) | 1;          /* "blockkey" */
  b->used = 0;
  b->chunk_size = (uint32_t)chunk_size;
  b->capacity = (uint32_t)(((size_t)b->slices << SLICE_SHIFT) / chunk_size);
  /* A large block's one chunk is handed out at once; a class block is carved by block_extend. */
  b->carved = cls == CLASS_LARGE ? 1 : 0;
  b->div_magic = UINT64_MAX / chunk_size + 1;
  block_set_limit(b, b->carved * (uint32_t)chunk_size);
  b->cls = (uint8_t)cls;
  b->start = (uint8_t *)sb + ((size_t)b->index << SLICE_SHIFT);
  block_seal(b);
  b->next = b->prev = NULL;
  count_add(&heap->block_counts.blocks[cls], 1);
  apex_assert(remote_chunks(atomic_load_explicit(&b->remote, memory_order_relaxed)) == NULL);
  atomic_store_explicit(&b->remote, (uintptr_t)BLOCK_QUEUED, memory_order_relaxed);
  apex_assert(b->capacity >= 1);
}

/* Moves up to about 8 KiB worth of never-used chunks onto the free list, so a new block costs
 * page faults only for what is really used. The chunks of a batch go onto the list in a random
 * order (a Fisher-Yates shuffle driven by the block's secret key), so the addresses a program
 * gets from a fresh block are not predictable from each other; staying within 8 KiB keeps the
 * locality of a bump pointer. Returns false when the block is fully carved. */
bool block_extend(block_t *b) {
  block_verify(b);                             /* carving trusts start, size and capacity */
  size_t remaining = b->capacity - b->carved;
  if (remaining == 0) return false;
  size_t batch = 8192 / b->chunk_size;
  if (batch == 0) batch = 1;
  if (batch > remaining) batch = remaining;
  uint8_t *first = b->start + (size_t)b->carved * b->chunk_size;
  uint16_t order[8192 / 16];
  for (size_t i = 0; i < batch; i++) order[i] = (uint16_t)i;
  uint64_t rng = (uint64_t)b->key ^ ((uint64_t)b->carved * 0x9E3779B97F4A7C15ULL) ^ (uintptr_t)first;
  for (size_t i = batch; i > 1; i--) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    size_t j = (size_t)((rng >> 32) % i);
    uint16_t t = order[i - 1]; order[i - 1] = order[j]; order[j] = t;
  }
  chunk_t *next = b->free;
  for (size_t i = 0; i < batch; i++) {
    chunk_t *c = (chunk_t *)(first + (size_t)order[i] * b->chunk_size);
    c->next_enc = link_encode(b, c, next);
    tag_store(c, chunk_tag_free(c));
    next = c;
  }
  b->free = next;
  b->carved += (uint32_t)batch;
  /* Raised before any chunk of the batch is handed out (see block_limit). The check covers only
   * whether the block is in use, so a remote freer verifying the descriptor meanwhile agrees. */
  bool first_batch = block_limit(b) == 0;
  block_set_limit(b, b->carved * b->chunk_size);
  if (first_batch) block_seal(b);
  return true;
}

/* A NOTIFIED block is not retired: the freer that notified may still be linking it onto the
 * `notified` stack, and the stack links it afterwards. Popping it retires it later (remote.c).
 * A relaxed load sees NOTIFIED: the CAS that set it also published a chunk, which this owner's
 * own collection took before the block could be empty. */
/* A large block's object is gone (freed locally, or its remote free collected): out of the live
 * figures once, however many times the block passes through here before it is retired. */
static void large_count_gone(heap_t *heap, block_t *b) {
  if (b->cls != CLASS_LARGE || b->used != 0 || (b->flags & BLOCK_LARGE_GONE)) return;
  b->flags |= BLOCK_LARGE_GONE;
  count_add(&heap->block_counts.large_live, -1);
  count_add(&heap->block_counts.large_bytes, -(ptrdiff_t)b->chunk_size);
}

static bool block_retire(heap_t *heap, superblock_t *sb, block_t *b) {
  if (remote_state(atomic_load_explicit(&b->remote, memory_order_relaxed)) == BLOCK_NOTIFIED) return false;
  if (b->cls != CLASS_LARGE && !(b->flags & BLOCK_IN_FULL)) heap_queue_remove(heap, b);
  if (b->cls != CLASS_LARGE && (b->flags & BLOCK_IN_FULL)) count_add(&heap->block_counts.full[b->cls], -1);
  large_count_gone(heap, b);
  count_add(&heap->block_counts.blocks[b->cls], -1);
  b->free = NULL;
  b->flags = 0;
  block_verify(b);
  block_set_limit(b, 0);                       /* from now on no pointer passes chunk_start_ok() */
  block_seal(b);
  counter_add(&heap->retired_blocks, 1);       /* a running apex_heap_visit re-checks its batch */
  superblock_give_slices(heap, sb, b);
  return true;
}

/* Retiring may release a superblock into a cache, which asks for the purge thread: the bracket
 * starts it (or decays inline) once the free is complete, when this is the outermost operation.
 * Out of line, so that a free which keeps its block as the spare pays nothing for it. */
static apex_noinline bool block_retire_at_free(heap_t *heap, superblock_t *sb, block_t *b) {
  purger_defer(true);
  bool retired = block_retire(heap, sb, b);
  purger_defer(false);
  return retired;
}

/* Called after a free when the block became empty or was full. A full block returns to its
 * class queue; an empty block is retired unless it is the only one left for its class, which is
 * kept so that a loop allocating and freeing one object does not re-create the block each time. */
bool block_free_slow(heap_t *heap, superblock_t *sb, block_t *b) {
  if (b->flags & BLOCK_IN_FULL) {
    superblock_verify(sb);                     /* the local free found `heap` in sb unchecked */
    b->flags &= (uint8_t)~BLOCK_IN_FULL;
    if (b->cls != CLASS_LARGE) count_add(&heap->block_counts.full[b->cls], -1);
    block_unarm_full(b);
    if (b->cls != CLASS_LARGE) heap_queue_push_back(heap, b);
  }
  if (b->used != 0) return false;
  large_count_gone(heap, b);
  /* Keeping a spare costs at most one 64 KiB slice per class; multi-slice blocks (0.1 to 1 MiB)
   * are always retired, or a buffer growing through the classes would leave one in each. */
  bool keep_spare = b->slices == 1 && heap->current[b->cls] == b && b->next == NULL;
  if (b->cls == CLASS_LARGE || heap->retire_all || !keep_spare) {
    superblock_verify(sb);                     /* retiring acts on `heap`, found in sb unchecked */
    return block_retire_at_free(heap, sb, b);
  }
  return false;
}

/* Used at thread exit and on collection: retire every empty block a heap holds. */
void block_retire_if_empty(heap_t *heap, superblock_t *sb, block_t *b) {
  if (b->used == 0) block_retire(heap, sb, b);
}

/* block_pop found chunk c's free tag gone (something wrote to it after it was freed) or its decoded
 * link outside the block's carved part (the list was overwritten). */
apex_cold apex_noinline void block_pop_corrupted(const block_t *b, const chunk_t *c) {
  apex_fatal(tag_load(c) != chunk_tag_free(c) ? "write after free" : "corrupted free list", c, b->cls);
}
