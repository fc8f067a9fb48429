"""The log file, with secret values scrubbed before anything is written.

Every secret copa reads or stores is registered with ``redact_value``; the filter replaces it (and
anything shaped like a bearer token or API key) with ``***`` in every record, so a stray f-string in
some log call cannot leak a key to disk.
"""

from __future__ import annotations

import logging
import re
from logging.handlers import RotatingFileHandler

from copa.paths import Paths

_SECRET_VALUES: set[str] = set()
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\b(sk-(?:ant-)?)[A-Za-z0-9_-]{12,}"),
    re.compile(r"(?i)((?:api[_-]?key|token|password|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{4,}"),
]


def redact_value(value: str | None) -> None:
    """Remember a secret so it never reaches a log line (values shorter than 4 chars are ignored)."""
    if value and len(value) >= 4:
        _SECRET_VALUES.add(value)


def redact(text: str) -> str:
    for value in sorted(_SECRET_VALUES, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "***")
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and record.exc_text is None and record.exc_info[0] is not None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


_configured = False


def setup_logging(paths: Paths, level: str = "info") -> None:
    """Log to ``paths.log_file`` (rotated at 2 MB, 3 kept). The file is opened on first use."""
    global _configured
    if _configured:
        return
    paths.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    handler = RotatingFileHandler(paths.log_file, maxBytes=2_000_000, backupCount=3, delay=True, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("copa")
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    root.propagate = False
    _configured = True
