"""Variable interpolation in Compose documents (``$VAR``, ``${VAR:-default}``, ``$$`` ...).

The semantics follow docker compose v2 (compose-go's ``template`` package):

* ``$NAME`` and ``${NAME}``: the value, or "" with a warning when unset.
  Names are ``[_a-zA-Z][_a-zA-Z0-9]*``; a ``$`` followed by anything else
  (a digit, a space, the end) is kept literally, except ``${`` which must
  start a valid expression.
* ``${NAME:-x}`` / ``${NAME-x}``: ``x`` when unset or empty / only when unset.
* ``${NAME:+x}`` / ``${NAME+x}``: ``x`` when set and non-empty / when set, else the value.
* ``${NAME:?msg}`` / ``${NAME?msg}``: an error with ``msg`` when unset or empty / unset.
* ``$$``: a literal ``$``.
* The text after an operator may itself contain expressions (``${A:-${B:-x}}``);
  it is interpolated only when used.  The expression ends at the first ``}``
  that balances the opening brace; one expression never spans lines.

Two entry points: :func:`interpolate` walks a whole document (string values
only; mapping keys, numbers, booleans and unknown objects pass through, and
``dict``/``list`` subclasses come back as the same subclass), and
:func:`interpolate_string` does one string.  An :class:`Interpolator` keeps the
set of variables already warned about, so that a caller that interpolates
several files (or a file and its ``.env``) warns once per name.

Everything here is pure: the environment is an explicit mapping.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import InterpolationError

__all__ = ["Interpolator", "interpolate", "interpolate_string"]

Warn = Callable[[str], None]

# One expression at a ``$``: ``$$``, ``$NAME``, ``${NAME}`` / ``${NAME<op>...}``
# (greedy to the last ``}`` of the line; the balanced end is found afterwards),
# or ``${`` followed by anything else, which is an error.  Matching the
# operator right after the name is equivalent to compose-go's "earliest
# separator in the match" rule, because a name contains no operator character.
_EXPRESSION = re.compile(
    r"\$(?:"
    r"(?P<escaped>\$)"
    r"|(?P<named>[_a-zA-Z][_a-zA-Z0-9]*)"
    r"|\{(?:(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)(?P<op>:?[-+?].*)?\}"
    r"|(?P<invalid>))"
    r")"
)

_UNSET_WARNING = 'The "{name}" variable is not set. Defaulting to a blank string.'


class _TemplateError(Exception):
    """Raised inside the substitution; becomes an InterpolationError with a path."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.parts: list[str | int] = []


def _balanced_end(text: str) -> int:
    """Index of the ``}`` closing the ``${`` at the start of ``text``, or -1.

    Like compose-go, the character right after each ``{`` is skipped.
    """
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "}":
            depth -= 1
            if depth == 0:
                return i
        elif c == "{":
            depth += 1
            i += 1
        i += 1
    return -1


def _format_path(parts: list[str | int]) -> str:
    out: list[str] = []
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif out:
            out.append(f".{part}")
        else:
            out.append(str(part))
    return "".join(out)


def _invalid(template: str) -> _TemplateError:
    import json  # only for this message; keeps start-up lean

    return _TemplateError(
        f"invalid interpolation format {json.dumps(template, ensure_ascii=False)}. "
        "You may need to escape any $ with another $."
    )


