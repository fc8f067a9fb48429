"""The TOML configuration: schema, loading, environment overrides and safe edits.

Every key is declared once, with its type, default and help: the foundation's in ``SCHEMA`` here,
each part's (and each plugin's) through the ``copa_config_keys`` hook, as fixed keys or named
sub-tables such as ``[models.NAME]`` (``TABLES``). Anything else in the file is reported with the
valid choices, so a typo never silently does nothing. A fixed key ``section.key`` can be overridden
by the environment variable ``COPA_SECTION_KEY``.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from copa.errors import ConfigError, UsageError
from copa.paths import Paths, atomic_write


@dataclass(frozen=True)
class Key:
    type: type  # str, int, float, bool or list (a list of strings)
    default: Any
    help: str
    choices: tuple[str, ...] | None = None


# The foundation's own fixed keys, "section.key". Each part declares its own in its plugin module.
SCHEMA: dict[str, Key] = {
    "general.log_level": Key(str, "info", "Level of the log file", ("debug", "info", "warning", "error")),
    "general.timezone": Key(str, "", "IANA time zone for schedules and dates; empty = the system's"),
    "general.editor": Key(str, "", "Editor for `copa config edit` and `copa memory edit`; empty = $EDITOR"),
    "secrets.backend": Key(
        str, "auto", "Where secrets are kept: the OS keyring, an encrypted file, or auto",
        ("auto", "keyring", "file"),
    ),
}

# Named sub-tables: "[prefix.NAME]" holding these fields.
TABLES: dict[str, dict[str, Key]] = {}
_PART_KEYS_READ = False
_PART_KEYS_LOCK = threading.Lock()


def _read_part_keys() -> None:
    """Add the keys each part (and each plugin) declares through the ``copa_config_keys`` hook: the
    core parts' keys live next to the part (its plugin module), not in this infra module. Done once,
    at the first lookup, so commands that never read the config never load the plugins. Under a
    lock, and marked done only when complete: a thread must never see half the keys."""
    global _PART_KEYS_READ
    if _PART_KEYS_READ:
        return
    with _PART_KEYS_LOCK:
        if _PART_KEYS_READ:
            return
        from copa.plugins import merged

        fixed: dict[str, Key] = {}
        tables: dict[str, dict[str, Key]] = {}
        for name, spec in merged("copa_config_keys", "config key").items():
            if name.endswith(".NAME"):
                tables[name.removesuffix(".NAME")] = spec
            elif name in SCHEMA:
                raise ConfigError(f"config key '{name}' is declared twice (by copa and by a plugin)",
                                  hint="uninstall the plugin (copa plugins list)")
            else:
                fixed[name] = spec
        SCHEMA.update(fixed)
        TABLES.update(tables)
        _PART_KEYS_READ = True


def keys() -> tuple[dict[str, Key], dict[str, dict[str, Key]]]:
    """Every fixed key and every named table's fields: ``(SCHEMA, TABLES)``."""
    _read_part_keys()
    return SCHEMA, TABLES


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_LINE_RE = re.compile(r"\(at line (\d+), column (\d+)\)")


def env_var_for(key: str) -> str:
    return "COPA_" + key.replace(".", "_").replace("-", "_").upper()


# COPA_* variables that are not config keys (docs/configuration: where state lives, debugging, tests).
OTHER_ENV_VARS = {
    "COPA_HOME": "puts config, data, cache and state under one folder",
    "COPA_DEBUG": "tracebacks instead of one-line errors",
    "COPA_PASSPHRASE": "the secrets file's passphrase (for the daemon)",
    "COPA_CWD": "set by copa for skill workers: the folder copa runs in",
    "COPA_SKILLS_KERNEL_SANDBOX": "0 = skip Landlock and namespaces for skill workers",
    "COPA_FIRMWARE_DIR": "the firmware/ folder for 'copa device flash'",
    "COPA_REQUIRE_FIRMWARE": "tests: fail instead of skipping when a firmware toolchain is missing",
    "COPA_FAULT_REQUESTS": "tests: how many requests the device fault test sends",
    "COPA_NO_PLUGINS": "1 = load no third-party plugin (copa's own parts still register)",
    "COPA_SKILL_PROXY": "set by copa for skill workers: the address of copa's net:HOST proxy",
    "COPA_PKG": "set by copa for skill workers: the package a folder skill belongs to",
    "COPA_REQUIRE_REAL_MODEL": "tests: fail instead of skipping when the llama.cpp server is missing",
    "COPA_LLAMA_VENV": "tests: the llama.cpp server's venv (default: the cache's copa-test-tools)",
    "COPA_FUZZ_EXAMPLES": "tests: how many examples the CLI fuzz test draws (make fuzz)",
    "COPA_FUZZ_RANDOM": "tests: 1 = fresh random fuzz examples instead of the fixed sample",
}


