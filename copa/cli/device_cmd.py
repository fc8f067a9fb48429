"""`copa device`: find, pair, read, drive, watch and flash boards running copa firmware."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from datetime import UTC, datetime

import typer

from copa.cli.output import emit_json, print_table, workstation

app = typer.Typer(help="Boards over USB serial: scan, pair, read, write, watch, rules, flash.",
                  no_args_is_help=True, rich_markup_mode=None)

JSON = typer.Option(False, "--json", help="Print JSON.")


def _session(ws, name: str, **kw):
    return ws.devices.session(name, reconnect=False, **kw)


@app.command()
def scan(json_out: bool = JSON,
         port: list[str] = typer.Option([], "--port", "-p", help="Also probe this port or URL (repeatable)."),
         all_ports: bool = typer.Option(False, "--all", help="List every serial port, not only known USB ids."),
         no_probe: bool = typer.Option(False, "--no-probe", help="Do not ask the ports for HELLO."),
         wait: float = typer.Option(2.0, "--wait", help="Seconds to wait for each HELLO (an Uno resets on open).")
         ) -> None:
    """Serial ports with known USB ids (Arduino, CH340, CP210x, FTDI, ST-LINK), and whether copa answers."""
    from copa.device import list_ports, probe_port

    ws = workstation()
    extra = list(port) + list(ws.config.get("device.extra_ports"))
    known = {r.device_id: r.name for r in ws.devices.list()}
    infos = list_ports(extra, all_ports=all_ports)
    if not no_probe:
        infos = [probe_port(i, known=known, attempts=max(1, int(wait / 0.2))) for i in infos]
    if json_out:
        emit_json([i.as_dict() for i in infos])
        return
    if not infos:
        print("no known serial ports; plug a board in (or use --all / --port PATH)")
        return
    rows = []
    for i in infos:
        fw = "-" if i.copa is None else (f"copa {i.board} {i.device_id}" if i.copa else "no answer")
        rows.append((i.port, i.usb_id or "", i.kind or i.description, fw,
                     i.paired_as or ("paired elsewhere" if i.paired else "" if i.copa else "")))
    print_table(rows, ["port", "usb id", "kind", "firmware", "paired as"])


@app.command()
def pair(port: str = typer.Argument(..., help="Serial port or URL of the board."),
         name: str = typer.Option(..., "--name", "-n", help="The name you will call it by."),
         json_out: bool = JSON) -> None:
    """Pair a board: store a new key on it and in copa's secrets store."""
    ws = workstation()
    rec = ws.devices.pair(port, name)
    if json_out:
        emit_json(rec.as_dict())
    else:
        print(f"paired {rec.board} {rec.device_id} as {rec.name!r} on {rec.port}")


@app.command("list")
def list_(json_out: bool = JSON) -> None:
    """Paired boards."""
    recs = workstation().devices.list()
    if json_out:
        emit_json([r.as_dict() for r in recs])
        return
    if not recs:
        print("no paired boards; 'copa device scan', then 'copa device pair PORT --name NAME'")
        return
    print_table([(r.name, r.board, r.device_id, r.port, r.last_seen or "") for r in recs],
                ["name", "board", "id", "port", "last seen"])


@app.command()
def info(name: str, json_out: bool = JSON) -> None:
    """A paired board's identity, capabilities and counters (asks the board)."""
    ws = workstation()
    s = _session(ws, name)
    st = s.board_stats()
    rules = s.rules()
    rec = ws.devices.get(name)
    data = {**rec.info, "name": name, "port": s.port_path, "authenticated": bool(s.auth),
            "rules": len(rules), "uptime_s": st.uptime_ms / 1000, "boot_count": st.boot_count,
            "frames_ok": st.frames_ok, "bad_crc": st.bad_crc, "bad_frame": st.bad_frame,
            "auth_fail": st.auth_fail, "free_ram": st.free_ram}
    if json_out:
        emit_json(data)
        return
    for k, v in data.items():
        print(f"{k:14} {v}")


