"""Dockerfile parsing: lines → instructions, and variable substitution.

``parse(text, name)`` handles the parser directives (``# escape=``; ``#
syntax=`` is accepted and ignored), comments, line continuations (also with
comment and empty lines in between, as BuildKit), here-documents for ``RUN``,
``COPY`` and ``ADD`` (``RUN <<EOF`` … ``EOF``, ``<<-`` strips leading tabs, a
quoted name such as ``<<"EOF"`` marks a body that is not expanded), JSON (exec)
form, and ``--flag=value`` options (a flag may repeat, as ``RUN --mount``; a
value may be quoted). Errors name the file and line.

``substitute(text, env)`` expands ``$VAR``, ``${VAR}``, ``${VAR:-word}``,
``${VAR-word}``, ``${VAR:+word}``, ``${VAR+word}``; ``\\$`` is a literal dollar.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from pycompose.runtime.build.errors import DockerfileError

KNOWN = frozenset({
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
# ``<<EOF``, ``<<-EOF``, ``<<"EOF"``; names may hold dots (``COPY <<robots.txt /srv/``);
# not a here-string (``<<<``) nor a shift (``1<<2``: a name starts with a letter).
_HEREDOC = re.compile(r"(?<!<)<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_.-]*)\2(?![<A-Za-z0-9_.-])")
_FLAG = re.compile(r"^--([a-z][a-z0-9-]*)(?:=(.*))?$", re.S)


@dataclass(frozen=True)
class Instruction:
    line: int                 # 1-based line of the keyword
    keyword: str              # upper case
    args: str                 # the text after the keyword and the flags
    flags: Mapping[str, str] = field(default_factory=dict)  # the last value of each flag
    exec_form: tuple[str, ...] | None = None  # JSON array form
    heredocs: tuple[tuple[str, str], ...] = ()  # (name, body)
    original: str = ""        # as written (continuations joined), for messages and history
    flag_list: tuple[tuple[str, str], ...] = ()  # every flag in order (``--mount`` repeats)
    heredoc_quoted: tuple[bool, ...] = ()  # per here-document: a quoted name (no expansion)

    def where(self, name: str) -> str:
        return f"{name}:{self.line}"

    def flag_values(self, flag: str) -> list[str]:
        """Every value given for ``--flag``, in order."""
        return [value for key, value in self.flag_list if key == flag]


def parse(text: str, name: str = "Dockerfile") -> list[Instruction]:
    lines = text.splitlines()
    escape = "\\"
    index = 0
    # Parser directives: only at the very top, before any comment/instruction.
    while index < len(lines):
        m = _DIRECTIVE.match(lines[index].strip())
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(f"{name}:{index + 1}: invalid escape {value!r}")
            escape = value
        elif key not in ("syntax", "check"):
            break
        index += 1
    out: list[Instruction] = []
    while index < len(lines):
        raw = lines[index]
        stripped = raw.strip()
        start = index
        index += 1
        if not stripped or stripped.startswith("#"):
            continue
        parts = [stripped]
        while _continues(parts[-1], escape):
            parts[-1] = parts[-1].rstrip()[:-1]
            while index < len(lines) and (not lines[index].strip()
                                          or lines[index].strip().startswith("#")):
                index += 1
            if index >= len(lines):
                break
            parts.append(lines[index].strip() if not parts[-1].endswith(" ")
                         else lines[index].strip())
            index += 1
        logical = " ".join(p.strip() for p in parts if p.strip()) if len(parts) > 1 \
            else parts[0]
        keyword, _, rest = logical.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword not in KNOWN:
            raise DockerfileError(f"{name}:{start + 1}: unknown instruction: {keyword}")
        flag_list, rest = _flags(rest, keyword, name, start + 1)
        heredocs: list[tuple[str, str]] = []
        quoted: list[bool] = []
        if keyword in ("RUN", "COPY", "ADD") and "<<" in rest:
            for m in _HEREDOC.finditer(rest):
                strip_tabs, word = m.group(1) == "-", m.group(3)
                body: list[str] = []
                while index < len(lines) and lines[index].rstrip("\n") != word \
                        and not (strip_tabs and lines[index].lstrip("\t") == word):
                    body.append(lines[index].lstrip("\t") if strip_tabs else lines[index])
                    index += 1
                if index >= len(lines):
                    raise DockerfileError(f"{name}:{start + 1}: here-document {word!r} "
                                          "is not terminated")
                index += 1
                heredocs.append((word, "\n".join(body) + "\n"))
                quoted.append(bool(m.group(2)))
        exec_form = None
        if keyword in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "VOLUME", "COPY", "ADD") \
                and rest.startswith("["):
            try:
                value = json.loads(rest)
            except ValueError:
                value = None
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                exec_form = tuple(value)
        out.append(Instruction(start + 1, keyword, rest, dict(flag_list), exec_form,
                               tuple(heredocs), logical, tuple(flag_list), tuple(quoted)))
    return out


def _continues(line: str, escape: str) -> bool:
    return line.rstrip().endswith(escape) and not line.rstrip().endswith(escape * 2)


def _flags(rest: str, keyword: str, name: str, line: int
           ) -> tuple[list[tuple[str, str]], str]:
    """The leading ``--flag[=value]`` words (a value may hold quoted spaces, as
    ``--mount=type=bind,source="a b"``; the quotes stay for the flag's own parser)."""
    flags: list[tuple[str, str]] = []
    while rest.startswith("--"):
        word, remainder = _first_word(rest)
        m = _FLAG.match(word)
        if not m:
            raise DockerfileError(f"{name}:{line}: {keyword}: invalid flag {word!r}")
        flags.append((m.group(1), m.group(2) if m.group(2) is not None else "true"))
        rest = remainder.strip()
    return flags, rest


def _first_word(text: str) -> tuple[str, str]:
    """Split off the first whitespace-separated word, where quotes keep spaces."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch.isspace():
            return text[:i], text[i + 1:]
    return text, ""


_VAR = re.compile(r"\\\$|\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|"
                  r"([A-Za-z_][A-Za-z0-9_]*))")


def substitute(text: str, env: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "\\$":
            return "$"
        name = m.group(1) or m.group(4)
        op, word = m.group(2), m.group(3) or ""
        value = env.get(name)
        if op is None:
            return value or ""
        if op == ":-":
            return value if value else substitute(word, env)
        if op == "-":
            return value if value is not None else substitute(word, env)
        if op == ":+":
            return substitute(word, env) if value else ""
        return substitute(word, env) if value is not None else ""  # "+"

    return _VAR.sub(repl, text)


def split_words(text: str, where: str) -> list[str]:
    """Shell-like words (quotes removed) for ENV/LABEL/ARG/EXPOSE/VOLUME/COPY arguments."""
    try:
        return shlex.split(text, posix=True)
    except ValueError as exc:
        raise DockerfileError(f"{where}: {exc}") from None


def key_values(text: str, where: str, *, legacy: bool) -> list[tuple[str, str]]:
    """``K=V K2="v 2"`` pairs; with ``legacy`` also ``K value with spaces``."""
    words = split_words(text, where)
    if not words:
        raise DockerfileError(f"{where}: expected KEY=VALUE")
    if "=" not in words[0]:
        if not legacy:
            raise DockerfileError(f"{where}: expected KEY=VALUE, got {words[0]!r}")
        key, _, value = text.strip().partition(" ")
        if not value.strip():
            raise DockerfileError(f"{where}: {key} needs a value")
        return [(key, " ".join(split_words(value, where)))]
    out = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise DockerfileError(f"{where}: expected KEY=VALUE, got {word!r}")
        out.append((key, value))
    return out
