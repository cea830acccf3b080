"""Fuzzing ``interpolate`` and ``parse_dotenv`` directly.

* Any text either interpolates to a string or raises InterpolationError.
* A model: templates are generated together with the result docker compose
  gives for them (computed here from the documented semantics, not by the
  code under test), and the two must agree.
* Escaping every ``$`` as ``$$`` gives the text back unchanged.
* Any ``.env`` text parses to ``dict[str, str]`` or raises EnvFileError /
  InterpolationError; values written out quoted (or bare, when safe) parse
  back to themselves.

``PYCOMPOSE_FUZZ_EXAMPLES=N`` runs N examples per test instead of the default.
"""

# Fuzz tests check the error they caught, whichever it is: pytest.raises does not fit.
# ruff: noqa: PT017

from __future__ import annotations

import os
import string
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pycompose.compose.dotenv import parse_dotenv
from pycompose.compose.errors import EnvFileError, InterpolationError
from pycompose.compose.interpolation import interpolate, interpolate_string

EXAMPLES = int(os.environ.get("PYCOMPOSE_FUZZ_EXAMPLES", "0")) or None


def fuzz_settings(default_examples: int) -> settings:
    return settings(
        max_examples=EXAMPLES or default_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=EXAMPLES is None,
        database=None,
    )


ENV = {"SET": "value", "EMPTY": "", "DOLLAR": "$X ${Y}", "A_1": "a1"}
NAMES = st.sampled_from(["SET", "EMPTY", "UNSET", "DOLLAR", "A_1", "u_n_s_e_t"])
ANY_TEXT = st.text(alphabet=string.ascii_letters[:4] + "_0$${}:-+?!. \n\\é", max_size=40)


# -- any text ---------------------------------------------------------------------


@fuzz_settings(500)
@given(st.one_of(ANY_TEXT, st.text(max_size=60)))
def test_any_text_interpolates_or_fails_cleanly(text: str) -> None:
    try:
        out = interpolate_string(text, ENV, file="f", path="p")
    except InterpolationError as e:
        assert (e.file, e.path) == ("f", "p")
        assert e.message
        return
    assert isinstance(out, str)
    if "$" not in text:
        assert out == text


@fuzz_settings(300)
@given(st.text(max_size=60))
def test_escaped_text_comes_back_unchanged(text: str) -> None:
    assert interpolate_string(text.replace("$", "$$"), ENV) == text


# -- a model of the semantics -------------------------------------------------------

LITERAL = st.text(alphabet=string.ascii_letters[:3] + " .,:-+?/_#é", max_size=6)
# Text inside an operator's argument: no braces (they would change where the
# expression ends) and no line break (an expression never spans lines).
ARG_LITERAL = st.text(alphabet=string.ascii_letters[:3] + " .,:-+?/_#", max_size=6)


class Required(Exception):
    """The model says: a required variable is missing."""


@st.composite
def template(draw: st.DrawFn, depth: int = 0, in_arg: bool = False) -> tuple[str, Any]:
    """A template and a function env -> expected result (or raise Required)."""
    parts: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(0, 4 if depth == 0 else 2))):
        kind = draw(st.sampled_from(["lit", "escape", "bare", "braced", "op"]))
        if kind == "lit":
            text = draw(ARG_LITERAL if in_arg else LITERAL).replace("$", "")
            parts.append((text, lambda env, t=text: t))
        elif kind == "escape":
            parts.append(("$$", lambda env: "$"))
        elif kind == "bare":
            name = draw(NAMES)
            # A bare name ends at the first non-name character: add one.
            parts.append((f"${name}/", lambda env, n=name: env.get(n, "") + "/"))
        elif kind == "braced":
            name = draw(NAMES)
            parts.append((f"${{{name}}}", lambda env, n=name: env.get(n, "")))
        else:
            name = draw(NAMES)
            op = draw(st.sampled_from([":-", "-", ":+", "+", ":?", "?"]))
            if depth < 2:
                arg_text, arg_fn = draw(template(depth + 1, in_arg=True))
            else:
                arg = draw(ARG_LITERAL)
                arg_text, arg_fn = arg, (lambda env, a=arg: a)

            def evaluate(env: dict[str, str], n: str = name, o: str = op, f: Any = arg_fn) -> str:
                value = env.get(n)
                strict = o.startswith(":")
                missing = value is None or (strict and value == "")
                if o.endswith("-"):
                    return f(env) if missing else value  # type: ignore[no-any-return]
                if o.endswith("+"):
                    return "" if missing else f(env)  # type: ignore[no-any-return]
                if missing:
                    f(env)  # the message is evaluated (it may itself fail)
                    raise Required(n)
                return value  # type: ignore[return-value]

            parts.append((f"${{{name}{op}{arg_text}}}", evaluate))
    text = "".join(p for p, _ in parts)

    def run(env: dict[str, str]) -> str:
        return "".join(fn(env) for _, fn in parts)

    return text, run


