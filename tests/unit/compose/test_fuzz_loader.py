"""Fuzzing the loader: bad input fails with a ComposeError, never a crash or a hang.

Three kinds of input go through :func:`load_project`:

* random YAML documents (any shape), and random text as a file;
* Compose-shaped documents: known keys with plausible or random values,
  including random interpolation strings;
* random mutations of the conformance kit's valid cases (the seed corpus is
  read from ``/work/shared/conformance`` when it is there; nothing is copied
  into the repository).

Each example either loads or raises a :class:`ComposeError` with a message;
any other exception fails the test.  Each example is bounded in time: a
Python-level hang raises :class:`ExampleTimeout`, and a watchdog
(``faulthandler``) dumps every thread and exits if something hangs in C code.

The default run is short (``max_examples`` below); set
``PYCOMPOSE_FUZZ_EXAMPLES=5000`` for a deeper run.
"""

# Fuzz tests check the error they caught, whichever it is: pytest.raises does not fit.
# ruff: noqa: PT017

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import shutil
import signal
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycompose.compose.errors import ComposeError
from pycompose.compose.loader import LoadOptions, load_project
from pycompose.compose.yamlread import RESET, OverrideList, OverrideMapping, Reset, read_yaml

EXAMPLES = int(os.environ.get("PYCOMPOSE_FUZZ_EXAMPLES", "0")) or None
EXAMPLE_SECONDS = float(os.environ.get("PYCOMPOSE_FUZZ_SECONDS", "10"))
KIT = Path("/work/shared/conformance")
ENV = {"PATH": "/usr/bin:/bin", "HOME": "/home/conformance", "LANG": "C.UTF-8", "SET": "value"}


def fuzz_settings(default_examples: int) -> settings:
    return settings(
        max_examples=EXAMPLES or default_examples,
        deadline=None,  # bounded by ExampleTimeout instead: the machine is noisy
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=EXAMPLES is None,  # the default run is reproducible
        database=None,
    )


class ExampleTimeout(BaseException):  # noqa: N818 - BaseException: no except Exception swallows it
    """One example ran longer than EXAMPLE_SECONDS."""


@contextlib.contextmanager
def time_bound(seconds: float = EXAMPLE_SECONDS) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise ExampleTimeout(f"example took longer than {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    # If the hang is in C code the alarm never gets through: dump and exit.
    faulthandler.dump_traceback_later(seconds * 3, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_or_compose_error(
    directory: Path,
    env: dict[str, str] | None = None,
    files: tuple[str, ...] = ("compose.yaml",),
    env_files: tuple[str, ...] = (),
) -> None:
    """Load ``directory/compose.yaml``; only a ComposeError (with a message) may come out."""
    options = LoadOptions(
        working_dir=str(directory), files=files, environ=env or ENV, env_files=env_files
    )
    with time_bound():
        try:
            project = load_project(options)
        except ComposeError as e:
            assert str(e).strip(), f"{type(e).__name__} without a message"
            return
    assert all(isinstance(w, str) for w in project.warnings)


@contextlib.contextmanager
def project_dir(text: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pc-fuzz-") as tmp:
        path = Path(tmp) / "proj"
        path.mkdir()
        (path / "compose.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        yield path


class Dumper(yaml.SafeDumper):
    """Writes documents back with the loader's ``!override`` / ``!reset`` tags."""


Dumper.add_representer(Reset, lambda d, v: d.represent_scalar("!reset", ""))
Dumper.add_representer(OverrideMapping, lambda d, v: d.represent_mapping("!override", dict(v)))
Dumper.add_representer(OverrideList, lambda d, v: d.represent_sequence("!override", list(v)))


def dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=Dumper, allow_unicode=True, sort_keys=False)


# -- strategies -------------------------------------------------------------------

INTERP_ALPHABET = string.ascii_letters[:6] + "_09$${}:-+?! ./\\\n'\"#é"
interp_text = st.text(alphabet=INTERP_ALPHABET, max_size=30)


@st.composite
def interpolation_strings(draw: st.DrawFn) -> str:
    """Mostly well-formed expressions, sometimes broken ones."""
    names = st.sampled_from(["SET", "UNSET", "EMPTY", "HOME", "A_1", "x"])
    ops = st.sampled_from(["", ":-", "-", ":+", "+", ":?", "?"])
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 5))
        if kind == 0:
            parts.append(draw(interp_text))
        elif kind == 1:
            parts.append("$" + draw(names))
        elif kind == 2:
            parts.append("$$")
        else:
            inner = draw(st.one_of(interp_text, st.just("${SET}"), st.just("${UNSET:-x}")))
            op = draw(ops)
            parts.append("${" + draw(names) + (op + inner if op else "") + "}")
    return "".join(parts)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    interpolation_strings(),
)

