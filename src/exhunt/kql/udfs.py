"""KQL functions duckdb-kql has no mapping for, as Python functions DuckDB calls (see compat).

Each returns what Kusto's function returns, as JSON text (a KQL `dynamic`), or None where
Kusto gives null. They run on attacker-controlled text: no XML entity is ever expanded
(defusedxml), and a value that does not parse is null, never an error that stops the rule.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

import orjson
from defusedxml import ElementTree

#: Longest text the functions look at (a command line is at most 32 767 characters on Windows;
#: XML in an event field is small): beyond it the result is null rather than a stalled rule.
MAX_TEXT = 1 << 20


def parse_command_line(text: str | None, parser: str | None) -> str | None:
    """Kusto's `parse_command_line(text, "windows")`: the arguments as CommandLineToArgvW splits
    them (the program name up to the first blank outside quotes, quotes never escaped in it;
    then `2n` backslashes before a quote give `n` and the quote toggles quoting, `2n+1` give `n`
    and a literal quote, `""` inside quotes a literal quote; other backslashes are literal)."""
    if text is None or parser is None or parser.lower() != "windows" or len(text) > MAX_TEXT:
        return None
    return orjson.dumps(_argv(text)).decode()


def _argv(text: str) -> list[str]:
    args: list[str] = []
    i, n = 0, len(text)
    # the program name
    name: list[str] = []
    quoted = False
    while i < n and (quoted or text[i] not in " \t"):
        if text[i] == '"':
            quoted = not quoted
        else:
            name.append(text[i])
        i += 1
    args.append("".join(name))
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return args
        arg: list[str] = []
        quoted = False
        while i < n and (quoted or text[i] not in " \t"):
            c = text[i]
            if c == "\\":
                j = i
                while j < n and text[j] == "\\":
                    j += 1
                count = j - i
                if j < n and text[j] == '"':
                    arg.append("\\" * (count // 2))
                    if count % 2:
                        arg.append('"')
                        j += 1
                    i = j
                else:
                    arg.append("\\" * count)
                    i = j
                continue
            if c == '"':
                if quoted and i + 1 < n and text[i + 1] == '"':
                    arg.append('"')
                    i += 2
                    continue
                quoted = not quoted
                i += 1
                continue
            arg.append(c)
            i += 1
        args.append("".join(arg))


def parse_xml(text: str | None) -> str | None:
    """Kusto's `parse_xml(text)`: the document as a property bag (attributes as `@name`, text
    beside children or attributes as `#text`, repeated children as an array, an empty element
    null); null when the text is not well-formed XML."""
    if text is None or len(text) > MAX_TEXT:
        return None
    try:
        root = ElementTree.fromstring(text)
    except Exception:  # defusedxml's refusals and every parse error alike: not XML -> null
        return None
    return orjson.dumps({_name(root.tag): _value(root)}).decode()


def _name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def _value(e: Element) -> Any:
    text = (e.text or "").strip()
    kids = list(e)
    if not e.attrib and not kids:
        return text or None
    out: dict[str, Any] = {f"@{_name(k)}": v for k, v in e.attrib.items()}
    if text:
        out["#text"] = text
    lists: set[str] = set()
    for kid in kids:
        key, value = _name(kid.tag), _value(kid)
        if key in lists:
            out[key].append(value)
        elif key in out:
            out[key] = [out[key], value]
            lists.add(key)
        else:
            out[key] = value
    return out
