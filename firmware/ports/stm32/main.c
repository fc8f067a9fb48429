/* STM32 port: STM32F103 "blue pill", register level, no vendor headers. The same image runs on
 * QEMU's stm32vldiscovery (STM32F100: same USART1, GPIO, RCC and SysTick layout).
 *
 * Clock: HSI 8 MHz -> PLL x6 / 2 = 24 MHz (the F100's maximum and QEMU's modelled clock; QEMU
 * models no RCC, so the PLL wait is bounded, never an endless spin). USART1 on PA9/PA10 at
 * 115200 baud, RX by interrupt into a ring, TX by polling TXE. SysTick 1 ms. WFI when idle.
 * Pins: 0-15 = PA0-PA15, 16-31 = PB0-PB15 (PA9/PA10 serial, PA13/PA14 SWD, PB6/PB7 I2C:
 * reserved).
 * ADC1 channels 0-7 = PA0-PA7, 8-9 = PB0-PB1. PWM: TIM2 CH1-4 on PA0-PA3, TIM3 CH1-4 on
 * PA6, PA7, PB0, PB1 (1 kHz, 8-bit duty). Pairing jumper: PB12 tied to 3V3 at start.
 * Storage: the last 1 KB flash page, programmed through the FPEC and verified by reading back;
 * a copy is also kept in RAM that a reset does not clear (.noinit), which is what persists under
 * QEMU, where the flash controller is not modelled. */
#include "copa_fw.h"

#define REG(a) (*(volatile uint32_t *)(a))
#define RCC_CR REG(0x40021000)
#define RCC_CFGR REG(0x40021004)
#define RCC_APB2ENR REG(0x40021018)
#define RCC_APB1ENR REG(0x4002101C)
#define FLASH_ACR REG(0x40022000)
#define FLASH_KEYR REG(0x40022004)
#define FLASH_SR REG(0x4002200C)
#define FLASH_CR REG(0x40022010)
#define FLASH_AR REG(0x40022014)
#define GPIO_BASE(p) (0x40010800u + 0x400u * (p))
#define GPIO_CRL(p) REG(GPIO_BASE(p) + 0x00)
#define GPIO_CRH(p) REG(GPIO_BASE(p) + 0x04)
#define GPIO_IDR(p) REG(GPIO_BASE(p) + 0x08)
#define GPIO_BSRR(p) REG(GPIO_BASE(p) + 0x10)
#define USART1_SR REG(0x40013800)
#define USART1_DR REG(0x40013804)
#define USART1_BRR REG(0x40013808)
#define USART1_CR1 REG(0x4001380C)
#define ADC1_SR REG(0x40012400)
#define ADC1_SMPR2 REG(0x40012410)
#define ADC1_SQR3 REG(0x40012434)
#define ADC1_CR2 REG(0x40012408)
#define ADC1_DR REG(0x4001244C)
#define TIM_BASE(t) ((t) == 2 ? 0x40000000u : 0x40000400u)
#define NVIC_ISER1 REG(0xE000E104)
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define SYST_CVR REG(0xE000E018)
#define SCB_AIRCR REG(0xE000ED0C)
#define SYSCLK 24000000u

#define STORE_SIZE 256
#define STORE_FLASH 0x0800FC00u
#define RX_SIZE 256

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
static volatile uint8_t rx_buf[RX_SIZE];
static volatile uint16_t rx_head, rx_tail;
static volatile uint32_t ticks;
static uint16_t odr[2];                /* driven output levels (read back for output pins) */
static uint8_t pin_is_out[32];
static uint8_t jumper;
__attribute__((section(".noinit"))) static uint8_t store_ram[STORE_SIZE + 4];

static void irq_off(void) { __asm__ volatile("cpsid i" ::: "memory"); }
static void irq_on(void) { __asm__ volatile("cpsie i" ::: "memory"); }

void SysTick_Handler(void) { ticks++; }
void USART1_IRQHandler(void)
{
    while (USART1_SR & (1u << 5)) {                 /* RXNE */
        uint8_t c = (uint8_t)USART1_DR;
        uint16_t next = (uint16_t)((rx_head + 1) % RX_SIZE);
        if (next != rx_tail) { rx_buf[rx_head] = c; rx_head = next; }
    }
    if (USART1_SR & (1u << 3)) (void)USART1_DR;     /* overrun: clear it */
}

uint32_t hal_millis(void) { return ticks; }
void hal_uart_write(const uint8_t *p, uint8_t n)
{
    while (n--) {
        for (uint32_t i = 0; !(USART1_SR & (1u << 7)) && i < 100000; i++) {}
        USART1_DR = *p++;
    }
}

