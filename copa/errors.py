"""Errors a user can cause.

Every error a person can trigger (a bad value, a missing file, a provider that refuses) is a
``CopaError`` whose message says what is wrong *and* what to do. Faces print ``str(error)`` on one
line and exit with ``error.exit_code``; tracebacks are reserved for bugs.
"""

from __future__ import annotations


class ExitCode:
    """Process exit codes shared by every face (documented in docs/cli.md)."""

    OK = 0
    FAILURE = 1  # a check or a command reported failure (e.g. doctor found a problem)
    USAGE = 2  # the user asked for something invalid (bad flag, bad value, missing file)
    CONFIG = 3  # the configuration is broken
    PROVIDER = 4  # a model provider failed (network, auth, quota)
    NOT_FOUND = 5  # the thing named does not exist
    SECRETS = 6  # the secrets store cannot be opened (wrong passphrase, no backend)
    BUSY = 75  # the database stayed locked by another process past the busy timeout: try again (EX_TEMPFAIL)
    INTERRUPTED = 130  # Ctrl-C: partial results were kept
    INTERNAL = 70  # a bug: the traceback is in the log file


class CopaError(Exception):
    """Base class for errors a user can cause and fix."""

    exit_code: int = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class UsageError(CopaError):
    exit_code = ExitCode.USAGE


class NotFoundError(CopaError):
    exit_code = ExitCode.NOT_FOUND


class ConfigError(CopaError):
    exit_code = ExitCode.CONFIG


class SecretsError(CopaError):
    exit_code = ExitCode.SECRETS


class ProviderError(CopaError):
    exit_code = ExitCode.PROVIDER


class ContextOverflowError(ProviderError):
    """The server refused a request longer than the model's context window; ``window`` is the size it
    stated (0 when it did not), so the caller can fit the next request and ask again."""

    def __init__(self, message: str, *, window: int = 0, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.window = window


class Interrupted(CopaError):
    exit_code = ExitCode.INTERRUPTED
