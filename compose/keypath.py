"""Key paths into a Compose document and path patterns for the rule tables.

A path is a tuple of mapping keys (``str``) and list indexes (``int``):
``("services", "web", "ports", 1)`` prints as ``services.web.ports[1]``. A
pattern is a dotted string where ``*`` matches any one key or index:
``services.*.ports``. Each loader stage keeps its rules in a table keyed by
such patterns and looks them up with :func:`lookup`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

KeyPath = tuple[str | int, ...]
T = TypeVar("T")


def fmt(path: KeyPath) -> str:
    """``("services", "web", "ports", 1)`` -> ``services.web.ports[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _compile(pattern: str) -> tuple[str, ...]:
    return tuple(pattern.split("."))


def matches(pattern: tuple[str, ...], path: KeyPath) -> bool:
    """Whether ``path`` (ignoring list indexes) matches ``pattern`` part by part."""
    keys = [p for p in path if not isinstance(p, int)]
    if len(keys) != len(pattern):
        return False
    return all(pat == "*" or pat == key for pat, key in zip(pattern, keys, strict=True))


class RuleTable(Mapping[str, T]):
    """Rules keyed by path pattern; :meth:`find` returns the first match for a path.

    Patterns ignore list indexes, so ``services.*.ports`` matches the path of
    the list itself. The patterns are kept in a trie, so a lookup costs one
    dict probe per key (a literal key is preferred over ``*``).
    """

    def __init__(self, rules: Mapping[str, T]) -> None:
        self._rules = dict(rules)
        self._trie: _Node[T] = _Node()
        for pattern, rule in self._rules.items():
            node = self._trie
            for part in _compile(pattern):
                node = node.children.setdefault(part, _Node())
            if not node.has_rule:
                node.rule, node.has_rule = rule, True

    def __getitem__(self, key: str) -> T:
        return self._rules[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def find(self, path: KeyPath) -> T | None:
        keys = [p for p in path if not isinstance(p, int)]
        return _match(self._trie, keys, 0)


class _Node(Generic[T]):
    __slots__ = ("children", "has_rule", "rule")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.rule: T | None = None
        self.has_rule = False


def _match(node: _Node[T], keys: list[str], i: int) -> T | None:
    if i == len(keys):
        return node.rule if node.has_rule else None
    for part in (keys[i], "*"):
        child = node.children.get(part)
        if child is not None:
            found = _match(child, keys, i + 1)
            if found is not None:
                return found
    return None
