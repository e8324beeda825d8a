"""One Windows event, whatever file form it came in (EVTX, evtx_dump JSON, ECS, OTRF, Sentinel).

Readers turn their records into `WinEvent`; the mappings in this package only
ever see this shape, so one logical event yields the same rows in every form.
"""

from __future__ import annotations

from typing import Any

from exhunt.winlog.common import report_id, text


class WinEvent:
    """System fields plus EventData: named (`data`) or positional (`data_list`)."""

    __slots__ = (
        "channel", "computer", "data", "data_list", "event_id", "extra", "keywords", "level", "message",
        "opcode", "provider", "qualifiers", "record_id", "task", "time", "user_sid", "version", "where",
    )

    def __init__(self) -> None:
        self.channel = ""
        self.provider = ""
        self.event_id: int | None = None
        self.level: int | None = None
        self.task: int | None = None
        self.opcode: int | None = None
        self.version: int | None = None
        self.keywords = ""
        self.qualifiers: int | None = None
        self.record_id: int | None = None
        self.computer = ""
        self.time = ""
        self.user_sid = ""
        self.data: dict[str, Any] = {}
        self.data_list: list[str] | None = None
        self.message = ""
        self.where = ""
        #: Columns of a Log Analytics export kept as they were (Sentinel rows).
        self.extra: dict[str, Any] | None = None

    def report_id(self, fallback: str) -> int:
        """Stable id: the event's own identity when it has a record number, else file and position."""
        if self.record_id is not None:
            return report_id(self.computer.lower(), self.channel.lower(), self.record_id)
        return report_id(fallback, self.where)

    def get(self, name: str) -> str:
        """A named EventData value as text ('' when absent)."""
        v = self.data.get(name)
        return v if v.__class__ is str else text(v)
