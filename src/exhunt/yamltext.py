"""YAML parsing for rules, schemas and test cases: libyaml's C parser when PyYAML has it.

The pure-Python parser spends about 0.1 s on the shipped rules and schemas, a fixed
cost on every run; the C one gives the same documents and the same error marks.

Aliases are bounded: YAML lets `*a` reuse a node, so nine lines of nested aliases (a
"billion laughs") stand for 10^9 nodes. PyYAML builds them as shared objects, but
anything that then walks the value (printing a rule's tactics, comparing, exporting)
walks all of them. The node graph is measured before anything is built: a document
whose aliases expand past MAX_NODES nodes, or that contains itself, is refused.
"""

from __future__ import annotations

from typing import Any

import yaml

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Nodes a document may expand to, aliases counted as copies (the largest shipped file,
#: a schema, has a few thousand; a rule's tests a few hundred).
MAX_NODES = 100_000


class AliasBombError(yaml.YAMLError):
    """A document whose aliases expand too far (or into itself)."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def expanded_size(root: yaml.Node, limit: int = MAX_NODES) -> int:
    """Nodes `root` stands for with every alias expanded; AliasBombError past `limit`.

    Each distinct node is visited once (its size remembered), so this takes time in the
    size of the file, not of the expansion.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(c)] for c in _children(node))
            if size > limit:
                raise AliasBombError(f"its aliases expand to more than {limit:,} nodes "
                                     f"(an alias bomb?); refused")
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise AliasBombError("an alias refers to a node that contains it (the document never ends); refused")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _single_node(loader: Any) -> yaml.Node | None:
    try:
        node: yaml.Node | None = loader.get_single_node()
    except RecursionError:
        raise yaml.YAMLError("nested too deeply; refused") from None
    if node is not None:
        expanded_size(node)
    return node


def load(text: str) -> Any:
    """Parse one YAML document with safe types only and bounded aliases (yaml.YAMLError if not)."""
    loader = _Loader(text)  # a safe loader
    try:
        node = _single_node(loader)
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def compose(text: str) -> yaml.Node | None:
    """One YAML document as its node graph, with the same guards as `load`: for files whose every
    entry must be named by line (`node.start_mark.line` is 0-based). Scalars are left as text:
    `scalar(node)` gives a scalar's safe Python value."""
    loader = _Loader(text)
    try:
        return _single_node(loader)
    finally:
        loader.dispose()


def scalar(node: yaml.ScalarNode) -> Any:
    """A scalar node's value under the safe schema (str, int, float, bool, None, date...)."""
    return yaml.constructor.SafeConstructor().construct_object(node)


class BlockDumper(yaml.SafeDumper):
    """Writes multi-line text (a query, a description) as a literal block, as rule files have it."""


def _block_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


BlockDumper.add_representer(str, _block_text)
