"""``.env`` parsing follows docker compose v2 (compose-go ``dotenv``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pycompose.compose.dotenv import EnvFileSpec, parse_dotenv, read_env_files
from pycompose.compose.errors import ComposeFileError, EnvFileError, InterpolationError
from pycompose.compose.interpolation import interpolate

PARSES = [
    # plain
    ("FOO=bar", {"FOO": "bar"}),
    ("FOO =bar", {"FOO": "bar"}),
    ("FOO= bar", {"FOO": "bar"}),
    ("  FOO  =  bar  ", {"FOO": "bar"}),
    ("FOO=bar\nBAZ=qux\n", {"FOO": "bar", "BAZ": "qux"}),
    ("FOO=bar\r\nBAZ=qux\r\n", {"FOO": "bar", "BAZ": "qux"}),
    ("\ufeffFOO=bar", {"FOO": "bar"}),
    ("FOO=", {"FOO": ""}),
    ("FOO=\nBAR=1", {"FOO": "", "BAR": "1"}),
    ("FOO: bar", {"FOO": "bar"}),
    (
        "OPTION_A=postgres://localhost:5432/db?sslmode=disable",
        {"OPTION_A": "postgres://localhost:5432/db?sslmode=disable"},
    ),
    ("A==b", {"A": "=b"}),
    (
        "VAR.WITH.DOTS=dots\nVAR-WITH-DASHES=dashes\nARR[0]=x",
        {"VAR.WITH.DOTS": "dots", "VAR-WITH-DASHES": "dashes", "ARR[0]": "x"},
    ),
    ("ÉLÈVE=日本", {"ÉLÈVE": "日本"}),
    ("1ABC=digit", {"1ABC": "digit"}),
    # export
    ("export FOO=bar", {"FOO": "bar"}),
    ("export   FOO='2'", {"FOO": "2"}),
    ("export\tFOO=bar", {"FOO": "bar"}),
    ("export=value", {"export": "value"}),
    ("exported=value", {"exported": "value"}),
    # comments
    ("# comment\nFOO=bar", {"FOO": "bar"}),
    ("   # indented comment\nFOO=bar # trailing", {"FOO": "bar"}),
    ("FOO=bar#notacomment", {"FOO": "bar#notacomment"}),
    ("FOO=bar\t#tab is not enough", {"FOO": "bar\t#tab is not enough"}),
    ("FOO=#value", {"FOO": "#value"}),
    ("FOO='bar' # comment", {"FOO": "bar"}),
    ('FOO="bar" # comment\nX=1', {"FOO": "bar", "X": "1"}),
    ("# only a comment", {}),
    ("", {}),
    ("\n\n  \n", {}),
    # single quotes: literal
    ("FOO='bar'", {"FOO": "bar"}),
    ("FOO=''", {"FOO": ""}),
    ("FOO='\\n'", {"FOO": "\\n"}),
    ("FOO='Let\\'s go!'", {"FOO": "Let's go!"}),
    ("FOO='$HOME ${X:-y}'", {"FOO": "$HOME ${X:-y}"}),
    ("FOO='a # b'", {"FOO": "a # b"}),
    ("FOO='first\nsecond\nthird'", {"FOO": "first\nsecond\nthird"}),
    ("FOO='  padded  '", {"FOO": "  padded  "}),
    ('FOO=\'{"key": "value"}\'', {"FOO": '{"key": "value"}'}),
    # double quotes: escapes, multi-line
    ('FOO="bar"', {"FOO": "bar"}),
    ('FOO=""', {"FOO": ""}),
    ('FOO="\\n"', {"FOO": "\n"}),
    ('FOO="a\\tb\\rc"', {"FOO": "a\tb\rc"}),
    ('FOO="say \\"hi\\""', {"FOO": 'say "hi"'}),
    ('FOO="back\\\\slash"', {"FOO": "back\\slash"}),
    ('FOO="\\0123"', {"FOO": "S"}),
    ('FOO="\\x41\\q"', {"FOO": "\\x41\\q"}),
    ('FOO="it\'s"', {"FOO": "it's"}),
    ("FOO=\"echo 'asd'\" # Inline comment", {"FOO": "echo 'asd'"}),
    ('FOO="line1\nline2"', {"FOO": "line1\nline2"}),
    ('FOO="a # b"', {"FOO": "a # b"}),
    ('FOO="  padded  "', {"FOO": "  padded  "}),
    ('FOO="\\$HOME"', {"FOO": "$HOME"}),
    ('FOO="\\${HOME}"', {"FOO": "${HOME}"}),
    ("FOO='x'\nBAR=\"y\"\nBAZ=z", {"FOO": "x", "BAR": "y", "BAZ": "z"}),
    # a quoted value ends at its quote; what follows starts the next statement
    ('FOO="a"BAR=b', {"FOO": "a", "BAR": "b"}),
]


@pytest.mark.parametrize(("text", "expected"), PARSES)
def test_parse(text: str, expected: dict[str, str]) -> None:
    assert parse_dotenv(text, file=".env", env={}) == expected


ENV = {"HOME": "/home/u", "SHELL_ONLY": "shell", "EMPTY": ""}

INTERPOLATES = [
    (
        "A=1\nB=${A}\nC=$B\nD=${A}_${B}\nE=${UNDEFINED}",
        {"A": "1", "B": "1", "C": "1", "D": "1_1", "E": ""},
    ),
    ("A=$HOME/x", {"A": "/home/u/x"}),
    ('A="$HOME/x"', {"A": "/home/u/x"}),
    ("A='$HOME/x'", {"A": "$HOME/x"}),
    ('FOO=test\nBAR="foo\\${FOO} ${FOO}"', {"FOO": "test", "BAR": "foo${FOO} test"}),
    ("A=$$HOME", {"A": "$HOME"}),
    ("A=${UNSET:-fallback}", {"A": "fallback"}),
    ("A=${EMPTY-kept}", {"A": ""}),
    # the environment wins over keys defined earlier in the file
    ("HOME=/other\nA=$HOME", {"HOME": "/other", "A": "/home/u"}),
    # self-default (v2-dotenv-self-default)
    (
        'IMAGE_NAME="${IMAGE_NAME:-backend}"\nIMAGE_TAG="${IMAGE_TAG:-latest}"',
        {"IMAGE_NAME": "backend", "IMAGE_TAG": "latest"},
    ),
    # later keys are not visible to earlier ones
    ("A=$B\nB=2", {"A": "", "B": "2"}),
    # a key alone inherits from the environment, or is left out
    ("SHELL_ONLY", {"SHELL_ONLY": "shell"}),
    ("SHELL_ONLY\nNOT_SET\nX=1", {"SHELL_ONLY": "shell", "X": "1"}),
    ("export SHELL_ONLY", {"SHELL_ONLY": "shell"}),
    ("EMPTY", {"EMPTY": ""}),
    ("A=1\nA", {"A": "1"}),
    ("NOT_SET", {}),
    ("  SHELL_ONLY  \n", {"SHELL_ONLY": "shell"}),
]


@pytest.mark.parametrize(("text", "expected"), INTERPOLATES)
def test_interpolation_and_inheritance(text: str, expected: dict[str, str]) -> None:
    assert parse_dotenv(text, file=".env", env=ENV) == expected


def test_warns_for_unset_variables_once() -> None:
    warnings: list[str] = []
    parse_dotenv("A=$NOPE\nB=${NOPE}\nC=${NOPE2:-x}", file=".env", env={}, warn=warnings.append)
    assert warnings == ['The "NOPE" variable is not set. Defaulting to a blank string.']


SYNTAX_ERRORS = [
    ("FO!O=bar", "line 1", "unexpected character '!' in variable name"),
    ("A=1\n\nB C=d", "line 3", "key cannot contain a space"),
    ('A=1\nB="unterminated\nmore', "line 2", "unterminated quoted value"),
    ("A='no end", "line 1", "unterminated quoted value"),
    ("=value", "line 1", "missing variable name"),
    ("# c\n  KEY$=1", "line 2", "unexpected character '$'"),
]


@pytest.mark.parametrize(("text", "line", "message"), SYNTAX_ERRORS)
def test_syntax_errors_name_file_and_line(text: str, line: str, message: str) -> None:
    with pytest.raises(EnvFileError) as info:
        parse_dotenv(text, file="/p/.env", env={})
    assert info.value.file == "/p/.env"
    assert info.value.path == line
    assert message in info.value.message
    assert str(info.value).startswith(f"/p/.env: {line}: ")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("A=1\nB=${", "line 2", "invalid interpolation format"),
        ('A=1\n\nB="x\ny ${"', "line 3", "invalid interpolation format"),
        (
            "TOKEN=${SECRET:?set SECRET first}",
            "line 1",
            "required variable SECRET is not set: set SECRET first",
        ),
    ],
)
def test_interpolation_errors_name_file_and_line(text: str, line: str, message: str) -> None:
    with pytest.raises(InterpolationError) as info:
        parse_dotenv(text, file=".env", env={})
    assert (info.value.file, info.value.path) == (".env", line)
    assert message in info.value.message


RAW = [
    ('TEST_VAR=\'{"key": "value"}\'', {"TEST_VAR": '\'{"key": "value"}\''}),
    ("A=$HOME ${X} # not a comment", {"A": "$HOME ${X} # not a comment"}),
    ("  # comment\n\nA=1\r\n", {"A": "1\r"}),
    ("A= spaced ", {"A": " spaced "}),
    ("SHELL_ONLY\nNOT_SET", {"SHELL_ONLY": "shell"}),
]


@pytest.mark.parametrize(("text", "expected"), RAW)
def test_raw_format(text: str, expected: dict[str, str]) -> None:
    assert parse_dotenv(text, file="e", env=ENV, format="raw") == expected


def test_raw_format_errors() -> None:
    with pytest.raises(EnvFileError, match="line 2: variable 'A B' contains whitespace"):
        parse_dotenv("X=1\nA B=1", file="e", env={}, format="raw")
    with pytest.raises(EnvFileError, match="unsupported env_file format 'toml'"):
        parse_dotenv("X=1", file="e", env={}, format="toml")


# -- files ------------------------------------------------------------------


def test_read_env_files_later_overrides_earlier(tmp_path: Path) -> None:
    (tmp_path / "simple-env").write_text("DEFAULT_PORT=8080\nONLY_FIRST=1\n")
    (tmp_path / "second-env").write_text("DEFAULT_PORT=9090\n")
    out = read_env_files([tmp_path / "simple-env", str(tmp_path / "second-env")], {})
    assert out == {"DEFAULT_PORT": "9090", "ONLY_FIRST": "1"}


def test_read_env_files_sees_earlier_files(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_text("BASE=gcr.io/p\n")
    (tmp_path / "b.env").write_text("IMAGE=${BASE}/app\nINHERITED_FROM_A\nBASE\n")
    out = read_env_files([tmp_path / "a.env", tmp_path / "b.env"], {"SHELL": "s"})
    assert out == {"BASE": "gcr.io/p", "IMAGE": "gcr.io/p/app"}


def test_read_env_files_environment_first(tmp_path: Path) -> None:
    (tmp_path / ".env.conf").write_text("WHEREAMI\nDEFAULT_CONF_LOADED=true\n")
    out = read_env_files([tmp_path / ".env.conf"], {"WHEREAMI": "default"})
    assert out == {"WHEREAMI": "default", "DEFAULT_CONF_LOADED": "true"}


def test_missing_required_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.env"
    with pytest.raises(EnvFileError) as info:
        read_env_files([missing], {})
    assert info.value.file == str(missing)
    assert "not found" in str(info.value)
    with pytest.raises(EnvFileError):
        read_env_files([EnvFileSpec(missing, required=True)], {})


def test_missing_optional_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "present.env").write_text("A=1\n")
    specs = [
        EnvFileSpec(tmp_path / "absent.env", required=False),
        EnvFileSpec(tmp_path / "present.env", required=False),
    ]
    assert read_env_files(specs, {}) == {"A": "1"}
    assert read_env_files([tmp_path / "absent.env"], {}, required=False) == {}


def test_directory_and_bad_encoding_are_errors(tmp_path: Path) -> None:
    with pytest.raises(EnvFileError, match="is a directory"):
        read_env_files([tmp_path], {})
    bad = tmp_path / "bad.env"
    bad.write_bytes(b"A=1\nB=\xff\xfe\n")
    with pytest.raises(EnvFileError, match="line 2: not valid UTF-8"):
        read_env_files([bad], {})


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    # A path through a regular file cannot be opened (ENOTDIR), also as root.
    (tmp_path / "file").write_text("")
    with pytest.raises(EnvFileError, match="cannot read env file"):
        read_env_files([tmp_path / "file" / "x.env"], {})


def test_read_env_files_format(tmp_path: Path) -> None:
    (tmp_path / ".env.raw").write_text('TEST_VAR=\'{"key": "value"}\'')
    out = read_env_files([EnvFileSpec(tmp_path / ".env.raw", format="raw")], {})
    assert out == {"TEST_VAR": '\'{"key": "value"}\''}


def test_errors_are_compose_file_errors(tmp_path: Path) -> None:
    (tmp_path / "e").write_text("A=${")
    with pytest.raises(ComposeFileError):
        read_env_files([tmp_path / "e"], {})


# -- the conformance kit's env cases as sanity inputs ---------------------------

KIT = Path("/work/shared/conformance")
needs_kit = pytest.mark.skipif(
    not (KIT / "manifest.json").exists(), reason="needs the conformance kit"
)


def _kit_case(name: str) -> tuple[Path, dict[str, Any]]:
    manifest = json.loads((KIT / "manifest.json").read_text())
    case = next(c for c in manifest["cases"] if c["name"] == name)
    env = {**manifest["runner_env"], **case.get("env", {})}
    return KIT / case["dir"], env


def _project_env(case_dir: Path, shell: dict[str, str]) -> dict[str, str]:
    """Shell variables win over the project's ``.env``, as in docker compose."""
    dotenv = case_dir / ".env"
    from_file = read_env_files([dotenv], shell) if dotenv.exists() else {}
    return {**from_file, **shell}


