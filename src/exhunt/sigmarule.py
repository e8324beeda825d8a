"""Sigma rules as input: a Sigma YAML file -> an exhunt rule (KQL + Sentinel fields + `exhunt` block).

Conversion is pySigma's with the Kusto backend (`pysigma-backend-kusto`). Defender categories
(process_creation, file_event, ...) go through the backend's microsoft_xdr pipeline; the Windows
logs exhunt normalizes into Log Analytics tables go through exhunt's own pipelines here:

* `service: msexchange-management` -> ExchangeAdminAuditLogs. A keyword, and `Data`, search the
  cmdlet's text (`EventText`: cmdlet, parameters, caller, target, runspace, host process, error:
  the event's positional data in every source, the admin audit export included); `EventID: 1`/`6`
  become `Status == "Success"`/`"Failure"` (the export has no event id, only whether it succeeded);
  the table's own columns (CmdletName, CmdletParameters, Caller, ...) are used as they are.
* any other Windows `service` with a known channel -> Event rows of that channel: keywords and
  `Data` search RenderedDescription (the message, or the event's data listed when none was
  rendered), `Provider_Name` is Source, `EventID` stays.

A field with no mapping, an unsupported modifier or log source is a RuleError naming the file and
the field's line, never a traceback.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import yaml

from exhunt import yamltext
from exhunt.errors import RuleError
from exhunt.refdata import ATTACK_TACTIC

#: Sigma level -> Sentinel severity (Sentinel has no "critical": the exhunt block keeps it).
LEVELS = {"informational": "Informational", "low": "Low", "medium": "Medium", "high": "High", "critical": "High"}
#: ATT&CK tactic tags (attack.<tactic>) -> Sentinel's tactic names.
TACTICS = ATTACK_TACTIC
_TECHNIQUE = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.I)

EXCHANGE_TABLE = "ExchangeAdminAuditLogs"
EXCHANGE_TEXT = ("CmdletName", "CmdletParameters", "Caller", "TargetObject", "RunspaceType", "HostProcess",
                 "ErrorMessage")
EVENT_FIELDS = {"Provider_Name": "Source", "Channel": "EventLog", "Computer": "Computer", "EventID": "EventID",
                "Level": "EventLevel", "Data": "RenderedDescription"}


def is_sigma(doc: Any) -> bool:
    """A Sigma rule by its shape: title, logsource, and a detection with a condition."""
    return (isinstance(doc, dict) and "title" in doc and isinstance(doc.get("logsource"), dict)
            and isinstance(doc.get("detection"), dict) and "condition" in doc["detection"])


class _Unmapped(Exception):
    """A field the log source's table has no column for."""

    def __init__(self, field: str, where: str, allowed: tuple[str, ...] | list[str]) -> None:
        super().__init__(field)
        self.field, self.where, self.allowed = field, where, allowed


def _pipelines() -> Any:
    """exhunt's pySigma classes, built on first use (pySigma loads only for Sigma rules)."""
    from sigma.modifiers import SigmaContainsModifier
    from sigma.processing.conditions import LogsourceCondition
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline, QueryPostprocessingItem
    from sigma.processing.postprocessing import QueryPostprocessingTransformation
    from sigma.processing.transformations.base import DetectionItemTransformation
    from sigma.rule import SigmaDetectionItem
    from sigma.types import SigmaNumber, SigmaString, SigmaType

    class FieldsFor(DetectionItemTransformation):
        """Keywords and `Data` -> a text column (a contains search); EventID 1/6 -> Status on the
        Exchange table; named fields -> columns, any other field refused."""

        def __init__(self, table: str, text: str, names: dict[str, str], statuses: bool) -> None:
            self.table, self.text, self.names, self.statuses = table, text, names, statuses

        def apply_detection_item(self, item: SigmaDetectionItem) -> Any:
            if item.field is None or item.field == "Data":
                if item.field is None:
                    if not all(isinstance(v, SigmaString) for v in item.value):
                        raise _Unmapped("(keyword)", self.table, [])
                    return SigmaDetectionItem(self.text, [SigmaContainsModifier], list(item.value),
                                              value_linking=item.value_linking)
                item.field = self.text
                return item
            numbers = [int(v.number) for v in item.value if isinstance(v, SigmaNumber)]
            if self.statuses and item.field == "EventID" and len(numbers) == len(item.value) and set(numbers) <= {1, 6}:
                words: list[SigmaType] = [SigmaString("Success" if n == 1 else "Failure") for n in numbers]
                return SigmaDetectionItem("Status", [], words)
            if item.field not in self.names:
                raise _Unmapped(item.field, self.table, sorted(self.names))
            item.field = self.names[item.field]
            return item

    class FromTable(QueryPostprocessingTransformation):
        """The table (and its text column) before the condition; Timestamp and DeviceName after,
        the columns every alert has."""

        def __init__(self, head: str) -> None:
            self.head = head

        def apply(self, rule: Any, query: Any) -> Any:
            super().apply(rule, query)
            return f"{self.head}\n| where {query}\n| extend Timestamp = TimeGenerated, DeviceName = Computer"

    def log_pipeline(name: str, service: str, table: str, text: str, names: dict[str, str], head: str,
                     statuses: bool) -> ProcessingPipeline:
        return ProcessingPipeline(
            name=f"exhunt {name}", priority=20, allowed_backends=frozenset(["kusto"]),
            items=[ProcessingItem(identifier=f"exhunt_{name}_fields",
                                  transformation=FieldsFor(table, text, names, statuses),
                                  rule_conditions=[LogsourceCondition(service=service)])],
            postprocessing_items=[QueryPostprocessingItem(identifier=f"exhunt_{name}_table",
                                                          transformation=FromTable(head))],
        )

    return log_pipeline


