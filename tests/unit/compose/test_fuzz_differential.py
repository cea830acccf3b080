"""Differential fuzzing against compose-go itself (optional; skipped by default).

docker compose v2 interpolates with compose-go's ``template`` package and reads
``.env`` files with its ``dotenv`` package.  This test feeds the same random
templates and ``.env`` texts to those packages and to ours and compares the
results, the errors and the unset-variable warnings.

The oracle is a small Go program built outside the repository from a local
compose-go checkout (Go >= 1.19, no network needed)::

    python -m tests.unit.compose.test_fuzz_differential build /path/to/compose-go /tmp/oracle
    PYCOMPOSE_COMPOSE_GO_ORACLE=/tmp/oracle/oracle \\
        python -m pytest tests/unit/compose/test_fuzz_differential.py

Known, deliberate differences are filtered out (see ``_known_difference``):
compose-go reads a last line ``KEY`` without a newline (and ``=value``) as a
value for the empty key; we inherit ``KEY`` like any other line and reject an
empty key; a key containing a tab is an error here.
"""

# Fuzz tests compare whatever came out: pytest.raises does not fit.
# ruff: noqa: PT017

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycompose.compose.dotenv import parse_dotenv
from pycompose.compose.errors import EnvFileError, InterpolationError
from pycompose.compose.interpolation import interpolate_string

ORACLE = os.environ.get("PYCOMPOSE_COMPOSE_GO_ORACLE", "")
EXAMPLES = int(os.environ.get("PYCOMPOSE_FUZZ_EXAMPLES", "0")) or 2000

pytestmark = pytest.mark.skipif(
    not ORACLE, reason="set PYCOMPOSE_COMPOSE_GO_ORACLE to a built oracle (see the docstring)"
)

MAIN_GO = """\
package main

import (
	"bufio"
	"encoding/json"
	"os"

	"oracle/dotenv"
	"oracle/logrus"
	"oracle/template"
)

type request struct {
	Kind string            `json:"kind"`
	Text string            `json:"text"`
	Env  map[string]string `json:"env"`
}

type response struct {
	Out  interface{} `json:"out"`
	Err  string      `json:"err"`
	Warn []string    `json:"warn"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var r request
		if err := json.Unmarshal(in.Bytes(), &r); err != nil {
			panic(err)
		}
		logrus.Warnings = []string{}
		lookup := func(k string) (string, bool) { v, ok := r.Env[k]; return v, ok }
		var res response
		var err error
		if r.Kind == "template" {
			res.Out, err = template.Substitute(r.Text, lookup)
		} else {
			res.Out, err = dotenv.UnmarshalWithLookup(r.Text, lookup)
		}
		if err != nil {
			res.Err = err.Error()
		}
		res.Warn = logrus.Warnings
		out.Encode(res)
	}
}
"""

LOGRUS_GO = """\
package logrus

import "fmt"

var Warnings []string

func Warnf(format string, args ...interface{}) {
	Warnings = append(Warnings, fmt.Sprintf(format, args...))
}
"""


def build(compose_go: Path, dest: Path) -> Path:
    """Build the oracle in ``dest`` from compose-go's template and dotenv sources."""
    dest.mkdir(parents=True, exist_ok=True)
    for package in ("template", "dotenv"):
        (dest / package).mkdir(exist_ok=True)
        for src in (compose_go / package).glob("*.go"):
            if src.name.endswith("_test.go"):
                continue
            text = src.read_text()
            text = text.replace('"github.com/sirupsen/logrus"', '"oracle/logrus"')
            text = text.replace(
                '"github.com/compose-spec/compose-go/v2/template"', '"oracle/template"'
            )
            (dest / package / src.name).write_text(text)
    (dest / "logrus").mkdir(exist_ok=True)
    (dest / "logrus" / "logrus.go").write_text(LOGRUS_GO)
    (dest / "go.mod").write_text("module oracle\n\ngo 1.19\n")
    (dest / "main.go").write_text(MAIN_GO)
    subprocess.run(["go", "build", "-o", "oracle", "."], cwd=dest, check=True)
    return dest / "oracle"


