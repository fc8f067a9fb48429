/* Unit test of the bit-banged I2C master (core/i2c_soft.c) against a simulated bus: wire-AND
 * open-drain lines and a bit-level slave model (a 256-byte EEPROM-like device: the first byte
 * written sets its pointer), with clock stretching, absent devices and a stuck bus. */
#include <stdio.h>
#include <string.h>
#include "copa_fw.h"

static int fails, checks;
#define CHECK(c, ...) do { checks++; if (!(c)) { fails++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

#define DEV 0x50
enum { S_IDLE, S_ADDR, S_WDATA, S_ACK, S_RDATA, S_RACK, S_IGNORE };
static uint8_t m_scl = 1, m_sda = 1, s_scl = 1, s_sda = 1, stuck_sda;
static uint8_t prev_scl = 1, prev_sda = 1;
static int st = S_IDLE, bits, rw, first_data, master_ack, stretch_left, stretch_each;
static uint8_t byte, ptr, mem[256];
static long edges, starts, stops;

static uint8_t wire_scl(void) { return m_scl & s_scl; }
static uint8_t wire_sda(void) { return m_sda & s_sda & !stuck_sda; }

static void falling(void)
{
    switch (st) {
    case S_ADDR: case S_WDATA:
        if (bits < 8) break;
        if (st == S_ADDR) {
            if ((byte >> 1) != DEV) { st = S_IGNORE; break; }
            rw = byte & 1;
            first_data = 1;
            stretch_left = stretch_each;            /* stretch the clock after the address */
            if (stretch_left) s_scl = 0;
        } else if (first_data) {
            ptr = byte; first_data = 0;
        } else {
            mem[ptr++] = byte;
        }
        s_sda = 0;
        st = S_ACK;
        break;
    case S_ACK:
        s_sda = 1;
        if (rw) { byte = mem[ptr++]; s_sda = (byte >> 7) & 1; bits = 1; st = S_RDATA; }
        else { byte = 0; bits = 0; st = S_WDATA; }
        break;
    case S_RDATA:
        if (bits == 8) { s_sda = 1; st = S_RACK; }
        else { s_sda = (byte >> (7 - bits)) & 1; bits++; }
        break;
    case S_RACK:
        if (master_ack) { byte = mem[ptr++]; s_sda = (byte >> 7) & 1; bits = 1; st = S_RDATA; }
        else { s_sda = 1; st = S_IGNORE; }
        break;
    }
}

static void update(void)
{
    for (int guard = 0; guard < 4; guard++) {        /* the slave may react to its own change */
        uint8_t scl = wire_scl(), sda = wire_sda();
        if (scl == prev_scl && sda == prev_sda) return;
        edges++;
        if (prev_scl && scl && prev_sda && !sda) { st = S_ADDR; bits = 0; byte = 0; s_sda = 1; starts++; }
        else if (prev_scl && scl && !prev_sda && sda) { st = S_IDLE; s_sda = 1; stops++; }
        else if (!prev_scl && scl) {
            if (st == S_ADDR || st == S_WDATA) { byte = (uint8_t)((byte << 1) | sda); bits++; }
            else if (st == S_RACK) master_ack = !sda;
        } else if (prev_scl && !scl) {
            falling();
        }
        prev_scl = scl; prev_sda = sda;
    }
}

void hal_i2c_line(uint8_t line, uint8_t level)
{
    if (line == 0) m_scl = level ? 1 : 0; else m_sda = level ? 1 : 0;
    update();
}
uint8_t hal_i2c_sense(uint8_t line) { return line == 0 ? wire_scl() : wire_sda(); }
void hal_i2c_delay(void)
{
    if (stretch_left && --stretch_left == 0) { s_scl = 1; update(); }
}

int main(void)
{
    uint8_t r[16];
    /* probe: present, absent */
    CHECK(copa_i2c_soft_xfer(DEV, NULL, 0, NULL, 0) == ST_OK, "probe 0x50");
    CHECK(copa_i2c_soft_xfer(0x51, NULL, 0, NULL, 0) == ST_I2C_NACK, "probe 0x51");
    CHECK(st == S_IDLE && wire_scl() && wire_sda(), "bus idle after NACK");
    CHECK(starts == 2 && stops == 2, "starts %ld stops %ld", starts, stops);
    /* write at 0x10, read back with a register read (repeated START) */
    const uint8_t w[] = {0x10, 'c', 'o', 'p', 'a', 0x00, 0xFF, 0x5A};
    CHECK(copa_i2c_soft_xfer(DEV, w, sizeof w, NULL, 0) == ST_OK, "write");
    CHECK(!memcmp(mem + 0x10, w + 1, 7), "slave memory after write");
    memset(r, 0, sizeof r);
    CHECK(copa_i2c_soft_xfer(DEV, w, 1, r, 7) == ST_OK, "register read");
    CHECK(!memcmp(r, w + 1, 7), "register read data: %02x %02x %02x", r[0], r[1], r[2]);
    CHECK(stops == 4 && starts == 5, "one STOP per transaction, repeated START inside");
    /* plain read continues from the pointer */
    CHECK(copa_i2c_soft_xfer(DEV, NULL, 0, r, 1) == ST_OK && r[0] == mem[0x17], "plain read");
    CHECK(copa_i2c_soft_xfer(0x33, w, 1, r, 2) == ST_I2C_NACK, "register read, absent device");
    /* clock stretching after the address byte */
    stretch_each = 50;
    memset(r, 0, sizeof r);
    CHECK(copa_i2c_soft_xfer(DEV, w, 1, r, 4) == ST_OK && !memcmp(r, "copa", 4), "stretched read");
    stretch_each = 100000;                            /* a slave that never lets go */
    CHECK(copa_i2c_soft_xfer(DEV, NULL, 0, NULL, 0) == ST_HW_TIMEOUT, "endless stretch");
    stretch_each = 0; s_scl = 1; stretch_left = 0; update();
    /* a stuck SDA line is reported, never read as ACKs */
    stuck_sda = 1; update();
    CHECK(copa_i2c_soft_xfer(DEV, NULL, 0, NULL, 0) == ST_HW_TIMEOUT, "stuck SDA");
    stuck_sda = 0; update();
    CHECK(copa_i2c_soft_xfer(DEV, NULL, 0, NULL, 0) == ST_OK, "recovered (slave clocked out)");
    memset(r, 0, sizeof r);
    CHECK(copa_i2c_soft_xfer(DEV, w, 1, r, 4) == ST_OK && !memcmp(r, "copa", 4), "read after recovery");
    printf("i2c_soft: %d checks, %d failures (%ld edges)\n", checks, fails, edges);
    return fails ? 1 : 0;
}
