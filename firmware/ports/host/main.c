/* Host port: the portable core on Linux, served on a pseudo-terminal.
 *
 * stdout line 1: "PTY <slave path>".  stdin takes side-channel commands, one per line,
 * each answered by one line on stdout:
 *   adc CH VALUE      set the value ADC channel CH will read            -> ok
 *   in PIN LEVEL      drive input PIN externally (LEVEL 0/1, -1 float)  -> ok
 *   get PIN           -> "pin PIN MODE OUT PWM"  (MODE 0 in, 1 out, 2 pullup)
 *   jumper 0|1        pairing jumper level seen at the next (re)boot    -> ok
 *   quit
 * Options: --store FILE (persistent "EEPROM", created if absent), --jumper.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "copa_fw.h"

#define NPINS 20
#define NADC 6
#define STORE_SIZE 512

static int master = -1;
static jmp_buf reset_jmp;
static const char *store_path;
static uint8_t store[STORE_SIZE];
static int jumper;
static struct timespec t0;

static uint8_t pin_mode[NPINS], pin_out[NPINS], pin_pwm[NPINS];
static int pin_ext[NPINS];
static uint16_t adc_val[NADC];
static uint8_t i2c_regs[16], i2c_ptr;
#define I2C_DEV 0x48

uint32_t hal_millis(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint32_t)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
}

void hal_uart_write(const uint8_t *p, uint8_t n)
{
    while (n) {
        ssize_t w = write(master, p, n);
        if (w > 0) {
            p += w;
            n = (uint8_t)(n - w);
        } else if (w < 0 && errno == EAGAIN) {
            struct pollfd pf = {master, POLLOUT, 0};
            if (poll(&pf, 1, 200) <= 0)
                return;                      /* nobody reading: drop, like a real UART */
        } else if (w < 0 && errno != EINTR) {
            return;
        }
    }
}

uint8_t hal_board(void) { return BOARD_HOST; }
uint8_t hal_num_pins(void) { return NPINS; }
uint8_t hal_pin_caps(uint8_t pin)
{
    uint8_t c = CAP_IN | CAP_OUT | CAP_PULLUP;
    if (pin == 3 || pin == 5 || pin == 6 || pin == 9 || pin == 10 || pin == 11) c |= CAP_PWM;
    if (pin >= 14) c |= CAP_ADC;
    return c;
}
uint8_t hal_num_adc(void) { return NADC; }
uint8_t hal_adc_bits(void) { return 10; }
uint8_t hal_has_i2c(void) { return 1; }

uint8_t hal_gpio_mode(uint8_t pin, uint8_t mode)
{
    pin_mode[pin] = mode;
    pin_pwm[pin] = 0;
    return ST_OK;
}
uint8_t hal_gpio_read(uint8_t pin)
{
    if (pin_mode[pin] == MODE_OUTPUT) return pin_out[pin];
    if (pin_ext[pin] >= 0) return (uint8_t)pin_ext[pin];
    return pin_mode[pin] == MODE_INPUT_PULLUP;
}
void hal_gpio_write(uint8_t pin, uint8_t v) { pin_out[pin] = v; pin_pwm[pin] = v ? 255 : 0; }
uint8_t hal_adc_read(uint8_t ch, uint16_t *v) { *v = adc_val[ch]; return ST_OK; }
uint8_t hal_pwm_write(uint8_t pin, uint8_t duty)
{
    pin_mode[pin] = MODE_OUTPUT;
    pin_pwm[pin] = duty;
    pin_out[pin] = duty >= 128;
    return ST_OK;
}
/* a simulated device at 0x48: 16 registers; the first byte written sets the register pointer */
uint8_t hal_i2c_xfer(uint8_t addr, const uint8_t *w, uint8_t wn, uint8_t *r, uint8_t rn)
{
    if (addr != I2C_DEV) return ST_I2C_NACK;
    if (wn) i2c_ptr = w[0] & 15;
    for (uint8_t i = 1; i < wn; i++) { i2c_regs[i2c_ptr] = w[i]; i2c_ptr = (i2c_ptr + 1) & 15; }
    for (uint8_t i = 0; i < rn; i++) { r[i] = i2c_regs[i2c_ptr]; i2c_ptr = (i2c_ptr + 1) & 15; }
    return ST_OK;
}