values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=20,
)

PLAUSIBLE = {
    "image": st.sampled_from(["busybox", "nginx:1.25", "${IMAGE:-busybox}", "", "a b", "UPPER"]),
    "command": st.one_of(st.text(max_size=20), st.lists(st.text(max_size=8), max_size=3)),
    "entrypoint": st.one_of(
        st.sampled_from(["sh -c 'echo \"unterminated", "a b c"]),
        st.lists(st.text(max_size=5), max_size=2),
    ),
    "ports": st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "80",
                    "8080:80",
                    "127.0.0.1:8080:80/udp",
                    "9000-9005:9000-9005",
                    "80:abc",
                    "65536:80",
                    "1-2:3-5",
                    "[::1]:80:80",
                    ":80",
                    "0",
                    "-1",
                    "80/sctp",
                    "a:b:c:d",
                ]
            ),
            st.integers(-5, 70000),
            st.fixed_dictionaries(
                {"target": st.one_of(st.integers(0, 70000), st.text(max_size=5))},
                optional={
                    "published": st.one_of(st.integers(), st.text(max_size=8)),
                    "protocol": st.sampled_from(["tcp", "udp", "x"]),
                    "mode": st.sampled_from(["host", "ingress", 3]),
                },
            ),
        ),
        max_size=3,
    ),
    "volumes": st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "data:/data",
                    "./src:/src:ro",
                    "/tmp",
                    "/a:/b:z",
                    "x:/y:rw,nocopy",
                    "a:b",
                    ":/x",
                    "data:/data:bogus",
                    "~/x:/x",
                ]
            ),
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["bind", "volume", "tmpfs", "npipe", "x"]),
                    "target": st.text(max_size=8),
                },
                optional={
                    "source": st.text(max_size=8),
                    "read_only": st.one_of(st.booleans(), st.text(max_size=3)),
                    "tmpfs": st.fixed_dictionaries(
                        {"size": st.one_of(st.integers(), st.text(max_size=5))}
                    ),
                    "bind": st.fixed_dictionaries({"create_host_path": st.booleans()}),
                },
            ),
        ),
        max_size=3,
    ),
    "environment": st.one_of(
        st.lists(st.sampled_from(["A=1", "B", "C=${SET}", "=x", "D=${", ""]), max_size=4),
        st.dictionaries(
            st.sampled_from(["A", "B", "", "C D"]),
            st.one_of(st.none(), st.text(max_size=5), st.integers()),
            max_size=3,
        ),
    ),
    "env_file": st.one_of(
        st.sampled_from(["missing.env", ".env", ""]),
        st.lists(
            st.fixed_dictionaries(
                {"path": st.sampled_from(["a.env", "missing.env"]), "required": st.booleans()}
            ),
            max_size=2,
        ),
    ),
    "depends_on": st.one_of(
        st.lists(st.sampled_from(["web", "db", "missing", "a"]), max_size=3),
        st.dictionaries(
            st.sampled_from(["web", "db", "missing"]),
            st.fixed_dictionaries(
                {},
                optional={
                    "condition": st.sampled_from(
                        [
                            "service_started",
                            "service_healthy",
                            "service_completed_successfully",
                            "bogus",
                        ]
                    ),
                    "required": st.booleans(),
                },
            ),
            max_size=2,
        ),
    ),
    "healthcheck": st.fixed_dictionaries(
        {},
        optional={
            "test": st.one_of(
                st.text(max_size=10),
                st.lists(st.sampled_from(["CMD", "CMD-SHELL", "NONE", "true"]), max_size=3),
            ),
            "interval": st.sampled_from(["1m30s", "500ms", "10", "abc", "-1s", "1h2m3s4ms5us6ns"]),
            "retries": st.one_of(st.integers(-3, 10), st.text(max_size=3)),
            "disable": st.booleans(),
        },
    ),
    "mem_limit": st.sampled_from(["512m", "1g", "1.5g", "10", "-1", "abc", "1kb", "0"]),
    "cpus": st.one_of(st.floats(allow_nan=True), st.sampled_from(["0.5", "x", "-1"])),
    "restart": st.sampled_from(
        ["no", "always", "on-failure:3", "unless-stopped", "sometimes", "on-failure:x"]
    ),
    "networks": st.one_of(
        st.lists(st.sampled_from(["front", "default", "missing"]), max_size=2),
        st.dictionaries(
            st.sampled_from(["front", "default"]),
            st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "aliases": st.lists(st.text(max_size=4), max_size=2),
                        "ipv4_address": st.text(max_size=9),
                    },
                ),
            ),
        ),
    ),
    "network_mode": st.sampled_from(
        ["host", "none", "service:db", "service:missing", "container:x", "bridge"]
    ),
    "volumes_from": st.lists(
        st.sampled_from(["db", "missing", "db:ro", "container:x"]), max_size=2
    ),
    "links": st.lists(st.sampled_from(["db", "db:alias", "missing"]), max_size=2),
    "ulimits": st.dictionaries(
        st.sampled_from(["nofile", "nproc", "bogus"]),
        st.one_of(
            st.integers(-1, 70000),
            st.fixed_dictionaries({"soft": st.integers(0, 10), "hard": st.integers(0, 10)}),
            st.text(max_size=3),
        ),
        max_size=2,
    ),
    "deploy": st.fixed_dictionaries(
        {},
        optional={
            "replicas": st.one_of(st.integers(-1, 5), st.text(max_size=2)),
            "resources": st.fixed_dictionaries(
                {},
                optional={
                    "limits": st.fixed_dictionaries(
                        {},
                        optional={
                            "memory": st.sampled_from(["1g", "x"]),
                            "cpus": st.sampled_from(["0.5", "x", 2]),
                        },
                    )
                },
            ),
        },
    ),
    "extends": st.one_of(
        st.sampled_from(["db", "missing", "web"]),
        st.fixed_dictionaries(
            {"service": st.sampled_from(["db", "missing"])},
            optional={"file": st.sampled_from(["other.yaml", "compose.yaml"])},
        ),
    ),
    "profiles": st.lists(st.sampled_from(["debug", "", "Bad Name"]), max_size=2),
    "build": st.one_of(
        st.sampled_from([".", "./missing", ""]),
        st.fixed_dictionaries(
            {"context": st.sampled_from([".", "x"])},
            optional={
                "dockerfile": st.text(max_size=5),
                "args": st.lists(st.sampled_from(["A=1", "B"]), max_size=2),
            },
        ),
    ),
    "stop_grace_period": st.sampled_from(["10s", "1m", "abc", ""]),
    "tmpfs": st.one_of(
        st.text(max_size=6), st.lists(st.sampled_from(["/run", "/tmp:size=1m", "rel"]), max_size=2)
    ),
    "secrets": st.lists(
        st.one_of(
            st.sampled_from(["s1", "missing"]),
            st.fixed_dictionaries(
                {"source": st.sampled_from(["s1", "missing"])},
                optional={"target": st.text(max_size=5), "mode": st.integers(-1, 0o1000)},
            ),
        ),
        max_size=2,
    ),
    "labels": st.one_of(
        st.lists(st.sampled_from(["a=1", "b", "=x"]), max_size=2),
        st.dictionaries(
            st.text(max_size=4),
            st.one_of(st.text(max_size=4), st.integers(), st.none()),
            max_size=2,
        ),
    ),
    "x-custom": values,
    "unknown_key": values,
}


