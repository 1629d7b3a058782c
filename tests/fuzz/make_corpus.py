#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz_alloc_ops harness into tests/fuzz/corpus/.

Each seed is a small program in the harness's input language (see fuzz_alloc_ops.c): an operation
byte, a slot byte, then the operation's arguments. The seeds cover every operation and every
size range once, so the fuzzer starts from inputs that already reach the large, huge, aligned,
heap and limited-heap paths. The output is deterministic: re-running this script rewrites the same
files.

    python3 tests/fuzz/make_corpus.py
"""
import os
import random
import struct

(OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_ALIGNED, OP_MEMALIGN, OP_HEAP_ALLOC, OP_HEAP_CALLOC,
 OP_FREE, OP_FREE_SIZED, OP_USABLE, OP_OWNS, OP_REWRITE, OP_HEAP_DESTROY, OP_COLLECT,
 OP_MALLOC2, OP_FREE2) = range(16)
HEAP, LIMITED = 0, 1            # "from" byte of heap operations: 1 + b % 2 -> FROM_HEAP, FROM_LIMITED
KIB, MIB = 1024, 1024 * 1024


def size(n):
    """The encoding of read_size() for a size n (below 8 MiB)."""
    if n < 1024:
        return bytes([n >> 8, n & 0xFF])
    if n < 128 * KIB:
        return bytes([176 | (n >> 16)]) + struct.pack("<H", n & 0xFFFF)
    if n < 4 * MIB:
        return bytes([240]) + struct.pack("<I", n)[:3]
    return bytes([252]) + struct.pack("<H", min((n - 4 * MIB) >> 6, 0xFFFF))


def align(a):
    return bytes([a.bit_length() - 1 - 4])


def malloc(slot, n):              return bytes([OP_MALLOC, slot]) + size(n)
def calloc(slot, count, n):       return bytes([OP_CALLOC, slot, count - 1]) + size(n)
def realloc(slot, n):             return bytes([OP_REALLOC, slot]) + size(n)           # a live slot
def realloc_new(slot, n, frm):    return bytes([OP_REALLOC, slot]) + size(n) + bytes([frm])  # an empty one
def realloc_heap(slot, n, a=0):   return bytes([OP_REALLOC, slot]) + size(n) + (b"\x01" + align(a) if a else b"\x00")
def aligned(slot, a, n):          return bytes([OP_ALIGNED, slot]) + align(a) + size(n)
def memalign(slot, a, n):         return bytes([OP_MEMALIGN, slot]) + align(a) + size(n)
def free(slot):                   return bytes([OP_FREE, slot])
def free_sized(slot, extra=0):    return bytes([OP_FREE_SIZED, slot]) + struct.pack("<H", extra)
def usable(slot):                 return bytes([OP_USABLE, slot])
def owns(slot, off=1):            return bytes([OP_OWNS, slot, off])
def rewrite(slot):                return bytes([OP_REWRITE, slot])
def destroy(which):               return bytes([OP_HEAP_DESTROY, 0, which])
def collect():                    return bytes([OP_COLLECT, 0])


def heap_alloc(slot, which, n, a=0):
    return bytes([OP_HEAP_ALLOC, slot, which]) + ((b"\x01" + align(a)) if a else b"\x00") + size(n)


def heap_calloc(slot, which, count, n, a=16):
    return bytes([OP_HEAP_CALLOC, slot, count - 1]) + size(n) + bytes([which]) + align(a)


def seeds():
    s = {}
    s["small_churn"] = b"".join(
        [malloc(i, (i * 37) % 1024) for i in range(48)]
        + [free(i) for i in range(0, 48, 2)]
        + [malloc(i, 16 + i) for i in range(0, 48, 4)]
        + [free_sized(i, 3) for i in range(1, 48, 3)]
        + [realloc(i, 2 * ((i * 37) % 1024) + 1) for i in (3, 5, 9, 11, 15, 17, 21, 23)])
    s["realloc_growth"] = b"".join(
        [realloc_new(7, 1, 0), realloc_new(8, 100, 1), realloc_new(9, 0, 2)]
        + [realloc(7, n) for n in (16, 100, 1000, 5000, 70 * KIB, 200 * KIB, 1 * MIB, 3 * MIB,
                                   5 * MIB, 7 * MIB, 6 * MIB, 100 * KIB, 48, 0)]
        + [free(7)])
    s["aligned"] = b"".join(
        [aligned(i, 1 << (4 + i), 100 + 1000 * i) for i in range(17)]
        + [memalign(20 + i, 1 << (4 + i), 3000) for i in range(17)]
        + [usable(i) for i in range(17)]
        + [free(i) for i in range(17)])
    s["large_huge"] = b"".join(
        [malloc(1, 129 * KIB), malloc(2, 300 * KIB), malloc(3, 2 * MIB), malloc(4, 3 * MIB + 900 * KIB),
         malloc(5, 5 * MIB), malloc(6, 8 * MIB - 64 * KIB), owns(2), owns(5, 7), usable(4),
         free_sized(1, 500), free(2), realloc(3, 4 * MIB + 4 * KIB), realloc(5, 6 * MIB), free(6),
         malloc(6, 5 * MIB), collect(), free(3), free(4), free(5)])
    s["heaps"] = b"".join(
        [heap_alloc(i, HEAP, 64 * (i + 1)) for i in range(16)]
        + [heap_alloc(16 + i, LIMITED, 100 * KIB) for i in range(12)]          # passes the 1 MiB limit
        + [heap_alloc(40, HEAP, 300 * KIB, 64 * KIB), heap_alloc(41, HEAP, 5 * MIB, 1 * MIB)]
        + [realloc_heap(i, 2000 + i, 256) for i in range(0, 16, 3)]
        + [heap_calloc(50, HEAP, 4, 1000), heap_calloc(51, LIMITED, 3, 200 * KIB)]
        + [free(3), destroy(HEAP), heap_alloc(3, HEAP, 10), destroy(LIMITED), heap_alloc(4, LIMITED, 900 * KIB)])
    s["calloc"] = b"".join(
        [calloc(i, 1 + i % 16, (i * 997) % 60000) for i in range(32)]
        + [free(i) for i in range(32)]
        + [calloc(i, 2, (i * 997) % 60000) for i in range(32)]
        + [calloc(40, 1, 3 * MIB), calloc(41, 16, 5 * MIB)])
    s["owns_usable"] = b"".join(
        [malloc(i, i * 200) for i in range(24)]
        + [owns(i, 1 + i % 15) for i in range(24)]
        + [usable(i) for i in range(24)] + [rewrite(i) for i in range(24)]
        + [free_sized(i, 65535) for i in range(24)])
    rng = random.Random(20240601)
    s["random_mix"] = bytes(rng.randrange(256) for _ in range(1000))
    return s


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(data)
        print(f"{name}.bin: {len(data)} bytes")


if __name__ == "__main__":
    main()
