"""Record shapes shared by the JSON readers (not a format of its own)."""

from __future__ import annotations

from typing import Any


def row_of_record(rec: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(table hint, row) for one JSON record.

    A Streaming API record wraps the row in `properties` and names the table in
    `category` ("AdvancedHunting-DeviceFileEvents"); a Sentinel export row names
    it in `Type`; anything else is the row itself.
    """
    props = rec.get("properties")
    category = rec.get("category")
    if isinstance(props, dict) and isinstance(category, str):
        return category, props
    typ = rec.get("Type")
    return (typ if isinstance(typ, str) else None), rec