def _load(case_dir: Path, env: dict[str, str]) -> Any:
    doc = yaml.safe_load((case_dir / "compose.yaml").read_text())
    return interpolate(doc, env, file="compose.yaml")


@needs_kit
def test_kit_cgo_env_files() -> None:
    case_dir, shell = _kit_case("cgo-env-files")
    env = _project_env(case_dir, shell)
    assert env["PORT"] == "8000"
    assert env["COMPOSE_PROJECT_NAME"] == "my_project_from_dot_env"
    doc = _load(case_dir, env)
    service = doc["services"]["simple"]
    assert service["ports"] == ["8000:80"]
    files = [case_dir / f for f in service["env_file"]]
    assert read_env_files(files, env) == {"DEFAULT_PORT": "9090"}


@needs_kit
@pytest.mark.parametrize(
    ("case", "service", "key", "expected"),
    [
        ("cgo-port-from-dotenv", "simple", "ports", ["8000:80"]),
        ("v1-default-env-file", "web", "image", "alpine:latest"),
        ("v1-default-env-file", "web", "command", "true"),
        ("v1-default-env-file", "web", "ports", ["5643", "9999"]),
        ("v2-dotenv-self-default", "backend", "image", "backend:latest"),
        ("v2-env-interpolation", "env-interpolation", "command", 'echo "default_env:EnvFile"'),
        (
            "v2-env-self-reference",
            "test",
            "environment",
            {
                "FULL_IMAGE": "gcr.io/myproject/myapp:latest",
                "BASE_URL": "gcr.io/myproject/subpath",
            },
        ),
        ("kit-interpolation-no-colon", "app", "image", "busybox:1.36"),
        (
            "kit-interpolation-no-colon",
            "app",
            "environment",
            {
                "DASH_EMPTY": "",
                "COLON_DASH_EMPTY": "fallback",
                "DASH_UNSET": "fallback",
                "COLON_DASH_UNSET": "fallback",
                "QUESTION_EMPTY": "",
                "LITERAL": "${EMPTY:-not-interpolated}",
                "BARE": "pre--post",
            },
        ),
    ],
)
def test_kit_interpolated_values(case: str, service: str, key: str, expected: Any) -> None:
    case_dir, shell = _kit_case(case)
    doc = _load(case_dir, _project_env(case_dir, shell))
    assert doc["services"][service][key] == expected


