# simavr harnesses
SIM_CFLAGS := -O2 -Wall -Wno-unused-parameter $(shell pkg-config --cflags simavr simavrparts 2>/dev/null)
SIM_LIBS   := -lsimavrparts -lsimavr -lelf -lpthread -lutil

sim: $(BUILD)/sim/uno-pty
$(BUILD)/sim/uno-pty: sim/uno_pty.c
	@mkdir -p $(dir $@)
	$(CC) $(SIM_CFLAGS) $< -o $@ $(SIM_LIBS)
