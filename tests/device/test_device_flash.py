"""`copa device flash`: the real avrdude flashes the virtual Uno (optiboot and reset-on-open in
simavr, firmware/sim/uno_boot.c), after which the board answers HELLO; refusals are one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from device_helpers import ensure_built
from devkit import targets


def test_flash_virtual_uno_then_pair(run_copa, tmp_path: Path):
    ensure_built("uno-boot")
    t = targets.start("uno-boot")
    try:
        # (no HELLO probe of the erased chip first: the harness exits when optiboot starts an erased
        # application, where a real Uno would cycle through its bootloader)
        r = run_copa("device", "flash", "--board", "uno", "--port", t.path, timeout=240)
        assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
        out = r.stdout
        assert "make -C" in out and "avrdude" in out  # progress: the build, then the flasher
        assert "flashed copa-uno.hex" in out
        assert "the board answers HELLO: copa uno " in out
        r = run_copa("device", "scan", "--port", t.path, "--json", "--wait", "10")  # open resets: bootloader, then copa
        found = json.loads(r.stdout)[-1]
        assert found["copa"] is True and found["board"] == "uno", found
        slow = {"COPA_DEVICE_HELLO_TIMEOUT": "10"}  # the emulated Uno boots slower on a loaded machine
        r = run_copa("device", "pair", t.path, "--name", "uno", env=slow)
        assert r.returncode == 0, r.stderr
        # each one-shot command opens the port, which resets an Uno (as a real one does): the write
        # reads its pin back in the same session; rules, kept in EEPROM, survive the resets
        r = run_copa("device", "write", "uno", "d7", "high", env=slow)
        assert r.returncode == 0 and r.stdout.strip() == "d7 = 1", r.stderr
        assert run_copa("device", "rules", "uno", "add", "a0 > 612 -> d7 high", env=slow).returncode == 0
        r = run_copa("device", "rules", "uno", "list", "--json", env=slow)
        assert [x["rule"] for x in json.loads(r.stdout)] == ["a0 > 612 -> d7 high"]
    finally:
        t.stop()


def test_flash_refusals(run_copa, tmp_path: Path):
    r = run_copa("device", "flash", "--board", "esp32")
    assert r.returncode != 0 and r.stderr.count("\n") == 1
    assert "unknown board 'esp32'" in r.stderr and "uno" in r.stderr and "bluepill" in r.stderr
    r = run_copa("device", "flash", "--board", "uno")
    assert r.returncode != 0 and "needs its serial port" in r.stderr and "--port" in r.stderr
    r = run_copa("device", "flash", "--board", "uno", "--port", str(tmp_path / "nope"))
    assert r.returncode != 0 and "no serial port" in r.stderr
    flashers = [t for t in ("stm32flash", "st-flash", "openocd") if shutil.which(t)]
    if flashers:
        pytest.skip(f"an STM32 flasher is installed ({flashers[0]}); the refusal path cannot be shown")
    r = run_copa("device", "flash", "--board", "bluepill", "--no-build")
    assert r.returncode != 0 and r.stderr.count("\n") == 1
    assert "no STM32 flasher found" in r.stderr and "apt-get install" in r.stderr


def test_flash_command_lines(monkeypatch):
    """The exact command lines of every flasher, whatever is installed on this machine: the tools'
    lookup is made to find each one (or none), so no line goes unchecked."""
    from copa.device import flash as fl
    from copa.errors import CopaError

    monkeypatch.setattr(fl.shutil, "which", lambda t: f"/usr/bin/{t}")
    cmd = fl.flash_command("uno", Path("/x/copa-uno.hex"), "/dev/ttyACM0")
    assert cmd == ["/usr/bin/avrdude", "-c", "arduino", "-p", "m328p", "-P", "/dev/ttyACM0", "-b", "115200", "-D",
                   "-U", "flash:w:/x/copa-uno.hex:i"]
    image = Path("/x/stm32/copa-stm32")
    assert fl.flash_command("bluepill", image, "/dev/ttyUSB0") == [
        "stm32flash", "-b", "115200", "-w", "/x/stm32/copa-stm32.bin", "-v", "-g", "0x08000000", "/dev/ttyUSB0"]
    assert fl.flash_command("bluepill", image, None) == [
        "st-flash", "--reset", "write", "/x/stm32/copa-stm32.bin", "0x08000000"]
    assert fl.flash_command("bluepill", image, None, tool="openocd") == [
        "openocd", "-f", "interface/stlink.cfg", "-f", "target/stm32f1x.cfg", "-c",
        "program /x/stm32/copa-stm32.elf verify reset exit"]
    with pytest.raises(CopaError, match="needs its serial port"):
        fl.flash_command("uno", Path("/x/copa-uno.hex"), None)
    monkeypatch.setattr(fl.shutil, "which", lambda t: None)
    with pytest.raises(CopaError, match="avrdude is not installed"):
        fl.flash_command("uno", Path("/x/copa-uno.hex"), "/dev/ttyACM0")
    with pytest.raises(CopaError, match="no STM32 flasher found"):
        fl.flash_command("bluepill", image, None)
