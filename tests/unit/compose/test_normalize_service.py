"""Service attributes to long form: depends_on, healthcheck, command, limits, ..."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.compose.model import Build, Dependency, Healthcheck, Resources, Ulimit

from .loader_helpers import load, load_errors, roundtrip


def service(tmp_path: Path, body: str, extra: str = "") -> object:
    text = "services:\n  web:\n    image: a\n" + "".join(
        f"    {line}\n" for line in body.strip("\n").split("\n")) + extra
    return load(tmp_path, text).services["web"]


DB = "  db:\n    image: d\n"


def test_depends_on_list(tmp_path: Path) -> None:
    svc = service(tmp_path, "depends_on: [db]", DB)
    assert dict(svc.depends_on) == {"db": Dependency()}  # type: ignore[attr-defined]


def test_depends_on_long(tmp_path: Path) -> None:
    svc = service(tmp_path, "depends_on:\n  db: {condition: service_healthy, required: false,"
                  " restart: true}", DB)
    assert svc.depends_on["db"] == Dependency(  # type: ignore[attr-defined]
        condition="service_healthy", required=False, restart=True)


def test_depends_on_condition_defaults_to_started(tmp_path: Path) -> None:
    svc = service(tmp_path, "depends_on:\n  db: {required: true}", DB)
    assert svc.depends_on["db"].condition == "service_started"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("body", "test"), [
    ("healthcheck: {test: curl -f http://x}", ("CMD-SHELL", "curl -f http://x")),
    ("healthcheck: {test: [CMD, 'true']}", ("CMD", "true")),
    ("healthcheck: {test: [NONE]}", ("NONE",)),
])
def test_healthcheck_test(tmp_path: Path, body: str, test: tuple[str, ...]) -> None:
    assert service(tmp_path, body).healthcheck.test == test  # type: ignore[attr-defined]


def test_healthcheck_durations_are_seconds(tmp_path: Path) -> None:
    hc = service(tmp_path, "healthcheck:\n  test: [CMD, x]\n  interval: 1m30s\n  timeout: 500ms"
                 "\n  start_period: 10s\n  start_interval: 1s\n  retries: 5").healthcheck  # type: ignore[attr-defined]
    assert hc == Healthcheck(test=("CMD", "x"), interval=90.0, timeout=0.5, start_period=10.0,
                             start_interval=1.0, retries=5)


def test_healthcheck_disable(tmp_path: Path) -> None:
    assert service(tmp_path, "healthcheck: {disable: true}").healthcheck.disable  # type: ignore[attr-defined]


def test_bad_duration_is_reported(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, "services:\n  web:\n    image: a\n    healthcheck:\n"
                         "      interval: soon\n")
    assert errors == ['compose.yaml: services.web.healthcheck.interval: invalid duration "soon"']


def test_healthcheck_list_must_start_with_cmd(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, "services:\n  web:\n    image: a\n    healthcheck:\n"
                         "      test: [curl, x]\n")
    assert errors == ['compose.yaml: services.web.healthcheck.test: invalid test "curl" (a list '
                      'must start with "CMD", "CMD-SHELL" or "NONE")']


@pytest.mark.parametrize(("body", "argv"), [
    ("command: echo 'hello world' \"a b\"", ("echo", "hello world", "a b")),
    ("command: [echo, hi]", ("echo", "hi")),
    ("command: []", ()),
    ("entrypoint: /bin/sh -c", None),
])
def test_command_split_as_shell(tmp_path: Path, body: str, argv: object) -> None:
    svc = service(tmp_path, body)
    if body.startswith("entrypoint"):
        assert svc.entrypoint == ("/bin/sh", "-c")  # type: ignore[attr-defined]
    else:
        assert svc.command == argv  # type: ignore[attr-defined]


def test_stop_grace_period(tmp_path: Path) -> None:
    assert service(tmp_path, "stop_grace_period: 1m").stop_grace_period == 60.0  # type: ignore[attr-defined]


def test_sizes_and_cpus(tmp_path: Path) -> None:
    svc = service(tmp_path, "mem_limit: 512m\nmem_reservation: 1g\nshm_size: 64m\ncpus: 1.5\n"
                  "pids_limit: 100")
    assert svc.mem_limit == 512 << 20
    assert svc.mem_reservation == 1 << 30
    assert svc.shm_size == 64 << 20
    assert svc.cpus == 1.5
    assert svc.limits == Resources(cpus=1.5, memory=512 << 20, pids=100)  # type: ignore[attr-defined]


def test_deploy_resources(tmp_path: Path) -> None:
    svc = service(tmp_path, "deploy:\n  replicas: 2\n  resources:\n    limits: {cpus: '0.5', "
                  "memory: 256M, pids: 10}\n    reservations: {memory: 64m}\n  restart_policy:"
                  "\n    condition: on-failure\n    delay: 5s\n    max_attempts: 3")
    assert svc.replicas == 2  # type: ignore[attr-defined]
    assert svc.limits == Resources(cpus=0.5, memory=256 << 20, pids=10)  # type: ignore[attr-defined]
    assert svc.deploy.reservations == Resources(memory=64 << 20)  # type: ignore[attr-defined]
    assert svc.deploy.restart_policy.delay == 5.0  # type: ignore[attr-defined]


def test_limits_given_twice_must_agree(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, "services:\n  web:\n    image: a\n    mem_limit: 1g\n"
                         "    deploy: {resources: {limits: {memory: 2g}}}\n")
    assert errors == ["compose.yaml: services.web.mem_limit: differs from "
                      "deploy.resources.limits.memory (1073741824 != 2147483648); set one of them"]


def test_ulimits(tmp_path: Path) -> None:
    svc = service(tmp_path, "ulimits:\n  nproc: 65535\n  nofile: {soft: 1024, hard: 2048}")
    assert dict(svc.ulimits) == {"nproc": Ulimit(soft=65535, hard=65535),  # type: ignore[attr-defined]
                                 "nofile": Ulimit(soft=1024, hard=2048)}


def test_ulimit_soft_above_hard(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, "services:\n  web:\n    image: a\n    ulimits:\n"
                         "      nofile: {soft: 10, hard: 5}\n")
    assert errors == ["compose.yaml: services.web.ulimits.nofile: soft limit 10 is above the hard "
                      "limit 5"]


def test_labels_and_sysctls_lists(tmp_path: Path) -> None:
    svc = service(tmp_path, "labels: [a=1, b]\nsysctls: [net.core.somaxconn=1024]")
    assert dict(svc.labels) == {"a": "1", "b": ""}  # type: ignore[attr-defined]
    assert dict(svc.sysctls) == {"net.core.somaxconn": "1024"}  # type: ignore[attr-defined]


def test_extra_hosts(tmp_path: Path) -> None:
    svc = service(tmp_path, 'extra_hosts: ["a:1.2.3.4", "b=::1"]')
    assert svc.extra_hosts == ("a=1.2.3.4", "b=::1")  # type: ignore[attr-defined]
    svc = service(tmp_path, "extra_hosts: {a: 1.2.3.4, b: [5.6.7.8, 9.9.9.9]}")
    assert svc.extra_hosts == ("a=1.2.3.4", "b=5.6.7.8", "b=9.9.9.9")  # type: ignore[attr-defined]


def test_build_short_and_long(tmp_path: Path) -> None:
    svc = load(tmp_path, "services:\n  web:\n    build: ./app\n").services["web"]
    assert svc.build == Build(context=str(tmp_path / "app"), dockerfile="Dockerfile")
    svc = load(tmp_path, "services:\n  web:\n    build:\n      context: .\n      args: [A=1]\n"
               "      target: prod\n").services["web"]
    assert svc.build is not None
    assert dict(svc.build.args) == {"A": "1"}
    assert svc.build.context == str(tmp_path)
    assert svc.build.target == "prod"


def test_build_git_context_kept(tmp_path: Path) -> None:
    svc = load(tmp_path, "services:\n  web:\n    build: https://github.com/a/b.git#main\n"
               ).services["web"]
    assert svc.build is not None
    assert svc.build.context == "https://github.com/a/b.git#main"


def test_image_or_build_required(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, "services:\n  web:\n    tty: true\n")
    assert errors == ["compose.yaml: services.web: has neither an image nor a build context "
                      "specified"]


def test_default_network(tmp_path: Path) -> None:
    project = load(tmp_path, "name: p\nservices:\n  web: {image: a}\n"
                   "  host: {image: a, network_mode: host}\n")
    assert dict(project.services["web"].networks) == {"default": None}
    assert dict(project.services["host"].networks) == {}
    assert project.networks["default"].name == "p_default"


def test_service_networks(tmp_path: Path) -> None:
    project = load(tmp_path, """
        services:
          web:
            image: a
            networks:
              front: {aliases: [www], ipv4_address: 10.0.0.5, priority: 10}
              back:
        networks:
          front: {ipam: {config: [{subnet: 10.0.0.0/24, gateway: 10.0.0.1}]}}
          back: {internal: true}
    """)
    nets = project.services["web"].networks
    assert nets["back"] is None
    assert nets["front"] is not None
    assert nets["front"].aliases == ("www",)
    assert nets["front"].ipv4_address == "10.0.0.5"
    assert nets["front"].priority == 10
    assert project.networks["back"].internal
    assert project.networks["front"].ipam is not None
    assert project.networks["front"].ipam.config[0].subnet == "10.0.0.0/24"


def test_bad_subnet(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, "services: {web: {image: a}}\nnetworks:\n  n:\n    ipam:\n"
                         "      config: [{subnet: 10.0.0/33}]\n")
    assert errors == ['compose.yaml: networks.n.ipam.config[0].subnet: invalid subnet '
                      '"10.0.0/33"']


def test_secrets_and_configs(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("x")
    project = load(tmp_path, """
        services:
          web:
            image: a
            secrets: [pw, {source: pw, target: /x, mode: 0400}]
            configs: [cfg]
        secrets:
          pw: {file: ./s.txt}
        configs:
          cfg: {content: hello}
    """)
    web = project.services["web"]
    assert web.secrets[0].source == "pw"
    assert web.secrets[1].mode == 0o400
    assert project.secrets["pw"].file == str(tmp_path / "s.txt")
    assert project.configs["cfg"].content == "hello"


def test_x_keys_kept_as_extensions(tmp_path: Path) -> None:
    project = load(tmp_path, "x-top: 1\nservices:\n  web: {image: a, x-note: hi}\n")
    assert project.extensions == {"x-top": 1}
    assert project.services["web"].extensions == {"x-note": "hi"}


def test_unmodelled_keys_in_extra(tmp_path: Path) -> None:
    project = load(tmp_path, "services:\n  web: {image: a, oom_score_adj: 100}\n")
    assert project.services["web"].extra == {"oom_score_adj": 100}


def test_unsupported_key_warns_once_with_service(tmp_path: Path) -> None:
    project = load(tmp_path, "services:\n  web: {image: a, runtime: runsc}\n"
                   "  db: {image: b, runtime: runsc}\n")
    runtime_warnings = [w for w in project.warnings if '"runtime"' in w]
    assert len(runtime_warnings) == 2
    assert runtime_warnings[0].startswith('service "db": "runtime"')


def test_roundtrip_everything(tmp_path: Path) -> None:
    project = load(tmp_path, """
        name: rt
        services:
          web:
            build: {context: ., args: {A: "1"}}
            image: web:dev
            command: echo "$$HOME" hi
            environment: {A: "1", COST: "$$5"}
            depends_on: {db: {condition: service_healthy}}
            healthcheck: {test: "curl x", interval: 1m30s, retries: 3}
            ports: ["8080:80"]
            ulimits: {nofile: 1024}
            mem_limit: 1g
            deploy: {resources: {limits: {cpus: "0.5"}}, restart_policy: {delay: 5s}}
            stop_grace_period: 20s
            labels: {a: b}
            logging: {driver: json-file, options: {max-size: 10m}}
            restart: always
          db:
            image: postgres
            volumes: [data:/var/lib/postgresql/data]
            profiles: [all]
        volumes:
          data: {}
    """, profiles=["all"])
    again = roundtrip(tmp_path, project)
    assert again.services == project.services
    assert again.volumes == project.volumes
    assert again.networks == project.networks
    assert project.services["web"].command == ("echo", "$HOME", "hi")
    assert project.services["web"].environment["COST"] == "$5"


def test_json_roundtrip(tmp_path: Path) -> None:
    from pycompose.compose.loader import LoadOptions, load_project
    from pycompose.compose.serialize import dump_json, project_to_dict, to_output

    project = load(tmp_path, """
        services:
          web:
            image: a
            ports: ["8080:80"]
            healthcheck: {test: [CMD, x], interval: 2s}
            environment: {PRICE: "$$5"}
            build: {context: ., additional_contexts: {base: ./base}}
    """)
    (tmp_path / "out.json").write_text(dump_json(to_output(project_to_dict(project))))
    again = load_project(LoadOptions(working_dir=str(tmp_path), files=["out.json"],
                                     environ={"HOME": "/home/user"}))
    assert again.services == project.services
    build = project.services["web"].build
    assert build is not None
    assert build.extra["additional_contexts"] == {"base": str(tmp_path / "base")}


def test_project_name_visible_to_interpolation(tmp_path: Path) -> None:
    project = load(tmp_path, "services:\n  web: {image: 'a', container_name: "
                   "'${COMPOSE_PROJECT_NAME}-web'}\n", project_name="demo")
    assert project.services["web"].container_name == "demo-web"
