/* AVR port: ATmega328P (Arduino Uno) at 16 MHz, USART0 at 115200 baud (U2X), interrupt-driven
 * RX and TX, idle sleep, EEPROM storage, Timer0 millis (its PWM keeps working), Timer1/2 PWM,
 * 10-bit ADC, TWI master. Pin numbers are the Uno's: D0-D13 = 0-13, A0-A5 = 14-19.
 * Pairing jumper: D12 held to GND while the board starts. */
#include <avr/eeprom.h>
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>
#include "copa_fw.h"

#define RX_SIZE 128
#define TX_SIZE 64
static volatile uint8_t rx_buf[RX_SIZE], tx_buf[TX_SIZE];
static volatile uint8_t rx_head, rx_tail, tx_head, tx_tail;
static volatile uint32_t millis;
static volatile uint16_t millis_frac;

/* the watchdog stays armed after a watchdog reset: disarm it before main */
void wdt_off(void) __attribute__((naked, used, section(".init3")));
void wdt_off(void)
{
    MCUSR = 0;
    wdt_disable();
}

ISR(USART_RX_vect)
{
    uint8_t c = UDR0;
    uint8_t next = (uint8_t)((rx_head + 1) & (RX_SIZE - 1));
    if (next != rx_tail) {
        rx_buf[rx_head] = c;
        rx_head = next;
    }
}

ISR(USART_UDRE_vect)
{
    if (tx_head == tx_tail) {
        UCSR0B &= (uint8_t)~_BV(UDRIE0);
        return;
    }
    UDR0 = tx_buf[tx_tail];
    tx_tail = (uint8_t)((tx_tail + 1) & (TX_SIZE - 1));
}

ISR(TIMER0_OVF_vect)            /* 16 MHz / 64 / 256 = every 1.024 ms */
{
    uint32_t m = millis + 1;
    millis_frac += 24;
    if (millis_frac >= 1000) {
        millis_frac -= 1000;
        m++;
    }
    millis = m;
}

uint32_t hal_millis(void)
{
    uint8_t s = SREG;
    cli();
    uint32_t m = millis;
    SREG = s;
    return m;
}

static void idle(void)
{
    set_sleep_mode(SLEEP_MODE_IDLE);
    cli();
    sleep_enable();
    sei();                      /* the instruction after sei runs before any interrupt */
    sleep_cpu();
    sleep_disable();
}

void hal_uart_write(const uint8_t *p, uint8_t n)
{
    while (n--) {
        uint8_t next = (uint8_t)((tx_head + 1) & (TX_SIZE - 1));
        while (next == tx_tail)
            idle();             /* the UDRE interrupt wakes us */
        tx_buf[tx_head] = *p++;
        tx_head = next;
        UCSR0B |= _BV(UDRIE0);
    }
}

/* ---- pins ---- */
static volatile uint8_t *ddr(uint8_t pin) { return pin < 8 ? &DDRD : pin < 14 ? &DDRB : &DDRC; }
static volatile uint8_t *port(uint8_t pin) { return pin < 8 ? &PORTD : pin < 14 ? &PORTB : &PORTC; }
static volatile uint8_t *pinr(uint8_t pin) { return pin < 8 ? &PIND : pin < 14 ? &PINB : &PINC; }
static uint8_t bit(uint8_t pin) { return (uint8_t)(1 << (pin < 8 ? pin : pin < 14 ? pin - 8 : pin - 14)); }

uint8_t hal_board(void) { return BOARD_UNO; }
uint8_t hal_num_pins(void) { return 20; }
uint8_t hal_pin_caps(uint8_t pin)
{
    if (pin < 2) return 0;       /* D0/D1 carry the serial link */
    uint8_t c = CAP_IN | CAP_OUT | CAP_PULLUP;
    if (pin == 3 || pin == 5 || pin == 6 || pin == 9 || pin == 10 || pin == 11) c |= CAP_PWM;
    if (pin >= 14) c |= CAP_ADC;
    return c;
}
uint8_t hal_num_adc(void) { return 6; }
uint8_t hal_adc_bits(void) { return 10; }
uint8_t hal_has_i2c(void) { return 1; }

static void pwm_off(uint8_t pin)
{
    switch (pin) {
    case 6: TCCR0A &= (uint8_t)~_BV(COM0A1); break;
    case 5: TCCR0A &= (uint8_t)~_BV(COM0B1); break;
    case 9: TCCR1A &= (uint8_t)~_BV(COM1A1); break;
    case 10: TCCR1A &= (uint8_t)~_BV(COM1B1); break;
    case 11: TCCR2A &= (uint8_t)~_BV(COM2A1); break;
    case 3: TCCR2A &= (uint8_t)~_BV(COM2B1); break;
    }
}