@st.composite
def services(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(sorted(PLAUSIBLE)), max_size=6, unique=True)):
        out[key] = draw(
            st.one_of(PLAUSIBLE[key], values) if draw(st.integers(0, 9)) == 0 else PLAUSIBLE[key]
        )
    return out


@st.composite
def compose_documents(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.lists(
            st.sampled_from(["web", "db", "a", "b-2", "Bad Name", ""]),
            min_size=0,
            max_size=3,
            unique=True,
        )
    )
    doc: dict[str, Any] = {"services": {n: draw(services()) for n in names}}
    optional = {
        "name": st.sampled_from(["proj", "Bad Name", "${SET}", "", "-x"]),
        "version": st.sampled_from(["3.9", "2", 3]),
        "volumes": st.dictionaries(
            st.sampled_from(["data", "db"]),
            st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "external": st.booleans(),
                        "driver": st.text(max_size=4),
                        "name": st.text(max_size=5),
                    },
                ),
            ),
        ),
        "networks": st.dictionaries(
            st.sampled_from(["front", "default"]),
            st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "internal": st.booleans(),
                        "ipam": st.fixed_dictionaries(
                            {
                                "config": st.lists(
                                    st.fixed_dictionaries(
                                        {
                                            "subnet": st.sampled_from(
                                                ["10.0.0.0/24", "x", "300.1.1.1/8"]
                                            )
                                        }
                                    ),
                                    max_size=2,
                                )
                            }
                        ),
                    },
                ),
            ),
        ),
        "secrets": st.dictionaries(
            st.sampled_from(["s1"]),
            st.fixed_dictionaries(
                {},
                optional={
                    "file": st.sampled_from(["./s.txt", "missing"]),
                    "environment": st.sampled_from(["SET", "UNSET"]),
                },
            ),
        ),
        "include": st.lists(
            st.one_of(
                st.sampled_from(["missing.yaml", "compose.yaml"]),
                st.fixed_dictionaries({"path": st.sampled_from(["missing.yaml", "compose.yaml"])}),
            ),
            max_size=2,
        ),
        "x-anchor": values,
        "services": values,
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), max_size=3, unique=True)):
        doc[key] = draw(optional[key])
    return doc


