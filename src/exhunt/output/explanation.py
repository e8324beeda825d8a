"""`detect --explain` written out: a readable tree (table), the structure as JSON, or CSV rows.

The tree shows each `where` a row went through with `+` (held), `-` (did not hold) or `?` (not
known on one row), its and / or / not parts indented below it, and under each atom the values it
read. Rule text and values pass through `safetext.shown`: a value is printed as a JSON literal
(quotes, `\\n`, `\\u001b`...), so no byte of it reaches the terminal as a control.
"""

from __future__ import annotations

import json
import re
from typing import Any, TextIO

from exhunt.output.serial import write_csv
from exhunt.safetext import shown

#: Longest value and rule constant shown in the tree (the JSON output has them whole).
MAX_VALUE = 300
MAX_CONSTANT = 160
_LOGIC = {"and": "all of:", "or": "any of:", "not": "not:"}
_BREAKS = re.compile(r"\s*\n\s*")


def _one_line(text: Any) -> str:
    return shown(_BREAKS.sub(" ", str(text)))


def _short(time: Any) -> str:
    """An ISO time without a zero fraction (2026-11-21T03:00:00Z)."""
    return shown(str(time).replace(".000000Z", "Z"))


def _mark(held: Any) -> str:
    return "+" if held is True else "-" if held is False else "?"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters in --format json)"


def _value(value: Any) -> str:
    return _cut(shown(json.dumps(value, ensure_ascii=False, default=str)), MAX_VALUE)


def _reads(reads: list[dict[str, Any]], pad: str, lines: list[str]) -> None:
    for r in reads:
        name = shown(r["name"])
        if "constant" in r:
            lines.append(f"{pad}{name} := {_cut(_one_line(r['constant']), MAX_CONSTANT)}  (the rule's let)")
        elif "value" in r:
            lines.append(f"{pad}{name} = {_value(r['value'])}")
        elif "alert_value" in r:
            column = r.get("alert_column", r["name"])
            lines.append(f"{pad}{name} = {_value(r['alert_value'])}  (the alert's {shown(column)})")
        else:
            lines.append(f"{pad}{name}  (not in the alert)")
        computed = r.get("computed")
        if computed:
            how = "the first case that holds" if computed.get("cases") else "its condition"
            lines.append(f"{pad}  computed by the rule ({how}):")
            if "condition" in computed:
                _node(computed["condition"], pad + "    ", lines)
            for case in computed.get("cases", []):
                chosen = "  <- chosen" if case["chosen"] else ""
                lines.append(f"{pad}    {_mark(case['when']['held'])} case {_one_line(case['when']['text'])} "
                             f"=> {_one_line(case['then'])}{chosen}")
                if case["when"].get("logic"):
                    _node(case["when"], pad + "        ", lines, label_only=True)
                else:
                    _reads(case["when"].get("reads", []), pad + "        ", lines)
            if "otherwise" in computed:
                chosen = "  <- chosen" if computed["otherwise"]["chosen"] else ""
                lines.append(f"{pad}      otherwise => {_one_line(computed['otherwise']['then'])}{chosen}")


def _node(node: dict[str, Any], pad: str, lines: list[str], label_only: bool = False) -> None:
    """A condition: `label_only` for a node whose text was just shown (its logic line only)."""
    if node.get("logic"):
        lines.append(f"{pad}{_mark(node['held'])} {_LOGIC[node['logic']]}")
        for child in node["children"]:
            _node(child, pad + "  ", lines)
        return
    if not label_only:
        lines.append(f"{pad}{_mark(node['held'])} {_one_line(node['text'])}")
    _reads(node.get("reads", []), pad + "    ", lines)


def _step(step: dict[str, Any], pad: str, lines: list[str]) -> None:
    part = f"[{shown(step['part'])}] " if step.get("part") else ""
    if "condition" not in step:
        lines.append(f"{pad}* {part}{_one_line(step['text'])}")
        return
    lines.append(f"{pad}{_mark(step.get('held'))} {part}where {_one_line(step['text'])}")
    cond = step["condition"]
    if cond.get("logic"):
        _node(cond, pad + "    ", lines)
    else:
        _reads(cond.get("reads", []), pad + "    ", lines)


