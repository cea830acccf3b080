"""Interpolation follows docker compose v2 (compose-go ``template``) semantics."""

from __future__ import annotations

from typing import Any

import pytest

from pycompose.compose.errors import ComposeFileError, InterpolationError
from pycompose.compose.interpolation import Interpolator, interpolate, interpolate_string

ENV = {"FOO": "first", "BAR": "", "JSON": '{"json":2}', "PORT": "8080", "lower_case": "lc"}

SUBSTITUTIONS = [
    # plain text and literal dollars
    ("foo", "foo"),
    ("", ""),
    ("a $ string", "a $ string"),
    ("^REGEX$", "^REGEX$"),
    ("$}", "$}"),
    ("$", "$"),
    ("$1abc", "$1abc"),
    ("cost: 5$ each", "cost: 5$ each"),
    # escapes
    ("$$", "$"),
    ("$${foo}", "${foo}"),
    ("$$FOO", "$FOO"),
    ("$$$FOO", "$first"),
    ("$$$$", "$$"),
    ("$${EMPTY:-not-interpolated}", "${EMPTY:-not-interpolated}"),
    # plain references
    ("$FOO", "first"),
    ("${FOO}", "first"),
    ("$FOO-bar", "first-bar"),
    ("${FOO}bar", "firstbar"),
    ("$FOObar", ""),
    ("pre-$BAR-post", "pre--post"),
    ("${JSON}", '{"json":2}'),
    ("${lower_case}", "lc"),
    ("$lower_case", "lc"),
    ("${_UNSET_9}", ""),
    ("${PORT}:80", "8080:80"),
    ("a${FOO}b${FOO}c$FOO", "afirstbfirstcfirst"),
    # defaults
    ("ok ${BAR:-def}", "ok def"),
    ("ok ${FOO:-def}", "ok first"),
    ("ok ${BAR-def}", "ok "),
    ("ok ${UNSET-def}", "ok def"),
    ("ok ${UNSET:-def}", "ok def"),
    ("ok ${BAR:-/non:-alphanumeric}", "ok /non:-alphanumeric"),
    ("${UNSET-myerror?msg}", "myerror?msg"),
    ("${UNSET:-}", ""),
    ("${UNSET:-}}", "}"),
    ("${UNSET:-a b c}", "a b c"),
    ("${UNSET:-{x}}", "{x}"),
    ("${UNSET:-$$}", "$"),
    ("busybox:${TAG-1.36}", "busybox:1.36"),
    # alternatives
    ("ok ${UNSET:+presence}", "ok "),
    ("ok ${UNSET+presence}", "ok "),
    ("ok ${FOO:+presence}", "ok presence"),
    ("ok ${FOO+presence}", "ok presence"),
    ("ok ${BAR+presence}", "ok presence"),
    ("ok ${BAR:+presence}", "ok "),
    ("${UNSET:+${UNSET},}B", "B"),
    ("${FOO:+${FOO},}B", "first,B"),
    # required, satisfied
    ("ok ${FOO:?err}", "ok first"),
    ("ok ${FOO?err}", "ok first"),
    ("ok ${BAR?err}", "ok "),
    ("${FOO?bar-baz}", "first"),
    # nesting
    ("${UNSET:-${FOO:-x}}", "first"),
    ("${UNSET:-${UNSET2:-x}}", "x"),
    ("${UNSET:-${UNSET2:-${UNSET3:-deep}}}", "deep"),
    ("ok ${UNSET-$FOO}", "ok first"),
    ("ok ${UNSET-${FOO}}", "ok first"),
    ("ok ${UNSET-${FOO} ${FOO}}", "ok first first"),
    ("ok ${BAR:-${FOO} ${FOO}}", "ok first first"),
    ("ok ${BAR+$FOO ${FOO:+second}}", "ok first second"),
    ("+ok ${UNSET:-${BAR-defaultValue}}", "+ok "),
    ("ok ${SUBDOMAIN:-redis}.${FOO:?}", "ok redis.first"),
    ("${UNSET:-a}-${UNSET:-b}", "a-b"),
    ("${FOO:-a}${FOO:-b}x$FOO", "firstfirstxfirst"),
    # the value of a set variable is not evaluated again, nor its unused default
    ("${FOO:-${}}", "first"),
    ("${JSON:-x}", '{"json":2}'),
    # operators in surrounding text are plain text
    (":-ok ${UNSET-defaultValue}", ":-ok defaultValue"),
    (":?ok ${BAR-defaultValue}", ":?ok "),
    ("?ok ${BAR:-defaultValue}", "?ok defaultValue"),
    # an expression does not span lines
    ("${UNSET:-a}\n${FOO}", "a\nfirst"),
]