# -- tests ------------------------------------------------------------------------


@fuzz_settings(150)
@given(values)
def test_random_yaml_documents(doc: Any) -> None:
    with project_dir(dump(doc)) as path:
        load_or_compose_error(path)


@fuzz_settings(150)
@given(
    st.one_of(st.text(max_size=200), st.text(alphabet="{}[]:,-&*!|>'\"#%@ \n\tab<$", max_size=100))
)
def test_random_text_files(text: str) -> None:
    with project_dir(text) as path:
        load_or_compose_error(path)


@fuzz_settings(250)
@given(
    compose_documents(),
    st.dictionaries(
        st.sampled_from(["SET", "EMPTY", "IMAGE", "COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME"]),
        st.text(alphabet="ab -$", max_size=5),
        max_size=3,
    ),
)
def test_compose_shaped_documents(doc: dict[str, Any], extra_env: dict[str, str]) -> None:
    with project_dir(dump(doc)) as path:
        (path / "a.env").write_text("A=1\nB=${SET}\n")
        (path / ".env").write_text("IMAGE=busybox\n")
        (path / "s.txt").write_text("secret")
        load_or_compose_error(path, {**ENV, **extra_env})


@fuzz_settings(150)
@given(
    st.dictionaries(
        st.sampled_from(["image", "command", "container_name", "working_dir", "user", "hostname"]),
        interpolation_strings(),
        min_size=1,
    )
)
def test_interpolation_strings_in_services(fields: dict[str, str]) -> None:
    with project_dir(dump({"services": {"web": {"image": "busybox", **fields}}})) as path:
        load_or_compose_error(path, {**ENV, "EMPTY": ""})


@fuzz_settings(150)
@given(compose_documents(), compose_documents())
def test_merged_files(first: dict[str, Any], second: dict[str, Any]) -> None:
    """Two files merged as with ``-f compose.yaml -f override.yaml``."""
    with project_dir(dump(first)) as path:
        (path / "override.yaml").write_text(dump(second))
        (path / "a.env").write_text("A=1\n")
        load_or_compose_error(path, files=("compose.yaml", "override.yaml"))


DOTENV_TEXT = st.text(alphabet="AB_=:#'\"\\$ {}\t\nx-.export", max_size=60)


@fuzz_settings(150)
@given(st.one_of(DOTENV_TEXT, st.text(max_size=60)), st.booleans())
def test_random_env_files(text: str, as_env_file_option: bool) -> None:
    """A random project ``.env`` (or ``--env-file``) and service ``env_file``."""
    doc = {"services": {"web": {"image": "busybox:${A:-1}", "env_file": ["svc.env"]}}}
    with project_dir(dump(doc)) as path:
        (path / ("other.env" if as_env_file_option else ".env")).write_text(text)
        (path / "svc.env").write_text(text)
        env_files = ("other.env",) if as_env_file_option else ()
        load_or_compose_error(path, env_files=env_files)