uint8_t hal_gpio_mode(uint8_t pin, uint8_t mode)
{
    uint8_t b = bit(pin);
    pwm_off(pin);
    if (mode == MODE_OUTPUT) {
        *ddr(pin) |= b;
    } else {
        *ddr(pin) &= (uint8_t)~b;
        if (mode == MODE_INPUT_PULLUP) *port(pin) |= b;
        else *port(pin) &= (uint8_t)~b;
    }
    return ST_OK;
}
uint8_t hal_gpio_read(uint8_t pin) { return (*pinr(pin) & bit(pin)) ? 1 : 0; }
void hal_gpio_write(uint8_t pin, uint8_t v)
{
    pwm_off(pin);
    if (v) *port(pin) |= bit(pin);
    else *port(pin) &= (uint8_t)~bit(pin);
}

uint8_t hal_pwm_write(uint8_t pin, uint8_t duty)
{
    *ddr(pin) |= bit(pin);
    if (duty == 0 || duty == 255) {
        hal_gpio_write(pin, duty != 0);
        return ST_OK;
    }
    switch (pin) {
    case 6: OCR0A = duty; TCCR0A |= _BV(COM0A1); break;
    case 5: OCR0B = duty; TCCR0A |= _BV(COM0B1); break;
    case 9: OCR1A = duty; TCCR1A |= _BV(COM1A1); break;
    case 10: OCR1B = duty; TCCR1A |= _BV(COM1B1); break;
    case 11: OCR2A = duty; TCCR2A |= _BV(COM2A1); break;
    case 3: OCR2B = duty; TCCR2A |= _BV(COM2B1); break;
    default: return ST_UNSUPPORTED;
    }
    return ST_OK;
}

uint8_t hal_adc_read(uint8_t ch, uint16_t *v)
{
    ADMUX = (uint8_t)(_BV(REFS0) | (ch & 7));
    ADCSRA |= _BV(ADSC);
    for (uint16_t i = 0; ADCSRA & _BV(ADSC); i++)
        if (i == 0xFFFF) return ST_HW_TIMEOUT;
    *v = ADC;
    return ST_OK;
}

/* ---- I2C (TWI master, 100 kHz) ---- */
static uint8_t twi_wait(void)
{
    for (uint16_t i = 0; !(TWCR & _BV(TWINT)); i++)
        if (i == 20000) return 0;
    return 1;
}
static uint8_t twi_cmd(uint8_t cr) { TWCR = (uint8_t)(cr | _BV(TWINT) | _BV(TWEN)); return twi_wait(); }
static void twi_stop(void) { TWCR = _BV(TWINT) | _BV(TWEN) | _BV(TWSTO); }
static uint8_t twi_start(uint8_t sla)
{
    TWCR = _BV(TWINT) | _BV(TWSTA) | _BV(TWEN);
    for (uint16_t i = 0;; i++) {           /* TWINT with a START / repeated-START status */
        uint8_t s = TWSR & 0xF8;
        if ((TWCR & _BV(TWINT)) && (s == 0x08 || s == 0x10)) break;
        if (i == 20000) return ST_HW_TIMEOUT;
    }
    TWDR = sla;
    TWCR = _BV(TWINT) | _BV(TWEN);
    /* wait for TWINT with the address phase's status (simavr 1.6 shows TWINT still set, with
     * the START status, for a while after SLA+R; on silicon the first poll that sees TWINT
     * already has the new status) */
    uint8_t s;
    for (uint16_t i = 0;; i++) {
        s = TWSR & 0xF8;
        if ((TWCR & _BV(TWINT)) && s != 0x08 && s != 0x10) break;
        if (i == 20000) return ST_HW_TIMEOUT;
    }
    /* 0x18 / 0x40: SLA+W / SLA+R acknowledged; simavr 1.6 reports 0x28 / 0x50 instead */
    if (s == 0x18 || s == 0x40 || s == 0x28 || s == 0x50) return ST_OK;
    return ST_I2C_NACK;
}
uint8_t hal_i2c_xfer(uint8_t addr, const uint8_t *w, uint8_t wn, uint8_t *r, uint8_t rn)
{
    uint8_t st = ST_OK;
    if (wn || !rn) {
        st = twi_start((uint8_t)(addr << 1));
        for (uint8_t i = 0; st == ST_OK && i < wn; i++) {
            TWDR = w[i];
            if (!twi_cmd(0)) st = ST_HW_TIMEOUT;
            else if ((TWSR & 0xF8) != 0x28) st = ST_I2C_NACK;
        }
    }
    if (st == ST_OK && rn) {                     /* (repeated) START, then read */
        st = twi_start((uint8_t)((addr << 1) | 1));
        for (uint8_t i = 0; st == ST_OK && i < rn; i++) {
            if (!twi_cmd(i + 1 < rn ? _BV(TWEA) : 0)) st = ST_HW_TIMEOUT;
            else r[i] = TWDR;
        }
    }
    twi_stop();
    return st;
}

