"""The Event table's text columns and the Windows readers' Arrow batches, against plain reference code."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest

from exhunt.sources.winjson import rows_to_batch
from exhunt.winlog.event import WinEvent
from exhunt.winlog.event_table import event_texts


def _esc(v: str) -> str:
    return v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return str(v)


def reference(ev: WinEvent) -> tuple[str, str, str]:
    """Field by field, the way Log Analytics lays the texts out."""
    pairs = [("", _text(v)) for v in ev.data_list] if ev.data_list is not None else \
        [(k, _text(v)) for k, v in ev.data.items()]
    body = "".join(f'<Data Name="{_esc(k)}">{_esc(v)}</Data>' if k else f"<Data>{_esc(v)}</Data>" for k, v in pairs)
    return (f'<EventData xmlns="http://schemas.microsoft.com/win/2004/08/events/event">{body}</EventData>',
            "".join(f"<Param>{_esc(v)}</Param>" for _, v in pairs),
            "\n".join(f"{k}: {v}" if k else v for k, v in pairs))


@pytest.mark.parametrize("data", [
    {},
    {"Image": r"C:\a.exe", "ProcessId": 4242, "Signed": True, "Empty": None, "Nested": {"a": [1, "x"]}},
    {"CommandLine": 'cmd /c "echo <a> & b"', "Name": "forêt"},
    {"Odd&Name": "v", "": "unnamed beside named"},
    ["Evil Agent", "90000", "OnEndOfData"],
    ['assembly "C:\\x.dll" <failed>', "a & b"],
    [],
    [1, None, "x"],
])
def test_event_texts_match_field_by_field_reference(data: Any) -> None:
    ev = WinEvent()
    if isinstance(data, list):
        ev.data_list = data
    else:
        ev.data = data
    assert event_texts(ev) == reference(ev)


def test_batches_have_schema_order_and_types_whatever_the_row_order() -> None:
    a = rows_to_batch("Event", [{"_record": "r1", "EventID": 1, "TimeGenerated": "2026-01-01T00:00:00Z"},
                                {"EventID": 2, "TimeGenerated": "2026-01-01T00:00:01Z", "_record": "r2"}])
    b = rows_to_batch("Event", [{"TimeGenerated": "2026-01-01T00:00:02Z", "_record": "r3", "EventID": None}])
    assert a.schema == b.schema
    assert a.schema.names == ["TimeGenerated", "EventID", "_record"]
    assert a.schema.field("EventID").type == pa.int64()
    assert a.column("EventID").to_pylist() == [1, 2]


def test_batches_keep_unknown_columns_and_mixed_values() -> None:
    t = rows_to_batch("Event", [{"TimeGenerated": "t", "EventID": "4688", "Custom": 1},
                                {"TimeGenerated": "t", "EventID": 7, "Custom": "x", "Other": 1.5}])
    assert t.schema.names == ["TimeGenerated", "EventID", "Custom", "Other"]
    assert t.column("EventID").to_pylist() == ["4688", "7"]  # mixed: text, as before
    assert t.column("Custom").to_pylist() == ["1", "x"]
    assert t.column("Other").type == pa.float64()
