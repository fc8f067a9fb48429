/* Frame handling, dispatcher, authentication, subscriptions, rule runner and storage. */
#include "copa_fw.h"

#define COPA_MAX_PINS 32
#define MAC_LEN 8
#define AUTH_TRAILER 12                  /* counter(4) + mac(8) */

/* storage layout (see docs/protocol.md, "Storage") */
#define ST_MAGIC0 0xC0
#define ST_MAGIC1 0x9A
#define ST_VERSION 1
#define OFF_MAGIC 0
#define OFF_PAIRED 3
#define OFF_KEY 4
#define OFF_BOOT 20
#define OFF_DEVID 22
#define OFF_RULES 32
#define RULE_SLOT (1 + COPA_RULE_WIRE)
#define SLOT_USED 0xA5

copa_stats_t copa_stats;

static uint8_t rxbuf[COPA_ENC_MAX + 1];
static uint8_t rxlen, rx_over;
static uint8_t tx[COPA_FRAME_MAX];
static uint8_t enc[COPA_ENC_MAX + 1];

static copa_rule_t rules[COPA_MAX_RULES];
static copa_rule_rt_t rule_rt[COPA_MAX_RULES];
static uint32_t rules_last;

static uint8_t modes[COPA_MAX_PINS];
static uint8_t subs[COPA_MAX_SUBS], subs_n;
static uint16_t subs_period;
static uint32_t subs_last;

static uint8_t paired, pair_open, session, begun;
static uint8_t key[16], skey[16], nh[8], nd[8];
static uint32_t counter, auth_seq;
static uint16_t boot_count;
static uint8_t devid[8];

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (uint8_t i = 0; i < 4; i++) { p[i] = (uint8_t)v; v >>= 8; }
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void copy(uint8_t *d, const uint8_t *s, uint8_t n) { while (n--) *d++ = *s++; }
static uint8_t ct_equal(const uint8_t *a, const uint8_t *b, uint8_t n)
{
    uint8_t d = 0;
    while (n--) d |= *a++ ^ *b++;
    return d == 0;
}

/* ---------- output ---------- */
static void send_frame(uint8_t n)
{
    uint16_t c = copa_crc16(tx, n);
    put16(tx + n, c);
    size_t e = copa_cobs_encode(tx, (size_t)n + 2, enc);
    enc[e++] = 0;
    hal_uart_write(enc, (uint8_t)e);
}

/* ---------- storage ---------- */
static void store_rule(uint8_t slot)
{
    uint8_t w[RULE_SLOT];
    w[0] = rules[slot].used ? SLOT_USED : 0;
    copa_rule_to_wire(&rules[slot], w + 1);
    hal_store_write(OFF_RULES + slot * RULE_SLOT, w, RULE_SLOT);
}

static void load_storage(void)
{
    uint8_t h[3];
    hal_store_read(OFF_MAGIC, h, 3);
    if (h[0] != ST_MAGIC0 || h[1] != ST_MAGIC1 || h[2] != ST_VERSION) {
        /* fresh or foreign storage: format it */
        uint8_t z[24] = {0};
        h[0] = ST_MAGIC0; h[1] = ST_MAGIC1; h[2] = ST_VERSION;
        hal_store_write(OFF_PAIRED, z, 1);
        hal_store_write(OFF_KEY, z, 16);
        hal_store_write(OFF_BOOT, z, 2);
        uint8_t uid[12];
        if (hal_unique_id(uid)) {                /* factory-unique id, hashed to 8 bytes */
            copa_siphash(z + 8, uid, 12, z);
        } else {                                 /* else: start-up entropy, whitened */
            put32(z, hal_entropy());
            put32(z + 4, hal_entropy());
            copa_siphash(z + 8, z, 8, z);
        }
        hal_store_write(OFF_DEVID, z, 8);
        for (uint8_t s = 0; s < COPA_MAX_RULES; s++) {
            rules[s].used = 0;
            store_rule(s);
        }
        hal_store_write(OFF_MAGIC, h, 3);
    }
    hal_store_read(OFF_PAIRED, h, 1);
    paired = h[0] == SLOT_USED;
    hal_store_read(OFF_KEY, key, 16);
    hal_store_read(OFF_BOOT, h, 2);
    boot_count = (uint16_t)(h[0] | (h[1] << 8)) + 1;
    put16(h, boot_count);
    hal_store_write(OFF_BOOT, h, 2);
    hal_store_read(OFF_DEVID, devid, 8);
    for (uint8_t s = 0; s < COPA_MAX_RULES; s++) {
        uint8_t w[RULE_SLOT];
        hal_store_read(OFF_RULES + s * RULE_SLOT, w, RULE_SLOT);
        rules[s].used = w[0] == SLOT_USED && copa_rule_from_wire(&rules[s], w + 1) == ST_OK;
        rule_rt[s].state = 0;
    }
}