# -- mutations of the conformance kit's valid cases -------------------------------


def _seed_cases() -> list[tuple[Path, dict[str, str]]]:
    manifest_path = KIT / "manifest.json"
    if not manifest_path.exists():
        return []
    manifest = json.loads(manifest_path.read_text())
    seeds = []
    for case in manifest["cases"]:
        if not case.get("valid") or len(case["files"]) != 1:
            continue
        seeds.append((KIT / case["dir"], {**manifest["runner_env"], **case.get("env", {})}))
    return seeds


SEEDS = _seed_cases()


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _paths(value, (*prefix, index))


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn, doc: Any) -> Any:
    """Apply 1-3 random edits at random places of a copy of ``doc``."""
    import copy

    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return draw(values)
        path = draw(st.sampled_from(paths))
        parent, last = _get(doc, path[:-1]), path[-1]
        op = draw(
            st.sampled_from(
                [
                    "delete",
                    "replace",
                    "string",
                    "interp",
                    "wrap",
                    "none",
                    "rename",
                    "duplicate",
                    "reset",
                    "stringify",
                    "int",
                ]
            )
        )
        if op == "delete":
            del parent[last]
        elif op == "replace":
            parent[last] = draw(values)
        elif op == "string":
            parent[last] = draw(st.text(max_size=15))
        elif op == "interp":
            parent[last] = draw(interpolation_strings())
        elif op == "wrap":
            parent[last] = [parent[last]] if draw(st.booleans()) else {"k": parent[last]}
        elif op == "none":
            parent[last] = None
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = parent.pop(last)
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        elif op == "reset":
            parent[last] = RESET
        elif op == "stringify":
            parent[last] = str(parent[last])
        elif op == "int":
            parent[last] = draw(st.integers(-(2**64), 2**64))
    return doc


@pytest.mark.skipif(not SEEDS, reason="needs the conformance kit (/work/shared/conformance)")
@fuzz_settings(300)
@given(st.data())
def test_mutated_conformance_cases(data: st.DataObject) -> None:
    case_dir, env = data.draw(st.sampled_from(SEEDS), label="case")
    docs = read_yaml((case_dir / "compose.yaml").read_text(), file="compose.yaml")
    doc = docs[0] if docs else None
    new = data.draw(mutated(doc), label="mutated")
    with tempfile.TemporaryDirectory(prefix="pc-fuzz-") as tmp:
        path = Path(tmp) / case_dir.name
        shutil.copytree(case_dir, path)
        (path / "compose.yaml").write_text(dump(new))
        load_or_compose_error(path, env)


def test_seed_cases_load_unmutated() -> None:
    """The seeds themselves load (or fail cleanly), so mutations start from valid input."""
    if not SEEDS:
        pytest.skip("needs the conformance kit (/work/shared/conformance)")
    for case_dir, env in SEEDS:
        load_or_compose_error(case_dir, env)


# -- shapes random generation rarely reaches -----------------------------------------