@app.command()
def read(name: str, pin: str = typer.Argument(..., help="Pin number, dN, or aN for an analog channel."),
         json_out: bool = JSON) -> None:
    """Read a digital pin or an analog channel."""
    out = workstation().devices.read(name, pin)
    if json_out:
        emit_json(out)
    else:
        print(out["value"])


@app.command()
def write(name: str, pin: str, value: str = typer.Argument(..., help="high/low, on/off or 1/0"),
          json_out: bool = JSON) -> None:
    """Drive a digital pin high or low."""
    out = workstation().devices.write(name, pin, value)
    if json_out:
        emit_json(out)
    else:
        print(f"{out['pin']} = {out['value']}")


@app.command()
def pwm(name: str, pin: str, duty: int = typer.Argument(..., min=0, max=255, help="0..255")) -> None:
    """Set a PWM pin's duty cycle (0..255)."""
    out = workstation().devices.pwm(name, pin, duty)
    print(f"{out['pin']} pwm {duty}")


def _int(text: str) -> int:
    from copa.errors import UsageError

    try:
        return int(text, 0)
    except ValueError:
        raise UsageError(f"not a number: {text!r}", hint="use decimal or 0x.. hex") from None


@app.command()
def i2c(name: str, action: str = typer.Argument(..., help="scan | read ADDR N [REG] | write ADDR BYTE..."),
        args: list[str] = typer.Argument(None), json_out: bool = JSON) -> None:
    """I2C on the board: scan the bus, read N bytes, or write bytes."""
    from copa.errors import UsageError

    args = args or []
    s = _session(workstation(), name)
    if action == "scan":
        found = s.i2c_scan()
        emit_json(found) if json_out else print(" ".join(f"0x{a:02x}" for a in found) or "no devices")
    elif action == "read" and len(args) in (2, 3):
        reg = bytes([_int(args[2]) & 0xFF]) if len(args) == 3 else b""
        data = s.i2c_read(_int(args[0]), _int(args[1]), reg)
        emit_json(list(data)) if json_out else print(data.hex(" "))
    elif action == "write" and len(args) >= 1:
        s.i2c_write(_int(args[0]), bytes(_int(a) & 0xFF for a in args[1:]))
        print(f"wrote {len(args) - 1} bytes to 0x{_int(args[0]):02x}")
    else:
        raise UsageError(f"bad i2c command: {' '.join([action, *args])}",
                         hint="use: i2c NAME scan | read ADDR N [REG] | write ADDR BYTE...")


@app.command()
def watch(name: str, json_out: bool = typer.Option(False, "--json", help="One JSON object per line."),
          channels: str = typer.Option("a0", "--channels", "-c", help="Comma-separated: a0,a1,d2"),
          period: int = typer.Option(0, "--period", help="Sampling period in ms (0: device.sample_period_ms)."),
          count: int = typer.Option(0, "--count", help="Stop after this many events (0: never)."),
          seconds: float = typer.Option(0, "--seconds", help="Stop after this long (0: never)."),
          save: bool = typer.Option(False, "--save", help="Also have the daemon log these channels.")) -> None:
    """Live events with timestamps (samples, rules firing, link lost/back) until Ctrl-C."""
    from copa.device import Rule, RuleEvent, SampleEvent, parse_channel

    ws = workstation()
    chans = [parse_channel(c) for c in channels.split(",") if c.strip()]
    items = [(Rule.ADC if k == "a" else Rule.PIN, n) for k, n in chans]
    labels = [f"{k}{n}" for k, n in chans]
    if save:
        ws.devices.registry.set_watch(name, {"channels": labels, "period_ms": period or None})
    from copa.device import PortBusy

    try:
        s = ws.devices.session(name)  # reconnects by itself
    except PortBusy:
        if not save:
            raise
        print(f"saved: the daemon, which holds the port, logs {', '.join(labels)} of {name} within seconds")
        return
    s.enable_pull()
    links: list[tuple[str, dict]] = []
    s.add_listener(lambda kind, info: links.append((kind, info)))
    s.set_subscription(period or ws.config.get("device.sample_period_ms"), items)

    def out(obj: dict, text: str) -> None:
        print(json.dumps(obj) if json_out else f"{obj['at']}  {text}", flush=True)

    n = 0
    end = time.monotonic() + seconds if seconds else None
    try:
        while (not count or n < count) and (end is None or time.monotonic() < end):
            while links:
                kind, info = links.pop(0)
                at = datetime.now(UTC).isoformat(timespec="milliseconds")
                out({"at": at, "device": name, "type": "link", "state": kind, **info}, f"link {kind} {info}")
            rev = s.next_event(timeout=0.2)
            if rev is None:
                continue
            at = rev.at.isoformat(timespec="milliseconds")
            ev = rev.event
            if isinstance(ev, SampleEvent):
                vals = dict(zip(labels, ev.values, strict=False))
                out({"at": at, "device": name, "type": "sample", "t_ms": ev.t_ms, "values": vals},
                    "  ".join(f"{k}={v}" for k, v in vals.items()))
            elif isinstance(ev, RuleEvent):
                out({"at": at, "device": name, "type": "rule", "slot": ev.slot, "fired": ev.fired,
                     "value": ev.value}, f"rule {ev.slot} {'fired' if ev.fired else 'cleared'} at {ev.value}")
            else:
                out({"at": at, "device": name, "type": "unknown", "frame": ev.body.hex()}, f"event {ev.body.hex()}")
            n += 1
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(Exception):
            s.set_subscription(0, [])
        sys.stdout.flush()


