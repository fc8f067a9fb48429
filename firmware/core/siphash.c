/* SipHash-2-4 (Aumasson & Bernstein), 64-bit output, written from the paper.
 * The 64-bit words are kept as little-endian byte arrays and processed with byte loops: on an
 * 8-bit AVR this is about a third of the code size of the uint64_t version, at some speed cost
 * (still well under a millisecond for a frame). */
#include "copa_fw.h"

/* "somepseudorandomlygeneratedbytes", each 8-byte word byte-reversed (little-endian) */
static const uint8_t IV[32] = {
    0x75, 0x65, 0x73, 0x70, 0x65, 0x6d, 0x6f, 0x73, 0x6d, 0x6f, 0x64, 0x6e, 0x61, 0x72, 0x6f, 0x64,
    0x61, 0x72, 0x65, 0x6e, 0x65, 0x67, 0x79, 0x6c, 0x73, 0x65, 0x74, 0x79, 0x62, 0x64, 0x65, 0x74};

static void add(uint8_t *a, const uint8_t *b)
{
    uint16_t c = 0;
    for (uint8_t i = 0; i < 8; i++) {
        c = (uint16_t)(c + a[i] + b[i]);
        a[i] = (uint8_t)c;
        c >>= 8;
    }
}

static void xor8(uint8_t *a, const uint8_t *b)
{
    for (uint8_t i = 0; i < 8; i++) a[i] ^= b[i];
}

static void rotl(uint8_t *a, uint8_t r)
{
    uint8_t t[8], bytes = r >> 3, bits = r & 7;
    for (uint8_t i = 0; i < 8; i++) t[(i + bytes) & 7] = a[i];
    uint8_t carry = bits ? (uint8_t)(t[7] >> (8 - bits)) : 0;
    for (uint8_t i = 0; i < 8; i++) {
        uint8_t next = bits ? (uint8_t)(t[i] >> (8 - bits)) : 0;
        a[i] = (uint8_t)((t[i] << bits) | carry);
        carry = next;
    }
}

static void rounds(uint8_t v[4][8], uint8_t n)
{
    while (n--) {
        add(v[0], v[1]); rotl(v[1], 13); xor8(v[1], v[0]); rotl(v[0], 32);
        add(v[2], v[3]); rotl(v[3], 16); xor8(v[3], v[2]);
        add(v[0], v[3]); rotl(v[3], 21); xor8(v[3], v[0]);
        add(v[2], v[1]); rotl(v[1], 17); xor8(v[1], v[2]); rotl(v[2], 32);
    }
}

void copa_siphash(const uint8_t key[16], const uint8_t *m, size_t n, uint8_t out[8])
{
    uint8_t v[4][8], blk[8];
    for (uint8_t w = 0; w < 4; w++)
        for (uint8_t i = 0; i < 8; i++)
            v[w][i] = (uint8_t)(IV[w * 8 + i] ^ key[(w & 1) * 8 + i]);
    size_t i = 0;
    for (;;) {
        size_t left = n - i;
        uint8_t last = left < 8;
        for (uint8_t j = 0; j < 8; j++)
            blk[j] = (j < left) ? m[i + j] : 0;
        if (last)
            blk[7] = (uint8_t)n;
        xor8(v[3], blk);
        rounds(v, 2);
        xor8(v[0], blk);
        if (last)
            break;
        i += 8;
    }
    v[2][0] ^= 0xff;
    rounds(v, 4);
    for (uint8_t j = 0; j < 8; j++)
        out[j] = (uint8_t)(v[0][j] ^ v[1][j] ^ v[2][j] ^ v[3][j]);
}
