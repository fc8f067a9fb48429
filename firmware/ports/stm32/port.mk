# STM32 port: STM32F103 blue pill; runs unchanged on QEMU stm32vldiscovery
ARM_CC    ?= arm-none-eabi-gcc
ARM_FLAGS := -mcpu=cortex-m3 -mthumb -std=c99 -Os -Wall -Wextra -Werror -ffreestanding \
             -ffunction-sections -fdata-sections -Icore \
             -DCOPA_MAX_BODY=64 -DCOPA_MAX_RULES=8 -DCOPA_MAX_SUBS=8 -DCOPA_I2C_SOFT
STM32_ELF := $(BUILD)/stm32/copa-stm32.elf

stm32: $(STM32_ELF) $(BUILD)/stm32/copa-stm32.bin
$(STM32_ELF): $(CORE) $(HDRS) ports/stm32/main.c ports/stm32/stm32f103.ld ports/stm32/port.mk
	@mkdir -p $(dir $@)
	$(ARM_CC) $(ARM_FLAGS) $(CORE) ports/stm32/main.c -nostdlib -Wl,--gc-sections \
	  -T ports/stm32/stm32f103.ld -o $@.$$$$ -lgcc && mv -f $@.$$$$ $@
$(BUILD)/stm32/copa-stm32.bin: $(STM32_ELF)
	arm-none-eabi-objcopy -O binary $< $@
