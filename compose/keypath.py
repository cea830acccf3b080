"""Key paths into a Compose document and path patterns for the rule tables.

A path is a tuple of mapping keys (``str``) and list indexes (``int``):
``("services", "web", "ports", 1)`` prints as ``services.web.ports[1]``. A
pattern is a dotted string where ``*`` matches any one key or index:
``services.*.ports``. Each loader stage keeps its rules in a table keyed by
such patterns and looks them up with :func:`lookup`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

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
    the list itself; entries are found by exact length so lookups stay cheap.
    """

    def __init__(self, rules: Mapping[str, T]) -> None:
        self._rules = dict(rules)
        self._by_len: dict[int, list[tuple[tuple[str, ...], T]]] = {}
        for pattern, rule in self._rules.items():
            parts = _compile(pattern)
            self._by_len.setdefault(len(parts), []).append((parts, rule))

    def __getitem__(self, key: str) -> T:
        return self._rules[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def find(self, path: KeyPath) -> T | None:
        keys = tuple(p for p in path if not isinstance(p, int))
        for parts, rule in self._by_len.get(len(keys), ()):
            if all(pat == "*" or pat == key for pat, key in zip(parts, keys, strict=True)):
                return rule
        return None
