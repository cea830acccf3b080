"""Stage 1: YAML text -> plain data (dicts, lists, str, int, float, bool, None).

* libyaml's C parser when PyYAML has it, the pure-Python one otherwise.
* Scalars resolve as in YAML 1.2's core schema, as docker compose does:
  only ``true``/``false`` are booleans (``yes``, ``on`` stay strings), no
  sexagesimal numbers (``22:22`` stays a string), no timestamps; a leading
  ``0`` or ``0o`` still means octal (file modes such as ``0440``).
* Anchors, aliases and ``<<`` merge keys work as usual; a key written twice in
  one mapping is an error naming both lines.
* ``!reset`` becomes the :data:`RESET` sentinel (the merge removes the key),
  ``!override`` on a mapping or sequence becomes :class:`OverrideMapping` /
  :class:`OverrideList` (the merge replaces instead of combining).

Aliases make documents share objects, so later stages never mutate their input.
"""

from __future__ import annotations

import re
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import YamlError

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

__all__ = ["RESET", "OverrideList", "OverrideMapping", "Reset", "YamlError", "read_yaml"]


class Reset:
    """The value of a ``!reset`` tag: the merge drops the key it is attached to."""

    _instance: Reset | None = None

    def __new__(cls) -> Reset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "RESET"

    def __reduce__(self) -> str:
        return "RESET"

    def __deepcopy__(self, memo: dict[int, Any]) -> Reset:
        return self


RESET: Final = Reset()


class OverrideMapping(dict[str, Any]):
    """A mapping tagged ``!override``: replaces the value it is merged onto."""


class OverrideList(list[Any]):
    """A sequence tagged ``!override``: replaces the value it is merged onto."""


_INT = re.compile(r"^[-+]?(?:0o[0-7]+|0x[0-9a-fA-F]+|0b[01]+|[0-9][0-9_]*)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*\.[0-9_]*)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class ComposeLoader(_BaseLoader):
    """SafeLoader with the YAML 1.2 core scalars, duplicate-key errors and Compose tags."""

    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                ident = (key_node.tag, key_node.value)
                line = key_node.start_mark.line + 1
                if ident in seen:
                    raise YamlError(
                        self._file, None,
                        f"line {line}: duplicate key {key_node.value!r} "
                        f"(first defined on line {seen[ident]})",
                    )
                seen[ident] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        text = text.lstrip("+-")
        if text.startswith("0o"):
            return sign * int(text[2:], 8)
        if text.startswith(("0x", "0b")):
            return sign * int(text, 0)
        if len(text) > 1 and text.startswith("0"):
            octal = set(text) <= set("01234567")
            return sign * int(text, 8) if octal else sign * int(text)
        return sign * int(text)

    _file: str | None = None


def _add(tag: str, regexp: str, first: str) -> None:
    ComposeLoader.add_implicit_resolver(tag, re.compile(regexp), list(first))


_add("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_add("tag:yaml.org,2002:int", _INT.pattern, "-+0123456789")
_add("tag:yaml.org,2002:float", _FLOAT.pattern, "-+0123456789.")
_add("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""])  # type: ignore[arg-type]
_add("tag:yaml.org,2002:merge", r"^(?:<<)$", "<")
ComposeLoader.add_constructor("tag:yaml.org,2002:int", ComposeLoader.construct_yaml_int)


def _construct_reset(loader: ComposeLoader, node: Node) -> Reset:
    return RESET


def _construct_override(loader: ComposeLoader, node: Node) -> Any:
    if isinstance(node, MappingNode):
        value = OverrideMapping()
        value.update(loader.construct_mapping(node, deep=True))
        return value
    if isinstance(node, SequenceNode):
        return OverrideList(loader.construct_sequence(node, deep=True))
    return loader.construct_scalar(node)  # type: ignore[arg-type]  # scalars replace anyway


ComposeLoader.add_constructor("!reset", _construct_reset)
ComposeLoader.add_constructor("!override", _construct_override)


MAX_NODES = 1_000_000
MAX_DEPTH = 200


def _check_shape(doc: Any, file: str | None) -> None:
    """Reject recursive aliases, alias bombs and absurd nesting before any stage walks them.

    One iterative pass; sizes are memoised per object, so shared (aliased)
    nodes are counted at their expanded size without being expanded.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(doc, 0, False)]
    while stack:
        node, depth, done = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        nid = id(node)
        if done:
            on_path.discard(nid)
            total = 1 + sum(sizes.get(id(c), 1) for c in children)
            if total > MAX_NODES:
                raise YamlError(file, None, "the document is too large once its aliases are "
                                f"expanded (more than {MAX_NODES} values)")
            sizes[nid] = total
            continue
        if nid in sizes:
            continue
        if nid in on_path:
            raise YamlError(file, None, "an alias refers to a node that contains it "
                                        "(recursive aliases are not allowed)")
        if depth >= MAX_DEPTH:
            raise YamlError(file, None, f"values are nested more than {MAX_DEPTH} levels deep")
        on_path.add(nid)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if isinstance(c, dict | list))


def read_yaml(text: str, *, file: str | None = None) -> list[Any]:
    """Parse every YAML document in ``text``; an empty document is ``None``.

    Raises :class:`YamlError` with the line and column of the problem.
    """
    loader = ComposeLoader(text)
    loader._file = file
    try:
        docs: list[Any] = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            doc = loader.get_data()
            if isinstance(doc, dict | list):
                _check_shape(doc, file)
            docs.append(doc)
        return docs
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlError(file, None, f"{where}{problem}") from None
    except yaml.YAMLError as exc:
        raise YamlError(file, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