/* ---- pins ---- */
uint8_t hal_board(void) { return BOARD_STM32F103; }
uint8_t hal_num_pins(void) { return 32; }
static int8_t adc_channel_of(uint8_t pin) { return pin < 8 ? (int8_t)pin : pin == 16 ? 8 : pin == 17 ? 9 : -1; }
static int8_t pwm_of(uint8_t pin)       /* timer*16 + channel(1..4) */
{
    if (pin <= 3) return (int8_t)(2 * 16 + pin + 1);
    if (pin == 6 || pin == 7) return (int8_t)(3 * 16 + pin - 5);
    if (pin == 16 || pin == 17) return (int8_t)(3 * 16 + pin - 13);
    return -1;
}
uint8_t hal_pin_caps(uint8_t pin)
{
    if (pin == 9 || pin == 10 || pin == 13 || pin == 14 || pin == 22 || pin == 23) return 0;
    uint8_t c = CAP_IN | CAP_OUT | CAP_PULLUP;
    if (pwm_of(pin) >= 0) c |= CAP_PWM;
    if (adc_channel_of(pin) >= 0) c |= CAP_ADC;
    return c;
}
uint8_t hal_num_adc(void) { return 10; }
uint8_t hal_adc_bits(void) { return 12; }
uint8_t hal_has_i2c(void) { return 1; }

static void pin_cfg(uint8_t pin, uint32_t cfg)
{
    uint8_t port = pin >> 4, n = pin & 15;
    volatile uint32_t *cr = n < 8 ? &GPIO_CRL(port) : &GPIO_CRH(port);
    uint8_t sh = (uint8_t)((n & 7) * 4);
    *cr = (*cr & ~(0xFu << sh)) | (cfg << sh);
}
static void pin_set(uint8_t pin, uint8_t v)
{
    uint8_t port = pin >> 4, n = pin & 15;
    GPIO_BSRR(port) = v ? (1u << n) : (1u << (n + 16));
    if (v) odr[port] |= (uint16_t)(1u << n);
    else odr[port] &= (uint16_t)~(1u << n);
}
uint8_t hal_gpio_mode(uint8_t pin, uint8_t mode)
{
    if (mode == MODE_OUTPUT) { pin_cfg(pin, 0x2); pin_is_out[pin] = 1; }
    else if (mode == MODE_INPUT_PULLUP) { pin_set(pin, 1); pin_cfg(pin, 0x8); pin_is_out[pin] = 0; }
    else { pin_cfg(pin, 0x4); pin_is_out[pin] = 0; }
    return ST_OK;
}
uint8_t hal_gpio_read(uint8_t pin)
{
    uint8_t port = pin >> 4, n = pin & 15;
    if (pin_is_out[pin]) return (odr[port] >> n) & 1;
    return (GPIO_IDR(port) >> n) & 1;
}
void hal_gpio_write(uint8_t pin, uint8_t v)
{
    if (pin_is_out[pin] == 2) pin_cfg(pin, 0x2);   /* leave PWM */
    pin_is_out[pin] = 1;
    pin_set(pin, v);
}
uint8_t hal_pwm_write(uint8_t pin, uint8_t duty)
{
    int8_t t = pwm_of(pin);
    if (t < 0) return ST_UNSUPPORTED;
    uint32_t base = TIM_BASE(t >> 4), ch = (uint32_t)(t & 15);
    REG(base + 0x28) = SYSCLK / 256000u - 1;               /* PSC: 256 kHz -> 1 kHz at ARR 255 */
    REG(base + 0x2C) = 255;                                /* ARR */
    volatile uint32_t *ccmr = (volatile uint32_t *)(base + (ch <= 2 ? 0x18 : 0x1C));
    uint8_t sh = (uint8_t)(((ch - 1) & 1) * 8);
    *ccmr = (*ccmr & ~(0xFFu << sh)) | ((0x68u) << sh);    /* PWM mode 1, preload */
    REG(base + 0x34 + 4 * (ch - 1)) = duty;                /* CCRx */
    REG(base + 0x20) |= 1u << (4 * (ch - 1));              /* CCER: CCxE */
    REG(base + 0x00) |= 1;                                 /* CEN */
    pin_cfg(pin, 0xA);                                     /* AF push-pull 2 MHz */
    pin_is_out[pin] = 2;
    if (duty >= 128) odr[pin >> 4] |= (uint16_t)(1u << (pin & 15));
    else odr[pin >> 4] &= (uint16_t)~(1u << (pin & 15));
    return ST_OK;
}
uint8_t hal_adc_read(uint8_t ch, uint16_t *v)
{
    static const uint8_t pins[10] = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17};
    pin_cfg(pins[ch], 0x0);                                /* analog input */
    ADC1_SQR3 = ch;
    ADC1_CR2 = 1u | (7u << 17) | (1u << 20);               /* ADON, SWSTART trigger */
    ADC1_CR2 |= 1u << 22;
    for (uint32_t i = 0; !(ADC1_SR & 2u); i++)
        if (i > 20000) return ST_HW_TIMEOUT;               /* e.g. QEMU: no ADC model */
    *v = (uint16_t)(ADC1_DR & 0xFFF);
    return ST_OK;
}
/* I2C: bit-banged (core/i2c_soft.c) on PB6 = SCL, PB7 = SDA, open-drain, ~100 kHz. Under QEMU
 * the GPIO is not modelled, the lines never read high, and every transfer reports HW_TIMEOUT. */