/* ---- storage, misc ---- */
void hal_store_read(uint16_t off, uint8_t *p, uint8_t n) { eeprom_read_block(p, (const void *)off, n); }
void hal_store_write(uint16_t off, const uint8_t *p, uint8_t n) { eeprom_update_block(p, (void *)off, n); }
/* Entropy: the watchdog runs from its own 128 kHz RC oscillator, so the crystal-clocked Timer1
 * count at each watchdog interrupt jitters. The first call (made when the storage is formatted,
 * to create the device id) folds in 16 such samples (~260 ms, once in the board's life); later
 * calls (nonce mixing, which needs uniqueness, not secrecy) mix the timers and an ADC reading. */
static volatile uint8_t wdt_ticks;
ISR(WDT_vect) { wdt_ticks++; }
uint32_t hal_entropy(void)
{
    static uint8_t harvested;
    uint16_t a = 0;
    hal_adc_read(0, &a);
    uint16_t lo = (uint16_t)(TCNT1 ^ a), hi = (uint16_t)(TCNT0 ^ (uint16_t)hal_millis());
    if (!harvested) {
        harvested = 1;
        cli();
        WDTCSR = _BV(WDCE) | _BV(WDE);
        WDTCSR = _BV(WDIE);                     /* interrupt mode, ~16 ms, no reset */
        sei();
        for (uint8_t i = 0; i < 16; i++) {
            uint8_t t = wdt_ticks;
            for (uint8_t n = 0; t == wdt_ticks && n < 40; n++) idle();   /* Timer0 wakes 1/ms */
            uint16_t s = TCNT1;
            hi = (uint16_t)((hi << 3) | (hi >> 13)) ^ lo;
            lo = (uint16_t)((lo << 5) | (lo >> 11)) ^ s;
        }
        wdt_disable();
    }
    return ((uint32_t)hi << 16) | lo;
}
uint8_t hal_unique_id(uint8_t id[12]) { (void)id; return 0; }  /* the 328P has none */
static uint8_t jumper;
uint8_t hal_pair_jumper(void) { return jumper; }
uint16_t hal_free_ram(void)
{
    extern char __heap_start;
    char top;
    return (uint16_t)(&top - &__heap_start);
}
void hal_reset(void)
{
    while (tx_head != tx_tail) idle();              /* let the answer leave */
    while (!(UCSR0A & _BV(TXC0))) {}
    wdt_enable(WDTO_15MS);
    for (;;) {}
}

int main(void)
{
    UCSR0A = _BV(U2X0);          /* before UBRR0: simavr latches the baud rate on UBRR write */
    UBRR0 = 16;                  /* 16 MHz / (8 * 17) = 117.6 kbaud, -2.1 % from 115200 */
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
    UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
    TCCR0A = _BV(WGM01) | _BV(WGM00);          /* fast PWM, /64: millis + PWM on D5/D6 */
    TCCR0B = _BV(CS01) | _BV(CS00);
    TIMSK0 = _BV(TOIE0);
    TCCR1A = _BV(WGM10);                       /* 8-bit fast PWM on D9/D10 */
    TCCR1B = _BV(WGM12) | _BV(CS11) | _BV(CS10);
    TCCR2A = _BV(WGM21) | _BV(WGM20);          /* fast PWM on D3/D11 */
    TCCR2B = _BV(CS22);
    ADCSRA = _BV(ADEN) | _BV(ADPS2) | _BV(ADPS1) | _BV(ADPS0);
    TWBR = 72;                                 /* 100 kHz */
    PORTB |= _BV(4);                           /* D12 pull-up: the pairing jumper */
    for (volatile uint8_t i = 0; i < 50; i++) {}
    jumper = !(PINB & _BV(4));
    sei();
    copa_init();
    for (;;) {
        while (rx_tail != rx_head) {
            uint8_t c = rx_buf[rx_tail];
            rx_tail = (uint8_t)((rx_tail + 1) & (RX_SIZE - 1));
            copa_rx_byte(c);
        }
        copa_poll();
        cli();
        if (rx_tail == rx_head) {
            sleep_enable();
            sei();
            sleep_cpu();
            sleep_disable();
        }
        sei();
    }
}
