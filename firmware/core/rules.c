/* The "tiny agent": threshold rules with hysteresis and a hold time. */
#include "copa_fw.h"

void copa_rule_to_wire(const copa_rule_t *r, uint8_t *w)
{
    w[0] = r->src_kind; w[1] = r->src_index; w[2] = r->op;
    w[3] = (uint8_t)r->threshold; w[4] = (uint8_t)(r->threshold >> 8);
    w[5] = (uint8_t)r->clear; w[6] = (uint8_t)(r->clear >> 8);
    w[7] = (uint8_t)r->duration_ms; w[8] = (uint8_t)(r->duration_ms >> 8);
    w[9] = r->act_pin; w[10] = r->act_fire; w[11] = r->act_clear; w[12] = r->flags;
}

uint8_t copa_rule_from_wire(copa_rule_t *r, const uint8_t *w)
{
    r->src_kind = w[0]; r->src_index = w[1]; r->op = w[2];
    r->threshold = (uint16_t)(w[3] | (w[4] << 8));
    r->clear = (uint16_t)(w[5] | (w[6] << 8));
    r->duration_ms = (uint16_t)(w[7] | (w[8] << 8));
    r->act_pin = w[9]; r->act_fire = w[10]; r->act_clear = w[11]; r->flags = w[12];
    r->used = 1;
    if (r->src_kind > SRC_ADC || r->op > RULE_BELOW || (r->flags & ~RULE_NOTIFY))
        return ST_BAD_ARG;
    /* hysteresis must point the right way: ABOVE clears below, BELOW clears above; clear =
     * threshold +/- 1 means no hysteresis (clear as soon as the condition is false) */
    if (r->op == RULE_ABOVE ? (uint32_t)r->clear > (uint32_t)r->threshold + 1
                            : (int32_t)r->clear < (int32_t)r->threshold - 1)
        return ST_BAD_ARG;
    if (r->act_fire > 1 || (r->act_clear > 1 && r->act_clear != 0xFF))
        return ST_BAD_ARG;
    return ST_OK;
}

uint8_t copa_rule_step(const copa_rule_t *r, copa_rule_rt_t *rt, uint16_t value, uint32_t now)
{
    uint8_t over = r->op == RULE_ABOVE ? value > r->threshold : value < r->threshold;
    if (rt->state == 2) {
        uint8_t clr = r->op == RULE_ABOVE ? value < r->clear : value > r->clear;
        if (clr) {
            rt->state = 0;
            return 2;
        }
        return 0;
    }
    if (!over) {
        rt->state = 0;
        return 0;
    }
    if (rt->state == 0) {
        rt->state = 1;
        rt->since = now;
    }
    if ((uint32_t)(now - rt->since) >= r->duration_ms) {
        rt->state = 2;
        return 1;
    }
    return 0;
}
