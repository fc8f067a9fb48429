/* libFuzzer target: the frame parser and the dispatcher behind it.
 * Byte 0 of the input selects a mode:
 *   bit 0 clear: the rest is fed raw to the parser (garbage, COBS and CRC edge cases);
 *   bit 0 set:   the rest is cut into chunks ([len][type][id][body...]) that are wrapped in
 *                valid frames, so the dispatcher sees well-formed input; with bit 1 set the
 *                board is paired and a session is open, and chunks with type bit 6 set get a
 *                valid counter and MAC, so authenticated handlers are reached too. */
#include <string.h>
#include "mock_hal.h"

static const uint8_t KEY[16] = "fuzz-key-0123456";
static uint8_t skey[16];
static uint32_t counter;

static void feed_frame(uint8_t type, uint8_t id, const uint8_t *body, size_t n)
{
    uint8_t raw[COPA_FRAME_MAX + 16], enc[COPA_ENC_MAX + 16];
    if (n > COPA_MAX_BODY + 8) n = COPA_MAX_BODY + 8;
    raw[0] = type; raw[1] = id;
    if (n) memcpy(raw + 2, body, n);
    uint16_t c = copa_crc16(raw, n + 2);
    raw[n + 2] = (uint8_t)c; raw[n + 3] = (uint8_t)(c >> 8);
    size_t e = copa_cobs_encode(raw, n + 4, enc);
    for (size_t i = 0; i < e; i++) copa_rx_byte(enc[i]);
    copa_rx_byte(0);
}

static void kdf(uint8_t tag, const uint8_t *a, const uint8_t *b, uint8_t *out)
{
    uint8_t m[17];
    m[0] = tag; memcpy(m + 1, a, 8); memcpy(m + 9, b, 8);
    copa_siphash(KEY, m, 17, out);
}

static void open_session(void)
{
    uint8_t nh[8] = {1, 2, 3, 4, 5, 6, 7, 8}, nd[8], ph[8];
    feed_frame(CMD_PAIR, 1, KEY, 16);
    mock_clear_output();
    feed_frame(CMD_AUTH_BEGIN, 2, nh, 8);
    /* response: COBS of 92 02 00 nd(8) proof(8) crc: decode to read nd */
    uint8_t tmp[64];
    size_t n = 0;
    while (n < mock_out_len && mock_out[n]) n++;
    memcpy(tmp, mock_out, n);
    if (copa_cobs_decode(tmp, n) < 19) return;
    memcpy(nd, tmp + 3, 8);
    kdf('H', nd, nh, ph);
    feed_frame(CMD_AUTH_FINISH, 3, ph, 8);
    kdf('S', nh, nd, skey);
    kdf('T', nh, nd, skey + 8);
    counter = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mock_fresh();
    copa_init();
    if (size == 0) return 0;
    uint8_t mode = data[0];
    data++; size--;
    if (!(mode & 1)) {
        for (size_t i = 0; i < size; i++) {
            copa_rx_byte(data[i]);
            if ((i & 15) == 0) { mock_now += 7; copa_poll(); mock_clear_output(); }
        }
        return 0;
    }
    if (mode & 2) open_session();
    while (size >= 3) {
        size_t len = data[0] % (COPA_MAX_BODY + 4);
        uint8_t type = data[1], id = data[2];
        data += 3; size -= 3;
        if (len > size) len = size;
        uint8_t body[COPA_MAX_BODY + 16];
        memcpy(body, data, len);
        data += len; size -= len;
        if ((mode & 2) && (type & 0x40) && len + 12 <= COPA_MAX_BODY) {
            uint8_t m[COPA_MAX_BODY + 16];
            type &= 0x1F;
            uint32_t c = ++counter;
            for (int i = 0; i < 4; i++) body[len + i] = (uint8_t)(c >> (8 * i));
            m[0] = type; m[1] = id;
            memcpy(m + 2, body, len + 4);
            copa_siphash(skey, m, len + 6, body + len + 4);
            len += 12;
        }
        feed_frame(type, id, body, len);
        mock_now += 13;
        mock_adc[type % 6] = (uint16_t)(id * 4);
        mock_pin_in[type % 20] = id & 1;
        copa_poll();
        mock_clear_output();
    }
    return 0;
}
