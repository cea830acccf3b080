"""Durations (``1m30s``, ``500ms``) and byte sizes (``512m``, ``1g``) as Compose writes them."""

from __future__ import annotations

import re

__all__ = ["format_bytes", "format_duration", "parse_bytes", "parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)?\s*$", re.IGNORECASE)
_BYTE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_duration(value: object) -> float:
    """``"1m30s"`` -> 90.0 seconds. A bare number is seconds. Raises ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}")
    text = value.strip()
    sign = 1.0
    if text.startswith(("-", "+")):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            raise ValueError(f'invalid duration "{value}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text or sign < 0:
        raise ValueError(f'invalid duration "{value}"')
    return total


def format_duration(seconds: float) -> str:
    """90.0 -> ``"1m30s"`` (the Go ``time.Duration`` spelling docker compose prints)."""
    if seconds == 0:
        return "0s"
    ns = round(seconds * 1e9)
    if ns < 1_000_000_000:
        for unit, scale in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= scale:
                return f"{_trim(ns / scale)}{unit}"
    h, rest = divmod(ns, 3_600_000_000_000)
    m, rest = divmod(rest, 60_000_000_000)
    s = rest / 1e9
    out = ""
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    return out + f"{_trim(s)}s"


def _trim(x: float) -> str:
    text = f"{x:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def parse_bytes(value: object) -> int:
    """``"512m"`` -> 536870912; a bare number is bytes. Raises ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value!r}")
        return value
    if isinstance(value, float):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid size {value!r}")
    m = _BYTES.match(value)
    if not m:
        raise ValueError(f'invalid size "{value}"')
    return int(float(m.group(1)) * _BYTE_UNITS[m.group(2).lower()])


def format_bytes(size: int) -> str:
    """536870912 -> ``"512m"`` (largest exact unit)."""
    for unit in ("p", "t", "g", "m", "k"):
        scale = _BYTE_UNITS[unit]
        if size and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)
