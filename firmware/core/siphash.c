/* SipHash-2-4 (Aumasson & Bernstein), 64-bit output, written from the paper. */
#include "copa_fw.h"

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int8_t i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void rounds(uint64_t v[4], uint8_t n)
{
    while (n--) {
        v[0] += v[1]; v[1] = ROTL(v[1], 13); v[1] ^= v[0]; v[0] = ROTL(v[0], 32);
        v[2] += v[3]; v[3] = ROTL(v[3], 16); v[3] ^= v[2];
        v[0] += v[3]; v[3] = ROTL(v[3], 21); v[3] ^= v[0];
        v[2] += v[1]; v[1] = ROTL(v[1], 17); v[1] ^= v[2]; v[2] = ROTL(v[2], 32);
    }
}

void copa_siphash(const uint8_t key[16], const uint8_t *m, size_t n, uint8_t out[8])
{
    uint64_t k0 = rd64(key), k1 = rd64(key + 8);
    uint64_t v[4];
    v[0] = k0 ^ 0x736f6d6570736575ULL;
    v[1] = k1 ^ 0x646f72616e646f6dULL;
    v[2] = k0 ^ 0x6c7967656e657261ULL;
    v[3] = k1 ^ 0x7465646279746573ULL;
    size_t i = 0;
    uint8_t blk[8];
    for (;;) {
        size_t left = n - i;
        uint8_t last = left < 8;
        for (uint8_t j = 0; j < 8; j++)
            blk[j] = (j < left) ? m[i + j] : 0;
        if (last)
            blk[7] = (uint8_t)n;
        uint64_t w = rd64(blk);
        v[3] ^= w;
        rounds(v, 2);
        v[0] ^= w;
        if (last)
            break;
        i += 8;
    }
    v[2] ^= 0xff;
    rounds(v, 4);
    uint64_t r = v[0] ^ v[1] ^ v[2] ^ v[3];
    for (uint8_t j = 0; j < 8; j++) {
        out[j] = (uint8_t)r;
        r >>= 8;
    }
}