@pytest.mark.parametrize(("template", "expected"), SUBSTITUTIONS)
def test_substitution(template: str, expected: str) -> None:
    assert interpolate_string(template, ENV) == expected


INVALID = [
    "${",
    "${}",
    "${ }",
    "${ foo}",
    "${foo }",
    "${foo!}",
    "${1abc}",
    "${FOO",
    "ok ${FOO} ${",
    "${UNSET:-${}}",
    "${UNSET:-${BAR}",
    "${FOO:}",
    "${FOO\n}",
]


@pytest.mark.parametrize("template", INVALID)
def test_invalid_syntax(template: str) -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate_string(template, ENV, file="compose.yaml", path="services.web.image")
    err = info.value
    assert err.file == "compose.yaml"
    assert err.path == "services.web.image"
    assert "invalid interpolation format" in err.message
    assert "escape any $ with another $" in err.message
    assert str(err).startswith("compose.yaml: services.web.image: invalid interpolation format")


REQUIRED = [
    (
        "not ok ${UNSET:?Mandatory Variable Unset}",
        "required variable UNSET is not set: Mandatory Variable Unset",
    ),
    (
        "not ok ${BAR:?Mandatory Variable Empty}",
        "required variable BAR is empty: Mandatory Variable Empty",
    ),
    ("not ok ${UNSET:?}", "required variable UNSET is not set"),
    (
        "not ok ${UNSET?Mandatory Variable Unset}",
        "required variable UNSET is not set: Mandatory Variable Unset",
    ),
    ("not ok ${UNSET?}", "required variable UNSET is not set"),
    ("${UNSET?bar-baz}", "required variable UNSET is not set: bar-baz"),
    ("not ok ${UNSET:?Mandatory ${FOO}}", "required variable UNSET is not set: Mandatory first"),
    ("not ok ${UNSET?Mandatory ${FOO}}", "required variable UNSET is not set: Mandatory first"),
    ("${UNSET:-${UNSET2:?inner}}", "required variable UNSET2 is not set: inner"),
    ("ok ${FOO} then ${UNSET:?late}", "required variable UNSET is not set: late"),
]


@pytest.mark.parametrize(("template", "message"), REQUIRED)
def test_required(template: str, message: str) -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate_string(template, ENV, file="f.yaml", path="x")
    assert info.value.message == message
    assert str(info.value) == f"f.yaml: x: {message}"


def test_required_error_not_raised_when_default_unused() -> None:
    assert interpolate_string("${FOO:-${UNSET:?never}}", ENV) == "first"


def test_warns_once_per_unset_name() -> None:
    warnings: list[str] = []
    doc = {"a": "$UNSET", "b": ["${UNSET}", "${OTHER}", "${UNSET:-x}", "${NOPE-y}", "${NOPE2+z}"]}
    out = interpolate(doc, ENV, warn=warnings.append)
    assert out == {"a": "", "b": ["", "", "x", "y", ""]}
    assert warnings == [
        'The "UNSET" variable is not set. Defaulting to a blank string.',
        'The "OTHER" variable is not set. Defaulting to a blank string.',
    ]


def test_no_warning_for_unused_nested_reference() -> None:
    warnings: list[str] = []
    assert interpolate_string("${UNSET:+${UNSET},}B", ENV, warn=warnings.append) == "B"
    assert warnings == []
    assert interpolate_string("${UNSET:-${NESTED}}", ENV, warn=warnings.append) == ""
    assert warnings == ['The "NESTED" variable is not set. Defaulting to a blank string.']


def test_interpolator_shares_warnings_across_calls() -> None:
    warnings: list[str] = []
    interp = Interpolator(ENV, warnings.append)
    interp.string("$X")
    interp.document({"k": ["$X", "$Y"]})
    assert len(warnings) == 2


def test_empty_string_is_set() -> None:
    """An empty value is set: ``-`` keeps it, ``:-`` replaces it (kit-interpolation-no-colon)."""
    env = {"EMPTY": ""}
    doc = {
        "image": "busybox:${TAG-1.36}",
        "environment": {
            "DASH_EMPTY": "${EMPTY-fallback}",
            "COLON_DASH_EMPTY": "${EMPTY:-fallback}",
            "DASH_UNSET": "${UNSET-fallback}",
            "COLON_DASH_UNSET": "${UNSET:-fallback}",
            "QUESTION_EMPTY": "${EMPTY?EMPTY must be defined}",
            "LITERAL": "$${EMPTY:-not-interpolated}",
            "BARE": "pre-$EMPTY-post",
        },
    }
    assert interpolate(doc, env) == {
        "image": "busybox:1.36",
        "environment": {
            "DASH_EMPTY": "",
            "COLON_DASH_EMPTY": "fallback",
            "DASH_UNSET": "fallback",
            "COLON_DASH_UNSET": "fallback",
            "QUESTION_EMPTY": "",
            "LITERAL": "${EMPTY:-not-interpolated}",
            "BARE": "pre--post",
        },
    }


