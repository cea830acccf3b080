"""Project model <-> JSON for the trip from the CLI to the engine (and into the store).

A structural codec over the frozen dataclasses of :mod:`pycompose.compose.model`,
driven by their type hints: what goes in comes back equal (``decode(T,
encode(x)) == x``), whatever the Compose-facing serialisation chooses to print.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any

from pycompose.compose import model
from pycompose.compose.model import FrozenDict, Project


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)
                if getattr(value, f.name) != _default(f)}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    return value


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(model))


def decode(tp: Any, data: Any) -> Any:
    if data is None:
        return None
    if tp is Any:
        return model.freeze(data)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return decode(members[0], data)
        for a in members:  # e.g. str | int: keep the JSON value if it already fits
            base = typing.get_origin(a) or a
            if isinstance(base, type) and isinstance(data, base):
                return data
        return data
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = _hints(tp)
        return tp(**{k: decode(hints[k], v) for k, v in data.items() if k in hints})
    if origin is tuple:
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(decode(item, v) for v in data)
    if origin in (FrozenDict, dict) or tp is FrozenDict:
        args = typing.get_args(tp)
        vt = args[1] if len(args) == 2 else Any
        return FrozenDict((k, decode(vt, v)) for k, v in data.items())
    if tp is float and isinstance(data, int):
        return float(data)
    return data


def encode_project(project: Project) -> dict[str, Any]:
    return typing.cast(dict[str, Any], encode(project))


def decode_project(data: dict[str, Any]) -> Project:
    return typing.cast(Project, decode(Project, data))
