"""`exhunt rules list` and `rules show`: rule facts and guides, readable in a terminal and in a file.

Rule files can come from anyone: every text of theirs is shown with control characters
escaped (exhunt.safetext), and Markdown links are not turned into terminal hyperlinks.
Written to a file or a pipe, `rules show` prints plain text: nothing is wrapped, and the
query is verbatim so it can be pasted into the Defender or Sentinel portal.
"""

from __future__ import annotations

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from exhunt.rule import Rule
from exhunt.safetext import markup, shown

LIST_HEADER = ("RULE", "SEVERITY", "TECHNIQUES", "TABLES")


def listing(rules: list[Rule]) -> str:
    """`rules list`: a header and one line per rule, in columns as wide as their widest cell
    (terminal or not); the last column is not padded."""
    rows = [LIST_HEADER] + [
        (shown(r.slug), shown(r.severity), shown(",".join(r.techniques)), shown(", ".join(r.required_tables)))
        for r in rules
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(LIST_HEADER) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
             for row in rows]
    return "\n".join(lines) + "\n"


def facts(rule: Rule) -> list[str]:
    """The rule's metadata, one plain line each (escaped)."""
    return [
        f"{shown(rule.name)}  ({shown(rule.slug)})",
        f"id {shown(rule.id)}   severity {shown(rule.severity)}   confidence {shown(rule.confidence)}",
        f"tactics {shown(', '.join(rule.tactics))}   techniques {shown(', '.join(rule.techniques))}",
        f"schedule every {shown(rule.doc.get('queryFrequency'))} over {shown(rule.doc.get('queryPeriod'))}",
        f"tables {shown(', '.join(rule.required_tables))}",
    ]


def _sections(rule: Rule) -> list[tuple[str, str]]:
    """(heading, Markdown text) of the description, false positives and notes, escaped."""
    out = [("", shown(rule.doc.get("description", ""), multiline=True))]
    fps = rule.meta.get("falsePositives") or []
    if fps:
        out.append(("False positives", "\n".join(f"- {shown(fp)}" for fp in fps)))
    if rule.meta.get("notes"):
        out.append(("Notes", shown(rule.meta["notes"], multiline=True)))
    return out


def _guide(rule: Rule) -> str | None:
    path = rule.guide_path
    return shown(path.read_text(encoding="utf-8"), multiline=True) if path.exists() else None


def show(rule: Rule, console: Console, plain: bool = False) -> None:
    """Print a rule: rich in a terminal, plain and unwrapped (`plain`) into a file or pipe."""
    query = shown(rule.query, multiline=True)
    guide = _guide(rule)
    if plain:
        out = [*facts(rule), ""]
        for heading, text in _sections(rule):
            out += ([heading, ""] if heading else []) + [text, ""]
        out += ["Query:", "", query, ""]
        out.append(guide if guide is not None else f"(no guide at {shown(rule.guide_path)})")
        console.file.write("\n".join(out).rstrip("\n") + "\n")
        return
    head = facts(rule)
    head[0] = f"[bold]{markup(rule.name)}[/bold]  ({markup(rule.slug)})"
    console.print(Panel("\n".join([head[0], *(markup(line) for line in head[1:])]), expand=False))
    for heading, text in _sections(rule):
        console.print(Markdown((f"**{heading}**\n\n" if heading else "") + text, hyperlinks=False))
    # Long lines run on rather than being cut into pieces: a copied query stays one query.
    console.print(Syntax(query, "sql", word_wrap=False, theme="ansi_dark"), soft_wrap=True)
    if guide is not None:
        console.print(Markdown(guide, hyperlinks=False))
    else:
        console.print(Text(f"(no guide at {shown(rule.guide_path)})"))