def tree_lines(doc: dict[str, Any]) -> list[str]:
    """The explanation as indented lines of inert text."""
    lines = [f"Alert {shown(doc.get('alert_id'))}: {shown(doc.get('rule_name'))} ({shown(doc.get('severity'))})",
             f"  {shown(doc.get('Timestamp'))} on {shown(doc.get('DeviceName'))}"]
    evaluated = doc.get("evaluated")
    if evaluated:
        window = [_short(t) for t in evaluated.get("window") or []]
        span = f" over {window[0]} .. {window[1]}" if window else ""
        lines.append(f"  evaluated as the rule's run at now() = {_short(evaluated.get('now'))}{span}")
    lines.append("  (+ held, - did not hold, ? not known on one row)")
    for row in doc.get("rows", []):
        verdict = "every condition held" if row["held"] else "not every condition held"
        lines += ["", f"Row of {shown(row.get('table'))}, {shown(row.get('source_file'))} "
                      f"{shown(row.get('source_record'))}: {verdict}"]
        for step in row["steps"]:
            _step(step, "  ", lines)
    if doc.get("conditions"):
        lines += ["", "Conditions of the rule (not evaluated on the alert's rows):"]
        for step in doc["conditions"]:
            _step(step, "  ", lines)
    many = doc.get("over_many_rows") or []
    if many:
        lines += ["", "Over many rows (not judged on one row; shown with the alert's values):"]
        for step in many:
            _step(step, "  ", lines)
    for note in doc.get("notes", []):
        lines += ["", f"Note: {shown(note)}"]
    return lines


def _flat(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One CSV row per condition node (depth says where it sits in its tree)."""
    out: list[dict[str, Any]] = []

    def walk(node: dict[str, Any], base: dict[str, Any], depth: int) -> None:
        reads = [{k: v for k, v in r.items() if k != "computed"} for r in node.get("reads", [])]
        out.append({**base, "depth": depth, "logic": node.get("logic", ""), "held": node.get("held"),
                    "condition": node["text"], "reads": reads or ""})
        for child in node.get("children", []):
            walk(child, base, depth + 1)
        for r in node.get("reads", []):
            computed = r.get("computed") or {}
            if "condition" in computed:
                walk(computed["condition"], base, depth + 1)
            for case in computed.get("cases", []):
                walk(case["when"], base, depth + 1)

    sections: list[tuple[str, Any, Any, Any, Any, list[dict[str, Any]]]] = [
        ("row", i, row.get("table"), row.get("source_file"), row.get("source_record"), row["steps"])
        for i, row in enumerate(doc.get("rows", []), 1)]
    sections.append(("over_many_rows", "", "", "", "", doc.get("over_many_rows") or []))
    for section, index, table, file, record, steps in sections:
        for step in steps:
            base = {"alert_id": doc.get("alert_id"), "section": section, "row": index, "table": table,
                    "source_file": file, "source_record": record, "part": step.get("part") or "",
                    "operator": step["operator"]}
            if "condition" in step:
                walk(step["condition"], base, 0)
            else:
                out.append({**base, "depth": 0, "logic": "", "held": None, "condition": step["text"], "reads": ""})
    return out


def write_explanation(doc: dict[str, Any], fmt: str, out: TextIO) -> None:
    """Write `doc` (exhunt.why.explain) as `fmt`: table, json, jsonl or csv."""
    if fmt == "json":
        json.dump(doc, out, ensure_ascii=False, indent=2, default=str)
        out.write("\n")
    elif fmt == "jsonl":
        out.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
    elif fmt == "csv":
        write_csv(_flat(doc), out)
    else:
        out.write("\n".join(tree_lines(doc)) + "\n")
