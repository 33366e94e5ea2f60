"""The one YAML reader of the package: configs, ``key=value`` overrides, ``tuned.yaml`` files and
the ``config.yaml`` of run folders are all read with :func:`read_yaml`.

It is PyYAML's safe loader with five changes:

- ``1e-3`` is a float (YAML 1.2; PyYAML's YAML 1.1 rules need a dot, ``1.0e-3``, and would make
  ``lr=1e-3`` the string '1e-3');
- a key that appears twice in one mapping is refused (PyYAML keeps the last one silently);
- aliases are bounded. An alias (``*name``) is kept as a reference to its anchor's value while
  loading, but anything that later prints, copies into records or compares the value expands it:
  nine nested anchors of nine items each (the "billion laughs" shape) are 10⁹ values, which took
  a run to 3 GB and an OOM kill. Aliases are legitimate (``<<: *base`` merges, and PyYAML itself
  writes ``&id001`` anchors for shared values), so they are allowed as long as all of them
  together add at most :data:`MAX_ALIAS_VALUES` values to the document; an alias inside its own
  anchor (a recursive value) is refused. Both are checked on the composed node graph, before any
  Python value is built, in time linear in the document's size;
- nesting is bounded (:data:`MAX_DEPTH` levels), and so is the text (:data:`MAX_CHARS`): PyYAML
  reads about a megabyte a second, and no config needs more.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import IO, Any

import yaml

#: The most values that aliases may add to one document (each alias counts every value under its
#: anchor). Hand-written configs add a few dozen at most.
MAX_ALIAS_VALUES = 10_000
#: The deepest nesting of sequences and mappings (configs nest 4 levels); PyYAML composes nested
#: values recursively, so "[[[[..." would otherwise end in a RecursionError traceback.
MAX_DEPTH = 100
#: The longest YAML text read (characters): the package's own configs are a few kilobytes.
MAX_CHARS = 1_000_000
_CAP = 2**62


class YAMLBoundError(yaml.YAMLError):
    """A YAML document too large to read: a text over :data:`MAX_CHARS`, aliases that expand
    beyond :data:`MAX_ALIAS_VALUES`, a recursive alias, nesting deeper than :data:`MAX_DEPTH`."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 exponent floats, duplicate keys refused and bounded
    aliases and nesting (see the module docstring)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0  # of the node being composed

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *base" then "key: value" overrides a merged key on purpose
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base class refuses it with its own message
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r} (first at line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YAMLBoundError(f"its values are nested more than {MAX_DEPTH} levels deep "
                                     f"(line {mark.line + 1}, column {mark.column + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            check_alias_expansion(node)
        return node


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_alias_expansion(root: yaml.Node, limit: int = MAX_ALIAS_VALUES) -> None:
    """Refuse a composed document whose aliases add more than ``limit`` values, or that holds a
    recursive alias. The composer returns an anchor's node itself for each of its aliases, so the
    node graph is as small as the text; the size the document would have with every alias
    written out is counted per distinct node (memoised, iteratively: no recursion limit)."""
    expanded: dict[int, int] = {}  # id(node) -> values under it, aliases written out
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            # capped: the count only has to exceed the limit, and stays a small int
            expanded[key] = min(1 + sum(expanded[id(child)] for child in _children(node)), _CAP)
            continue
        if key in expanded:
            continue  # a second reference (an alias) to a node already counted
        if key in on_path:
            raise YAMLBoundError(
                f"the alias at {node.start_mark.line + 1}:{node.start_mark.column + 1} refers to a "
                "value that contains it (a recursive value); write the value out instead")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in expanded)
    if expanded[id(root)] - len(expanded) > limit:
        raise YAMLBoundError(
            f"its aliases (*name) expand to more than {limit} values "
            "(nested anchors, the \"billion laughs\" shape); write the values out or use fewer aliases")


def read_yaml(stream: str | bytes | IO[str] | IO[bytes]) -> Any:
    """The Python value of one YAML document (text or an open file), read with the bounds above;
    raises :class:`yaml.YAMLError` (:class:`YAMLBoundError` for the bounds)."""
    text = stream if isinstance(stream, (str, bytes)) else stream.read(MAX_CHARS + 1)
    if len(text) > MAX_CHARS:
        raise YAMLBoundError(f"it is longer than {MAX_CHARS} characters; a config needs far fewer")
    return yaml.load(text, Loader=_Loader)


__all__ = ["MAX_ALIAS_VALUES", "MAX_CHARS", "MAX_DEPTH", "YAMLBoundError", "check_alias_expansion", "read_yaml"]
