# Two entry points for a fresh Debian/Ubuntu machine, run as root:
#   make demo   set up and run the main job
#   make test   set up and run the test suite
# Each installs what it needs (apt packages, a virtualenv, pip install) itself.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# Needed by the runtime and the tests (busybox-static builds the test images).
APT_RUNTIME := busybox-static catatonit nftables iproute2 libseccomp2 zstd skopeo \
               docker-registry apache2-utils openssl debootstrap openssh-client git
# Needed only to build the virtualenv.
APT_BUILD   := python3-venv python3-dev
# Peers measured side by side by the benchmark harness.
APT_BENCH   := docker-compose crun runc time docker.io podman
# podman-compose (PyPI) gets a virtualenv of its own, apart from the project's dependencies.
PEERS_VENV  := $(VENV)/peers
PODMAN_COMPOSE_VERSION ?= 1.6.0

.PHONY: demo test bench check apt apt-bench venv clean

demo: venv
	./scripts/demo

test: venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: venv apt-bench $(PEERS_VENV)/.installed
	PODMAN_COMPOSE=$(PEERS_VENV)/bin/podman-compose $(BIN)/python benchmarks/run.py $(BENCH_ARGS)

check: venv
	$(BIN)/ruff check pycompose compose runtime network tests benchmarks
	./scripts/typecheck

apt:
	@./scripts/apt-install $(APT_RUNTIME) $(APT_BUILD)

apt-bench:
	@./scripts/apt-install $(APT_BENCH)

venv: apt $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

$(PEERS_VENV)/.installed:
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q 'podman-compose==$(PODMAN_COMPOSE_VERSION)'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info
