/*
 * sizeclass.c — the size classes: which chunk size serves a request, and how many 64 KiB slices
 * a block of each class spans.
 *
 * Owns: g_class_size, g_class_slices and the lookup table of class_of().
 * Must never: depend on run-time state; the tables are a pure function of the constants.
 *
 * Classes 1..8 step by 16 bytes (16..128), then each doubling is split into 8 classes, so the
 * internal waste above 128 bytes is at most 12.5% (a request of 129 B gets 144 B). This is the
 * spacing jemalloc and mimalloc use too. Blocks of classes up to 8 KiB are one slice; larger
 * classes span enough slices to hold at least 8 chunks, so slack stays small.
 */
#include "internal.h"

uint32_t g_class_size[CLASS_COUNT];
uint8_t  g_class_slices[CLASS_COUNT];

/* class_of() for sizes 0..CLASS_TABLE_MAX, indexed by (size + 15) / 16: one load serves every
 * request the fast path sees most. Filled by sizeclass_init() from the computed formula, before any
 * heap exists; until then every entry is 0, whose queue is empty in every heap. */
uint8_t g_class_of_size[CLASS_TABLE_MAX / 16 + 1];

static size_t class_of_computed(size_t size) {
  if (size <= 128) return size == 0 ? 1 : (size + 15) >> 4;
  size_t w = size - 1;
  size_t b = 63 - (size_t)__builtin_clzll(w);
  return 9 + (b - 7) * 8 + ((w >> (b - 3)) & 7);
}

void sizeclass_init(void) {
  for (size_t cls = 1; cls < CLASS_COUNT; cls++) {
    size_t size;
    if (cls <= 8) {
      size = cls * 16;
    } else {
      size_t b = 7 + (cls - 9) / 8, sub = (cls - 9) % 8;
      size = (8 + sub + 1) << (b - 3);
    }
    g_class_size[cls] = (uint32_t)size;
    size_t slices = size <= 8192 ? 1 : (8 * size + SLICE_SIZE - 1) / SLICE_SIZE;
    g_class_slices[cls] = (uint8_t)slices;
  }
  apex_assert(g_class_size[CLASS_COUNT - 1] == SMALL_MAX);
  /* Every size of a 16-byte step shares one class: the class sizes above 128 are multiples of 16
   * (the smallest step, 128/8, is 16), so the step's largest size decides for all of it. */
  for (size_t i = 0; i <= CLASS_TABLE_MAX / 16; i++)
    g_class_of_size[i] = (uint8_t)class_of_computed(i * 16);
#if defined(APEX_DEBUG) && APEX_DEBUG
  for (size_t s = 0; s <= SMALL_MAX; s++) {
    size_t c = class_of_computed(s);
    apex_assert(c >= 1 && c < CLASS_COUNT && g_class_size[c] >= s);
    apex_assert(c == 1 || g_class_size[c - 1] < s);
    apex_assert(class_of(s) == c);
  }
#endif
}
