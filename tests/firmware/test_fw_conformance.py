"""Conformance suite: the same tests against the host build, the AVR image in simavr and the
STM32 image in QEMU (see conftest.py). Everything goes through copa.device over a pty."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from devkit.client import Client

from copa.device import NoAnswer
from copa.device.codec import cobs_encode
from copa.device.protocol import (
    AUTHENTICATED,
    Board,
    Cap,
    Cmd,
    DeviceError,
    Mode,
    ProtocolError,
    Rule,
    RuleEvent,
    SampleEvent,
    Status,
    encode_frame,
    frame_bytes,
)

KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
BOARD_IDS = {"host": Board.HOST, "avr": Board.UNO, "stm32": Board.STM32F103}
VECTORS = Path(__file__).resolve().parents[2] / "firmware" / "tests" / "vectors.txt"


def paired(c: Client) -> Client:
    c.hello()
    c.pair(KEY)
    c.authenticate(KEY)
    return c


def output_pin(c: Client) -> int:
    """A pin usable as output that is not PWM-only special: prefer 7 (Uno D7)."""
    pins = c.hello_info.pins_with(Cap.OUT) if c.hello_info else []
    return 7 if 7 in pins else pins[0]


def test_hello_with_retry(board):
    c = board.open()
    h = c.hello()
    assert h.protocol == 1
    assert h.board == BOARD_IDS[board.name]
    assert h.max_body == 64
    assert len(h.device_id) == 8 and h.device_id != bytes(8)
    assert not h.paired and h.pair_open and not h.session
    assert len(h.pins) >= 10 and h.pins_with(Cap.OUT)
    assert h.max_rules >= 4 and h.max_subs >= 4
    if board.name == "avr":
        assert len(h.pins) == 20 and h.pins[0] == 0 and h.pins[1] == 0  # D0/D1 are the UART
        assert h.pins_with(Cap.PWM) == [3, 5, 6, 9, 10, 11]
        assert h.adc_channels == 6 and h.adc_bits == 10 and h.i2c


def test_ping_sizes(board):
    c = board.open()
    c.hello()
    for n in (0, 1, 16, 63):
        data = bytes((i * 7 + 1) & 0xFF for i in range(n))
        assert c.ping(data) == data
    with pytest.raises(DeviceError) as e:
        c.ping(bytes(64))  # the echo would not fit the advertised body size
    assert e.value.status == Status.BAD_LENGTH


def test_pipelined_requests(board):
    c = board.open()
    c.hello()
    # 11 requests, 111 bytes on the wire: within the 128 unanswered bytes the spec allows
    ids = [c.send(Cmd.PING, bytes([i]) * (i % 12)) for i in range(10)]
    ids.append(c.send(Cmd.STATS))
    answers = [c.wait(i, timeout=10) for i in ids]
    for i, f in enumerate(answers[:-1]):
        assert f.cmd == Cmd.PING and f.status == Status.OK and f.payload == bytes([i]) * (i % 12)
    assert answers[-1].cmd == Cmd.STATS


def test_corrupted_and_oversized_frames_are_dropped_and_counted(board):
    c = board.open()
    c.hello()
    before = c.stats()
    good = frame_bytes(Cmd.PING, 99, b"abc")
    bad_crc = cobs_encode(good[:-1] + bytes([good[-1] ^ 0x55])) + b"\x00"
    oversized = encode_frame(Cmd.PING, 98, bytes(range(1, 121)))  # body 120 > 64
    c.write_raw(b"\x00\x13\x37garbage\x00" + bad_crc + oversized + b"\x01\x00")
    rid = c.send(Cmd.PING, b"after")
    f = c.wait(rid, timeout=5)
    assert f.payload == b"after"
    # nothing was answered for the garbage: the only responses seen are ours
    assert 99 not in c._responses and 98 not in c._responses
    after = c.stats()
    assert after.bad_crc == before.bad_crc + 1
    assert after.oversize == before.oversize + 1
    assert after.bad_frame >= before.bad_frame + 2
    assert after.frames_ok == before.frames_ok + 2  # the PING and this STATS


def test_unauthenticated_writes_are_refused(board):
    c = board.open()
    c.hello()
    pin = output_pin(c)
    attempts = {
        Cmd.GPIO_MODE: bytes([pin, Mode.OUTPUT]), Cmd.GPIO_WRITE: bytes([pin, 1]),
        Cmd.PWM_WRITE: bytes([3, 100]), Cmd.I2C_WRITE: bytes([0x48, 0]),
        Cmd.RULE_ADD: Rule(Rule.ADC, 0, Rule.ABOVE, 10, 5).to_wire(), Cmd.RULE_DEL: b"\x00",
        Cmd.RULE_CLEAR: b"", Cmd.RESET: b"",
    }
    assert set(attempts) == set(AUTHENTICATED)
    for cmd, body in attempts.items():
        f = c.request(cmd, body, auth=False, check=False)
        assert f.status == Status.AUTH_REQUIRED, cmd.name
    # read-only commands are open
    assert c.gpio_read(pin) in (0, 1)
    c.stats()
    c.rules()
    # an unpaired board cannot even start a session
    with pytest.raises(DeviceError) as e:
        c.authenticate(KEY)
    assert e.value.status == Status.BAD_STATE


def test_shared_exchange_vectors(board):
    """The exchange vectors of firmware/tests/vectors.txt, byte for byte, on a fresh board."""
    c = board.open()
    c.hello()
    n = 0
    for line in VECTORS.read_text().splitlines():
        parts = line.split()
        if not parts or parts[0] != "exchange":
            continue
        req, want = bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
        c.write_raw(req)
        got = b""
        deadline = time.monotonic() + 5
        while not got.endswith(b"\x00") and time.monotonic() < deadline:
            got += c.port.read(c.port.in_waiting or 1)
        assert got == want, parts[1]
        n += 1
    assert n >= 5


def test_pairing_authentication_and_replay(board):
    c = paired(board.open())
    assert c.hello().paired
    with pytest.raises(DeviceError) as e:
        c.pair(bytes(16))  # already paired, no jumper
    assert e.value.status == Status.NOT_PAIRABLE
    pin = output_pin(c)
    c.gpio_mode(pin, Mode.OUTPUT)
    c.gpio_write(pin, 1)
    assert c.gpio_read(pin) == 1
    # a byte-exact replay of an accepted frame is refused
    rid = c.new_id()
    wire = encode_frame(Cmd.GPIO_WRITE, rid, c.session.sign(Cmd.GPIO_WRITE, rid, bytes([pin, 0])))
    c.write_raw(wire)
    assert c.wait(rid).status == Status.OK
    assert c.gpio_read(pin) == 0
    c.write_raw(wire)
    assert c.wait(rid).status == Status.REPLAY
    # a forged MAC is refused
    body = bytearray(c.session.sign(Cmd.GPIO_WRITE, 200, bytes([pin, 1])))
    body[-1] ^= 1
    c.write_raw(encode_frame(Cmd.GPIO_WRITE, 200, bytes(body)))
    assert c.wait(200).status == Status.BAD_MAC
    assert c.gpio_read(pin) == 0
    assert c.stats().auth_fail >= 2
    # a host with the wrong key cannot authenticate, and loses the session
    other = Client(c.port, timeout=10)
    with pytest.raises(ProtocolError):
        other.authenticate(bytes(16))
    f = c.request(Cmd.GPIO_WRITE, bytes([pin, 1]), check=False)
    assert f.status in (Status.AUTH_REQUIRED, Status.BAD_MAC)
    c.authenticate(KEY)
    c.gpio_write(pin, 1)
    assert c.gpio_read(pin) == 1


def test_io_commands(board):
    c = paired(board.open())
    h = c.hello_info
    for ch in range(h.adc_channels):
        if board.name == "stm32":
            # QEMU's stm32vldiscovery has no ADC model: the bounded wait must report it
            with pytest.raises(DeviceError) as e:
                c.adc_read(ch)
            assert e.value.status == Status.HW_TIMEOUT
            continue
        v = c.adc_read(ch)
        assert 0 <= v < (1 << h.adc_bits)
    with pytest.raises(DeviceError):
        c.adc_read(h.adc_channels)
    pwm = h.pins_with(Cap.PWM)
    if pwm:
        c.pwm_write(pwm[0], 128)
    non_pwm = [p for p in h.pins_with(Cap.OUT) if p not in pwm]
    with pytest.raises(DeviceError) as e:
        c.pwm_write(non_pwm[0], 10)
    assert e.value.status == Status.UNSUPPORTED
    inp = [p for p in h.pins_with(Cap.PULLUP) if p != output_pin(c)][0]
    c.gpio_mode(inp, Mode.INPUT_PULLUP)
    assert c.gpio_read(inp) in (0, 1)
    if board.name == "stm32":
        # bit-banged I2C on PB6/PB7; QEMU models no GPIO, so the lines never read high: the
        # board must report a dead bus (once, quickly), never a bus full of phantom ACKs
        assert h.i2c
        t0 = time.monotonic()
        with pytest.raises(DeviceError) as e:
            c.i2c_scan()
        assert e.value.status == Status.HW_TIMEOUT and time.monotonic() - t0 < 2
        with pytest.raises(DeviceError) as e:
            c.i2c_read(0x50, 2, register=b"\x00")
        assert e.value.status == Status.HW_TIMEOUT
    elif h.i2c:
        # host build: a 16-register device at 0x48; simavr: a 256-byte I2C EEPROM at 0x50
        dev = {"host": 0x48, "avr": 0x50}[board.name]
        assert c.i2c_scan() == [dev]
        c.i2c_write(dev, b"\x04hello")
        assert c.i2c_read(dev, 5, register=b"\x04") == b"hello"
        assert c.i2c_read(dev, 3, register=b"\x06") == b"llo"
        with pytest.raises(DeviceError) as e:
            c.i2c_read(dev + 1, 2)
        assert e.value.status == Status.I2C_NACK
        # a register read is a write, so it must be signed
        f = c.request(Cmd.I2C_READ, bytes([dev, 2, 4]), auth=False, check=False)
        assert f.status == Status.BAD_LENGTH  # unsigned inside a session: no trailer
    else:
        with pytest.raises(DeviceError) as e:
            c.i2c_scan()
        assert e.value.status == Status.UNSUPPORTED
    s = c.stats()
    assert s.uptime_ms > 0 and s.boot_count == 1 and s.frames_ok > 5


def test_subscribe_delivers_events(board):
    c = board.open()
    c.hello()
    c.subscribe(20, [(Rule.ADC, 0), (Rule.PIN, 2)])
    evs = [c.wait_event(lambda e: isinstance(e, SampleEvent), timeout=5) for _ in range(4)]
    assert all(len(e.values) == 2 for e in evs)
    ts = [e.t_ms for e in evs]
    assert ts == sorted(ts) and ts[-1] > ts[0]
    # requests pipelined while events stream in: every answer arrives, events are kept apart
    ids = [c.send(Cmd.PING, bytes([i]) * 8) for i in range(8)]
    assert [c.wait(i, timeout=5).payload for i in ids] == [bytes([i]) * 8 for i in range(8)]
    assert isinstance(c.wait_event(lambda e: isinstance(e, SampleEvent), timeout=5), SampleEvent)
    c.subscribe(0, [])
    time.sleep(0.1)
    c.ping()  # drain in-flight events
    c.events.clear()
    time.sleep(0.3)
    c.ping()
    assert not [e for e in c.events]


def test_rules_list_add_remove_clear(board):
    c = paired(board.open())
    pin = output_pin(c)
    r1 = Rule(Rule.ADC, 0, Rule.ABOVE, 612, 590, 5000, act_pin=pin)
    r2 = Rule(Rule.PIN, 2, Rule.BELOW, 1, 1, 0, None, 1, None, False)
    s1, s2 = c.rule_add(r1), c.rule_add(r2)
    assert {(e.slot, e.rule) for e in c.rules()} == {(s1, r1), (s2, r2)}
    with pytest.raises(DeviceError) as e:
        c.rule_add(Rule(Rule.ADC, 0, Rule.ABOVE, 500, 600))  # clear above threshold
    assert e.value.status == Status.BAD_ARG
    c.rule_del(s1)
    assert [e.rule for e in c.rules()] == [r2]
    for _ in range(c.hello_info.max_rules + 1):
        try:
            c.rule_add(r2)
        except DeviceError as e:
            assert e.status == Status.FULL
            break
    else:
        pytest.fail("rule table never filled")
    assert len(c.rules()) == c.hello_info.max_rules
    c.rule_clear()
    assert c.rules() == []


def test_rule_and_pairing_survive_reset(board):
    c = paired(board.open())
    rule = Rule(Rule.ADC, 1, Rule.ABOVE, 900, 800, 1000, act_pin=output_pin(c))
    slot = c.rule_add(rule)
    boots = c.stats().boot_count
    dev = c.hello_info.device_id
    c.reset()
    h = c.hello()
    assert h.paired and not h.session and h.device_id == dev
    assert c.stats().boot_count == boots + 1
    assert [(e.slot, e.rule) for e in c.rules()] == [(slot, rule)]
    with pytest.raises(DeviceError):
        c.gpio_write(output_pin(c), 1)  # the old session died with the reset
    c.authenticate(KEY)
    c.rule_clear()


def test_rule_fires_from_changed_input(host_board):
    """Host build only: the side channel changes the ADC; the rule drives pin 8 and reports."""
    c = paired(host_board.open())
    host_board.control("adc 0 100")
    slot = c.rule_add(Rule(Rule.ADC, 0, Rule.ABOVE, 612, 590, 300, act_pin=8, act_fire=1,
                           act_clear=0, notify=True))
    assert host_board.control("get 8").split()[3] == "0"
    host_board.control("adc 0 700")
    t0 = time.monotonic()
    ev = c.wait_event(lambda e: isinstance(e, RuleEvent), timeout=5)
    held = time.monotonic() - t0
    assert ev == RuleEvent(slot, True, 700)
    assert held >= 0.25  # the hold time was respected (300 ms, minus scheduling slack)
    assert host_board.control("get 8").split()[2:4] == ["1", "1"]
    host_board.control("adc 0 600")  # inside the hysteresis band: stays on
    time.sleep(0.2)
    assert host_board.control("get 8").split()[3] == "1"
    host_board.control("adc 0 500")
    ev = c.wait_event(lambda e: isinstance(e, RuleEvent), timeout=5)
    assert ev == RuleEvent(slot, False, 500)
    assert host_board.control("get 8").split()[3] == "0"


def test_hello_retries_until_answered(host_board):
    """Bytes sent before the board listens are lost; HELLO is retried until it answers."""
    c = host_board.open()
    c.write_raw(b"\x55" * 40)  # line noise, no delimiter: the first HELLO is swallowed
    assert c.hello(attempts=10, interval=0.2).board == Board.HOST
    with pytest.raises(NoAnswer):
        Client(_Silent(), timeout=0.05).hello(attempts=2, interval=0.05)


class _Silent:
    in_waiting = 0

    def read(self, n: int = 1) -> bytes:
        time.sleep(0.01)
        return b""

    def write(self, data: bytes) -> int:
        return len(data)


def test_rule_fires_on_avr_from_analog_input(start_target):
    """The real Uno image in simavr: A0 is fed 3.5 V (ADC ~716); a rule on it drives D8."""
    board = start_target("avr", adc_mv={0: 3500})
    c = paired(board.open())
    assert 700 <= c.adc_read(0) <= 730
    assert c.gpio_read(8) == 0
    slot = c.rule_add(Rule(Rule.ADC, 0, Rule.ABOVE, 612, 590, 200, act_pin=8))
    t0 = time.monotonic()
    ev = c.wait_event(lambda e: isinstance(e, RuleEvent), timeout=5)
    assert ev.slot == slot and ev.fired and 700 <= ev.value <= 730
    assert time.monotonic() - t0 >= 0.15  # the 200 ms hold (simulated time tracks wall time)
    assert c.gpio_read(8) == 1
    assert c.rules()[0].state == 2


def test_pairing_jumper_reopens_pairing(host_board):
    """Host build: 'jumper 1' on the side channel is what the board sees at its next start."""
    c = paired(host_board.open())
    c.rule_add(Rule(Rule.PIN, 5, Rule.ABOVE, 0, 1, 0, act_pin=6))  # digital: no hysteresis
    assert host_board.control("jumper 1") == "ok"
    c.reset()
    h = c.hello()
    assert h.paired and h.pair_open
    new_key = bytes(range(100, 116))
    c.pair(new_key)
    with pytest.raises(ProtocolError):
        c.authenticate(KEY)  # the old key no longer proves anything
    c.authenticate(new_key)
    assert not c.hello().pair_open
    # a pin-sourced rule kept across the reset: input 5 high drives pin 6
    host_board.control("in 5 1")
    ev = c.wait_event(lambda e: isinstance(e, RuleEvent), timeout=5)
    assert ev.fired and ev.value == 1
    assert host_board.control("get 6").split()[3] == "1"
    host_board.control("in 5 0")
    assert not c.wait_event(lambda e: isinstance(e, RuleEvent), timeout=5).fired
    assert host_board.control("get 6").split()[3] == "0"


def test_host_build_storage_survives_power_cycle(start_target, tmp_path):
    """Host build: killing the process is a power cut; the store file is its EEPROM."""
    store = tmp_path / "power-cycle.bin"
    b1 = start_target("host", store=store)
    c = paired(b1.open())
    rule = Rule(Rule.ADC, 2, Rule.BELOW, 100, 150, 50, act_pin=9, notify=False)
    slot = c.rule_add(rule)
    dev = c.hello_info.device_id
    b1.stop()
    b2 = start_target("host", store=store)
    c2 = b2.open()
    h = c2.hello()
    assert h.device_id == dev and h.paired and not h.pair_open
    assert [(e.slot, e.rule) for e in c2.rules()] == [(slot, rule)]
    c2.authenticate(KEY)
    assert c2.stats().boot_count == 2


def test_avr_eeprom_survives_power_cycle(start_target, tmp_path):
    """The Uno image in simavr with its EEPROM in a file: kill the simulator, start it again."""
    ee = tmp_path / "uno-eeprom.bin"
    b1 = start_target("avr", store=ee)
    c = paired(b1.open())
    rule = Rule(Rule.ADC, 3, Rule.ABOVE, 700, 650, 1000, act_pin=13)
    slot = c.rule_add(rule)
    dev = c.hello_info.device_id
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (ee.exists() and ee.read_bytes()[32 + 14 * slot] == 0xA5):
        time.sleep(0.05)  # the harness saves within ~50 ms of an EEPROM change
    b1.stop()  # SIGKILL: a power cut
    c2 = start_target("avr", store=ee).open()
    h = c2.hello()
    assert h.device_id == dev and h.paired and not h.pair_open
    assert [(e.slot, e.rule) for e in c2.rules()] == [(slot, rule)]
    assert c2.stats().boot_count == 2
    c2.authenticate(KEY)
