"""Compose projects generated for the parse benchmarks (written to a temp dir).

The large project exercises what real files use: YAML anchors and ``<<``
merge keys, a project ``.env`` and interpolation (defaults and a required
variable), ``env_file`` lists, short and long ports, named volumes, binds and
tmpfs, healthchecks, ``depends_on`` in short and long form, and two networks.
Both pycompose and docker-compose 1.29 accept it.
"""

from __future__ import annotations

from pathlib import Path

HEADER = """\
x-healthcheck: &healthcheck
  test: ["CMD", "true"]
  interval: 30s
  timeout: 5s
  retries: 3
  start_period: 10s

x-logging: &logging
  driver: json-file
  options:
    max-size: 10m
    max-file: "3"

x-common: &common
  restart: unless-stopped
  init: true
  healthcheck: *healthcheck
  logging: *logging
  labels:
    com.example.stack: bench
    com.example.tier: ${TIER:-backend}
  networks:
    - front
    - back

services:
"""

SERVICE = """\
  svc{i:03d}:
    <<: *common
    image: ${{REGISTRY}}/busybox:${{TAG:-1.36}}
    command: ["sh", "-c", "echo svc{i:03d} && sleep 3600"]
    env_file:
      - ./env/common.env
      - ./env/group{g}.env
    environment:
      SERVICE_NAME: svc{i:03d}
      LOG_LEVEL: ${{LOG_LEVEL:-info}}
      DB_URL: postgres://${{DB_USER:-app}}:${{DB_PASS:?DB_PASS must be set}}@db:5432/app
      EMPTY_OK: ${{UNSET_BUT_DEFAULTED-}}
    ports:
      - "${{BIND_IP:-127.0.0.1}}:{http}:80"
      - "{udp}:8125/udp"
      - target: 9090
        published: "{metrics}"
        protocol: tcp
    volumes:
      - data{i:03d}:/data
      - ./config/group{g}:/etc/app:ro
      - type: tmpfs
        target: /tmp
    working_dir: /data
    stop_grace_period: 20s
"""

DEPENDS_SHORT = """\
    depends_on:
{items}
"""

DEPENDS_LONG = """\
    depends_on:
{items}
"""

HEALTH_OVERRIDE = """\
    healthcheck:
      <<: *healthcheck
      test: "wget -q -O /dev/null http://localhost/ || exit 1"
      interval: 1m30s
"""

FOOTER_NETWORKS = """\
networks:
  front:
  back:
    driver: bridge
"""

DOTENV = """\
# project defaults for the benchmark
REGISTRY=docker.io/library
TAG=1.36
export LOG_LEVEL=debug
DB_PASS='s3cret'
BIND_IP=127.0.0.1
TIER="backend"
"""


def write_large_project(root: Path, services: int = 300, groups: int = 10) -> Path:
    """Write the project under ``root``; return the compose file's path."""
    (root / "env").mkdir(parents=True, exist_ok=True)
    (root / ".env").write_text(DOTENV)
    (root / "env" / "common.env").write_text("COMMON=1\nTZ=UTC\n# shared by every service\n")
    for g in range(groups):
        (root / "env" / f"group{g}.env").write_text(f"GROUP=group{g}\nGROUP_INDEX={g}\n")
        (root / "config" / f"group{g}").mkdir(parents=True, exist_ok=True)
    parts = [HEADER]
    for i in range(services):
        parts.append(
            SERVICE.format(i=i, g=i % groups, http=20000 + i, udp=30000 + i, metrics=40000 + i)
        )
        deps = sorted({i - 1, i // 2} - {i}) if i else []
        if deps and i % 3 == 0:
            items = "\n".join(
                f"      svc{d:03d}:\n        condition: service_healthy" for d in deps
            )
            parts.append(DEPENDS_LONG.format(items=items))
        elif deps:
            parts.append(DEPENDS_SHORT.format(items="\n".join(f"      - svc{d:03d}" for d in deps)))
        if i % 5 == 0:
            parts.append(HEALTH_OVERRIDE)
    parts.append("volumes:\n")
    parts.extend(f"  data{i:03d}:\n" for i in range(services))
    parts.append(FOOTER_NETWORKS)
    path = root / "compose.yaml"
    path.write_text("".join(parts))
    return path


SMALL = """\
services:
  web:
    image: nginx:1.25
    ports:
      - "8080:80"
    depends_on:
      - api
  api:
    image: busybox:${TAG:-1.36}
    command: ["sh", "-c", "sleep 3600"]
    environment:
      DB_HOST: db
    depends_on:
      db:
        condition: service_healthy
  db:
    image: postgres:16
    volumes:
      - dbdata:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD", "pg_isready"]
      interval: 5s

volumes:
  dbdata:
"""


def write_small_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "compose.yaml"
    path.write_text(SMALL)
    return path