void copa_init(void)
{
    uint8_t *p = (uint8_t *)&copa_stats;
    for (uint8_t i = 0; i < sizeof copa_stats; i++) p[i] = 0;
    rxlen = rx_over = 0;
    subs_n = 0;
    session = begun = 0;
    counter = 0;
    auth_seq = 0;
    for (uint8_t i = 0; i < COPA_MAX_PINS; i++) modes[i] = MODE_INPUT;
    load_storage();
    pair_open = !paired || hal_pair_jumper();
    rules_last = subs_last = hal_millis();
}

/* ---------- authentication ---------- */
static uint8_t needs_auth(uint8_t t, uint8_t n)
{
    if (t == CMD_I2C_READ)
        return n > 2;      /* a register-address prefix is an I2C write: authenticated */
    switch (t) {
    case CMD_GPIO_MODE: case CMD_GPIO_WRITE: case CMD_PWM_WRITE: case CMD_I2C_WRITE:
    case CMD_RULE_ADD: case CMD_RULE_DEL: case CMD_RULE_CLEAR: case CMD_RESET:
        return 1;
    }
    return 0;
}

/* frame = type id body; *n = body length, shortened by the trailer on success */
static uint8_t check_auth(const uint8_t *frame, uint8_t *n)
{
    uint8_t mac[MAC_LEN];
    if (!session)
        return ST_AUTH_REQUIRED;
    if (*n < AUTH_TRAILER)
        return ST_BAD_LENGTH;
    uint8_t m = (uint8_t)(*n - MAC_LEN);        /* body bytes covered by the MAC */
    copa_siphash(skey, frame, (size_t)2 + m, mac);
    if (!ct_equal(mac, frame + 2 + m, MAC_LEN)) {
        copa_stats.auth_fail++;
        return ST_BAD_MAC;
    }
    uint32_t c = get32(frame + 2 + m - 4);
    if (c <= counter) {
        copa_stats.auth_fail++;
        return ST_REPLAY;
    }
    counter = c;
    *n = (uint8_t)(*n - AUTH_TRAILER);
    return ST_OK;
}

/* out = SipHash(key, tag || a || b) */
static void kdf(uint8_t tag, const uint8_t *a, const uint8_t *b, uint8_t out[8])
{
    uint8_t m[17];
    m[0] = tag;
    copy(m + 1, a, 8);
    copy(m + 9, b, 8);
    copa_siphash(key, m, 17, out);
}

/* ---------- helpers ---------- */
static uint8_t read_source(uint8_t kind, uint8_t idx, uint16_t *v)
{
    if (kind == SRC_PIN) {
        if (idx >= hal_num_pins() || !(hal_pin_caps(idx) & CAP_IN))
            return ST_BAD_ARG;
        *v = hal_gpio_read(idx);
        return ST_OK;
    }
    if (idx >= hal_num_adc())
        return ST_BAD_ARG;
    return hal_adc_read(idx, v);
}

static uint8_t set_output(uint8_t pin, uint8_t v)
{
    if (pin >= hal_num_pins() || !(hal_pin_caps(pin) & CAP_OUT))
        return ST_BAD_ARG;
    if (modes[pin] != MODE_OUTPUT) {
        hal_gpio_mode(pin, MODE_OUTPUT);
        modes[pin] = MODE_OUTPUT;
    }
    hal_gpio_write(pin, v);
    return ST_OK;
}

static uint8_t rule_valid(const copa_rule_t *r)
{
    if (r->src_kind == SRC_PIN ? (r->src_index >= hal_num_pins() || !(hal_pin_caps(r->src_index) & CAP_IN))
                               : r->src_index >= hal_num_adc())
        return 0;
    if (r->act_pin != RULE_NO_PIN &&
        (r->act_pin >= hal_num_pins() || !(hal_pin_caps(r->act_pin) & CAP_OUT)))
        return 0;
    return 1;
}

