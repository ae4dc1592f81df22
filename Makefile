# HFT Arbitrage Lab. Two commands do all set-up on a fresh machine:
#   make run   - install what is missing, build everything, launch the app
#   make test  - install what is missing, build everything, run every Rust and Python test
# Both are idempotent; a second run only rebuilds what changed.

SHELL := /bin/bash
PY_SYS ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .stamps
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CARGO ?= cargo
PYTEST_ARGS ?=

# Debian packages Qt needs (offscreen and xcb) and fonts; see ../shared/ARCHITECTURE.md.
APT_PACKAGES := libegl1 libgl1 libx11-6 libdbus-1-3 libfontconfig1 libfreetype6 libglib2.0-0 \
  libxkbcommon0 fonts-dejavu-core libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
  libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-util1 libxcb-xkb1 libxkbcommon-x11-0 \
  libxcb-randr0 libxcb-xfixes0 libxcb-sync1 libxcb-shm0 libxcb-xinerama0 libx11-xcb1 xvfb xauth

RUST_SOURCES := $(shell find rustcore grpcd proto -name '*.rs' -o -name '*.proto' -o -name Cargo.toml -o -name build.rs 2>/dev/null) Cargo.toml

.PHONY: all build run test test-rust test-python bench sysdeps clean dist

all: build

$(STAMPS):
	@mkdir -p $(STAMPS)

# --- system packages (apt), only those missing ---
$(STAMPS)/sysdeps: | $(STAMPS)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@
sysdeps: $(STAMPS)/sysdeps

# --- Python virtual environment ---
$(STAMPS)/venv: requirements.txt requirements-dev.txt | $(STAMPS)
	@[ -x $(PY) ] || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

# --- Python gRPC messages generated from the proto (not committed) ---
$(STAMPS)/proto-py: proto/hftlab/v1/hftlab.proto $(STAMPS)/venv
	@rm -rf desktop/hft_lab/_proto && mkdir -p desktop/hft_lab/_proto
	$(PY) -m grpc_tools.protoc -Iproto --python_out=desktop/hft_lab/_proto --pyi_out=desktop/hft_lab/_proto proto/hftlab/v1/hftlab.proto
	@touch desktop/hft_lab/_proto/__init__.py desktop/hft_lab/_proto/hftlab/__init__.py desktop/hft_lab/_proto/hftlab/v1/__init__.py
	@touch $@

# --- the PyO3 extension hft_lab._rustcore, installed editable into the venv ---
$(STAMPS)/ext: $(RUST_SOURCES) pyproject.toml $(STAMPS)/venv
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/maturin develop --release -q
	@touch $@

# --- grpcd ---
target/release/grpcd: $(RUST_SOURCES)
	$(CARGO) build --release -p grpcd
	@touch $@

build: $(STAMPS)/sysdeps $(STAMPS)/venv $(STAMPS)/proto-py $(STAMPS)/ext target/release/grpcd

run: build
	@$(PY) -m hft_lab

test: build test-rust test-python

test-rust:
	$(CARGO) test --release -p rustcore -p grpcd

test-python: build
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)

bench: build
	$(PY) -m hft_lab.bench $(BENCH_ARGS)

clean:
	rm -rf $(STAMPS) target desktop/hft_lab/_proto desktop/hft_lab/*.so
