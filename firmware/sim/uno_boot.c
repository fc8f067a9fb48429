/* simavr harness for a virtual Arduino Uno with its bootloader, so that the real avrdude can
 * flash it: an ATmega328P at 16 MHz with optiboot at 0x7E00 (BOOTRST), USART0 on a pty, the
 * Uno's reset-on-open (an inotify IN_OPEN on the pty stands in for the DTR pulse: the chip is
 * reset with EXTRF set, so optiboot waits ~1 s for the STK500 protocol before starting the
 * application), and simulated time held to wall-clock time so those timeouts are real.
 *
 * Usage: uno-boot optiboot.bin [application.elf]
 * Prints "PTY /dev/pts/N", then runs until killed. Flash starts erased (0xFF) apart from the
 * bootloader and the optional application. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>
#include "sim_avr.h"
#include "sim_elf.h"
#include "avr_ioport.h"
#include "uart_pty.h"

#define BOOT_ADDR 0x7E00
#define MCUSR_ADDR 0x54
#define EXTRF 1

static uart_pty_t uart_pty;

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static void drive(avr_irq_t *irq, uint32_t level)
{
    avr_raise_irq(irq, !level);
    avr_raise_irq(irq, level);
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: %s optiboot.bin [app.elf]\n", argv[0]); return 2; }
    static uint8_t boot[1024];
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 1; }
    size_t nboot = fread(boot, 1, sizeof boot, f);
    fclose(f);
    if (nboot == 0 || nboot > 512) { fprintf(stderr, "bootloader must be 1..512 bytes\n"); return 1; }

    avr_t *avr = avr_make_mcu_by_name("atmega328p");
    if (!avr) return 1;
    avr_init(avr);
    avr->frequency = 16000000;
    avr->log = LOG_ERROR;
    if (argc > 2) {
        elf_firmware_t fw;
        memset(&fw, 0, sizeof fw);
        if (elf_read_firmware(argv[2], &fw) != 0) { fprintf(stderr, "cannot read %s\n", argv[2]); return 1; }
        avr_load_firmware(avr, &fw);
        avr->frequency = 16000000;
    }
    memcpy(avr->flash + BOOT_ADDR, boot, nboot);
    avr->codeend = avr->flashend;
    avr->reset_pc = BOOT_ADDR;                  /* BOOTRST fuse: start in the bootloader */
    avr_reset(avr);                             /* power-on: optiboot starts the application */

    uart_pty_init(avr, &uart_pty);
    uart_pty_connect(&uart_pty, '0');
    avr_irq_t *pb4 = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('B'), 4);
    drive(pb4, 1);                              /* no pairing jumper */

    int ino = inotify_init1(IN_NONBLOCK);
    if (ino < 0 || inotify_add_watch(ino, uart_pty.pty.slavename, IN_OPEN) < 0) {
        perror("inotify");
        return 1;
    }
    printf("PTY %s\n", uart_pty.pty.slavename);
    fflush(stdout);

    uint64_t wall0 = now_us();
    avr_cycle_count_t cyc0 = avr->cycle;
    for (uint32_t n = 0;; n++) {
        int state = avr_run(avr);
        if (state == cpu_Done || state == cpu_Crashed) {
            fprintf(stderr, "simavr: cpu stopped (state %d)\n", state);
            _exit(3);
        }
        if (avr->pc == 0 || avr->pc == BOOT_ADDR)
            drive(pb4, 1);                      /* resets clear the simulated port state */
        if ((n & 4095) == 0) {
            char ev[256];
            if (read(ino, ev, sizeof ev) > 0) { /* someone opened the port: DTR reset */
                avr_reset(avr);
                avr->data[MCUSR_ADDR] |= 1 << EXTRF;
                drive(pb4, 1);
            }
            /* keep simulated time from running ahead of wall-clock time */
            if (avr->cycle < cyc0) { cyc0 = avr->cycle; wall0 = now_us(); }
            uint64_t sim_us = (avr->cycle - cyc0) / 16, wall_us = now_us() - wall0;
            if (sim_us > wall_us + 2000) usleep((useconds_t)(sim_us - wall_us));
        }
    }
}
