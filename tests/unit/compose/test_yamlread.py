"""Stage 1: YAML reading (scalars, tags, anchors, duplicate keys)."""

from __future__ import annotations

import pytest

from pycompose.compose.yamlread import RESET, OverrideList, OverrideMapping, YamlError, read_yaml


def one(text: str) -> object:
    docs = read_yaml(text, file="c.yaml")
    assert len(docs) == 1
    return docs[0]


@pytest.mark.parametrize(("text", "value"), [
    ("yes", "yes"), ("on", "on"), ("no", "no"), ("true", True), ("False", False),
    ("22:22", "22:22"), ("0440", 0o440), ("0o17", 15), ("0x1f", 31), ("12", 12),
    ("1.5", 1.5), ("~", None), ("null", None), ("2026-01-01", "2026-01-01"), (".", "."),
    ("-3", -3), ("1e3", 1000.0), ("08", 8),
])
def test_scalars_follow_yaml_1_2_core(text: str, value: object) -> None:
    assert one(f"k: {text}") == {"k": value}


def test_empty_value_is_null() -> None:
    assert one("k:\n") == {"k": None}


def test_anchors_and_merge_keys() -> None:
    doc = one("a: &x {p: 1, q: 2}\nb:\n  <<: *x\n  q: 3\n")
    assert doc == {"a": {"p": 1, "q": 2}, "b": {"p": 1, "q": 3}}


def test_merge_key_list() -> None:
    doc = one("a: &a {p: 1}\nb: &b {q: 2}\nc:\n  <<: [*a, *b]\n")
    assert doc["c"] == {"p": 1, "q": 2}


def test_duplicate_key_names_both_lines() -> None:
    with pytest.raises(YamlError) as info:
        read_yaml("a: 1\nb: 2\na: 3\n", file="c.yaml")
    assert str(info.value) == "c.yaml: line 3: duplicate key 'a' (first defined on line 1)"


def test_duplicate_nested_key() -> None:
    with pytest.raises(YamlError, match="line 4: duplicate key 'image'"):
        read_yaml("services:\n  web:\n    image: a\n    image: b\n", file="c.yaml")


def test_merge_key_may_be_overridden_without_error() -> None:
    assert one("a: &x {p: 1}\nb:\n  <<: *x\n  p: 2\n")["b"] == {"p": 2}  # type: ignore[index]


def test_reset_tag() -> None:
    assert one("a: !reset null\nb: !reset []\n") == {"a": RESET, "b": RESET}


def test_override_tag_keeps_container_types() -> None:
    doc = one("a: !override [1, 2]\nb: !override {x: 1}\nc: !override s\n")
    assert isinstance(doc["a"], OverrideList)
    assert doc["a"] == [1, 2]
    assert isinstance(doc["b"], OverrideMapping)
    assert doc["b"] == {"x": 1}
    assert doc["c"] == "s"  # type: ignore[index]


def test_syntax_error_names_line_and_column() -> None:
    with pytest.raises(YamlError) as info:
        read_yaml("a: [1\n", file="c.yaml")
    assert str(info.value).startswith("c.yaml: line 2, column 1:")


def test_several_documents() -> None:
    assert read_yaml("a: 1\n---\nb: 2\n") == [{"a": 1}, {"b": 2}]


def test_empty_text() -> None:
    assert read_yaml("") == []
