/* copa firmware agent: portable core (C99, no malloc, no stdio, no floats).
 * The wire protocol is specified in docs/protocol.md; this header mirrors it. */
#ifndef COPA_FW_H
#define COPA_FW_H
#include <stdint.h>
#include <stddef.h>

#define COPA_PROTO_VERSION 1
#define COPA_FW_MAJOR 0
#define COPA_FW_MINOR 1

#ifndef COPA_MAX_BODY
#define COPA_MAX_BODY 64            /* bytes between request id and CRC */
#endif
#ifndef COPA_MAX_RULES
#define COPA_MAX_RULES 8
#endif
#ifndef COPA_MAX_SUBS
#define COPA_MAX_SUBS 8
#endif
#define COPA_FRAME_MAX (2 + COPA_MAX_BODY + 2)          /* type id body crc */
#define COPA_ENC_MAX (COPA_FRAME_MAX + COPA_FRAME_MAX / 254 + 1)

/* frame types */
enum {
    CMD_PING = 0x01, CMD_HELLO = 0x02, CMD_GPIO_MODE = 0x03, CMD_GPIO_READ = 0x04,
    CMD_GPIO_WRITE = 0x05, CMD_ADC_READ = 0x06, CMD_PWM_WRITE = 0x07, CMD_I2C_SCAN = 0x08,
    CMD_I2C_READ = 0x09, CMD_I2C_WRITE = 0x0A, CMD_SUBSCRIBE = 0x0B, CMD_RULE_LIST = 0x0C,
    CMD_RULE_ADD = 0x0D, CMD_RULE_DEL = 0x0E, CMD_RULE_CLEAR = 0x0F, CMD_STATS = 0x10,
    CMD_PAIR = 0x11, CMD_AUTH_BEGIN = 0x12, CMD_AUTH_FINISH = 0x13, CMD_RESET = 0x14,
    CMD_MAX = 0x14
};
#define COPA_RESP 0x80              /* response type = command | 0x80 */
#define COPA_EVENT 0xC0             /* unsolicited event, id 0 */
enum { EVT_SAMPLE = 1, EVT_RULE = 2 };

/* status codes (first body byte of every response) */
enum {
    ST_OK = 0, ST_UNKNOWN_CMD = 1, ST_BAD_LENGTH = 2, ST_BAD_ARG = 3, ST_UNSUPPORTED = 4,
    ST_AUTH_REQUIRED = 5, ST_BAD_MAC = 6, ST_REPLAY = 7, ST_NOT_PAIRABLE = 8, ST_FULL = 9,
    ST_NOT_FOUND = 10, ST_I2C_NACK = 11, ST_HW_TIMEOUT = 12, ST_BAD_STATE = 13
};

/* pin capability bits (HELLO) and modes (GPIO_MODE) */
enum { CAP_IN = 1, CAP_OUT = 2, CAP_PULLUP = 4, CAP_PWM = 8, CAP_ADC = 16 };
enum { MODE_INPUT = 0, MODE_OUTPUT = 1, MODE_INPUT_PULLUP = 2 };
enum { BOARD_HOST = 1, BOARD_UNO = 2, BOARD_STM32F103 = 3 };
enum { SRC_PIN = 0, SRC_ADC = 1 };
enum { RULE_ABOVE = 0, RULE_BELOW = 1 };
#define RULE_NOTIFY 0x01
#define RULE_NO_PIN 0xFF

/* ---- codec (codec.c) ---- */
uint16_t copa_crc16(const uint8_t *p, size_t n);                 /* CRC-16/CCITT-FALSE */
size_t copa_cobs_encode(const uint8_t *in, size_t n, uint8_t *out); /* no delimiter */
/* decodes in place; returns decoded length or -1 on a malformed input */
int copa_cobs_decode(uint8_t *buf, size_t n);

/* ---- SipHash-2-4 (siphash.c) ---- */
void copa_siphash(const uint8_t key[16], const uint8_t *m, size_t n, uint8_t out[8]);

/* ---- rules (rules.c) ---- */
typedef struct {
    uint8_t used;
    uint8_t src_kind, src_index, op;
    uint16_t threshold, clear;
    uint16_t duration_ms;
    uint8_t act_pin, act_fire, act_clear, flags;
} copa_rule_t;
#define COPA_RULE_WIRE 13  /* kind idx op thr(2) clr(2) dur(2) pin fire clear flags */
typedef struct {
    uint8_t state;          /* 0 idle, 1 pending, 2 active */
    uint32_t since;
} copa_rule_rt_t;
void copa_rule_to_wire(const copa_rule_t *r, uint8_t *w);
uint8_t copa_rule_from_wire(copa_rule_t *r, const uint8_t *w); /* returns status */
/* evaluates one rule; returns 0 nothing, 1 fired, 2 cleared */
uint8_t copa_rule_step(const copa_rule_t *r, copa_rule_rt_t *rt, uint16_t value, uint32_t now);

/* ---- agent (agent.c) ---- */
void copa_init(void);                 /* (re)initialises all state, loads rules from storage */
void copa_rx_byte(uint8_t c);         /* feed one received byte */
void copa_poll(void);                 /* run rules and subscriptions; call often */

typedef struct {
    uint32_t frames_ok, bad_crc, bad_frame, oversize, auth_fail;
} copa_stats_t;
extern copa_stats_t copa_stats;

/* ---- HAL: implemented by each port ---- */
uint32_t hal_millis(void);
void hal_uart_write(const uint8_t *p, uint8_t n);
uint8_t hal_board(void);
uint8_t hal_num_pins(void);
uint8_t hal_pin_caps(uint8_t pin);
uint8_t hal_num_adc(void);
uint8_t hal_adc_bits(void);
uint8_t hal_has_i2c(void);
uint8_t hal_gpio_mode(uint8_t pin, uint8_t mode);    /* status */
uint8_t hal_gpio_read(uint8_t pin);
void hal_gpio_write(uint8_t pin, uint8_t v);
uint8_t hal_adc_read(uint8_t ch, uint16_t *v);       /* status */
uint8_t hal_pwm_write(uint8_t pin, uint8_t duty);    /* status */
/* one I2C transaction: START, SLA+W, wn bytes of w; then, if rn > 0, (repeated) START, SLA+R,
 * rn bytes into r; STOP. wn = rn = 0 probes the address. Returns a status (ST_OK on ACKs). */
uint8_t hal_i2c_xfer(uint8_t addr, const uint8_t *w, uint8_t wn, uint8_t *r, uint8_t rn);
void hal_store_read(uint16_t off, uint8_t *p, uint8_t n);
void hal_store_write(uint16_t off, const uint8_t *p, uint8_t n);
/* soft I2C (core/i2c_soft.c, built with COPA_I2C_SOFT): line 0 = SCL, 1 = SDA; level 1 releases
 * the open-drain line, 0 pulls it low; sense reads the line; delay waits about 2.5 us */
void hal_i2c_line(uint8_t line, uint8_t level);
uint8_t hal_i2c_sense(uint8_t line);
void hal_i2c_delay(void);
uint8_t copa_i2c_soft_xfer(uint8_t addr, const uint8_t *w, uint8_t wn, uint8_t *r, uint8_t rn);
uint32_t hal_entropy(void);          /* any jitter; need not be good (see spec) */
uint8_t hal_unique_id(uint8_t id[12]); /* 1 if the chip has a factory-unique id (then in id) */
uint8_t hal_pair_jumper(void);       /* 1 if the pairing jumper is held */
uint16_t hal_free_ram(void);
void hal_reset(void);                /* does not return */

#endif