void hal_i2c_line(uint8_t line, uint8_t level)
{
    GPIO_BSRR(1) = (1u << (6 + line)) << (level ? 0 : 16);
}
uint8_t hal_i2c_sense(uint8_t line) { return (GPIO_IDR(1) >> (6 + line)) & 1; }
void hal_i2c_delay(void) { for (volatile uint8_t i = 0; i < 10; i++) {} }
uint8_t hal_i2c_xfer(uint8_t a, const uint8_t *w, uint8_t wn, uint8_t *r, uint8_t rn)
{
    return copa_i2c_soft_xfer(a, w, wn, r, rn);
}

/* ---- storage ---- */
static uint32_t store_sum(void)
{
    uint32_t s = 0x5A5A0000u;
    for (uint16_t i = 0; i < STORE_SIZE; i++) s = (s << 1 | s >> 31) ^ store_ram[i];
    return s;
}
static void store_seal(void)
{
    uint32_t s = store_sum();
    for (uint8_t i = 0; i < 4; i++) store_ram[STORE_SIZE + i] = (uint8_t)(s >> (8 * i));
}
static uint8_t store_sealed(void)
{
    uint32_t s = store_sum();
    for (uint8_t i = 0; i < 4; i++)
        if (store_ram[STORE_SIZE + i] != (uint8_t)(s >> (8 * i))) return 0;
    return 1;
}
static uint8_t flash_wait(void)
{
    for (uint32_t i = 0; FLASH_SR & 1u; i++)
        if (i > 2000000) return 0;
    return 1;
}
static void flash_commit(void)
{
    const volatile uint16_t *f = (const volatile uint16_t *)STORE_FLASH;
    FLASH_KEYR = 0x45670123u;
    FLASH_KEYR = 0xCDEF89ABu;
    FLASH_CR = 1u << 1;                                    /* PER */
    FLASH_AR = STORE_FLASH;
    FLASH_CR = (1u << 1) | (1u << 6);                      /* PER | STRT */
    if (!flash_wait()) goto out;
    FLASH_CR = 1u;                                         /* PG */
    for (uint16_t i = 0; i < STORE_SIZE + 4; i += 2) {
        *(volatile uint16_t *)(STORE_FLASH + i) = (uint16_t)(store_ram[i] | (store_ram[i + 1] << 8));
        if (!flash_wait()) break;
    }
out:
    FLASH_CR = 1u << 7;                                    /* LOCK */
    (void)f;
}
static void store_boot(void)
{
    const uint8_t *f = (const uint8_t *)STORE_FLASH;
    uint8_t ram_ok = store_sealed();
    if (!ram_ok) {
        /* power-on on silicon: take the flash copy; else start blank (0xFF like EEPROM) */
        for (uint16_t i = 0; i < STORE_SIZE + 4; i++) store_ram[i] = f[i];
        if (!store_sealed()) {
            for (uint16_t i = 0; i < STORE_SIZE; i++) store_ram[i] = 0xFF;
            store_seal();
        }
    }
}
void hal_store_read(uint16_t off, uint8_t *p, uint8_t n)
{
    for (uint8_t i = 0; i < n; i++) p[i] = store_ram[off + i];
}
void hal_store_write(uint16_t off, const uint8_t *p, uint8_t n)
{
    for (uint8_t i = 0; i < n; i++) store_ram[off + i] = p[i];
    store_seal();
    flash_commit();
}

uint32_t hal_entropy(void) { return SYST_CVR ^ (ticks << 12) ^ (uint32_t)rx_head; }
/* The F1 family's 96-bit unique device id (0x1FFFF7E8). QEMU's stm32vldiscovery does not map
 * that region and a read there locks the emulated CPU, so it is read only on silicon, which we
 * recognise by the PLL having locked (QEMU models no RCC: PLLRDY never sets). */
