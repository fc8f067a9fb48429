/* simavr harness: an ATmega328P at 16 MHz running an ELF, its USART0 on a pseudo-terminal.
 * Prints "PTY /dev/pts/N" on stdout once the pty exists, then runs until killed.
 * Options: -a CH=MILLIVOLTS sets an analog input (AVCC = AREF = 5000 mV);
 *          D12 (PB4, the pairing jumper) is driven high, i.e. no jumper, also after resets.
 * A 256-byte I2C EEPROM (one address byte) sits on the TWI bus at 7-bit address 0x50.
 * -e FILE keeps the chip's EEPROM in FILE: loaded at start, saved within ~50 ms of a change, so
 * a killed and restarted harness is a power cycle.
 * Usage: uno-pty [-a 0=3000] [-e eeprom.bin] firmware.elf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sim_avr.h"
#include "sim_elf.h"
#include "avr_adc.h"
#include "avr_ioport.h"
#include "avr_eeprom.h"
#include <time.h>
#include "uart_pty.h"
#include "avr_twi.h"
#include "i2c_eeprom.h"

static uart_pty_t uart_pty;
#define EE_SIZE 1024
static uint8_t ee_snap[EE_SIZE];

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void ee_save(const char *path, const uint8_t *ee)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    size_t n = fwrite(ee, 1, EE_SIZE, f);
    fclose(f);
    if (n == EE_SIZE) rename(tmp, path);             /* atomic: a kill never leaves half a file */
}
static i2c_eeprom_t i2c_ee;

/* simavr drops an irq raise that does not change the value, so toggle first */
static void drive(avr_irq_t *irq, uint32_t level)
{
    avr_raise_irq(irq, !level);
    avr_raise_irq(irq, level);
}

int main(int argc, char **argv)
{
    elf_firmware_t fw;
    int adc_mv[8];
    const char *elf = NULL, *ee_path = NULL;
    const int jumper = 0;
    memset(&fw, 0, sizeof fw);
    for (int i = 0; i < 8; i++) adc_mv[i] = -1;
    for (int i = 1; i < argc; i++) {
        int ch, mv;
        if (!strcmp(argv[i], "-a") && i + 1 < argc && sscanf(argv[i + 1], "%d=%d", &ch, &mv) == 2 &&
            ch >= 0 && ch < 8) {
            adc_mv[ch] = mv;
            i++;
        } else if (!strcmp(argv[i], "-e") && i + 1 < argc) {
            ee_path = argv[++i];
        } else {
            elf = argv[i];
        }
    }
    if (!elf) { fprintf(stderr, "usage: %s [-a CH=mV] [-e eeprom.bin] firmware.elf\n", argv[0]); return 2; }
    if (elf_read_firmware(elf, &fw) != 0) { fprintf(stderr, "cannot read %s\n", elf); return 1; }
    avr_t *avr = avr_make_mcu_by_name("atmega328p");
    if (!avr) { fprintf(stderr, "no atmega328p in simavr\n"); return 1; }
    avr_init(avr);
    avr->frequency = 16000000;
    avr->vcc = avr->avcc = avr->aref = 5000;
    avr->log = LOG_ERROR;
    avr_load_firmware(avr, &fw);
    avr->frequency = 16000000;

    uint8_t *ee = NULL;
    if (ee_path) {
        avr_eeprom_desc_t d = {.ee = NULL, .offset = 0, .size = EE_SIZE};
        memset(ee_snap, 0xFF, EE_SIZE);
        FILE *f = fopen(ee_path, "rb");
        if (f) {
            if (fread(ee_snap, 1, EE_SIZE, f) != EE_SIZE) memset(ee_snap, 0xFF, EE_SIZE);
            fclose(f);
            avr_eeprom_desc_t s = {.ee = ee_snap, .offset = 0, .size = EE_SIZE};
            avr_ioctl(avr, AVR_IOCTL_EEPROM_SET, &s);
        }
        avr_ioctl(avr, AVR_IOCTL_EEPROM_GET, &d);     /* d.ee: the live EEPROM */
        ee = d.ee;
        if (ee) memcpy(ee_snap, ee, EE_SIZE);
    }
    i2c_eeprom_init(avr, &i2c_ee, 0xA0, 0x01, NULL, 256);
    i2c_eeprom_attach(avr, &i2c_ee, AVR_IOCTL_TWI_GETIRQ(0));
    uart_pty_init(avr, &uart_pty);
    uart_pty_connect(&uart_pty, '0');
    for (int ch = 0; ch < 8; ch++)
        if (adc_mv[ch] >= 0)
            avr_raise_irq(avr_io_getirq(avr, AVR_IOCTL_ADC_GETIRQ, ADC_IRQ_ADC0 + ch), (uint32_t)adc_mv[ch]);
    avr_irq_t *pb4 = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('B'), 4);
    drive(pb4, jumper ? 0 : 1);
    printf("PTY %s\n", uart_pty.pty.slavename);
    fflush(stdout);
    uint64_t ee_checked = now_ms();
    for (uint32_t n = 0;; n++) {
        int state = avr_run(avr);
        if (ee && (n & 0x3FF) == 0 && now_ms() - ee_checked >= 50) {
            ee_checked = now_ms();
            if (memcmp(ee, ee_snap, EE_SIZE)) {
                memcpy(ee_snap, ee, EE_SIZE);
                ee_save(ee_path, ee_snap);
            }
        }
        if (avr->pc == 0) {
            /* a (watchdog) reset clears the simulated port state: drive PB4 again */
            avr_raise_irq(pb4, !jumper);
            drive(pb4, jumper ? 0 : 1);
        }
        if (state == cpu_Done || state == cpu_Crashed) {
            fprintf(stderr, "simavr: cpu stopped (state %d)\n", state);
            _exit(3);               /* not uart_pty_stop(): it can hang */
        }
    }
}