/* ---------- dispatcher ---------- */
static void dispatch(uint8_t *f, uint8_t n)
{
    uint8_t type = f[0];
    uint8_t *b = f + 2;
    uint8_t st = ST_OK, o = 3;            /* o = next output index in tx */
    uint8_t npins = hal_num_pins();

    tx[0] = (uint8_t)(type | COPA_RESP);
    tx[1] = f[1];
    if (type == 0 || type > CMD_MAX) {
        st = ST_UNKNOWN_CMD;
        goto done;
    }
    if (needs_auth(type, n) && (st = check_auth(f, &n)) != ST_OK)
        goto done;

    switch (type) {
    case CMD_PING:
        if (n > COPA_MAX_BODY - 1) { st = ST_BAD_LENGTH; break; }   /* status + echo must fit */
        copy(tx + 3, b, n);
        o = (uint8_t)(3 + n);
        break;
    case CMD_HELLO:
        tx[o++] = COPA_PROTO_VERSION;
        tx[o++] = COPA_FW_MAJOR;
        tx[o++] = COPA_FW_MINOR;
        tx[o++] = hal_board();
        copy(tx + o, devid, 8); o += 8;
        tx[o++] = COPA_MAX_BODY;
        tx[o++] = (uint8_t)(paired | (session << 1) | (pair_open << 2));
        tx[o++] = npins;
        for (uint8_t i = 0; i < npins; i++) tx[o++] = hal_pin_caps(i);
        tx[o++] = hal_num_adc();
        tx[o++] = hal_adc_bits();
        tx[o++] = hal_has_i2c();
        tx[o++] = COPA_MAX_RULES;
        tx[o++] = COPA_MAX_SUBS;
        break;
    case CMD_GPIO_MODE: {
        if (n != 2) { st = ST_BAD_LENGTH; break; }
        uint8_t pin = b[0], mode = b[1], caps;
        if (pin >= npins || mode > MODE_INPUT_PULLUP) { st = ST_BAD_ARG; break; }
        caps = hal_pin_caps(pin);
        if ((mode == MODE_INPUT && !(caps & CAP_IN)) || (mode == MODE_OUTPUT && !(caps & CAP_OUT)) ||
            (mode == MODE_INPUT_PULLUP && !(caps & CAP_PULLUP))) { st = ST_UNSUPPORTED; break; }
        st = hal_gpio_mode(pin, mode);
        if (st == ST_OK) modes[pin] = mode;
        break;
    }
    case CMD_GPIO_READ:
        if (n != 1) { st = ST_BAD_LENGTH; break; }
        if (b[0] >= npins || !(hal_pin_caps(b[0]) & (CAP_IN | CAP_OUT))) { st = ST_BAD_ARG; break; }
        tx[o++] = hal_gpio_read(b[0]);
        break;
    case CMD_GPIO_WRITE:
        if (n != 2) { st = ST_BAD_LENGTH; break; }
        if (b[0] >= npins || b[1] > 1) { st = ST_BAD_ARG; break; }
        if (modes[b[0]] != MODE_OUTPUT) { st = ST_BAD_STATE; break; }
        hal_gpio_write(b[0], b[1]);
        break;
    case CMD_ADC_READ: {
        uint16_t v = 0;
        if (n != 1) { st = ST_BAD_LENGTH; break; }
        if (b[0] >= hal_num_adc()) { st = ST_BAD_ARG; break; }
        st = hal_adc_read(b[0], &v);
        put16(tx + o, v); o += 2;
        break;
    }
    case CMD_PWM_WRITE:
        if (n != 2) { st = ST_BAD_LENGTH; break; }
        if (b[0] >= npins) { st = ST_BAD_ARG; break; }
        if (!(hal_pin_caps(b[0]) & CAP_PWM)) { st = ST_UNSUPPORTED; break; }
        st = hal_pwm_write(b[0], b[1]);
        if (st == ST_OK) modes[b[0]] = MODE_OUTPUT;
        break;
    case CMD_I2C_SCAN:
        if (!hal_has_i2c()) { st = ST_UNSUPPORTED; break; }
        for (uint8_t i = 0; i < 16; i++) tx[o + i] = 0;
        for (uint8_t a = 0x08; a < 0x78 && st == ST_OK; a++) {
            uint8_t s = hal_i2c_xfer(a, b, 0, tx, 0);
            if (s == ST_OK) tx[o + (a >> 3)] |= (uint8_t)(1 << (a & 7));
            else if (s == ST_HW_TIMEOUT) st = s;             /* a dead bus: say so, once */
        }
        o += 16;
        break;
    case CMD_I2C_READ:
        if (!hal_has_i2c()) { st = ST_UNSUPPORTED; break; }
        if (n < 2 || n > 2 + 4) { st = ST_BAD_LENGTH; break; }
        if (b[0] > 0x7F || b[1] == 0 || b[1] > COPA_MAX_BODY - 1) { st = ST_BAD_ARG; break; }
        st = hal_i2c_xfer(b[0], b + 2, (uint8_t)(n - 2), tx + o, b[1]);
        if (st == ST_OK) o = (uint8_t)(o + b[1]);
        break;
    case CMD_I2C_WRITE:
        if (!hal_has_i2c()) { st = ST_UNSUPPORTED; break; }
        if (n < 1) { st = ST_BAD_LENGTH; break; }
        if (b[0] > 0x7F) { st = ST_BAD_ARG; break; }
        st = hal_i2c_xfer(b[0], b + 1, (uint8_t)(n - 1), tx, 0);
        break;
    case CMD_SUBSCRIBE: {
        if (n < 2 || n - 2 > COPA_MAX_SUBS || (uint8_t)(2 + 4 + 2 * (n - 2)) > COPA_MAX_BODY) {
            st = ST_BAD_LENGTH; break;
        }
        uint16_t per = (uint16_t)(b[0] | (b[1] << 8));
        uint8_t k = (uint8_t)(n - 2);
        if (k && per < 10) { st = ST_BAD_ARG; break; }
        for (uint8_t i = 0; i < k; i++) {
            uint8_t it = b[2 + i], idx = it & 0x7F;
            if ((it & 0x80) ? idx >= hal_num_adc() : (idx >= npins || !(hal_pin_caps(idx) & CAP_IN))) {
                st = ST_BAD_ARG; break;
            }
        }
        if (st) break;
        copy(subs, b + 2, k);
        subs_n = per ? k : 0;
        subs_period = per;
        subs_last = hal_millis();
        break;
    }
    case CMD_RULE_LIST: {
        uint8_t start = n ? b[0] : 0, mask = 0, cnt = 0;
        o++;
        for (uint8_t s = 0; s < COPA_MAX_RULES; s++) {
            if (!rules[s].used) continue;
            mask |= (uint8_t)(1 << s);
            if (s >= start && cnt < 3) {
                tx[o++] = s;
                copa_rule_to_wire(&rules[s], tx + o);
                o += COPA_RULE_WIRE;
                tx[o++] = rule_rt[s].state;
                cnt++;
            }
        }
        tx[3] = mask;
        break;
    }
    case CMD_RULE_ADD: {
        copa_rule_t r;
        uint8_t s;
        if (n != COPA_RULE_WIRE) { st = ST_BAD_LENGTH; break; }
        if ((st = copa_rule_from_wire(&r, b)) != ST_OK) break;
        if (!rule_valid(&r)) { st = ST_BAD_ARG; break; }
        for (s = 0; s < COPA_MAX_RULES && rules[s].used; s++) {}
        if (s == COPA_MAX_RULES) { st = ST_FULL; break; }
        rules[s] = r;
        rule_rt[s].state = 0;
        store_rule(s);
        tx[o++] = s;
        break;
    }
    case CMD_RULE_DEL:
        if (n != 1) { st = ST_BAD_LENGTH; break; }
        if (b[0] >= COPA_MAX_RULES || !rules[b[0]].used) { st = ST_NOT_FOUND; break; }
        rules[b[0]].used = 0;
        store_rule(b[0]);
        break;
    case CMD_RULE_CLEAR:
        for (uint8_t s = 0; s < COPA_MAX_RULES; s++)
            if (rules[s].used) { rules[s].used = 0; store_rule(s); }
        break;
    case CMD_STATS:
        put32(tx + o, copa_stats.frames_ok); o += 4;
        put32(tx + o, copa_stats.bad_crc); o += 4;
        put32(tx + o, copa_stats.bad_frame); o += 4;
        put32(tx + o, copa_stats.oversize); o += 4;
        put32(tx + o, copa_stats.auth_fail); o += 4;
        put32(tx + o, hal_millis()); o += 4;
        put16(tx + o, hal_free_ram()); o += 2;
        put16(tx + o, boot_count); o += 2;
        break;
    case CMD_PAIR: {
        uint8_t one = SLOT_USED;
        if (n != 16) { st = ST_BAD_LENGTH; break; }
        if (!pair_open) { st = ST_NOT_PAIRABLE; break; }
        copy(key, b, 16);
        hal_store_write(OFF_KEY, key, 16);
        hal_store_write(OFF_PAIRED, &one, 1);
        paired = 1;
        pair_open = 0;
        session = begun = 0;
        break;
    }
    case CMD_AUTH_BEGIN: {
        uint8_t m[10];
        if (n != 8) { st = ST_BAD_LENGTH; break; }
        if (!paired) { st = ST_BAD_STATE; break; }
        session = 0;
        copy(nh, b, 8);
        put16(m, boot_count);
        put32(m + 2, ++auth_seq);
        put32(m + 6, hal_entropy());
        copa_siphash(key, m, 10, nd);        /* unique per (boot, session) */
        copy(tx + o, nd, 8); o += 8;
        kdf('D', nh, nd, tx + o); o += 8;
        begun = 1;
        break;
    }
    case CMD_AUTH_FINISH: {
        uint8_t exp[8];
        if (n != 8) { st = ST_BAD_LENGTH; break; }
        if (!begun) { st = ST_BAD_STATE; break; }
        begun = 0;
        kdf('H', nd, nh, exp);
        if (!ct_equal(exp, b, 8)) { copa_stats.auth_fail++; st = ST_BAD_MAC; break; }
        kdf('S', nh, nd, skey);
        kdf('T', nh, nd, skey + 8);
        counter = 0;
        session = 1;
        break;
    }
    case CMD_RESET:
        tx[2] = ST_OK;
        send_frame(3);
        hal_reset();
        return;
    default:
        st = ST_UNKNOWN_CMD;
    }
done:
    tx[2] = st;
    if (st != ST_OK) o = 3;
    send_frame(o);
}