static uint8_t on_silicon;
uint8_t hal_unique_id(uint8_t id[12])
{
    if (!on_silicon) return 0;
    const volatile uint8_t *u = (const volatile uint8_t *)0x1FFFF7E8u;
    for (uint8_t i = 0; i < 12; i++) id[i] = u[i];
    return 1;
}
uint8_t hal_pair_jumper(void) { return jumper; }
uint16_t hal_free_ram(void)
{
    uint8_t top;
    return (uint16_t)((uint32_t)&top - (uint32_t)&_ebss);
}
void hal_reset(void)
{
    for (volatile uint32_t i = 0; i < 20000; i++) {}     /* let the last byte leave */
    SCB_AIRCR = 0x05FA0004u;                             /* SYSRESETREQ */
    for (;;) {}
}

static void clock_init(void)
{
    FLASH_ACR = 0x10;                                    /* prefetch on, 0 wait states (<= 24 MHz) */
    RCC_CFGR = (4u << 18);                               /* PLL source HSI/2, x6 = 24 MHz */
    RCC_CR |= 1u << 24;                                  /* PLLON */
    for (uint32_t i = 0; !(RCC_CR & (1u << 25)) && i < 100000; i++) {}
    on_silicon = (RCC_CR >> 25) & 1;                     /* PLLRDY */
    RCC_CFGR |= 2u;                                      /* SW = PLL */
}

int main(void)
{
    clock_init();
    RCC_APB2ENR |= (1u << 0) | (1u << 2) | (1u << 3) | (1u << 9) | (1u << 14); /* AFIO GPIOA/B ADC1 USART1 */
    RCC_APB1ENR |= (1u << 0) | (1u << 1);                                      /* TIM2 TIM3 */
    pin_cfg(9, 0xB);                                     /* PA9 TX: AF push-pull 50 MHz */
    pin_cfg(10, 0x4);                                    /* PA10 RX: floating input */
    USART1_BRR = SYSCLK / 115200u;
    USART1_CR1 = (1u << 13) | (1u << 5) | (1u << 3) | (1u << 2); /* UE RXNEIE TE RE */
    NVIC_ISER1 = 1u << (37 - 32);
    SYST_RVR = SYSCLK / 1000u - 1;
    SYST_CVR = 0;
    SYST_CSR = 7;
    GPIO_BSRR(1) = (1u << 6) | (1u << 7);                /* I2C lines released */
    pin_cfg(22, 0x6);                                    /* PB6 SCL: open-drain output */
    pin_cfg(23, 0x6);                                    /* PB7 SDA: open-drain output */
    pin_cfg(28, 0x8);                                    /* PB12 input, pull-down */
    GPIO_BSRR(1) = 1u << (12 + 16);
    for (volatile uint32_t i = 0; i < 100; i++) {}
    jumper = (GPIO_IDR(1) >> 12) & 1;
    store_boot();
    irq_on();
    copa_init();
    for (;;) {
        while (rx_tail != rx_head) {
            uint8_t c = rx_buf[rx_tail];
            rx_tail = (uint16_t)((rx_tail + 1) % RX_SIZE);
            copa_rx_byte(c);
        }
        copa_poll();
        irq_off();
        if (rx_tail == rx_head)
            __asm__ volatile("wfi");
        irq_on();
    }
}

/* ---- startup ---- */
void Reset_Handler(void)
{
    uint32_t *s = &_sidata, *d = &_sdata;
    while (d < &_edata) *d++ = *s++;
    for (d = &_sbss; d < &_ebss;) *d++ = 0;
    main();
    for (;;) {}
}
static void Default_Handler(void) { for (;;) {} }

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16 + 38])(void) = {
    [0] = (void (*)(void))(&_estack),
    [1] = Reset_Handler,
    [2] = Default_Handler, [3] = Default_Handler, [4] = Default_Handler, [5] = Default_Handler,
    [6] = Default_Handler, [11] = Default_Handler, [14] = Default_Handler,
    [15] = SysTick_Handler,
    [16 + 37] = USART1_IRQHandler,
};

/* the compiler may emit calls to these even in freestanding code */
void *memset(void *d, int c, size_t n)
{
    uint8_t *p = d;
    while (n--) *p++ = (uint8_t)c;
    return d;
}
void *memcpy(void *d, const void *s, size_t n)
{
    uint8_t *p = d;
    const uint8_t *q = s;
    while (n--) *p++ = *q++;
    return d;
}
