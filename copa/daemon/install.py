"""`copa daemon install`: a systemd user unit (Linux) or a launchd agent (macOS) that runs
`copa daemon` in the foreground, restarts it on failure and lets SIGTERM stop it cleanly."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from xml.sax.saxutils import escape

UNIT_NAME = "copa.service"
PLIST_LABEL = "org.copa.daemon"


def default_system() -> str:
    return "launchd" if sys.platform == "darwin" else "systemd"


def _command() -> list[str]:
    return [sys.executable, "-m", "copa", "daemon"]


def _env() -> dict[str, str]:
    return {k: os.environ[k] for k in ("COPA_HOME",) if os.environ.get(k)}


def unit_path(system: str) -> Path:
    if system == "launchd":
        return Path.home() / "Library" / "LaunchAgents" / f"{PLIST_LABEL}.plist"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user" / UNIT_NAME


def systemd_unit(stop_timeout: float) -> str:
    env = "".join(f"Environment={k}={shlex.quote(v)}\n" for k, v in _env().items())
    return (
        "[Unit]\n"
        "Description=copa daemon: scheduled jobs, reports and devices\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={shlex.join(_command())}\n"
        f"{env}"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        "KillSignal=SIGTERM\n"
        # SIGTERM to the daemon alone: it gives running jobs their grace (scheduler.stop_timeout), then
        # stops its skill workers itself; the default (control-group) would kill the workers at once
        "KillMode=mixed\n"
        f"TimeoutStopSec={int(stop_timeout) + 10}\n\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def launchd_plist(log_dir: Path) -> str:
    args = "".join(f"    <string>{escape(a)}</string>\n" for a in _command())
    env = "".join(f"    <key>{escape(k)}</key><string>{escape(v)}</string>\n" for k, v in _env().items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
        '<plist version="1.0">\n<dict>\n'
        f"  <key>Label</key><string>{PLIST_LABEL}</string>\n"
        f"  <key>ProgramArguments</key>\n  <array>\n{args}  </array>\n"
        f"  <key>EnvironmentVariables</key>\n  <dict>\n{env}  </dict>\n"
        "  <key>RunAtLoad</key><true/>\n"
        "  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>\n"
        f"  <key>StandardErrorPath</key><string>{escape(str(log_dir / 'daemon.err'))}</string>\n"
        "</dict>\n</plist>\n"
    )


def render(system: str, *, stop_timeout: float, log_dir: Path) -> tuple[Path, str, str]:
    """(where it goes, its text, how to enable it)."""
    path = unit_path(system)
    if system == "launchd":
        return path, launchd_plist(log_dir), f"launchctl load -w {shlex.quote(str(path))}"
    return path, systemd_unit(stop_timeout), (
        f"systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}\n"
        "  (to keep it running while you are logged out: loginctl enable-linger $USER)")


def install(system: str, *, stop_timeout: float, log_dir: Path) -> tuple[Path, str]:
    from copa.paths import atomic_write

    path, text, how = render(system, stop_timeout=stop_timeout, log_dir=log_dir)
    atomic_write(path, text.encode(), mode=0o644)
    return path, how