/* ---------- input ---------- */
static void handle_encoded(void)
{
    int n = copa_cobs_decode(rxbuf, rxlen);
    if (n < 4) {
        copa_stats.bad_frame++;
        return;
    }
    if (n > COPA_FRAME_MAX) {
        copa_stats.oversize++;
        return;
    }
    uint16_t c = (uint16_t)(rxbuf[n - 2] | (rxbuf[n - 1] << 8));
    if (copa_crc16(rxbuf, (size_t)n - 2) != c) {
        copa_stats.bad_crc++;
        return;
    }
    if (rxbuf[0] & COPA_RESP) {             /* responses/events are never requests */
        copa_stats.bad_frame++;
        return;
    }
    copa_stats.frames_ok++;
    dispatch(rxbuf, (uint8_t)(n - 4));
}

void copa_rx_byte(uint8_t c)
{
    if (c == 0) {
        if (rx_over)
            copa_stats.oversize++;
        else if (rxlen)
            handle_encoded();
        rxlen = 0;
        rx_over = 0;
        return;
    }
    if (rx_over)
        return;
    if (rxlen >= sizeof rxbuf) {
        rx_over = 1;
        return;
    }
    rxbuf[rxlen++] = c;
}

/* ---------- background work ---------- */
void copa_poll(void)
{
    uint32_t now = hal_millis();
    if (subs_n && (uint32_t)(now - subs_last) >= subs_period) {
        subs_last = now;
        uint8_t o = 3;
        tx[0] = COPA_EVENT; tx[1] = 0; tx[2] = EVT_SAMPLE;
        put32(tx + o, now); o += 4;
        for (uint8_t i = 0; i < subs_n; i++) {
            uint16_t v = 0;
            read_source((uint8_t)(subs[i] >> 7), subs[i] & 0x7F, &v);
            put16(tx + o, v); o += 2;
        }
        send_frame(o);
    }
    if ((uint32_t)(now - rules_last) < 10)
        return;
    rules_last = now;
    for (uint8_t s = 0; s < COPA_MAX_RULES; s++) {
        const copa_rule_t *r = &rules[s];
        uint16_t v;
        if (!r->used || read_source(r->src_kind, r->src_index, &v) != ST_OK)
            continue;
        uint8_t ev = copa_rule_step(r, &rule_rt[s], v, now);
        if (!ev)
            continue;
        if (r->act_pin != RULE_NO_PIN) {
            uint8_t a = ev == 1 ? r->act_fire : r->act_clear;
            if (a <= 1)
                set_output(r->act_pin, a);
        }
        if (r->flags & RULE_NOTIFY) {
            tx[0] = COPA_EVENT; tx[1] = 0; tx[2] = EVT_RULE;
            tx[3] = s;
            tx[4] = ev == 1;
            put16(tx + 5, v);
            send_frame(7);
        }
    }
}
