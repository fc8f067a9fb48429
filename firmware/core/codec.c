/* CRC-16/CCITT-FALSE and COBS, written for small MCUs (no tables). */
#include "copa_fw.h"

uint16_t copa_crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = 0xFFFF;
    while (n--) {
        crc ^= (uint16_t)(*p++) << 8;
        for (uint8_t i = 0; i < 8; i++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

size_t copa_cobs_encode(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF && i + 1 < n) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    return o;
}

int copa_cobs_decode(uint8_t *buf, size_t n)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t code = buf[i++];
        if (code == 0)
            return -1;
        for (uint8_t k = 1; k < code; k++) {
            if (i >= n)
                return -1;
            uint8_t c = buf[i++];
            if (c == 0)
                return -1;
            buf[o++] = c;
        }
        if (code != 0xFF && i < n)
            buf[o++] = 0;
    }
    return (int)o;
}
