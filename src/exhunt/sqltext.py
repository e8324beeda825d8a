"""Quoting for the SQL exhunt writes itself: names and text that come from files and users."""

from __future__ import annotations


def ident(name: str) -> str:
    """A quoted identifier (a column or table name may hold any character)."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A quoted string literal (a path or a record label)."""
    return "'" + value.replace("'", "''") + "'"
