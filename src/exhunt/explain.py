"""`exhunt rules show`: the rule's facts and its guide, readable in a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.syntax import Syntax

from exhunt.rule import Rule


def show(rule: Rule, console: Console) -> None:
    facts = [
        f"[bold]{rule.name}[/bold]  ({rule.slug})",
        f"id {rule.id}   severity {rule.severity}   confidence {rule.confidence}",
        f"tactics {', '.join(rule.tactics)}   techniques {', '.join(rule.techniques)}",
        f"schedule every {rule.doc.get('queryFrequency')} over {rule.doc.get('queryPeriod')}",
        f"tables {', '.join(rule.required_tables)}",
    ]
    console.print(Panel("\n".join(facts), expand=False))
    console.print(Markdown(str(rule.doc.get("description", ""))))
    fps = rule.meta.get("falsePositives") or []
    if fps:
        console.print(Markdown("**False positives**\n\n" + "\n".join(f"- {fp}" for fp in fps)))
    if rule.meta.get("notes"):
        console.print(Markdown("**Notes**\n\n" + str(rule.meta["notes"])))
    console.print(Syntax(rule.query, "sql", word_wrap=True, theme="ansi_dark"))
    if rule.guide_path.exists():
        console.print(Markdown(rule.guide_path.read_text(encoding="utf-8")))
    else:
        console.print(f"(no guide at {rule.guide_path})")