def _alias_bomb(levels: int, where: str) -> str:
    lines = ['x-a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"x-a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    lines += ["services:", "  web:", "    image: busybox", f"    {where}: *a{levels}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("where", ["x-bomb", "command", "labels", "environment"])
def test_alias_bomb_is_bounded(where: str) -> None:
    """9**8 leaves by aliases: load it (sharing nodes) or reject it, in bounded time."""
    with project_dir(_alias_bomb(8, where)) as path:
        load_or_compose_error(path)


@pytest.mark.parametrize(
    "text",
    [
        "x-r: &r [*r]\nservices:\n  web:\n    image: busybox\n",
        "services:\n  web:\n    image: busybox\n    x-r: &r {a: *r}\n",
        "services:\n  web: &w\n    image: busybox\n    labels: &l [*l]\n",
    ],
)
def test_recursive_alias(text: str) -> None:
    with project_dir(text) as path:
        load_or_compose_error(path)


@pytest.mark.parametrize(
    "text",
    [
        "services:\n  web:\n    image: busybox\n    x-deep: " + "[" * 3000 + "]" * 3000 + "\n",
        "services:\n  web:\n    image: busybox\n    command: " + "${A:-" * 2000 + "}" * 2000 + "\n",
    ],
)
def test_deep_nesting(text: str) -> None:
    with project_dir(text) as path:
        load_or_compose_error(path)


@pytest.mark.parametrize(
    "text",
    [
        "services: !reset\nnetworks:\n  a: {}\n",
        "services: !reset {}\n",
        "services: !override\n  web:\n    image: busybox\n",
        "include: !reset ''\nservices:\n  web:\n    image: busybox\n",
        "services:\n  web: !reset\n",
        "services:\n  web:\n    image: !reset\n",
        "services:\n  web:\n    image: busybox\n    volumes:\n      - !reset\n",
        "services:\n  web:\n    image: busybox\n    environment: !override [A=1]\n",
        "services:\n  web:\n    image: busybox\n    env_file:\n      - !reset\n",
        "services:\n  web:\n    image: busybox\nnetworks: !reset\n",
        "services:\n  web:\n    image: busybox\n    ulimits:\n      nofile:\n"
        "        soft: !reset\n        hard: 2\n",
        "services:\n  web:\n    image: busybox\n    healthcheck:\n      test: !reset\n",
        "services:\n  web:\n    image: busybox\n    ports:\n      - target: !reset\n",
        "services:\n  web:\n    image: busybox\n    depends_on:\n      db:\n"
        "        condition: !reset\n  db:\n    image: busybox\n",
        "services:\n  web:\n    image: busybox\n    deploy:\n      resources: !reset\n",
    ],
)
def test_markers_where_they_make_no_sense(text: str) -> None:
    """``!reset`` / ``!override`` in a single file, at any level."""
    with project_dir(text) as path:
        load_or_compose_error(path)


# -- `config` output is itself a Compose file that resolves to the same project -----


def _config_round_trip(directory: Path, env: dict[str, str]) -> None:
    """If the project loads, its ``config`` output reloads to the same output."""
    from pycompose.compose.serialize import dump_yaml, project_to_dict, to_output

    options = LoadOptions(working_dir=str(directory), files=["compose.yaml"], environ=env)
    with time_bound():
        try:
            project = load_project(options)
        except ComposeError:
            return
        if project.disabled_services:
            return  # optional dependencies on disabled services are printed, not defined
        first = dump_yaml(to_output(project_to_dict(project)))
        (directory / "resolved.yaml").write_text(first)
        again = LoadOptions(
            working_dir=str(directory),
            files=["resolved.yaml"],
            environ=env,
            project_name=project.name,
        )
        try:
            second = dump_yaml(to_output(project_to_dict(load_project(again))))
        except ComposeError as e:
            raise AssertionError(f"config output does not load again: {e}\n{first}") from None
    assert second == first


@pytest.mark.skipif(not SEEDS, reason="needs the conformance kit (/work/shared/conformance)")
@fuzz_settings(150)
@given(st.data())
def test_config_output_round_trips(data: st.DataObject) -> None:
    case_dir, env = data.draw(st.sampled_from(SEEDS), label="case")
    docs = read_yaml((case_dir / "compose.yaml").read_text(), file="compose.yaml")
    doc = docs[0] if docs else None
    new = data.draw(st.one_of(st.just(doc), mutated(doc)), label="document")
    with tempfile.TemporaryDirectory(prefix="pc-fuzz-") as tmp:
        path = Path(tmp) / case_dir.name
        shutil.copytree(case_dir, path)
        (path / "compose.yaml").write_text(dump(new))
        _config_round_trip(path, env)


@pytest.mark.parametrize(
    "text",
    [
        'services:\n  web:\n    extends:\n      file: "\\0"\n      service: x\n',
        'include:\n  - "a\\0b.yaml"\nservices:\n  web:\n    image: busybox\n',
        'services:\n  web:\n    image: busybox\n    env_file: "a\\0b"\n',
        'services:\n  web:\n    build: "a\\0b"\n',
        'services:\n  web:\n    image: busybox\n    volumes: ["./a\\0b:/x"]\n',
        'services:\n  web:\n    image: busybox\n    secrets: [s]\n'
        'secrets:\n  s:\n    file: "a\\0b"\n',
        'services:\n  web:\n    image: busybox\n    label_file: "a\\0b"\n',
    ],
)
def test_nul_bytes_in_paths(text: str) -> None:
    with project_dir(text) as path:
        load_or_compose_error(path)
