/* A bit-banged I2C master on two open-drain lines, for ports whose I2C peripheral is not worth
 * its errata (STM32F1) or absent. Portable: the port supplies line access (copa_fw.h, "soft
 * I2C"). Standard mode timing comes from hal_i2c_delay() (about a quarter of a bit); clock
 * stretching is honoured with a bounded wait; a bus whose lines do not read high when released
 * is reported as ST_HW_TIMEOUT rather than misread as ACKs. Compiled with COPA_I2C_SOFT. */
#include "copa_fw.h"
#ifdef COPA_I2C_SOFT

#define SCL 0
#define SDA 1

static uint8_t scl_high(void)
{
    hal_i2c_line(SCL, 1);
    for (uint16_t i = 0; !hal_i2c_sense(SCL); i++) {
        if (i > 2000) return 0;            /* stretched too long, or stuck low */
        hal_i2c_delay();
    }
    hal_i2c_delay();
    return 1;
}

static void stop(void);

static uint8_t start(uint8_t repeated)
{
    if (repeated) {
        hal_i2c_line(SDA, 1);
        hal_i2c_delay();
        if (!scl_high()) return ST_HW_TIMEOUT;
    }
    if (!repeated && hal_i2c_sense(SCL) && !hal_i2c_sense(SDA)) {
        /* bus recovery: a slave left mid-byte holds SDA; clock it out, then send a STOP */
        for (uint8_t i = 0; i < 9 && !hal_i2c_sense(SDA); i++) {
            hal_i2c_line(SCL, 0);
            hal_i2c_delay();
            if (!scl_high()) break;
        }
        if (hal_i2c_sense(SDA)) stop();
    }
    if (!hal_i2c_sense(SCL) || !hal_i2c_sense(SDA)) return ST_HW_TIMEOUT;  /* busy or stuck */
    hal_i2c_line(SDA, 0);
    hal_i2c_delay();
    hal_i2c_line(SCL, 0);
    hal_i2c_delay();
    return ST_OK;
}

static void stop(void)
{
    hal_i2c_line(SDA, 0);
    hal_i2c_delay();
    scl_high();
    hal_i2c_line(SDA, 1);
    hal_i2c_delay();
}

/* one clock with SDA released by us; returns the SDA level seen while SCL was high, or 2 */
static uint8_t clock_in(void)
{
    if (!scl_high()) return 2;
    uint8_t v = hal_i2c_sense(SDA);
    hal_i2c_line(SCL, 0);
    hal_i2c_delay();
    return v;
}

static uint8_t write_byte(uint8_t b)
{
    for (uint8_t i = 0; i < 8; i++, b = (uint8_t)(b << 1)) {
        hal_i2c_line(SDA, (b & 0x80) != 0);
        hal_i2c_delay();
        if (clock_in() == 2) return ST_HW_TIMEOUT;
    }
    hal_i2c_line(SDA, 1);
    hal_i2c_delay();
    uint8_t ack = clock_in();
    return ack == 2 ? ST_HW_TIMEOUT : ack ? ST_I2C_NACK : ST_OK;
}

static uint8_t read_byte(uint8_t *out, uint8_t ack)
{
    uint8_t b = 0;
    hal_i2c_line(SDA, 1);
    for (uint8_t i = 0; i < 8; i++) {
        hal_i2c_delay();
        uint8_t v = clock_in();
        if (v == 2) return ST_HW_TIMEOUT;
        b = (uint8_t)((b << 1) | v);
    }
    hal_i2c_line(SDA, !ack);
    hal_i2c_delay();
    uint8_t v = clock_in();
    hal_i2c_line(SDA, 1);
    if (v == 2) return ST_HW_TIMEOUT;
    *out = b;
    return ST_OK;
}

uint8_t copa_i2c_soft_xfer(uint8_t addr, const uint8_t *w, uint8_t wn, uint8_t *r, uint8_t rn)
{
    uint8_t st = ST_OK, started = 0;
    if (wn || !rn) {
        if ((st = start(0)) != ST_OK) return st;
        started = 1;
        st = write_byte((uint8_t)(addr << 1));
        for (uint8_t i = 0; st == ST_OK && i < wn; i++) st = write_byte(w[i]);
    }
    if (st == ST_OK && rn) {
        st = start(started);
        if (st == ST_OK) {
            started = 1;
            st = write_byte((uint8_t)((addr << 1) | 1));
            for (uint8_t i = 0; st == ST_OK && i < rn; i++) st = read_byte(&r[i], i + 1 < rn);
        }
    }
    if (started) stop();
    return st;
}
#endif
