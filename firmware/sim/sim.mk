# simavr harnesses
SIM_CFLAGS := -O2 -Wall -Wno-unused-parameter $(shell pkg-config --cflags simavr simavrparts 2>/dev/null)
SIM_LIBS   := -lsimavrparts -lsimavr -lelf -lpthread -lutil

sim: $(BUILD)/sim/uno-pty
$(BUILD)/sim/uno-pty: sim/uno_pty.c
	@mkdir -p $(dir $@)
	$(CC) $(SIM_CFLAGS) $< -o $@.$$$$ $(SIM_LIBS) && mv -f $@.$$$$ $@

# optiboot rebuilt from Debian's arduino-core-avr source (its prebuilt hex does not run under
# simavr), without the LED flashes; then the bootloader-emulating harness
OPTIBOOT_SRC ?= /usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot
boot: $(BUILD)/sim/uno-boot $(BUILD)/sim/optiboot.bin
$(BUILD)/sim/uno-boot: sim/uno_boot.c
	@mkdir -p $(dir $@)
	$(CC) $(SIM_CFLAGS) $< -o $@.$$$$ $(SIM_LIBS) && mv -f $@.$$$$ $@
$(BUILD)/sim/optiboot.elf: $(OPTIBOOT_SRC)/optiboot.c
	@mkdir -p $(dir $@)
	avr-gcc -Os -mmcu=atmega328p -DF_CPU=16000000L -DBAUD_RATE=115200 -DLED_START_FLASHES=0 \
	  -fno-inline-small-functions -fno-split-wide-types -Wl,--section-start=.text=0x7e00 \
	  -Wl,--section-start=.version=0x7ffe -Wl,--relax -nostartfiles -nostdlib \
	  -I$(OPTIBOOT_SRC) $< -o $@
$(BUILD)/sim/optiboot.bin: $(BUILD)/sim/optiboot.elf
	avr-objcopy -O binary $< $@
