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
    """A skill that prints its secret: `--debug` logs what the skill printed, with the value masked."""
    env = {"COPA_PASSPHRASE": "test-passphrase", "COPA_SECRETS_BACKEND": "file"}
    assert run_copa("secrets", "set", "X_TOKEN", input="zz-secret-value-99", env=env).returncode == 0
    skills = copa_home / "config" / "skills"
    skills.mkdir(parents=True, exist_ok=True)
    (skills / "leaky.py").write_text(
        "import os\nfrom copa.skills import skill\n\n\n@skill(secrets=['X_TOKEN'])\n"
        "def leaky() -> str:\n    \"\"\"Prints its secret.\"\"\"\n    print('token is', os.environ['X_TOKEN'])\n"
        "    return 'done'\n")
    r = run_copa("--debug", "skills", "run", "leaky", env=env)
    assert r.returncode == 0, r.stderr
    log = copa_home / "state" / "logs" / "copa.log"
    text = log.read_text()
    assert "skill leaky printed: token is" in text  # the line that would carry the secret is there...
    assert "zz-secret-value-99" not in text  # ...masked
