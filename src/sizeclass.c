/* Size classes: the one table of block sizes and slab shapes.
 *
 * Tiny (<= 1 KiB): steps of 16 up to 128, then four classes per
 * doubling; Mid (<= 64 KiB) and Large (<= 2 MiB): four classes per doubling.
 * Four per doubling keeps the unused tail under 20% of a block (a 1025-byte
 * request gets 1280), against up to 50% for powers of two.  Every size >= 16 is a multiple of 16,
 * so blocks carved from a page-aligned slab start are 16-byte aligned (and
 * every block can hold its free-list link and free mark), and
 * every power of two is a class, which is what aligned allocation uses.
 * Slab shape: Tiny slabs are one 64 KiB page; Mid slabs span the fewest of
 * 1, 2 or 4 pages that hold 32 blocks, and at least 8 blocks; Large slabs
 * hold exactly one block.  Mid slabs of 8 blocks made a random 4-8 KiB churn
 * switch slabs every few calls (random_mixed-8192: 55 M -> 120 M ops/s with
 * 32); 8-page slabs gained nothing more and kept more memory in the
 * keep-1-in-64 fragmentation test (test_rss: 50% of the peak vs 48%).
 */
#include "types.h"

const hak_class_info_t hak_classes[HAK_NCLASS] = {
    {     16,  1},
    {     32,  1},
    {     48,  1},
    {     64,  1},
    {     80,  1},
    {     96,  1},
    {    112,  1},
    {    128,  1},
    {    160,  1},
    {    192,  1},
    {    224,  1},
    {    256,  1},
    {    320,  1},
    {    384,  1},
    {    448,  1},
    {    512,  1},
    {    640,  1},
    {    768,  1},
    {    896,  1},
    {   1024,  1},
    {   1280,  1},
    {   1536,  1},
    {   1792,  1},
    {   2048,  1},
    {   2560,  2},
    {   3072,  2},
    {   3584,  2},
    {   4096,  2},
    {   5120,  4},
    {   6144,  4},
    {   7168,  4},
    {   8192,  4},
    {  10240,  4},
    {  12288,  4},
    {  14336,  4},
    {  16384,  4},
    {  20480,  4},
    {  24576,  4},
    {  28672,  4},
    {  32768,  4},
    {  40960,  5},
    {  49152,  6},
    {  57344,  7},
    {  65536,  8},
    {  81920,  2},
    {  98304,  2},
    { 114688,  2},
    { 131072,  2},
    { 163840,  3},
    { 196608,  3},
    { 229376,  4},
    { 262144,  4},
    { 327680,  5},
    { 393216,  6},
    { 458752,  7},
    { 524288,  8},
    { 655360, 10},
    { 786432, 12},
    { 917504, 14},
    {1048576, 16},
    {1310720, 20},
    {1572864, 24},
    {1835008, 28},
    {2097152, 32},
};

/* Class of a Tiny request n, indexed by (n + 7) / 8. */
const uint8_t hak_tiny_class[(HAK_TINY_MAX >> 3) + 1] = {
     0,  0,  0,  1,  1,  2,  2,  3,  3,  4,  4,  5,  5,  6,  6,  7,
     7,  8,  8,  8,  8,  9,  9,  9,  9, 10, 10, 10, 10, 11, 11, 11,
    11, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13,
    13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15,
    15, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17,
    17, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,
    18, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19,
    19,
};

/* The smallest class that holds n bytes and whose blocks are all aligned to
 * align (<= HAK_SLAB_ALIGN_MAX): its size must be a multiple of align. */
int hak_class_for_aligned(size_t n, size_t align)
{
    for (unsigned c = hak_class_of(n < align ? align : n); c < HAK_NCLASS; c++)
        if (hak_classes[c].size % align == 0)
            return (int)c;
    return -1;
}