class Interpolator:
    """Interpolates strings and documents against one environment.

    ``warn`` receives one message per unset variable name over the life of
    the object (``The "X" variable is not set. Defaulting to a blank string.``).
    """

    __slots__ = ("env", "warn", "warned")

    def __init__(self, env: Mapping[str, str], warn: Warn | None = None) -> None:
        self.env = env
        self.warn = warn
        self.warned: set[str] = set()

    # -- strings ---------------------------------------------------------

    def _lookup(self, name: str) -> str:
        value = self.env.get(name)
        if value is None:
            if name not in self.warned:
                self.warned.add(name)
                if self.warn is not None:
                    self.warn(_UNSET_WARNING.format(name=name))
            return ""
        return value

    def _substitute(self, template: str) -> str:
        if "$" not in template:
            return template
        env = self.env
        search = _EXPRESSION.search
        out: list[str] = []
        pos = 0
        while True:
            m = search(template, pos)
            if m is None:
                break
            out.append(template[pos : m.start()])
            pos = m.end()
            if m.group("escaped") is not None:
                out.append("$")
                continue
            named = m.group("named")
            if named is not None:
                out.append(self._lookup(named))
                continue
            name = m.group("name")
            if name is None:
                raise _invalid(template)
            op_and_arg = m.group("op")
            if op_and_arg is None:
                out.append(self._lookup(name))
                continue
            # The match ran to the last "}" of the line; the expression ends at
            # the balancing one, and scanning resumes right after it.
            start = m.start()
            end = _balanced_end(template[start : m.end()])
            if end == -1:
                body = op_and_arg
            else:
                body = template[start + 2 + len(name) : start + end]
                pos = start + end + 1
            if body[0] == ":":
                op, arg, strict = body[1], body[2:], True
            else:
                op, arg, strict = body[0], body[1:], False
            value = env.get(name)
            if op == "-":
                if value is None or (strict and value == ""):
                    value = self._substitute(arg)
            elif op == "+":
                if value is not None and (not strict or value != ""):
                    value = self._substitute(arg)
                elif value is None:
                    value = ""
            else:  # "?"
                if value is None or (strict and value == ""):
                    reason = self._substitute(arg)
                    state = "is not set" if value is None else "is empty"
                    message = f"required variable {name} {state}"
                    raise _TemplateError(f"{message}: {reason}" if reason else message)
            out.append(value)
        if pos == 0:
            return template
        out.append(template[pos:])
        return "".join(out)

    def string(
        self,
        value: str,
        *,
        file: str | None = None,
        path: str | None = None,
    ) -> str:
        """Interpolate one string; errors are reported at ``file``/``path``."""
        try:
            return self._substitute(value)
        except _TemplateError as e:
            raise InterpolationError(file, path, e.message) from None
        except RecursionError:
            raise InterpolationError(file, path, "interpolation nested too deeply") from None

    # -- documents -------------------------------------------------------

    def _walk(self, value: Any, memo: dict[int, Any]) -> Any:
        if isinstance(value, str):
            return self._substitute(value)
        if not isinstance(value, (dict, list)):
            return value
        # A YAML alias is the same object reached twice: interpolate it once,
        # so that nested aliases ("billion laughs") cost their size, not 2**n.
        done = memo.get(id(value))
        if done is not None:
            return done
        out: Any
        if isinstance(value, dict):
            out = {} if type(value) is dict else copy.copy(value)
            memo[id(value)] = out  # before the children: a recursive value stays recursive
            for key, item in value.items():
                try:
                    out[key] = self._walk(item, memo)
                except _TemplateError as e:
                    e.parts.append(key)
                    raise
            return out
        out = [] if type(value) is list else copy.copy(value)
        out.clear()
        memo[id(value)] = out
        for index, item in enumerate(value):
            try:
                out.append(self._walk(item, memo))
            except _TemplateError as e:
                e.parts.append(index)
                raise
        return out

    def document(self, doc: Any, *, file: str | None = None) -> Any:
        """Return a copy of ``doc`` with every string value interpolated."""
        try:
            return self._walk(doc, {})
        except _TemplateError as e:
            raise InterpolationError(file, _format_path(e.parts[::-1]) or None, e.message) from None
        except RecursionError:
            raise InterpolationError(
                file, None, "document or interpolation nested too deeply"
            ) from None


def interpolate(
    doc: Any,
    env: Mapping[str, str],
    *,
    file: str | None = None,
    warn: Warn | None = None,
) -> Any:
    """Return a copy of ``doc`` with ``$VAR`` expressions in string values replaced.

    Raises :class:`InterpolationError` naming ``file`` and the key path
    (``services.web.environment[2]``) for invalid syntax or a missing required
    variable.  ``warn`` is called once per unset variable name.
    """
    return Interpolator(env, warn).document(doc, file=file)


def interpolate_string(
    value: str,
    env: Mapping[str, str],
    *,
    file: str | None = None,
    path: str | None = None,
    warn: Warn | None = None,
) -> str:
    """Interpolate one string against ``env`` (see :func:`interpolate`)."""
    return Interpolator(env, warn).string(value, file=file, path=path)
