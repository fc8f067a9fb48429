"""What `copa doctor` (and the {{health}} report section) is made of: ``Check`` results, and the
runner that collects every part's checks through the ``copa_doctor_checks`` hook.

A check is a plain function whose parameters name the parts it uses, e.g.
``def check_models(models, secrets) -> Check | list[Check]``; the runner passes each part by that
name from the object that holds them (the Workstation), built only when the check first touches
it. A check that crashes is reported as that check failing, never the runner; a user-caused error
(``CopaError``) raised while building a part is that check's failure with the error's own hint.
"""

from __future__ import annotations

import inspect
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from copa.plugins import hookimpl

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | info
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


CheckFunction = Callable[..., "Check | list[Check]"]


class _Part:
    """A part handed to a check, built on its first use (a check may return before needing it)."""

    __slots__ = ("_holder", "_name")

    def __init__(self, holder: Any, name: str):
        self._holder, self._name = holder, name

    def __getattr__(self, attr: str) -> Any:
        return getattr(getattr(self._holder, self._name), attr)


def label(fn: CheckFunction) -> str:
    return fn.__name__.removeprefix("check_").replace("_", " ")


def all_checks() -> list[CheckFunction]:
    """Every registered check, in the order the parts were registered (foundation first)."""
    from copa.plugins import collect

    return [fn for group in collect("copa_doctor_checks") for fn in group]


def run_checks(parts: Any, checks: Iterable[CheckFunction] | None = None) -> list[Check]:
    from copa.errors import CopaError

    results: list[Check] = []
    for fn in all_checks() if checks is None else checks:
        kwargs = {p: _Part(parts, p) if p not in ("paths",) else parts.paths
                  for p in inspect.signature(fn).parameters}
        try:
            out = fn(**kwargs)
        except CopaError as e:  # building a part failed the user's way: say what to do
            results.append(Check(label(fn), FAIL, e.message, e.hint or ""))
            continue
        except Exception as e:  # a broken check must not hide the others
            results.append(Check(label(fn), FAIL, f"check crashed: {type(e).__name__}: {e}", "report this bug"))
            continue
        results.extend(out if isinstance(out, list) else [out])
    return results


# ---- the foundation's own checks ---------------------------------------------------------------
def check_config(paths: Any, config: Any) -> Check:
    from copa.errors import CopaError

    if not paths.config_file.exists():
        return Check("config", OK, f"no file yet, defaults in use ({paths.config_file})")
    try:
        config.path  # noqa: B018 - loading validates
    except CopaError as e:
        return Check("config", FAIL, str(e.message), e.hint or "run 'copa config edit'")
    return Check("config", OK, f"valid ({paths.config_file})")


def check_environment() -> Check:
    """Unknown COPA_* variables: a mistyped override (COPA_AGENT_RETRYS) would otherwise be ignored
    without a word."""
    from copa.config import unknown_env_vars

    unknown = unknown_env_vars()
    if not unknown:
        return Check("environment", OK, "no unknown COPA_* variables")
    parts = [f"{var} (did you mean {near}?)" if near else var for var, near in unknown]
    return Check("environment", WARN, "unknown variable(s), ignored: " + ", ".join(parts),
                 "rename or unset them; 'copa config keys' lists every key with its variable")


def check_data_dir(paths: Any) -> Check:
    d = paths.data_dir
    try:
        paths.ensure()
        probe = d / f".doctor-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        return Check("data dir", FAIL, f"{d}: {e.strerror}", "check the permissions or set COPA_HOME")
    free = shutil.disk_usage(d).free
    if free < 200 * 1024 * 1024:
        return Check("data dir", WARN, f"{d}: only {free // 2**20} MB free", "free some disk space")
    return Check("data dir", OK, f"writable, {free // 2**30} GB free ({d})")


def check_database(paths: Any) -> Check:
    from copa.db import integrity

    path = paths.db_file
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


def check_secrets(secrets: Any) -> Check:
    from copa.errors import CopaError

    try:
        n = len(secrets.names())
        description = secrets.description
    except CopaError as e:
        return Check("secrets", FAIL, e.message, e.hint or "")
    return Check("secrets", OK, f"{description}, {n} stored")



@hookimpl
def copa_doctor_checks() -> list[CheckFunction]:
    """copa.checks is the foundation's plugin: its checks come first in `copa doctor`."""
    return [check_config, check_environment, check_data_dir, check_database, check_secrets]
