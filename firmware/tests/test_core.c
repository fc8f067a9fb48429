/* Unit tests of the portable core on the host: codec, CRC, COBS, SipHash, frames, dispatcher,
 * authentication and replay, rules with time, persistence. Reads the shared vectors file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mock_hal.h"

static int fails, checks;
#define CHECK(c, ...) do { checks++; if (!(c)) { fails++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

static size_t unhex(const char *s, uint8_t *out)
{
    size_t n = 0;
    if (!strcmp(s, "-")) return 0;
    for (; s[0] && s[1]; s += 2) { unsigned v; sscanf(s, "%2x", &v); out[n++] = (uint8_t)v; }
    return n;
}

/* ---------------- frame helpers ---------------- */
typedef struct { uint8_t t, id; uint8_t b[300]; size_t n; } frame_t;
static frame_t got[64];
static int ngot;

static void feed(const uint8_t *p, size_t n) { for (size_t i = 0; i < n; i++) copa_rx_byte(p[i]); }

static size_t build(uint8_t type, uint8_t id, const uint8_t *body, size_t n, uint8_t *wire)
{
    uint8_t raw[300];
    raw[0] = type; raw[1] = id;
    if (n) memcpy(raw + 2, body, n);
    uint16_t c = copa_crc16(raw, n + 2);
    raw[n + 2] = (uint8_t)c; raw[n + 3] = (uint8_t)(c >> 8);
    size_t e = copa_cobs_encode(raw, n + 4, wire);
    wire[e++] = 0;
    return e;
}

static void collect(void)
{
    size_t start = 0;
    ngot = 0;
    for (size_t i = 0; i < mock_out_len; i++) {
        if (mock_out[i]) continue;
        uint8_t tmp[400];
        size_t n = i - start;
        memcpy(tmp, mock_out + start, n);
        int d = copa_cobs_decode(tmp, n);
        CHECK(d >= 4, "device sent a malformed frame");
        if (d >= 4 && ngot < 64) {
            uint16_t c = (uint16_t)(tmp[d - 2] | (tmp[d - 1] << 8));
            CHECK(copa_crc16(tmp, (size_t)d - 2) == c, "device sent a bad CRC");
            got[ngot].t = tmp[0]; got[ngot].id = tmp[1];
            got[ngot].n = (size_t)d - 4;
            memcpy(got[ngot].b, tmp + 2, got[ngot].n);
            ngot++;
        }
        start = i + 1;
    }
    mock_clear_output();
}

static uint8_t next_id = 1;
static frame_t *request(uint8_t type, const uint8_t *body, size_t n)
{
    uint8_t wire[400];
    uint8_t id = next_id++;
    if (!next_id) next_id = 1;
    mock_clear_output();
    feed(wire, build(type, id, body, n, wire));
    collect();
    CHECK(ngot == 1, "cmd %02x: expected one answer, got %d", type, ngot);
    if (ngot < 1) { static frame_t none; none.b[0] = 0xEE; return &none; }
    CHECK(got[0].t == (type | 0x80) && got[0].id == id, "cmd %02x: answer header %02x/%d", type,
          got[0].t, got[0].id);
    return &got[0];
}

static uint8_t skey[16];
static uint32_t ctr;
static frame_t *signed_req(uint8_t type, const uint8_t *p, size_t n, uint32_t c, int corrupt)
{
    uint8_t body[300], m[300];
    if (n) memcpy(body, p, n);
    body[n] = (uint8_t)c; body[n + 1] = (uint8_t)(c >> 8); body[n + 2] = (uint8_t)(c >> 16);
    body[n + 3] = (uint8_t)(c >> 24);
    m[0] = type; m[1] = next_id;
    memcpy(m + 2, body, n + 4);
    copa_siphash(skey, m, n + 6, body + n + 4);
    if (corrupt) body[n + 4] ^= 1;
    return request(type, body, n + 12);
}