@app.command()
def rules(name: str, action: str = typer.Argument("list", help="list | add RULE | remove SLOT | clear"),
          rule: str = typer.Argument(None, help="For add: e.g. 'a0 > 612 for 5s -> d7 high, notify; clear < 590'; "
                                     "for remove: the slot number."),
          json_out: bool = JSON) -> None:
    """The rules a board runs by itself, in a readable syntax."""
    from copa.device import format_rule, parse_rule
    from copa.errors import UsageError

    s = _session(workstation(), name)
    if action == "list":
        entries = s.rules()
        state = ("idle", "pending", "active")
        if json_out:
            emit_json([{"slot": e.slot, "rule": format_rule(e.rule), "state": state[min(e.state, 2)]}
                       for e in entries])
        elif not entries:
            print("no rules")
        else:
            print_table([(e.slot, format_rule(e.rule), state[min(e.state, 2)]) for e in entries],
                        ["slot", "rule", "state"])
    elif action == "add" and rule:
        r = parse_rule(rule)
        slot = s.rule_add(r)
        emit_json({"slot": slot, "rule": format_rule(r)}) if json_out else print(f"rule {slot}: {format_rule(r)}")
    elif action == "remove" and rule is not None:
        s.rule_del(_int(rule))
        print(f"removed rule {rule}")
    elif action == "clear":
        s.rule_clear()
        print("all rules removed")
    else:
        raise UsageError(f"bad rules command: {action}", hint="use: rules NAME list | add 'RULE' | remove SLOT | clear")


@app.command()
def flash(board: str = typer.Option(..., "--board", "-b", help="uno or bluepill"),
          port: str = typer.Option(None, "--port", "-p", help="Serial port (Uno; bluepill via its ROM bootloader)."),
          no_build: bool = typer.Option(False, "--no-build", help="Flash the image already built."),
          tool: str = typer.Option(None, "--tool", help="bluepill: stm32flash, st-flash or openocd.")) -> None:
    """Build firmware/ and flash it (avrdude, stm32flash, st-flash or openocd)."""
    from copa.device import board_spec
    from copa.device import flash_board as do_flash

    spec = board_spec(board)
    image = do_flash(spec.name, port, lambda line: print(line, flush=True), do_build=not no_build, tool=tool)
    print(f"flashed {image.name} to the {spec.description}" + (f" on {port}" if port else ""))


@app.command()
def forget(name: str, json_out: bool = JSON) -> None:
    """Forget a paired board and delete its key (the board keeps its key until re-paired)."""
    rec = workstation().devices.forget(name)
    if json_out:
        emit_json(rec.as_dict())
    else:
        print(f"forgot {name!r}; to pair it again, start it with its pairing jumper")