void hal_store_read(uint16_t off, uint8_t *p, uint8_t n) { memcpy(p, store + off, n); }
void hal_store_write(uint16_t off, const uint8_t *p, uint8_t n)
{
    memcpy(store + off, p, n);
    if (store_path) {
        FILE *f = fopen(store_path, "wb");
        if (f) { fwrite(store, 1, sizeof store, f); fclose(f); }
    }
}
uint32_t hal_entropy(void)
{
    uint32_t v = (uint32_t)clock();
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) { if (read(fd, &v, sizeof v) < 0) v ^= hal_millis(); close(fd); }
    return v;
}
uint8_t hal_unique_id(uint8_t id[12]) { (void)id; return 0; }
uint8_t hal_pair_jumper(void) { return (uint8_t)jumper; }
uint16_t hal_free_ram(void) { return 0xFFFF; }
void hal_reset(void) { longjmp(reset_jmp, 1); }

static void board_reset(void)
{
    memset(pin_mode, 0, sizeof pin_mode);
    memset(pin_out, 0, sizeof pin_out);
    memset(pin_pwm, 0, sizeof pin_pwm);
    clock_gettime(CLOCK_MONOTONIC, &t0);
}

static void control(char *line)
{
    int a = 0, b = 0;
    if (sscanf(line, "adc %d %d", &a, &b) == 2 && a >= 0 && a < NADC) {
        adc_val[a] = (uint16_t)b;
        puts("ok");
    } else if (sscanf(line, "in %d %d", &a, &b) == 2 && a >= 0 && a < NPINS) {
        pin_ext[a] = b;
        puts("ok");
    } else if (sscanf(line, "get %d", &a) == 1 && a >= 0 && a < NPINS) {
        printf("pin %d %d %d %d\n", a, pin_mode[a], pin_out[a], pin_pwm[a]);
    } else if (sscanf(line, "jumper %d", &a) == 1) {
        jumper = a;
        puts("ok");
    } else if (strncmp(line, "quit", 4) == 0) {
        exit(0);
    } else {
        puts("error");
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--store") && i + 1 < argc) store_path = argv[++i];
        else if (!strcmp(argv[i], "--jumper")) jumper = 1;
        else { fprintf(stderr, "usage: %s [--store FILE] [--jumper]\n", argv[0]); return 2; }
    }
    memset(store, 0xFF, sizeof store);
    if (store_path) {
        FILE *f = fopen(store_path, "rb");
        if (f) { if (fread(store, 1, sizeof store, f) == 0) {} fclose(f); }
    }
    for (int i = 0; i < NPINS; i++) pin_ext[i] = -1;

    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master)) { perror("pty"); return 1; }
    const char *slave_name = ptsname(master);
    int slave = open(slave_name, O_RDWR | O_NOCTTY);      /* kept open: no EIO, raw mode */
    struct termios tio;
    tcgetattr(slave, &tio);
    cfmakeraw(&tio);
    tcsetattr(slave, TCSANOW, &tio);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    printf("PTY %s\n", slave_name);
    fflush(stdout);

    static char line[128];
    static size_t ll;
    static int stdin_open = 1;
    if (setjmp(reset_jmp)) {
        /* RESET: falls through to re-initialise, as a warm boot would */
    }
    board_reset();
    copa_init();
    for (;;) {
        struct pollfd pf[2] = {{master, POLLIN, 0}, {0, POLLIN, 0}};
        int r = poll(pf, stdin_open ? 2 : 1, 2);
        if (r > 0 && (pf[0].revents & POLLIN)) {
            uint8_t buf[256];
            ssize_t n = read(master, buf, sizeof buf);
            for (ssize_t i = 0; i < n; i++) copa_rx_byte(buf[i]);
        }
        if (r > 0 && stdin_open && (pf[1].revents & (POLLIN | POLLHUP))) {
            char c;
            ssize_t n = read(0, &c, 1);
            if (n <= 0) stdin_open = 0;
            else if (c == '\n') { line[ll] = 0; control(line); ll = 0; }
            else if (ll < sizeof line - 1) line[ll++] = c;
        }
        copa_poll();
    }
}