@fuzz_settings(600)
@given(template(), st.dictionaries(NAMES, st.text(alphabet="ab$ {}", max_size=4), max_size=4))
def test_matches_the_model(case: tuple[str, Any], env: dict[str, str]) -> None:
    text, expected_fn = case
    try:
        expected = expected_fn(env)
    except Required as missing:
        try:
            interpolate_string(text, env)
        except InterpolationError as e:
            assert f"required variable {missing}" in e.message
            return
        raise AssertionError(f"{text!r} should fail: {missing} is required") from None
    assert interpolate_string(text, env) == expected, text


@fuzz_settings(200)
@given(
    st.recursive(
        st.one_of(st.none(), st.integers(), st.booleans(), ANY_TEXT),
        lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(ANY_TEXT, c, max_size=3)),
        max_leaves=15,
    )
)
def test_documents_keep_their_shape(doc: Any) -> None:
    try:
        out = interpolate(doc, ENV, file="compose.yaml")
    except InterpolationError as e:
        assert e.file == "compose.yaml"
        return

    def same_shape(a: Any, b: Any) -> None:
        assert type(a) is type(b)
        if isinstance(a, dict):
            assert list(a) == list(b)
            for k in a:
                same_shape(a[k], b[k])
        elif isinstance(a, list):
            assert len(a) == len(b)
            for x, y in zip(a, b, strict=True):
                same_shape(x, y)
        elif not isinstance(a, str):
            assert a == b

    same_shape(doc, out)


# -- .env ---------------------------------------------------------------------------

DOTENV_TEXT = st.text(alphabet="AB_=:#'\"\\$ {}\t\nx-.export", max_size=80)


@fuzz_settings(500)
@given(st.one_of(DOTENV_TEXT, st.text(max_size=80)))
def test_any_dotenv_text_parses_or_fails_cleanly(text: str) -> None:
    for fmt in (".env", "raw"):
        try:
            out = parse_dotenv(text, file="x.env", env=ENV, format=fmt)
        except (EnvFileError, InterpolationError) as e:
            assert e.file == "x.env"
            assert e.path is None or e.path.startswith("line ")
            continue
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in out.items())


KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,8}", fullmatch=True)


def _double_quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


@fuzz_settings(300)
@given(st.dictionaries(KEYS, st.text(max_size=20).filter(lambda v: "\x00" not in v), max_size=5))
def test_double_quoted_values_round_trip(values: dict[str, str]) -> None:
    text = "\n".join(f"{k}={_double_quoted(v)}" for k, v in values.items())
    assert parse_dotenv(text, file=".env", env={}) == values


@fuzz_settings(300)
@given(st.dictionaries(KEYS, st.text(max_size=20), max_size=5))
def test_single_quoted_values_round_trip(values: dict[str, str]) -> None:
    assume(all("\\" not in v and "'" not in v for v in values.values()))
    text = "\n".join(f"export {k}='{v}'" for k, v in values.items())
    assert parse_dotenv(text, file=".env", env={"UNRELATED": "1"}) == values


# Non-empty: compose-go reads "A=  # note" as the value "# note".
BARE_VALUE = st.text(
    alphabet=string.ascii_letters + string.digits + "_-./:@,+=%", min_size=1, max_size=15
)


@fuzz_settings(300)
@given(st.dictionaries(KEYS, BARE_VALUE, max_size=5), st.sampled_from(["=", " = ", ": "]))
def test_bare_values_round_trip(values: dict[str, str], sep: str) -> None:
    text = "\n".join(f"{k}{sep}{v}  # note" for k, v in values.items())
    assert parse_dotenv(text, file=".env", env={}) == values