def test_required_colon_empty_names_the_path() -> None:
    """kit-required-colon-empty."""
    doc = {"services": {"app": {"environment": {"TOKEN": "${EMPTY:?EMPTY must be non-empty}"}}}}
    with pytest.raises(InterpolationError) as info:
        interpolate(doc, {"EMPTY": ""}, file="compose.yaml")
    assert str(info.value) == (
        "compose.yaml: services.app.environment.TOKEN: "
        "required variable EMPTY is empty: EMPTY must be non-empty"
    )


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"services": {"web": {"image": "${FOO"}}}, "services.web.image"),
        (
            {"services": {"web": {"environment": ["A=1", "B=2", "C=${"]}}},
            "services.web.environment[2]",
        ),
        (
            {"services": {"web": {"ports": [{"target": 80, "published": "${"}]}}},
            "services.web.ports[0].published",
        ),
        ({"x": [[["ok", "${"]]]}, "x[0][0][1]"),
        (["${"], "[0]"),
    ],
)
def test_error_path_uses_list_indexes(doc: Any, path: str) -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate(doc, ENV, file="compose.yaml")
    assert info.value.path == path
    assert info.value.file == "compose.yaml"
    assert isinstance(info.value, ComposeFileError)


def test_keys_and_non_strings_untouched() -> None:
    marker = object()
    doc = {"$FOO": {"${BAR:-k}": "$FOO"}, 1: 2, "n": None, "b": True, "f": 1.5, "o": marker}
    out = interpolate(doc, ENV)
    assert out == {
        "$FOO": {"${BAR:-k}": "first"},
        1: 2,
        "n": None,
        "b": True,
        "f": 1.5,
        "o": marker,
    }
    assert out["o"] is marker


def test_returns_new_document_and_leaves_input_alone() -> None:
    doc = {"a": ["$FOO", {"b": "$FOO"}], "c": {}}
    out = interpolate(doc, ENV)
    assert doc == {"a": ["$FOO", {"b": "$FOO"}], "c": {}}
    assert out is not doc
    assert out["a"] is not doc["a"]
    assert out["c"] is not doc["c"]


class Override(dict):  # type: ignore[type-arg]
    """Like the loader's marker for ``!override`` values."""


class Reset(list):  # type: ignore[type-arg]
    tag = "!reset"


def test_container_subclasses_preserved() -> None:
    doc = {"services": Override(web=Override(image="$FOO")), "ports": Reset(["${PORT}:80"])}
    doc["ports"].extra = "kept"  # type: ignore[attr-defined]
    out = interpolate(doc, ENV)
    assert type(out["services"]) is Override
    assert type(out["services"]["web"]) is Override
    assert out["services"]["web"]["image"] == "first"
    assert type(out["ports"]) is Reset
    assert out["ports"] == ["8080:80"]
    assert out["ports"].extra == "kept"
    assert doc["services"]["web"]["image"] == "$FOO"
    assert doc["ports"] == ["${PORT}:80"]


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    template = "${U:-" * 5000 + "x" + "}" * 5000
    with pytest.raises(InterpolationError):
        interpolate_string(template, {})


def test_many_expressions_in_one_string() -> None:
    template = "${UNSET:-a}" * 5000
    assert interpolate_string(template, {}) == "a" * 5000


def test_aliases_are_interpolated_once() -> None:
    """Nested YAML aliases ("billion laughs") cost their size, not 9**9 walks."""
    import yaml

    text = 'a0: &a0 ["${X}", "x", "x", "x", "x", "x", "x", "x", "x"]\n' + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
    )
    doc = yaml.safe_load(text)
    out = interpolate(doc, {"X": "y"})
    leaf = out["a9"]
    for _ in range(9):
        leaf = leaf[8]
    assert leaf[0] == "y"
    assert doc["a0"][0] == "${X}"


def test_recursive_document_stays_recursive() -> None:
    import yaml

    doc = yaml.safe_load("a: &a [$X, *a]\n")
    out = interpolate(doc, {"X": "1"})
    assert out["a"][0] == "1"
    assert out["a"][1] is out["a"]