def unknown_env_vars(environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """``COPA_*`` variables copa does not know, each with the nearest known name (or None): a typo
    such as COPA_AGENT_RETRYS would otherwise be ignored without a word."""
    env = os.environ if environ is None else environ
    schema, _ = keys()
    known = {env_var_for(k) for k in schema} | set(OTHER_ENV_VARS)
    out = []
    for var in sorted(v for v in env if v.startswith("COPA_") and v not in known):
        close = difflib.get_close_matches(var, sorted(known), n=1, cutoff=0.75)
        out.append((var, close[0] if close else None))
    return out


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    shown = ", ".join(sorted(choices)) if len(choices) <= 12 else ", ".join(sorted(choices)[:12]) + ", ..."
    return f"{hint}; valid: {shown}"


def _type_name(t: type) -> str:
    return {str: "text", int: "an integer", float: "a number", bool: "true or false", list: "a list"}[t]


def coerce(key: str, spec: Key, value: Any, *, origin: str) -> Any:
    """Check ``value`` against ``spec``; strings (from the CLI or the environment) are parsed."""
    origin = f"{origin}: " if origin else ""
    t = spec.type
    if isinstance(value, str) and t is not str:
        raw = value.strip()
        try:
            if t is bool:
                if raw.lower() in _TRUE:
                    value = True
                elif raw.lower() in _FALSE:
                    value = False
                else:
                    raise ValueError
            elif t is int:
                value = int(raw)
            elif t is float:
                value = float(raw)
            elif t is list:
                if raw.startswith("["):
                    value = tomllib.loads(f"v = {raw}")["v"]
                else:
                    value = [part.strip() for part in raw.split(",") if part.strip()]
        except (ValueError, tomllib.TOMLDecodeError):
            raise ConfigError(
                f"{origin}{key} must be {_type_name(t)}, not {value!r}", hint="fix the value"
            ) from None
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, t) and not (t in (int, float) and isinstance(value, bool))
    if t is list and ok:
        ok = all(isinstance(v, str) for v in value)
    if not ok:
        raise ConfigError(f"{origin}{key} must be {_type_name(t)}, not {value!r}", hint="fix the value")
    if spec.choices and value not in spec.choices:
        raise ConfigError(
            f"{origin}{key} cannot be {value!r}", hint="valid: " + ", ".join(spec.choices)
        )
    return value


def lookup(key: str) -> Key:
    """The spec of a fixed key or a table field; a clear error with choices otherwise."""
    _read_part_keys()
    if key in SCHEMA:
        return SCHEMA[key]
    for prefix, fields in TABLES.items():
        if key.startswith(prefix + "."):
            rest = key[len(prefix) + 1 :]
            name, _, field = rest.rpartition(".")
            if name and field in fields:
                return fields[field]
            if name:
                raise ConfigError(f"unknown key '{field}' in [{prefix}.{name}]" + _suggest(field, list(fields)))
            raise ConfigError(f"'{key}' needs a name: use {prefix}.NAME.FIELD")
    raise ConfigError(f"unknown config key '{key}'" + _suggest(key, all_keys()))


def all_keys() -> list[str]:
    _read_part_keys()
    return sorted(SCHEMA) + [f"{p}.NAME.{f}" for p, fields in TABLES.items() for f in fields]