@pytest.fixture(scope="module")
def oracle() -> Iterator[Any]:
    proc = subprocess.Popen(
        [ORACLE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8"
    )
    assert proc.stdin is not None
    assert proc.stdout is not None

    def ask(kind: str, text: str, env: dict[str, str]) -> dict[str, Any]:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(json.dumps({"kind": kind, "text": text, "env": env}) + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())  # type: ignore[no-any-return]

    yield ask
    proc.stdin.close()
    proc.wait(timeout=10)
    proc.stdout.close()


NAMES = st.sampled_from(["SET", "EMPTY", "UNSET", "A_1", "x"])
ENVS = st.dictionaries(NAMES, st.text(alphabet="ab$ {}-:", max_size=4), max_size=4)
TEMPLATE_TEXT = st.one_of(
    st.text(alphabet="ab_1$${}:-+?! .\n\\", max_size=40),
    st.lists(
        st.one_of(
            st.text(alphabet="ab .-", max_size=4),
            st.sampled_from(["$", "$$", "${", "}", "{"]),
            st.builds(
                lambda n, op, arg: "${" + n + op + arg + "}",
                NAMES,
                st.sampled_from(["", ":-", "-", ":+", "+", ":?", "?", "!"]),
                st.text(alphabet="ab${}:-", max_size=8),
            ),
            NAMES.map(lambda n: "$" + n),
        ),
        max_size=6,
    ).map("".join),
)
DOTENV_TEXT = st.one_of(
    st.text(alphabet="AB_=:#'\"\\$ {}\t\nx-.export0123789abfnrtv", max_size=60),
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "export C", " D ", "E:"]),
            st.sampled_from(['"', "'", ""]),
            st.text(alphabet="\\0123789abcfnrtvx$\"'{}A é#", max_size=14),
        ),
        min_size=1,
        max_size=4,
    ).map(lambda lines: "".join(f"{k}={q}{b}{q}\n" for k, q, b in lines)),
)


def fuzz_settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@fuzz_settings()
@given(text=TEMPLATE_TEXT, env=ENVS)
def test_templates_match_compose_go(oracle: Any, text: str, env: dict[str, str]) -> None:
    go = oracle("template", text, env)
    warnings: list[str] = []
    try:
        mine, error = interpolate_string(text, env, warn=warnings.append), None
    except InterpolationError as e:
        mine, error = None, e.message
    if go["err"]:
        assert error is not None, f"compose-go fails with {go['err']!r}, we give {mine!r}"
        go_invalid = "Invalid template" in go["err"]
        assert go_invalid == ("invalid interpolation format" in error), (go["err"], error)
        return
    assert error is None, f"we fail with {error!r}, compose-go gives {go['out']!r}"
    assert mine == go["out"]
    assert warnings == list(dict.fromkeys(go["warn"]))


def _known_difference(text: str, go: dict[str, Any], error: str | None) -> bool:
    out = go["out"] or {}
    if "" in out:  # compose-go's empty-key reading of a last line / "=value"
        return True
    return error is not None and "key cannot contain a space" in error and "\t" in text


@fuzz_settings()
@given(text=DOTENV_TEXT, env=ENVS)
def test_dotenv_matches_compose_go(oracle: Any, text: str, env: dict[str, str]) -> None:
    go = oracle("dotenv", text, env)
    try:
        mine, error = parse_dotenv(text, file=".env", env=env), None
    except (EnvFileError, InterpolationError) as e:
        mine, error = None, e.message
    if _known_difference(text, go, error):
        return
    if go["err"]:
        assert error is not None, f"compose-go fails with {go['err']!r}, we give {mine!r}"
        return
    assert error is None, f"we fail with {error!r}, compose-go gives {go['out']!r}"
    assert mine == go["out"]


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "build" or shutil.which("go") is None:
        sys.exit(
            "usage (needs Go): python -m tests.unit.compose.test_fuzz_differential "
            "build COMPOSE_GO_CHECKOUT DEST_DIR"
        )
    print(build(Path(sys.argv[2]), Path(sys.argv[3])))
