"""`copa doctor`: one line per item, with a mark and, when something is wrong, the fix.

Checks are plain functions ``check(ws) -> Check | list[Check]``. The foundation's are below; later
parts of copa add theirs by naming them in ``CHECKS`` ("module:function"), imported only when the
doctor runs. A check that crashes is reported as a failure of that check, never of the doctor.
"""

from __future__ import annotations

import importlib
import os
import shutil
from dataclasses import asdict, dataclass

from copa.workstation import Workstation

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | info
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def check_config(ws: Workstation) -> Check:
    from copa.errors import CopaError

    if not ws.paths.config_file.exists():
        return Check("config", OK, f"no file yet, defaults in use ({ws.paths.config_file})")
    try:
        ws.config  # noqa: B018 - loading validates
    except CopaError as e:
        return Check("config", FAIL, str(e.message), e.hint or "run 'copa config edit'")
    return Check("config", OK, f"valid ({ws.paths.config_file})")


def check_environment(ws: Workstation) -> Check:
    """Unknown COPA_* variables: a mistyped override would otherwise be ignored without a word."""
    from copa.config import unknown_env_vars

    unknown = unknown_env_vars()
    if not unknown:
        return Check("environment", OK, "no unknown COPA_* variables")
    parts = [f"{var} (did you mean {near}?)" if near else var for var, near in unknown]
    return Check("environment", WARN, "unknown variable(s), ignored: " + ", ".join(parts),
                 "rename or unset them; 'copa config keys' lists every key with its variable")


def check_data_dir(ws: Workstation) -> Check:
    d = ws.paths.data_dir
    try:
        ws.paths.ensure()
        probe = d / f".doctor-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        return Check("data dir", FAIL, f"{d}: {e.strerror}", "check the permissions or set COPA_HOME")
    free = shutil.disk_usage(d).free
    if free < 200 * 1024 * 1024:
        return Check("data dir", WARN, f"{d}: only {free // 2**20} MB free", "free some disk space")
    return Check("data dir", OK, f"writable, {free // 2**30} GB free ({d})")


def check_database(ws: Workstation) -> Check:
    from copa.db import integrity

    path = ws.paths.db_file
    if not path.exists():
        return Check("database", OK, f"not created yet ({path})")
    try:
        result = integrity(path)
    except Exception as e:  # a file that is not SQLite at all
        return Check("database", FAIL, f"{path}: {e}", "restore it from an export ('copa memory import')")
    if result != "ok":
        return Check("database", FAIL, f"integrity check: {result}", "restore from an export or a backup")
    size = path.stat().st_size
    return Check("database", OK, f"integrity ok, {size / 2**20:.1f} MB ({path})")


def check_secrets(ws: Workstation) -> Check:
    from copa.errors import CopaError

    try:
        store = ws.secrets
        n = len(store.names())
    except CopaError as e:
        return Check("secrets", FAIL, e.message, e.hint or "")
    return Check("secrets", OK, f"{store.description}, {n} stored")


def check_toolchains(ws: Workstation) -> Check:
    tools = {"avr-gcc": "Uno", "arm-none-eabi-gcc": "STM32", "avrdude": "flash Uno",
             "simavr": "AVR emulator", "qemu-system-arm": "STM32 emulator"}
    have = [t for t in tools if shutil.which(t)]
    missing = [t for t in tools if t not in have]
    if not missing:
        return Check("firmware tools", OK, "all present: " + ", ".join(have))
    return Check("firmware tools", INFO, "missing: " + ", ".join(missing),
                 "only needed to build or flash boards: sudo make system-deps (from a copa clone)")


# Foundation checks and each part's own, in the order a person reads them.
CHECKS: list[str] = [
    "copa.doctor:check_config",
    "copa.doctor:check_environment",
    "copa.doctor:check_data_dir",
    "copa.doctor:check_database",
    "copa.doctor:check_secrets",
    "copa.agent.checks:check_models",
    "copa.doctor:check_toolchains",
    "copa.device.checks:check_devices",
    "copa.daemon.status:check_daemon",
    "copa.memory.checks:check_memory",
    "copa.skills.checks:check_skills",
]


def run_checks(ws: Workstation, names: list[str] | None = None) -> list[Check]:
    results: list[Check] = []
    for spec in names or CHECKS:
        module, _, func = spec.partition(":")
        try:
            out = getattr(importlib.import_module(module), func)(ws)
        except Exception as e:  # a broken check must not hide the others
            label = func.removeprefix("check_").replace("_", " ")
            results.append(Check(label, FAIL, f"check crashed: {type(e).__name__}: {e}", "report this bug"))
            continue
        results.extend(out if isinstance(out, list) else [out])
    return results
