/* A scripted HAL for the core's unit tests and the fuzz target. */
#include <string.h>
#include "mock_hal.h"

uint32_t mock_now;
uint8_t mock_out[MOCK_OUT_MAX];
size_t mock_out_len;
uint8_t mock_store[512];
uint8_t mock_pin_mode[20], mock_pin_out[20], mock_pin_in[20];
uint16_t mock_adc[6];
uint8_t mock_jumper;
int mock_resets;
uint32_t mock_entropy_seed = 12345;

void mock_clear_output(void) { mock_out_len = 0; }
void mock_fresh(void)
{
    memset(mock_store, 0xFF, sizeof mock_store);
    memset(mock_pin_mode, 0, sizeof mock_pin_mode);
    memset(mock_pin_out, 0, sizeof mock_pin_out);
    memset(mock_pin_in, 0, sizeof mock_pin_in);
    memset(mock_adc, 0, sizeof mock_adc);
    mock_now = 0;
    mock_jumper = 0;
    mock_resets = 0;
    mock_out_len = 0;
}

uint32_t hal_millis(void) { return mock_now; }
void hal_uart_write(const uint8_t *p, uint8_t n)
{
    for (uint8_t i = 0; i < n && mock_out_len < MOCK_OUT_MAX; i++) mock_out[mock_out_len++] = p[i];
}
uint8_t hal_board(void) { return BOARD_HOST; }
uint8_t hal_num_pins(void) { return 20; }
uint8_t hal_pin_caps(uint8_t pin)
{
    if (pin < 2) return 0;              /* like the Uno's UART pins */
    uint8_t c = CAP_IN | CAP_OUT | CAP_PULLUP;
    if (pin == 3 || pin == 9) c |= CAP_PWM;
    if (pin >= 14) c |= CAP_ADC;
    return c;
}
uint8_t hal_num_adc(void) { return 6; }
uint8_t hal_adc_bits(void) { return 10; }
uint8_t hal_has_i2c(void) { return 1; }
uint8_t hal_gpio_mode(uint8_t pin, uint8_t mode) { mock_pin_mode[pin] = mode; return ST_OK; }
uint8_t hal_gpio_read(uint8_t pin) { return mock_pin_mode[pin] == MODE_OUTPUT ? mock_pin_out[pin] : mock_pin_in[pin]; }
void hal_gpio_write(uint8_t pin, uint8_t v) { mock_pin_out[pin] = v; }
uint8_t hal_adc_read(uint8_t ch, uint16_t *v) { *v = mock_adc[ch]; return ST_OK; }
uint8_t hal_pwm_write(uint8_t pin, uint8_t duty) { mock_pin_out[pin] = duty; return ST_OK; }
uint8_t mock_i2c_last_w[8], mock_i2c_last_wn;
uint8_t hal_i2c_xfer(uint8_t addr, const uint8_t *w, uint8_t wn, uint8_t *r, uint8_t rn)
{
    if (addr != 0x3C) return ST_I2C_NACK;
    mock_i2c_last_wn = wn;
    for (uint8_t i = 0; i < wn && i < 8; i++) mock_i2c_last_w[i] = w[i];
    for (uint8_t i = 0; i < rn; i++) r[i] = (uint8_t)(0xA0 + i);
    return ST_OK;
}
void hal_store_read(uint16_t off, uint8_t *p, uint8_t n) { memcpy(p, mock_store + off, n); }
void hal_store_write(uint16_t off, const uint8_t *p, uint8_t n) { memcpy(mock_store + off, p, n); }
uint32_t hal_entropy(void) { mock_entropy_seed = mock_entropy_seed * 1103515245u + 12345u; return mock_entropy_seed; }
uint8_t hal_unique_id(uint8_t id[12]) { (void)id; return 0; }
uint8_t hal_pair_jumper(void) { return mock_jumper; }
uint16_t hal_free_ram(void) { return 1234; }
void hal_reset(void) { mock_resets++; copa_init(); }