@needs_kit
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("kit-required-colon-empty", "required variable EMPTY is empty: EMPTY must be non-empty"),
        ("v2-required-var-unset", "required variable"),
    ],
)
def test_kit_required_errors(case: str, message: str) -> None:
    case_dir, shell = _kit_case(case)
    with pytest.raises(InterpolationError) as info:
        _load(case_dir, _project_env(case_dir, shell))
    assert message in str(info.value)
    assert info.value.path is not None
    assert info.value.path.startswith("services.")


@needs_kit
def test_kit_every_interpolation_case_resolves() -> None:
    """Every valid kit case with a dotenv or interpolation loads through both stages."""
    manifest = json.loads((KIT / "manifest.json").read_text())
    seen = 0
    for case in manifest["cases"]:
        if not case["valid"] or not {"dotenv", "interpolation"} & set(case["features"]):
            continue
        case_dir, shell = _kit_case(case["name"])
        env = _project_env(case_dir, shell)
        for name in case["files"]:
            interpolate(yaml.safe_load((case_dir / name).read_text()), env, file=name)
        seen += 1
    assert seen >= 20


def test_whitespace_is_gos_not_pythons() -> None:
    """\\x1f is not a blank for docker compose (Go), though str.isspace() says it is."""
    with pytest.raises(EnvFileError, match="unexpected character"):
        parse_dotenv("\x1fA=1", file=".env", env={})
    assert parse_dotenv("A=x\x1f", file=".env", env={}) == {"A": "x\x1f"}
    assert parse_dotenv("\u3000A=1\u3000\n", file=".env", env={}) == {"A": "1"}


def test_nul_in_path_is_an_error() -> None:
    with pytest.raises(EnvFileError, match="invalid env file path"):
        read_env_files(["a\x00b.env"], {})
