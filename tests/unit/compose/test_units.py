"""Durations and byte sizes."""

from __future__ import annotations

import pytest

from pycompose.compose.units import format_bytes, format_duration, parse_bytes, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("1m30s", 90.0), ("500ms", 0.5), ("10s", 10.0), ("1h", 3600.0), ("1.5s", 1.5),
    ("2h45m", 9900.0), ("0", 0.0), (30, 30.0), ("100us", 1e-4), ("1m0.5s", 60.5),
])
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1x", "s", "-1s", "1m 30s", True, [1]])
def test_bad_duration(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [
    (90.0, "1m30s"), (0.5, "500ms"), (10.0, "10s"), (3600.0, "1h0m0s"), (0, "0s"),
    (1.5, "1.5s"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "size"), [
    ("512m", 512 << 20), ("1g", 1 << 30), ("1G", 1 << 30), ("100", 100), (100, 100),
    ("1kb", 1024), ("1.5g", int(1.5 * (1 << 30))), ("2MiB", 2 << 20), ("10b", 10),
])
def test_parse_bytes(text: object, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize("text", ["", "abc", "1x", "-1", True])
def test_bad_bytes(text: object) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_bytes(text)


def test_format_bytes() -> None:
    assert format_bytes(512 << 20) == "512m"
    assert format_bytes(1000) == "1000"