def _exchange_pipeline() -> Any:
    text = ", ".join(EXCHANGE_TEXT)
    head = f"{EXCHANGE_TABLE}\n| extend EventText = strcat_delim(\" \", {text})"
    names = _columns(EXCHANGE_TABLE, "Parameters")
    return _pipelines()("msexchange", "msexchange-management", EXCHANGE_TABLE, "EventText", names, head, True)


def _columns(table: str, *leave: str) -> dict[str, str]:
    """A table's columns as Sigma fields of the same name (Sigma names EventData fields as
    SecurityEvent's and the cmdlet log's columns are named)."""
    from exhunt.schema import table as schema_table

    return {c: c for c in schema_table(table).names if c not in ("TimeGenerated", *leave)}


def _security_pipeline() -> Any:
    names = {**_columns("SecurityEvent"), "Data": "EventData"}
    return _pipelines()("security", "security", "SecurityEvent", "EventData", names, "SecurityEvent", False)


def _event_pipeline(service: str, channels: list[str]) -> Any:
    from exhunt.backends.kqltext import string

    listed = ", ".join(string(c) for c in channels)
    head = f"Event\n| where EventLog =~ {listed}" if len(channels) == 1 else f"Event\n| where EventLog in~ ({listed})"
    return _pipelines()(f"event_{service}", service, "Event", "RenderedDescription", dict(EVENT_FIELDS), head, False)


def _line_of(text: str, field: str) -> int | None:
    """The first line naming `field` as a detection key (`Field:` or `Field|modifier:`)."""
    if field.startswith("("):
        pattern = re.compile(r"^\s*(keywords?|\w*keyword\w*)\s*:", re.I)
    else:
        pattern = re.compile(rf"^\s*-?\s*{re.escape(field)}\s*[|:]")
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if pattern.search(line):
            return number
    # a modifier or value named in pySigma's message: the first line with it as a word
    word = re.compile(rf"(?<![\w-]){re.escape(field)}(?![\w-])")
    return next((n for n, line in enumerate(lines, 1) if word.search(line)), None)


def _where(path: Path, text: str, field: str | None) -> str:
    line = _line_of(text, field) if field else None
    return f"{path}:{line}" if line else str(path)


def convert_query(path: Path, text: str) -> tuple[str, str]:
    """The Sigma rule's KQL query and the table it reads; RuleError on anything unsupported."""
    from sigma.backends.kusto import KustoBackend
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaConditionError, SigmaError
    from sigma.pipelines.common import windows_logsource_mapping
    from sigma.pipelines.microsoftxdr import microsoft_xdr_pipeline
    from sigma.rule import SigmaRule

    source: Any = None
    try:
        collection = SigmaCollection.from_yaml(text)
        if len(collection.rules) != 1:
            raise RuleError(f"{path}: holds {len(collection.rules)} Sigma rules; one per file is supported")
        rule = collection.rules[0]
        if not isinstance(rule, SigmaRule):
            raise RuleError(f"{path}: a Sigma correlation rule; only detection rules are supported")
        source = rule.logsource
        if source.service == "msexchange-management":
            pipeline, table = _exchange_pipeline(), EXCHANGE_TABLE
        elif source.service == "security" and source.category is None:
            pipeline, table = _security_pipeline(), "SecurityEvent"
        elif source.category is None and source.service and (source.product or "windows") == "windows":
            channel = windows_logsource_mapping.get(source.service)
            if not channel:
                raise RuleError(f"{_where(path, text, 'service')}: Windows log source service "
                                f"{source.service!r} has no known channel")
            channels = [channel] if isinstance(channel, str) else list(channel)
            pipeline, table = _event_pipeline(source.service, channels), "Event"
        elif source.category:
            pipeline, table = microsoft_xdr_pipeline(), ""
        else:
            raise RuleError(f"{_where(path, text, 'logsource')}: unsupported log source "
                            f"(product {source.product!r}, service {source.service!r}, no category)")
        backend = KustoBackend(processing_pipeline=pipeline, collect_errors=True)  # type: ignore[arg-type]
        queries = backend.convert_rule(rule)
        for error in [*rule.errors, *(e for _, e in backend.errors)]:
            raise error
    except _Unmapped as exc:
        detail = f"; use one of {', '.join(exc.allowed)}" if exc.allowed else ""
        what = "a keyword search other than plain text" if exc.field.startswith("(") else f"field {exc.field!r}"
        raise RuleError(f"{_where(path, text, exc.field)}: {what} has no mapping to {exc.where}{detail}") from None
    except SigmaConditionError as exc:
        where = _where(path, text, "condition")
        raise RuleError(f"{where}: Sigma condition not understood: {_short(str(exc))}") from None
    except SigmaError as exc:
        message = str(exc)
        xdr = re.search(r"field name encountered: (\w+)\. Please use valid fields for the (\w+) table", message)
        if xdr:
            raise RuleError(f"{_where(path, text, xdr.group(1))}: field {xdr.group(1)!r} has no mapping to "
                            f"{xdr.group(2)} (pySigma's microsoft_xdr pipeline)") from None
        if "determine table name" in message or "category not yet supported" in message:
            category = getattr(source, "category", None)
            raise RuleError(f"{_where(path, text, 'category')}: log source category {category!r} has no "
                            "Defender table in pySigma's microsoft_xdr pipeline") from None
        raise RuleError(f"{_where(path, text, _field_in(message))}: Sigma conversion failed: "
                        f"{_short(message)}") from None
    if len(queries) != 1 or not isinstance(queries[0], str):
        raise RuleError(f"{path}: Sigma conversion gave {len(queries)} queries; one is expected")
    query = queries[0]
    return query, table or query.split("\n", 1)[0].strip()


