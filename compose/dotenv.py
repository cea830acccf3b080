"""``.env`` and ``env_file`` parsing with docker compose v2 semantics (compose-go ``dotenv``).

Syntax, one statement after another:

* ``KEY=VALUE`` or ``KEY: VALUE``; an optional ``export `` prefix; blanks
  around the key and before the value are ignored.  Keys are letters, digits,
  ``_ . - [ ]``.
* ``KEY`` alone takes the value from the environment (or from a key defined
  earlier), and is skipped when there is none.
* ``#`` starts a comment at the start of a statement, and after an unquoted
  value when preceded by a space (``KEY=a #note`` is ``a``; ``KEY=a#b`` is ``a#b``).
* Unquoted values run to the end of the line and are trimmed on the right.
* ``'single'`` quotes are literal (only ``\\'`` is special) and are not interpolated.
* ``"double"`` quotes may span lines and understand ``\\n \\t \\r \\" \\\\ \\$``,
  ``\\a \\b \\f \\v`` and octal ``\\0NNN``.
* Unquoted and double-quoted values are interpolated (``${VAR:-x}`` ...);
  names resolve in the environment first, then among the keys defined earlier
  (in this file or, for :func:`read_env_files`, an earlier one).

One deliberate difference from compose-go: a key alone on the last line with
no newline after it is inherited like any other (compose-go reads it as a
value for an empty key), and an empty key (``=value``) is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from .errors import EnvFileError, InterpolationError
from .interpolation import Interpolator

__all__ = ["EnvFileSpec", "parse_dotenv", "read_env_files"]

FORMATS = (".env", "raw")

Warn = Callable[[str], None]

# Blanks that are not line breaks (compose-go's isSpace).
_BLANK = frozenset("\t\v\f\r \x85\xa0")
# Go's unicode.IsSpace (str.isspace would also take \x1c-\x1f).
_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPACE_SET = frozenset(_SPACE)
_KEY_PUNCT = frozenset("_.-[]")
_EXPORT = re.compile(r"export[\t\n\f\r ]+")
_ESCAPE = re.compile(r'\\(?:[abcfnrtv$"\\]|0[0-9]{0,3})')
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "c": "\\c",  # matched by the pattern but not an escape: kept as written
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    '"': '"',
    "\\": "\\",
    "$": "$$",  # a literal dollar for the interpolation that follows
}


def _unescape(match: re.Match[str]) -> str:
    text = match.group(0)
    c = text[1]
    if c != "0":
        return _SIMPLE_ESCAPES[c]
    digits = text[2:]
    if len(digits) == 3 and "8" not in digits and "9" not in digits:
        code = int(digits, 8)
        if code <= 0xFF:
            return chr(code)
    return "\\" + digits


def _skip_blanks(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in _BLANK:
        pos += 1
    return pos


class _Parser:
    def __init__(
        self,
        text: str,
        file: str,
        out: dict[str, str],
        lookup: Mapping[str, str],
        interpolator: Interpolator,
    ) -> None:
        if text.startswith("\ufeff"):
            text = text[1:]
        self.text = text
        self.file = file
        self.out = out
        self.lookup = lookup
        self.interpolator = interpolator

    def _line(self, pos: int) -> str:
        return f"line {self.text.count(chr(10), 0, pos) + 1}"

    def _error(self, pos: int, message: str) -> EnvFileError:
        return EnvFileError(self.file, self._line(pos), message)

    def _statement_start(self, pos: int) -> int:
        """Skip whitespace and comment lines; return len(text) at the end."""
        text = self.text
        n = len(text)
        while pos < n:
            c = text[pos]
            if c in _SPACE_SET:
                pos += 1
            elif c == "#":
                end = text.find("\n", pos)
                if end == -1:
                    return n
                pos = end
            else:
                return pos
        return n

    def parse(self) -> None:
        text = self.text
        n = len(text)
        pos = self._statement_start(0)
        while pos < n:
            start = pos
            m = _EXPORT.match(text, pos)
            if m is not None:
                pos = _skip_blanks(text, pos + len("export"))
            key_start = pos
            sep = ""
            while pos < n:
                c = text[pos]
                if c in "=:\n":
                    sep = c
                    break
                if not (c in _BLANK or c in _KEY_PUNCT or c.isalpha() or c.isnumeric()):
                    first_line = text[key_start:].split("\n", 1)[0]
                    raise self._error(
                        start,
                        f"unexpected character {c!r} in variable name {first_line!r}",
                    )
                pos += 1
            key = text[key_start:pos].rstrip(_SPACE)
            if any(ch in _SPACE_SET for ch in key):
                raise self._error(start, f"key cannot contain a space: {key!r}")
            if sep in ("\n", ""):
                # A key alone: inherit its value, or leave it out.
                value = self.lookup.get(key) if key else None
                if value is not None:
                    self.out[key] = value
                pos = self._statement_start(pos + 1)
                continue
            if not key:
                raise self._error(start, f"missing variable name before {sep!r}")
            pos = _skip_blanks(text, pos + 1)
            value, pos = self._value(pos, start)
            self.out[key] = value
            pos = self._statement_start(pos)

    def _interpolate(self, value: str, start: int) -> str:
        try:
            return self.interpolator.string(value)
        except InterpolationError as e:
            raise InterpolationError(self.file, self._line(start), e.message) from None

    def _value(self, pos: int, start: int) -> tuple[str, int]:
        text = self.text
        n = len(text)
        quote = text[pos] if pos < n else ""
        if quote not in ("'", '"'):
            end = text.find("\n", pos)
            if end == -1:
                end = n
            value = text[pos:end]
            comment = value.find(" #")
            if comment != -1:
                value = value[:comment]
            return self._interpolate(value.rstrip(_SPACE), start), end
        chars: list[str] = []
        escaped = False
        i = pos + 1
        while i < n:
            c = text[i]
            if c != quote:
                if not escaped and c == "\\":
                    escaped = True
                elif escaped:
                    escaped = False
                    chars.append("\\" + c)
                else:
                    chars.append(c)
                i += 1
                continue
            if escaped:  # an escaped quote of the same kind
                escaped = False
                chars.append(c)
                i += 1
                continue
            value = "".join(chars)
            if quote == '"':
                value = self._interpolate(_ESCAPE.sub(_unescape, value), start)
            return value, i + 1
        first_line = text[pos:].split("\n", 1)[0]
        raise self._error(start, f"unterminated quoted value {first_line}")


class _Lookup(Mapping[str, str]):
    """The environment first, then the keys read so far."""

    __slots__ = ("env", "out")

    def __init__(self, env: Mapping[str, str], out: Mapping[str, str]) -> None:
        self.env = env
        self.out = out

    def __getitem__(self, key: str) -> str:
        value = self.env.get(key)
        if value is None:
            return self.out[key]
        return value

    def __iter__(self) -> Iterator[str]:
        return iter({**self.out, **self.env})

    def __len__(self) -> int:
        return len({**self.out, **self.env})


def _parse_into(
    text: str,
    file: str,
    out: dict[str, str],
    env: Mapping[str, str],
    warn: Warn | None,
) -> None:
    # Variables resolve in the environment first, then among keys already read.
    lookup = _Lookup(env, out)
    _Parser(text, file, out, lookup, Interpolator(lookup, warn)).parse()


def _parse_raw_into(text: str, file: str, out: dict[str, str], env: Mapping[str, str]) -> None:
    """The ``raw`` format (``docker run --env-file``): ``KEY=VALUE`` lines taken as written."""
    if text.startswith("\ufeff"):
        text = text[1:]
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.lstrip(_SPACE)
        if not line or line.startswith("#"):
            continue
        key, has_value, value = line.partition("=")
        key = key.lstrip(_SPACE)
        if not key:
            raise EnvFileError(file, f"line {number}", "missing variable name before '='")
        if any(c in _SPACE_SET for c in key):
            raise EnvFileError(file, f"line {number}", f"variable {key!r} contains whitespace")
        if has_value:
            out[key] = value
        else:
            inherited = env.get(key)
            if inherited is not None:
                out[key] = inherited


def parse_dotenv(
    text: str,
    *,
    file: str,
    env: Mapping[str, str],
    warn: Warn | None = None,
    format: str = ".env",
) -> dict[str, str]:
    """Parse the text of one env file; ``file`` is used in error messages.

    ``format`` is ``.env`` (the syntax above) or ``raw`` (``KEY=VALUE`` lines
    taken literally, no quotes, comments only on their own line, no
    interpolation; what docker compose offers as ``env_file.format: raw``).
    Raises :class:`EnvFileError` (syntax) or :class:`InterpolationError`, both
    naming ``file`` and ``line N``.  ``warn`` receives unset-variable warnings.
    """
    out: dict[str, str] = {}
    _parse_format_into(text, file, out, env, warn, format)
    return out


def _parse_format_into(
    text: str,
    file: str,
    out: dict[str, str],
    env: Mapping[str, str],
    warn: Warn | None,
    format: str | None,
) -> None:
    if format is None or format == ".env":
        _parse_into(text, file, out, env, warn)
    elif format == "raw":
        _parse_raw_into(text, file, out, env)
    else:
        raise EnvFileError(file, None, f"unsupported env_file format {format!r}")


class EnvFileSpec(NamedTuple):
    """One ``env_file`` entry in its long form. (Named tuples, not dataclasses, on the
    CLI's start-up path: importing ``dataclasses`` costs some 8 ms there.)"""

    path: str | Path
    required: bool = True
    format: str | None = None


def read_env_files(
    paths: Sequence[str | Path | EnvFileSpec],
    env: Mapping[str, str],
    *,
    required: bool = True,
    warn: Warn | None = None,
) -> dict[str, str]:
    """Read several env files in order; a later file's keys override an earlier one's.

    Used for ``--env-file`` / the project ``.env`` and for a service's
    ``env_file``.  A plain path is required when ``required`` is true; an
    :class:`EnvFileSpec` carries its own ``required`` (a missing optional file
    is skipped) and ``format``.  Keys from earlier files are visible to
    interpolation in later ones, after ``env``.  Relative paths are taken as
    given (relative to the working directory): the caller resolves them.
    """
    out: dict[str, str] = {}
    for entry in paths:
        if isinstance(entry, EnvFileSpec):
            path, must_exist, format = entry.path, entry.required, entry.format
        else:
            path, must_exist, format = entry, required, None
        name = str(path)
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            if must_exist:
                raise EnvFileError(name, None, "env file not found") from None
            continue
        except IsADirectoryError:
            raise EnvFileError(name, None, "is a directory, not an env file") from None
        except OSError as e:
            raise EnvFileError(name, None, f"cannot read env file: {e.strerror}") from None
        except ValueError:  # a NUL byte in the path
            raise EnvFileError(repr(name), None, "invalid env file path") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise EnvFileError(name, f"line {line}", "not valid UTF-8 text") from None
        _parse_format_into(text, name, out, env, warn, format)
    return out
