"""Errors a user can act on. The CLI prints them without a traceback and exits 2."""

from __future__ import annotations


class ExhuntError(Exception):
    """Base class: the message is written for the person running the tool."""


class InputError(ExhuntError):
    """A file could not be read as telemetry at all (not a per-record problem)."""

    def __init__(self, path: str, message: str, where: str | None = None) -> None:
        self.path = path
        self.where = where
        loc = f"{path}:{where}" if where else path
        super().__init__(f"{loc}: {message}")


class RuleError(ExhuntError):
    """A rule file is malformed, or its query cannot run against the schema."""


class UsageError(ExhuntError):
    """The command line asks for something impossible."""
