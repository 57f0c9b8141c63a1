"""Errors that end a command with one line naming the file, entry and field (or setting) to fix.

Every layer raises a subclass of :class:`ChartwiseError` for user errors; the CLI prints
``chartwise: <message>`` and exits non-zero, with the traceback only under ``--debug``.
"""
from __future__ import annotations


class ChartwiseError(Exception):
    """A user-facing error. ``str(err)`` is one line that says what is wrong and where."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class InputError(ChartwiseError):
    """The input is not what Chartwise reads (not JSON, not FHIR, wrong version, empty, binary)."""


class ValidationFailure(ChartwiseError):
    """A resource failed validation in strict mode."""


class SourceError(ChartwiseError):
    """A source could not be read (missing path, unreachable server)."""


class ConfigError(ChartwiseError):
    """A setting is wrong or something it names is missing (model weights, a server URL)."""

    exit_code = 3