def _field_in(message: str) -> str | None:
    m = re.search(r"[Ff]ield '?([A-Za-z_][\w.]*)'?", message) or re.search(r"'([A-Za-z_]\w*)'", message)
    return m.group(1) if m else None


def _short(message: str) -> str:
    """pySigma's message on one line, its long list of valid fields cut."""
    first = " ".join(message.split())
    return first if len(first) <= 400 else first[:400] + " ..."


def to_exhunt(path: Path, doc: dict[str, Any], text: str) -> dict[str, Any]:
    """The exhunt rule document (what `rules convert` writes and what loading a Sigma file gives)."""
    query, table = convert_query(path, text)
    level = str(doc.get("level") or "medium").lower()
    if level not in LEVELS:
        raise RuleError(f"{_where(path, text, 'level')}: unknown Sigma level {level!r}")
    tags = [str(t).lower() for t in doc.get("tags") or []]
    tactics = [TACTICS[t[7:]] for t in tags if t.startswith("attack.") and t[7:] in TACTICS]
    techniques = [m.group(1).upper() for t in tags if (m := _TECHNIQUE.match(t))]
    fps = [str(f) for f in doc.get("falsepositives") or []]
    sigma_meta = {k: doc[k] for k in ("id", "status", "author", "date", "modified", "logsource") if doc.get(k)}
    sigma_meta = {k: (str(v) if k in ("date", "modified") else v) for k, v in sigma_meta.items()}
    meta: dict[str, Any] = {"severity": level, "confidence": "medium", "requiredTables": [table],
                            "sigma": {**sigma_meta, "file": path.name}}
    if fps:
        meta["falsePositives"] = fps
    if doc.get("references"):
        meta["references"] = [str(r) for r in doc["references"]]
    description = str(doc.get("description") or doc["title"]).strip()
    return {
        "id": str(doc.get("id") or uuid.uuid5(uuid.NAMESPACE_URL, f"sigma:{doc['title']}")),
        "name": str(doc["title"]), "description": description,
        "severity": LEVELS[level], "queryFrequency": "1h", "queryPeriod": "1h", "triggerOperator": "gt",
        "triggerThreshold": 0, "tactics": list(dict.fromkeys(tactics)),
        "relevantTechniques": list(dict.fromkeys(techniques)), "query": query + "\n",
        # every converted query returns DeviceName (the Windows-log pipelines name Computer so)
        "entityMappings": [{"entityType": "Host",
                            "fieldMappings": [{"identifier": "HostName", "columnName": "DeviceName"}]}],
        "version": "1.0.0",
        "kind": "Scheduled", "exhunt": meta,
    }


def convert_file(path: Path) -> str:
    """`exhunt rules convert`: the Sigma file as an exhunt rule file's text."""
    from exhunt.rule import load_yaml

    doc = load_yaml(path)
    if not is_sigma(doc):
        raise RuleError(f"{path}: not a Sigma rule (a mapping with title, logsource and detection.condition)")
    rule = to_exhunt(path, doc, path.read_text(encoding="utf-8"))
    head = f"# Converted from the Sigma rule {path.name} by `exhunt rules convert` (pySigma, Kusto backend).\n"
    return head + yaml.dump(rule, Dumper=yamltext.BlockDumper, sort_keys=False, allow_unicode=True, width=120)
