# AVR port: ATmega328P (Arduino Uno)
AVR_CC    ?= avr-gcc
AVR_FLAGS := -mmcu=atmega328p -DF_CPU=16000000UL -std=c99 -Os -Wall -Wextra -Werror \
             -ffunction-sections -fdata-sections -fshort-enums -mcall-prologues -flto -Icore \
             -DCOPA_MAX_BODY=64 -DCOPA_MAX_RULES=8 -DCOPA_MAX_SUBS=8
AVR_ELF   := $(BUILD)/avr/copa-uno.elf

avr: $(AVR_ELF) $(BUILD)/avr/copa-uno.hex
$(AVR_ELF): $(CORE) $(HDRS) ports/avr/main.c ports/avr/port.mk
	@mkdir -p $(dir $@)
	$(AVR_CC) $(AVR_FLAGS) $(CORE) ports/avr/main.c -Wl,--gc-sections -o $@.$$$$ && mv -f $@.$$$$ $@
$(BUILD)/avr/copa-uno.hex: $(AVR_ELF)
	avr-objcopy -O ihex -R .eeprom $< $@
