"""Attacker text made inert for a terminal: control and bidi characters shown escaped.

File names, values, column names and rule text can carry ESC sequences (clear the
screen, ask the terminal to answer `ESC[6n`, set the window title, OSC 8 links), other
C0/C1 controls, or Unicode bidi overrides that make text read differently from what it
is. Every human-facing output passes such text through `shown` (and `markup` where rich
markup is parsed); `console()` gives a rich Console that also escapes whatever reaches
it unescaped, as a second line of defence. Machine outputs (JSON) stay exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.markup import escape
from rich.segment import Segment
from rich.text import Text

#: C0 controls, DEL, C1 controls, bidi embeddings/overrides/isolates and marks, line and
#: paragraph separators: nothing a terminal should receive from data.
_OTHER = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_ONE_LINE = re.compile(f"[\x00-\x1f{_OTHER}]")
#: In multi-line text (a query, a guide) line feeds and tabs are layout, not attacks.
_MULTI_LINE = re.compile(f"[\x00-\x08\x0b-\x1f{_OTHER}]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: Any, multiline: bool = False) -> str:
    """`text` as it may reach a terminal: each unsafe character as `\\x1b` / `\\u202e`
    (`\\n`, `\\r`, `\\t` for those). With `multiline`, line feeds and tabs are kept."""
    s = text if isinstance(text, str) else str(text)
    pattern = _MULTI_LINE if multiline else _ONE_LINE
    return pattern.sub(_escaped, s) if pattern.search(s) else s


def markup(text: Any) -> str:
    """`shown(text)` made safe to put inside rich markup (`[red]...[/red]`)."""
    return escape(shown(text))


def has_unsafe(text: str) -> bool:
    """Whether `shown` would change `text` (line feeds count)."""
    return _ONE_LINE.search(text) is not None


class SafeConsole(Console):
    """A rich Console that never writes a control character it did not make itself.

    Strings are escaped before layout (so widths stay right); every rendered segment is
    escaped again before it is written, which catches text that reached a Text, Markdown
    or Syntax object unescaped. Rich's own control segments (cursor moves of a progress
    bar) and the line feeds of its layout pass.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(shown(text, multiline=True), **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for seg in super().render(renderable, options):
            if seg.control or not _MULTI_LINE.search(seg.text):
                yield seg
            else:
                yield Segment(shown(seg.text, multiline=True), seg.style, seg.control)


def console(**kwargs: Any) -> Console:
    """A SafeConsole (see there) with rich's usual arguments."""
    return SafeConsole(**kwargs)