static void kdf(const uint8_t *key, uint8_t tag, const uint8_t *a, const uint8_t *b, uint8_t *out)
{
    uint8_t m[17];
    m[0] = tag; memcpy(m + 1, a, 8); memcpy(m + 9, b, 8);
    copa_siphash(key, m, 17, out);
}

static const uint8_t KEY[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static void auth_only(void);
static void pair_and_auth(void)
{
    frame_t *f = request(CMD_PAIR, KEY, 16);
    CHECK(f->b[0] == ST_OK, "PAIR status %d", f->b[0]);
    auth_only();
}
static void auth_only(void)
{
    frame_t *f;
    uint8_t nh[8] = {9, 9, 9, 9, 9, 9, 9, 9}, nd[8], proof[8], ph[8];
    f = request(CMD_AUTH_BEGIN, nh, 8);
    CHECK(f->b[0] == ST_OK && f->n == 17, "AUTH_BEGIN");
    memcpy(nd, f->b + 1, 8);
    kdf(KEY, 'D', nh, nd, proof);
    CHECK(!memcmp(proof, f->b + 9, 8), "device proof wrong");
    kdf(KEY, 'H', nd, nh, ph);
    f = request(CMD_AUTH_FINISH, ph, 8);
    CHECK(f->b[0] == ST_OK, "AUTH_FINISH status %d", f->b[0]);
    kdf(KEY, 'S', nh, nd, skey);
    kdf(KEY, 'T', nh, nd, skey + 8);
    ctr = 0;
}

/* ---------------- vector tests ---------------- */
static void run_vectors(const char *path)
{
    FILE *fp = fopen(path, "r");
    char line[4096];
    int n = 0;
    CHECK(fp != NULL, "cannot open %s", path);
    if (!fp) return;
    while (fgets(line, sizeof line, fp)) {
        char *f[16];
        int nf = 0;
        for (char *t = strtok(line, " \t\r\n"); t && nf < 16; t = strtok(NULL, " \t\r\n")) f[nf++] = t;
        if (nf == 0 || f[0][0] == '#') continue;
        static uint8_t a[1024], b[1024], c[1024], d[1024];
        size_t na, nb, nc;
        n++;
        if (!strcmp(f[0], "crc") && nf == 4) {
            na = unhex(f[2], a);
            CHECK(copa_crc16(a, na) == strtoul(f[3], NULL, 16), "crc %s", f[1]);
        } else if (!strcmp(f[0], "cobs") && nf == 4) {
            na = unhex(f[2], a); nb = unhex(f[3], b);
            nc = copa_cobs_encode(a, na, c);
            CHECK(nc == nb && !memcmp(c, b, nb), "cobs encode %s", f[1]);
            CHECK(nc <= na + na / 254 + 1, "cobs bound %s", f[1]);
            int dn = copa_cobs_decode(b, nb);
            CHECK(dn == (int)na && !memcmp(b, a, na), "cobs decode %s", f[1]);
        } else if (!strcmp(f[0], "cobs_bad") && nf == 3) {
            na = unhex(f[2], a);
            CHECK(copa_cobs_decode(a, na) < 0, "cobs_bad %s accepted", f[1]);
        } else if (!strcmp(f[0], "siphash") && nf == 5) {
            unhex(f[2], a); nb = unhex(f[3], b); unhex(f[4], c);
            copa_siphash(a, b, nb, d);
            CHECK(!memcmp(c, d, 8), "siphash %s", f[1]);
        } else if (!strcmp(f[0], "frame") && nf == 6) {
            uint8_t t = (uint8_t)strtoul(f[2], NULL, 16), id = (uint8_t)strtoul(f[3], NULL, 16);
            na = unhex(f[4], a); nb = unhex(f[5], b);
            nc = build(t, id, a, na, c);
            CHECK(nc == nb && !memcmp(b, c, nb), "frame %s", f[1]);
            int dn = copa_cobs_decode(b, nb - 1);
            CHECK(dn == (int)na + 4 && b[0] == t && b[1] == id && !memcmp(b + 2, a, na),
                  "frame decode %s", f[1]);
        } else if (!strcmp(f[0], "kdf") && nf == 7) {
            uint8_t k[16], x[8], y[8], o[8];
            unhex(f[2], k); unhex(f[4], x); unhex(f[5], y); unhex(f[6], o);
            kdf(k, (uint8_t)strtoul(f[3], NULL, 16), x, y, d);
            CHECK(!memcmp(d, o, 8), "kdf %s", f[1]);
        } else if (!strcmp(f[0], "auth") && nf == 8) {
            uint8_t k[16], h[8], dv[8], pd[8], p2[8], sk[16], o[16];
            unhex(f[2], k); unhex(f[3], h); unhex(f[4], dv); unhex(f[5], pd); unhex(f[6], p2);
            unhex(f[7], sk);
            kdf(k, 'D', h, dv, o); CHECK(!memcmp(o, pd, 8), "auth %s proof D", f[1]);
            kdf(k, 'H', dv, h, o); CHECK(!memcmp(o, p2, 8), "auth %s proof H", f[1]);
            kdf(k, 'S', h, dv, o); kdf(k, 'T', h, dv, o + 8);
            CHECK(!memcmp(o, sk, 16), "auth %s session key", f[1]);
        } else if (!strcmp(f[0], "signed") && nf == 8) {
            uint8_t sk[16], m[300];
            unhex(f[2], sk);
            na = unhex(f[5], a); nb = unhex(f[7], b);
            uint32_t cv = (uint32_t)strtoul(f[6], NULL, 10);
            m[0] = (uint8_t)strtoul(f[3], NULL, 16); m[1] = (uint8_t)strtoul(f[4], NULL, 16);
            memcpy(m + 2, a, na);
            for (int i = 0; i < 4; i++) m[2 + na + i] = (uint8_t)(cv >> (8 * i));
            copa_siphash(sk, m, na + 6, d);
            CHECK(nb == na + 12 && !memcmp(b, m + 2, na + 4) && !memcmp(b + na + 4, d, 8),
                  "signed %s", f[1]);
        } else if (!strcmp(f[0], "rule") && nf == 13) {
            copa_rule_t r;
            unhex(f[2], a);
            CHECK(copa_rule_from_wire(&r, a) == ST_OK, "rule %s invalid", f[1]);
            CHECK(r.src_kind == atoi(f[3]) && r.src_index == atoi(f[4]) && r.op == atoi(f[5]) &&
                  r.threshold == atoi(f[6]) && r.clear == atoi(f[7]) && r.duration_ms == atoi(f[8]) &&
                  r.act_pin == atoi(f[9]) && r.act_fire == atoi(f[10]) && r.act_clear == atoi(f[11]) &&
                  r.flags == atoi(f[12]), "rule %s fields", f[1]);
            copa_rule_to_wire(&r, b);
            CHECK(!memcmp(a, b, COPA_RULE_WIRE), "rule %s roundtrip", f[1]);
        } else if (!strcmp(f[0], "rulerun") && nf == 4) {
            copa_rule_t r;
            copa_rule_rt_t rt = {0, 0};
            unhex(f[2], a);
            copa_rule_from_wire(&r, a);
            for (char *s = f[3]; s && *s;) {
                unsigned long t = strtoul(s, &s, 10);
                unsigned v = (unsigned)strtoul(s + 1, &s, 10);
                unsigned e = (unsigned)strtoul(s + 1, &s, 10);
                uint8_t ev = copa_rule_step(&r, &rt, (uint16_t)v, (uint32_t)t);
                CHECK(ev == e, "rulerun %s at t=%lu v=%u: got %d want %u", f[1], t, v, ev, e);
                if (*s == ',') s++;
            }
        } else if (!strcmp(f[0], "exchange") && nf == 4) {
            mock_fresh();
            copa_init();
            na = unhex(f[2], a); nb = unhex(f[3], b);
            feed(a, na);
            CHECK(mock_out_len == nb && !memcmp(mock_out, b, nb), "exchange %s", f[1]);
            mock_clear_output();
        } else {
            CHECK(0, "unknown or malformed vector line: %s", f[0]);
        }
    }
    fclose(fp);
    CHECK(n >= 40, "only %d vectors read", n);
    printf("vectors: %d read\n", n);
}

/* ---------------- behaviour tests ---------------- */
static void test_garbage_and_counters(void)
{
    mock_fresh(); copa_init();
    uint8_t wire[400];
    size_t n = build(CMD_PING, 1, (const uint8_t *)"x", 1, wire);
    const uint8_t noise[] = {0x00, 0x00, 0x55, 0xAA, 0x00, 0x01, 0x00, 0x02, 0x11, 0x00};
    feed(noise, sizeof noise);
    CHECK(mock_out_len == 0, "garbage was answered");
    wire[2] ^= 0x40;                      /* corrupt payload: CRC fails */
    feed(wire, n);
    CHECK(mock_out_len == 0, "bad CRC was answered");
    CHECK(copa_stats.bad_crc == 1, "bad_crc=%u", (unsigned)copa_stats.bad_crc);
    CHECK(copa_stats.bad_frame >= 3, "bad_frame=%u", (unsigned)copa_stats.bad_frame);
    /* oversized: a body beyond COPA_MAX_BODY is dropped and counted */
    uint8_t big[200];
    memset(big, 0x42, sizeof big);
    n = build(CMD_PING, 2, big, COPA_MAX_BODY + 1, wire);
    feed(wire, n);
    n = build(CMD_PING, 3, big, 190, wire);
    feed(wire, n);
    CHECK(mock_out_len == 0, "oversized frame was answered");
    CHECK(copa_stats.oversize == 2, "oversize=%u", (unsigned)copa_stats.oversize);
    /* the largest legal body is answered */
    frame_t *f = request(CMD_PING, big, COPA_MAX_BODY - 1);
    CHECK(f->n == COPA_MAX_BODY && f->b[0] == ST_OK, "max ping");
    f = request(CMD_PING, big, COPA_MAX_BODY);                 /* echo would not fit */
    CHECK(f->n == 1 && f->b[0] == ST_BAD_LENGTH, "ping of max body");
    /* responses sent by a confused peer are not requests */
    n = build(0x81, 4, big, 1, wire);
    feed(wire, n);
    CHECK(mock_out_len == 0, "a response frame was answered");
    f = request(CMD_STATS, NULL, 0);
    CHECK(f->n == 29 && f->b[1] == 3, "stats frames_ok");     /* the max ping */
}

static void test_pipelining(void)
{
    mock_fresh(); copa_init();
    uint8_t wire[800];
    size_t n = 0;
    for (uint8_t i = 1; i <= 5; i++) n += build(CMD_PING, (uint8_t)(i * 10), &i, 1, wire + n);
    mock_clear_output();
    feed(wire, n);
    collect();
    CHECK(ngot == 5, "pipelined: %d answers", ngot);
    for (int i = 0; i < ngot; i++)
        CHECK(got[i].id == (i + 1) * 10 && got[i].b[1] == i + 1, "pipelined answer %d", i);
}

static void test_hello(void)
{
    mock_fresh(); copa_init();
    uint8_t v = 1;
    frame_t *f = request(CMD_HELLO, &v, 1);
    CHECK(f->b[0] == ST_OK && f->b[1] == COPA_PROTO_VERSION && f->b[4] == BOARD_HOST, "hello");
    CHECK(f->b[13] == COPA_MAX_BODY && f->b[14] == 4 /* pair_open */ && f->b[15] == 20, "hello caps");
    CHECK(f->b[16] == 0 && f->b[16 + 3] == (CAP_IN | CAP_OUT | CAP_PULLUP | CAP_PWM), "pin caps");
    CHECK(f->n == 1 + 15 + 20 + 5, "hello length %zu", f->n);
    uint8_t id1[8];
    memcpy(id1, f->b + 5, 8);
    copa_init();                                   /* reboot: same id, from storage */
    f = request(CMD_HELLO, &v, 1);
    CHECK(!memcmp(id1, f->b + 5, 8), "device id not stable across boots");
}

static void test_auth(void)
{
    mock_fresh(); copa_init();
    uint8_t p[2] = {7, 1};
    frame_t *f = request(CMD_GPIO_WRITE, p, 2);
    CHECK(f->b[0] == ST_AUTH_REQUIRED, "unauthenticated write: %d", f->b[0]);
    pair_and_auth();
    f = request(CMD_PAIR, KEY, 16);
    CHECK(f->b[0] == ST_NOT_PAIRABLE, "second PAIR accepted");
    uint8_t mode[2] = {7, MODE_OUTPUT};
    f = signed_req(CMD_GPIO_MODE, mode, 2, ++ctr, 0);
    CHECK(f->b[0] == ST_OK, "signed GPIO_MODE %d", f->b[0]);
    f = signed_req(CMD_GPIO_WRITE, p, 2, ++ctr, 0);
    CHECK(f->b[0] == ST_OK && mock_pin_out[7] == 1, "signed GPIO_WRITE");
    f = signed_req(CMD_GPIO_WRITE, p, 2, ctr, 0);           /* same counter: replay */
    CHECK(f->b[0] == ST_REPLAY, "replay accepted: %d", f->b[0]);
    f = signed_req(CMD_GPIO_WRITE, p, 2, ctr - 1, 0);
    CHECK(f->b[0] == ST_REPLAY, "old counter accepted");
    f = signed_req(CMD_GPIO_WRITE, p, 2, ++ctr, 1);         /* bad MAC */
    CHECK(f->b[0] == ST_BAD_MAC, "bad MAC accepted");
    /* byte-exact replay of an accepted frame */
    uint8_t wire[100], body[20], m[20];
    uint8_t q[2] = {7, 0};
    memcpy(body, q, 2);
    uint32_t c = ++ctr;
    for (int i = 0; i < 4; i++) body[2 + i] = (uint8_t)(c >> (8 * i));
    m[0] = CMD_GPIO_WRITE; m[1] = 77; memcpy(m + 2, body, 6);
    copa_siphash(skey, m, 8, body + 6);
    size_t n = build(CMD_GPIO_WRITE, 77, body, 14, wire);
    mock_clear_output(); feed(wire, n); collect();
    CHECK(ngot == 1 && got[0].b[0] == ST_OK && mock_pin_out[7] == 0, "fresh signed frame");
    mock_pin_out[7] = 1;
    mock_clear_output(); feed(wire, n); collect();
    CHECK(ngot == 1 && got[0].b[0] == ST_REPLAY && mock_pin_out[7] == 1, "byte-exact replay");
    /* a new session invalidates the old session key */
    uint8_t oldkey[16];
    memcpy(oldkey, skey, 16);
    uint8_t nh[8] = {1}, ph[8], nd[8];
    f = request(CMD_AUTH_BEGIN, nh, 8);
    memcpy(nd, f->b + 1, 8);
    kdf(KEY, 'H', nd, nh, ph);
    f = request(CMD_AUTH_FINISH, ph, 8);
    CHECK(f->b[0] == ST_OK, "second session");
    f = signed_req(CMD_GPIO_WRITE, p, 2, 1000, 0);           /* still old skey */
    CHECK(f->b[0] == ST_BAD_MAC, "old session key accepted in new session");
    /* wrong host proof */
    f = request(CMD_AUTH_BEGIN, nh, 8);
    uint8_t bad[8] = {0};
    f = request(CMD_AUTH_FINISH, bad, 8);
    CHECK(f->b[0] == ST_BAD_MAC, "bad host proof accepted");
    f = signed_req(CMD_GPIO_WRITE, p, 2, 2000, 0);
    CHECK(f->b[0] == ST_AUTH_REQUIRED, "session survived a failed handshake");
    CHECK(copa_stats.auth_fail >= 5, "auth_fail=%u", (unsigned)copa_stats.auth_fail);
    /* pairing persists; the jumper reopens pairing */
    copa_init();
    f = request(CMD_PAIR, KEY, 16);
    CHECK(f->b[0] == ST_NOT_PAIRABLE, "paired board re-paired without jumper");
    mock_jumper = 1;
    copa_init();
    f = request(CMD_PAIR, KEY, 16);
    CHECK(f->b[0] == ST_OK, "jumper did not allow pairing");
    mock_jumper = 0;
    /* read-only commands stay open without a session */
    uint8_t pin = 7;
    f = request(CMD_GPIO_READ, &pin, 1);
    CHECK(f->b[0] == ST_OK, "GPIO_READ needs no session");
}

static void test_commands(void)
{
    mock_fresh(); copa_init();
    pair_and_auth();
    uint8_t b[20];
    b[0] = 0; b[1] = MODE_OUTPUT;
    frame_t *f = signed_req(CMD_GPIO_MODE, b, 2, ++ctr, 0);
    CHECK(f->b[0] == ST_UNSUPPORTED, "pin 0 (UART) output allowed");
    b[0] = 30;
    f = signed_req(CMD_GPIO_MODE, b, 2, ++ctr, 0);
    CHECK(f->b[0] == ST_BAD_ARG, "pin 30");
    b[0] = 4; b[1] = 1;
    f = signed_req(CMD_GPIO_WRITE, b, 2, ++ctr, 0);
    CHECK(f->b[0] == ST_BAD_STATE, "write to an input pin");
    mock_pin_in[5] = 1; b[0] = 5;
    f = request(CMD_GPIO_READ, b, 1);
    CHECK(f->b[1] == 1, "gpio read");
    mock_adc[2] = 1023; b[0] = 2;
    f = request(CMD_ADC_READ, b, 1);
    CHECK(f->n == 3 && f->b[1] == 0xFF && f->b[2] == 3, "adc read");
    b[0] = 3; b[1] = 128;
    f = signed_req(CMD_PWM_WRITE, b, 2, ++ctr, 0);
    CHECK(f->b[0] == ST_OK && mock_pin_out[3] == 128, "pwm");
    b[0] = 4;
    f = signed_req(CMD_PWM_WRITE, b, 2, ++ctr, 0);
    CHECK(f->b[0] == ST_UNSUPPORTED, "pwm on non-pwm pin");
    f = request(CMD_I2C_SCAN, NULL, 0);
    CHECK(f->n == 17 && f->b[1 + (0x3C >> 3)] == (1 << (0x3C & 7)), "i2c scan");
    b[0] = 0x3C; b[1] = 4;
    f = request(CMD_I2C_READ, b, 2);
    CHECK(f->n == 5 && f->b[4] == 0xA3, "i2c read");
    b[0] = 0x3C; b[1] = 2; b[2] = 0x10; b[3] = 0x11;          /* register-address prefix */
    f = request(CMD_I2C_READ, b, 4);
    CHECK(f->b[0] == ST_BAD_LENGTH, "unsigned I2C_READ with a write prefix");
    f = signed_req(CMD_I2C_READ, b, 4, ++ctr, 0);
    CHECK(f->b[0] == ST_OK && f->n == 3 && mock_i2c_last_wn == 2 && mock_i2c_last_w[1] == 0x11,
          "signed I2C_READ with prefix");
    b[0] = 0x3D;
    f = request(CMD_I2C_READ, b, 2);
    CHECK(f->b[0] == ST_I2C_NACK, "i2c nack");
    b[0] = 0x3C; b[1] = 1; b[2] = 2;
    f = signed_req(CMD_I2C_WRITE, b, 3, ++ctr, 0);
    CHECK(f->b[0] == ST_OK, "i2c write");
    f = request(0x3E, NULL, 0);
    CHECK(f->b[0] == ST_UNKNOWN_CMD, "unknown");
    /* subscriptions */
    b[0] = 50; b[1] = 0; b[2] = 0x80 | 2; b[3] = 5;
    f = request(CMD_SUBSCRIBE, b, 4);
    CHECK(f->b[0] == ST_OK, "subscribe");
    mock_clear_output();
    for (int t = 1; t <= 200; t++) { mock_now = 1000 + (uint32_t)t; copa_poll(); }
    /* first poll at t=1001 is >= 50 ms after subscribe (at 0) */
    collect();
    CHECK(ngot == 4, "subscription events: %d", ngot);
    CHECK(ngot > 0 && got[0].t == COPA_EVENT && got[0].id == 0 && got[0].b[0] == EVT_SAMPLE &&
          got[0].n == 9 && got[0].b[5] == 0xFF && got[0].b[7] == 1, "sample event");
    b[0] = 0; b[1] = 0;
    f = request(CMD_SUBSCRIBE, b, 2);
    mock_clear_output();
    for (int t = 0; t < 200; t++) { mock_now += 1; copa_poll(); }
    CHECK(mock_out_len == 0, "events after unsubscribe");
    b[0] = 5; b[1] = 0;
    f = request(CMD_SUBSCRIBE, b, 3);
    CHECK(f->b[0] == ST_BAD_ARG, "period 5 ms accepted");
    /* reset is authenticated and answers before rebooting */
    f = signed_req(CMD_RESET, NULL, 0, ++ctr, 0);
    CHECK(f->b[0] == ST_OK && mock_resets == 1, "reset");
}

static void test_rules(void)
{
    mock_fresh(); copa_init();
    pair_and_auth();
    /* ADC0 above 612 for 5 s -> pin 7 high + event; clear below 590 */
    uint8_t w[13] = {SRC_ADC, 0, RULE_ABOVE, 612 & 255, 612 >> 8, 590 & 255, 590 >> 8,
                     5000 & 255, 5000 >> 8, 7, 1, 0, RULE_NOTIFY};
    frame_t *f = signed_req(CMD_RULE_ADD, w, 13, ++ctr, 0);
    CHECK(f->b[0] == ST_OK && f->b[1] == 0, "rule add");
    uint8_t bad[13];
    memcpy(bad, w, 13); bad[5] = 0xFF; bad[6] = 0xFF;           /* clear above threshold */
    f = signed_req(CMD_RULE_ADD, bad, 13, ++ctr, 0);
    CHECK(f->b[0] == ST_BAD_ARG, "inverted hysteresis accepted");
    {
        copa_rule_t r;
        memcpy(bad, w, 13); bad[5] = 613 & 255; bad[6] = 613 >> 8;   /* threshold + 1: allowed */
        CHECK(copa_rule_from_wire(&r, bad) == ST_OK, "clear = threshold + 1 refused");
        bad[5] = 614 & 255;
        CHECK(copa_rule_from_wire(&r, bad) == ST_BAD_ARG, "clear = threshold + 2 accepted");
        bad[2] = RULE_BELOW; bad[3] = 0; bad[4] = 0; bad[5] = 0xFF; bad[6] = 0xFF; /* BELOW 0 */
        CHECK(copa_rule_from_wire(&r, bad) == ST_OK, "BELOW 0, clear 65535 refused");
        bad[2] = RULE_ABOVE; bad[3] = 0xFF; bad[4] = 0xFF;                        /* ABOVE 65535 */
        CHECK(copa_rule_from_wire(&r, bad) == ST_OK, "ABOVE 65535, clear 65535 refused");
    }
    memcpy(bad, w, 13); bad[0] = SRC_PIN; bad[1] = 1;            /* UART pin as source */
    f = signed_req(CMD_RULE_ADD, bad, 13, ++ctr, 0);
    CHECK(f->b[0] == ST_BAD_ARG, "rule reading pin 1 accepted");
    memcpy(bad, w, 13); bad[9] = 0;                              /* UART pin as action */
    f = signed_req(CMD_RULE_ADD, bad, 13, ++ctr, 0);
    CHECK(f->b[0] == ST_BAD_ARG, "rule acting on pin 0 accepted");
    f = request(CMD_RULE_ADD, w, 13);
    CHECK(f->b[0] == ST_BAD_MAC, "unsigned rule add in a session");
    mock_clear_output();
    mock_now = 10000; mock_adc[0] = 700;
    for (uint32_t t = 0; t <= 6000; t += 10) { mock_now = 10000 + t; copa_poll(); }
    collect();
    CHECK(mock_pin_out[7] == 1 && mock_pin_mode[7] == MODE_OUTPUT, "rule did not drive pin 7");
    CHECK(ngot == 1 && got[0].t == COPA_EVENT && got[0].b[0] == EVT_RULE && got[0].b[2] == 1,
          "rule fire event (%d)", ngot);
    mock_adc[0] = 600;
    for (uint32_t t = 0; t <= 1000; t += 10) { mock_now += 10; copa_poll(); }
    collect();
    CHECK(ngot == 0 && mock_pin_out[7] == 1, "cleared inside hysteresis");
    mock_adc[0] = 500;
    for (uint32_t t = 0; t <= 100; t += 10) { mock_now += 10; copa_poll(); }
    collect();
    CHECK(ngot == 1 && got[0].b[2] == 0 && mock_pin_out[7] == 0, "rule clear");
    /* fill, list with paging, persist across reboot, delete, clear */
    for (int i = 1; i < COPA_MAX_RULES; i++) {
        w[1] = (uint8_t)(i % 6);
        f = signed_req(CMD_RULE_ADD, w, 13, ++ctr, 0);
        CHECK(f->b[0] == ST_OK && f->b[1] == i, "rule add %d", i);
    }
    f = signed_req(CMD_RULE_ADD, w, 13, ++ctr, 0);
    CHECK(f->b[0] == ST_FULL, "rule table full");
    copa_init();                                     /* reboot: rules come from storage */
    int seen = 0;
    uint8_t start = 0;
    for (int page = 0; page < 10; page++) {
        f = request(CMD_RULE_LIST, &start, 1);
        CHECK(f->b[1] == 0xFF, "rule mask %02x", f->b[1]);
        int cnt = (int)(f->n - 2) / 15;
        if (!cnt) break;
        seen += cnt;
        start = (uint8_t)(f->b[2 + (cnt - 1) * 15] + 1);
    }
    CHECK(seen == COPA_MAX_RULES, "listed %d rules after reboot", seen);
    auth_only();
    uint8_t s = 3;
    f = signed_req(CMD_RULE_DEL, &s, 1, ++ctr, 0);
    CHECK(f->b[0] == ST_OK, "rule del");
    f = signed_req(CMD_RULE_DEL, &s, 1, ++ctr, 0);
    CHECK(f->b[0] == ST_NOT_FOUND, "rule del twice");
    f = signed_req(CMD_RULE_CLEAR, NULL, 0, ++ctr, 0);
    copa_init();
    f = request(CMD_RULE_LIST, NULL, 0);
    CHECK(f->n == 2 && f->b[1] == 0, "rules after clear + reboot");
    /* corrupt storage slot is ignored, not executed */
    mock_store[32 + 1 + 2] = 9;        /* op 9 in slot 0 */
    mock_store[32] = 0xA5;
    copa_init();
    f = request(CMD_RULE_LIST, NULL, 0);
    CHECK(f->b[1] == 0, "corrupt rule loaded");
}

int main(int argc, char **argv)
{
    run_vectors(argc > 1 ? argv[1] : "vectors.txt");
    test_garbage_and_counters();
    test_pipelining();
    test_hello();
    test_auth();
    test_commands();
    test_rules();
    printf("%d checks, %d failures\n", checks, fails);
    return fails ? 1 : 0;
}
