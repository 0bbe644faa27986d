#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_alloc.c into tests/fuzz/corpus/.

Deterministic: the same files every run.  Each seed is a small program in the
harness's encoding (opcode byte, slot byte, operands), aimed at one family of
calls, so that fuzzing starts from inputs that already reach every tier.
"""
import os

KB, MB = 1024, 1024 * 1024
BOUNDARY_COUNT = 37          # entries of boundary_sizes[] in fuzz_alloc.c
ODD_ALIGN_COUNT = 19         # entries of odd_alignments[]


def le(v, n):
    return [(v >> (8 * i)) & 0xff for i in range(n)]


def size(n):
    """Operand bytes that decode to a request of n bytes."""
    if n == 0:
        return [0]
    if n <= 64:
        return [16, n - 1]
    if n <= 1024:
        return [112] + le(n - 1, 2)
    if n <= 64 * KB:
        return [160] + le(n - 1025, 2)
    if n <= 2 * MB:
        return [200] + le(n - 64 * KB - 1, 3)
    return [254] + le(n - 2 * MB - 1, 3)


def boundary(i):
    return [230, i % BOUNDARY_COUNT]


def align(shift=None, odd=None):
    if odd is not None:
        # c >= 200 and c % ODD_ALIGN_COUNT == odd
        c = 200 + ((odd - 200) % ODD_ALIGN_COUNT)
        return [c]
    return [shift]


def malloc(s, sz): return [0, s] + sz
def free(s, how=0): return [4 | (how << 4), s]
def realloc(s, sz): return [6, s] + sz
def calloc(s, c, sz): return [8, s, c] + sz
def aligned(call, s, al, sz): return [9 + call, s] + al + sz
def usable(s): return [12, s]
def trim(s=0): return [13, s]
def thread(): return [14, 0]
def page_aligned(s, sz): return [0x4e, s] + sz
def reallocarray(s, sz): return [15, s] + sz
def reallocarray_overflow(s): return [0x8f, s]
def stats(): return [0x1d, 0]
def fault(c): return [0x2d, 0, c]        # c < 0x80: every Nth mapping fails; else a budget


def seeds():
    out = {}
    b = []
    for k, n in enumerate([1, 8, 16, 17, 48, 64, 100, 128, 129, 500, 1000, 1024]):
        b += malloc(k, size(n))
    for k in range(0, 12, 2):
        b += free(k)
    for k in range(12):
        b += usable(k)
    out["tiny"] = b

    b = []
    for k, n in enumerate([1025, 1500, 4096, 4097, 10000, 32768, 40000, 65535, 65536]):
        b += malloc(k, size(n))
        b += realloc(k, size(n + 3000))
    b += free(3) + free(5, 2) + free(7, 3)
    out["mid"] = b

    b = []
    for k, n in enumerate([65537, 100000, 300000, 1 * MB, 2 * MB - 1, 2 * MB]):
        b += malloc(k, size(n))
    b += realloc(0, size(500)) + realloc(1, size(1 * MB + 5)) + realloc(5, size(70000))
    out["large"] = b

    out["huge"] = (malloc(1, size(5 * MB)) + realloc(1, size(9 * MB)) + realloc(1, size(3 * MB))
                   + realloc(1, size(100)) + malloc(2, size(2 * MB + 1)) + free(2))

    b = []
    for i in range(BOUNDARY_COUNT):
        b += [0, i] + boundary(i)
    for i in range(0, BOUNDARY_COUNT, 3):
        b += free(i)
    out["boundaries"] = b

    b = []
    for k, c in enumerate([8, 9, 17, 30, 255, 16, 3, 0]):
        b += calloc(k, c, size([1, 100, 2000, 70000, 0, 1024, 0, 0][k]))
    out["calloc"] = b

    b = []
    for sh in range(23):
        b += aligned(0, sh, align(sh), size([1, 100, 5000, 100000][sh % 4]))
    out["aligned_alloc"] = b

    b = []
    for sh in range(0, 23, 2):
        b += aligned(1, sh, align(sh), size([16, 3000, 70000][sh % 3]))
    for odd in range(6):
        b += aligned(1, 100 + odd, align(odd=odd), size(64))
    out["posix_memalign"] = b

    b = []
    for odd in range(ODD_ALIGN_COUNT):
        b += aligned(2, odd, align(odd=odd), size([10, 2000, 3 * MB][odd % 3] if odd % 3 != 2 else 128))
    b += aligned(2, 50, align(22), size(3 * MB))
    out["memalign"] = b

    b = []
    for k in range(16):
        b += malloc(k, size(24 + 200 * k))
    b += thread()
    for k in range(0, 16, 2):
        b += free(k)                       # remote frees
    for k in range(20, 24):
        b += malloc(k, size(40 + k * 100))  # blocks that outlive the thread
    b += [0] * 8                            # end of the thread's operations (malloc 0 in slot 0)
    b += malloc(30, size(64)) + free(21) + free(1)
    out["threads"] = b

    b = []
    n = 1
    while n < 3 * MB:
        b += realloc(7, size(n))
        n = n * 3 + 1
    b += reallocarray(7, size(50)) + reallocarray_overflow(7) + reallocarray(8, size(1000))
    out["realloc_chain"] = b

    b = []
    for k in range(10):
        b += malloc(k, size(70000 + k * 9000))
    for k in range(10):
        b += free(k)
    b += trim() + malloc(11, size(3000)) + page_aligned(12, size(5000)) + page_aligned(13, size(4097))
    b += usable(11) + usable(12) + usable(200) + stats()
    out["trim_usable"] = b

    b = malloc(0, size(100)) + malloc(1, size(70000)) + stats()
    b += fault(0x1f)                        # every 2nd mapping call fails, 15 operations
    for k in range(2, 8):
        b += malloc(k, size([300000, 1 * MB, 2 * MB, 5000, 3 * MB, 40000][k - 2]))
    b += realloc(1, size(2 * MB + 5)) + realloc(0, size(1500000))
    b += fault(0x8f)                        # nothing beyond what is mapped now
    b += malloc(9, size(1 * MB)) + realloc(1, size(6 * MB)) + calloc(10, 20, size(60000))
    b += aligned(0, 11, align(21), size(100)) + thread() + malloc(12, size(200)) + free(0)
    b += [0] * 40 + stats()
    out["faults"] = b

    # Regression: zero-byte blocks aligned to 4 MiB and more (the block once
    # started outside its mapping; growing it in place lost it).
    b = aligned(1, 1, align(22), size(0)) + realloc(1, size(2 * MB + 1))
    b += aligned(0, 2, align(22), size(0)) + free(2) + usable(2)
    b += aligned(2, 3, align(odd=12), size(0)) + realloc(3, size(5 * MB))   # 8 MiB alignment
    b += aligned(0, 4, align(21), size(0)) + realloc(4, size(3 * MB)) + free(1) + free(3)
    out["regress_huge_align0"] = b
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    dest = os.path.join(here, "corpus")
    os.makedirs(dest, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(dest, "seed_" + name), "wb") as f:
            f.write(bytes(data))


if __name__ == "__main__":
    main()
