#ifndef MOCK_HAL_H
#define MOCK_HAL_H
#include "copa_fw.h"
#define MOCK_OUT_MAX 8192
extern uint32_t mock_now;
extern uint8_t mock_out[MOCK_OUT_MAX];
extern size_t mock_out_len;
extern uint8_t mock_store[512];
extern uint8_t mock_pin_mode[20], mock_pin_out[20], mock_pin_in[20];
extern uint16_t mock_adc[6];
extern uint8_t mock_jumper;
extern int mock_resets;
extern uint8_t mock_i2c_last_w[8], mock_i2c_last_wn;
void mock_clear_output(void);
void mock_fresh(void);
#endif