def read_file(path: Path) -> dict[str, Any]:
    """The parsed TOML at ``path`` ({} when absent); a ConfigError with the line of a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})",
                          hint=f"convert it: iconv -f latin1 -t utf-8 {path} > {path}.new, then move it back"
                          ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})", hint="check its permissions") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _LINE_RE.search(msg)
        where = f" line {m.group(1)}:" if m else ""
        problem = _LINE_RE.sub("", msg).strip()
        raise ConfigError(
            f"{path}:{where} {problem}", hint="fix the file or run 'copa config edit'"
        ) from None


def validate(data: Mapping[str, Any], path: Path) -> None:
    """Check a parsed config file against every declared key; a ConfigError names the first problem."""
    _read_part_keys()
    sections = {k.split(".")[0] for k in SCHEMA}
    for top, value in data.items():
        if top in TABLES:
            _validate_table(top, value, path)
            continue
        # a dotted table prefix such as "mcp.servers"
        nested = [p for p in TABLES if p.startswith(top + ".")]
        if nested and isinstance(value, dict):
            for sub, subval in value.items():
                inner = f"{top}.{sub}"
                if inner not in TABLES:
                    raise ConfigError(f"{path}: unknown table [{inner}]" + _suggest(inner, list(TABLES)))
                _validate_table(inner, subval, path)
            continue
        if top not in sections:
            raise ConfigError(f"{path}: unknown section [{top}]" + _suggest(top, sorted(sections | set(TABLES))))
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: '{top}' must be a section ([{top}])")
        for k, v in value.items():
            key = f"{top}.{k}"
            if key not in SCHEMA:
                raise ConfigError(f"{path}: unknown key '{k}' in [{top}]" + _suggest(key, sorted(SCHEMA)))
            coerce(key, SCHEMA[key], v, origin=str(path))


def _validate_table(prefix: str, value: Any, path: Path) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{prefix}] must be a table of named entries")
    for name, entry in value.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: {prefix}.{name} must be a table ([{prefix}.{name}])")
        for field, v in entry.items():
            key = f"{prefix}.{name}.{field}"
            coerce(key, lookup(key), v, origin=str(path))


def _dig(data: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = data
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            raise KeyError(dotted)
        cur = cur[part]
    return cur


class Config:
    """The effective configuration: environment over file over defaults."""

    def __init__(self, data: dict[str, Any], path: Path, environ: Mapping[str, str] | None = None):
        self.data = data
        self.path = path
        self._env = os.environ if environ is None else environ

    @classmethod
    def load(cls, paths: Paths, environ: Mapping[str, str] | None = None) -> Config:
        data = read_file(paths.config_file)
        validate(data, paths.config_file)
        cfg = cls(data, paths.config_file, environ)
        for key in SCHEMA:  # fail early on a bad override, naming the variable
            cfg.get(key)
        return cfg

    def source(self, key: str) -> str:
        if key in SCHEMA and env_var_for(key) in self._env:
            return "env"
        try:
            _dig(self.data, key)
            return "file"
        except KeyError:
            return "default"

    def get(self, key: str) -> Any:
        spec = lookup(key)
        if key in SCHEMA:
            var = env_var_for(key)
            if var in self._env:
                return coerce(key, spec, self._env[var], origin=f"environment variable {var}")
        try:
            return _dig(self.data, key)
        except KeyError:
            return spec.default

    def table(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Entries of a named table, e.g. ``table("models")``, with defaults filled in."""
        _read_part_keys()
        fields = TABLES[prefix]
        try:
            raw = _dig(self.data, prefix)
        except KeyError:
            return {}
        return {name: {f: entry.get(f, spec.default) for f, spec in fields.items()} for name, entry in raw.items()}

    def effective(self) -> dict[str, Any]:
        """Every fixed key with its value and where it came from, plus the named tables."""
        _read_part_keys()
        out: dict[str, Any] = {}
        for key in sorted(SCHEMA):
            out[key] = {"value": self.get(key), "source": self.source(key)}
        for prefix in sorted(TABLES):
            for name, entry in self.table(prefix).items():
                for field, value in entry.items():
                    k = f"{prefix}.{name}.{field}"
                    out[k] = {"value": value, "source": self.source(k)}
        return out


def set_value(paths: Paths, key: str, raw: str | Any) -> Any:
    """Set ``key`` in the config file (validated, written atomically); returns the stored value."""
    import tomli_w

    try:  # a bad key or value on the command line is a usage error (exit 2), not a broken config (3)
        spec = lookup(key)
        value = coerce(key, spec, raw, origin="")
    except ConfigError as e:
        raise UsageError(e.message, hint=e.hint or "see 'copa config keys'") from None
    data = read_file(paths.config_file)
    cur = data
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = cur.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{paths.config_file}: '{part}' is not a table", hint="run 'copa config edit'")
        cur = nxt
    cur[parts[-1]] = value
    validate(data, paths.config_file)
    atomic_write(paths.config_file, tomli_w.dumps(data).encode(), mode=0o600)
    return value


def unset_value(paths: Paths, key: str) -> bool:
    """Remove ``key`` from the file so its default (or environment) applies again."""
    import tomli_w

    try:
        lookup(key)
    except ConfigError as e:
        raise UsageError(e.message, hint=e.hint or "see 'copa config keys'") from None
    data = read_file(paths.config_file)
    parts = key.split(".")
    cur = data
    for part in parts[:-1]:
        cur = cur.get(part)
        if not isinstance(cur, dict):
            return False
    if parts[-1] not in cur:
        return False
    del cur[parts[-1]]
    atomic_write(paths.config_file, tomli_w.dumps(data).encode(), mode=0o600)
    return True
