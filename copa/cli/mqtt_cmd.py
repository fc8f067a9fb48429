"""`copa mqtt`: the daemon's MQTT bridge (docs/remote.md): its status, and a test of the broker login."""

from __future__ import annotations

import typer

from copa.cli.output import emit_json, workstation

app = typer.Typer(help="The daemon's MQTT bridge: status, and a test of the broker login.",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command()
def status(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Is the daemon's bridge connected; what it published, queued, dropped and rejected.

    Exit code 0 when connected (or when the bridge is off), 1 when it is on but not connected.
    """
    from copa.device.mqtt import bridge_status

    ws = workstation()
    st = bridge_status(ws.config, ws.paths.state_dir)
    if json_out:
        emit_json(st)
    elif not st["enabled"]:
        print("mqtt bridge: off (copa config set mqtt.enabled true, then restart the daemon)")
    else:
        _print(st)
    if st["enabled"] and st["state"] != "connected":
        raise typer.Exit(1)


def _print(st: dict) -> None:
    if st["state"] == "connected":
        print(f"mqtt bridge: connected to {st['broker']} as {st['username'] or '(anonymous)'} since {st['since']}")
    else:
        print(f"mqtt bridge: {st['state']}" + (f" - {st['error']}" if st.get("error") else ""))
    if "published" not in st:
        return
    p, d, c = st["published"], st["dropped"], st["commands"]
    print(f"boards:    {', '.join(st['boards']) or 'none yet'}")
    print(f"published: {p['telemetry']} samples, {p['event']} events, {p['retained']} retained")
    print(f"queued:    {st['queued']} (dropped while the broker was away: {d['samples']} samples, "
          f"{d['events']} events)")
    if st["commands_enabled"]:
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(st["rejected"].items())) or "none"
        print(f"commands:  from {', '.join(st['command_users']) or 'nobody (mqtt.command_users is empty)'}: "
              f"{c['done']} done, {c['failed']} failed; rejected: {rejected}")
    else:
        print("commands:  off (mqtt.commands)")


@app.command()
def test() -> None:
    """Connect to the broker once with the configured login and say whether it was accepted."""
    from copa.device.mqtt import probe
    from copa.errors import CopaError

    ws = workstation()
    ok, line = probe(ws.config, ws.secrets)
    if not ok:
        raise CopaError(line)
    print(line)
