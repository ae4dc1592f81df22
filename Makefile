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
  libxcb-randr0 libxcb-xfixes0 libxcb-sync1 libxcb-shm0 libxcb-xinerama0 libx11-xcb1 xvfb xauth \
  libwayland-cursor0 libwayland-egl1

RUST_SOURCES := $(shell find rustcore grpcd proto -name '*.rs' -o -name '*.proto' -o -name Cargo.toml -o -name build.rs 2>/dev/null) Cargo.toml

.PHONY: all build run test test-rust test-python test-xcb lint-python bench fuzz sysdeps clean dist

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

test: build lint-rust lint-python test-rust test-python test-xcb

test-rust:
	$(CARGO) test --release -p rustcore -p grpcd

# Rust gates: formatting and clippy (warnings are errors); the components are added only if missing.
.PHONY: lint-rust
lint-rust:
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings

# static gates on the Python code: ruff lint + format check (config in pyproject.toml), mypy on
# the whole hft_lab package (backends/, data/, analysis/, bench/, cluster/, ui/ and the top-level
# modules; issue 15), and fully qualified PySide6 enums
lint-python: $(STAMPS)/venv
	$(PY) -m ruff check desktop tests tools
	$(PY) -m ruff format --check desktop tests tools
	$(PY) -m mypy desktop/hft_lab
	$(PY) tools/qualify_enums.py

# The suite on 2 pytest-xdist workers (one test file per unit, see tests/conftest.py), then the
# timing-sensitive tests (marker `serial`) alone, so no other test competes with them for the CPU.
# PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 2
test-python: build
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -n $(PYTEST_WORKERS) -m "not serial" $(PYTEST_ARGS)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider -m serial $(PYTEST_ARGS)

# the click-like GUI tests again on the real xcb platform under a virtual X server (not only offscreen)
test-xcb: build
	xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb $(PY) -m pytest -q -p no:cacheprovider tests/test_user_paths.py

bench: build
	$(PY) -m hft_lab.bench $(BENCH_ARGS)
	$(PY) -m hft_lab.bench.pairs  # issue 17: pairs scan / Johansen cells
	$(PY) -m hft_lab.bench.startup --runs 5  # issue 16: process start -> first painted window

# start-up time of the app: process start -> first painted main window (issue 16)
.PHONY: bench-startup
bench-startup: build
	$(PY) -m hft_lab.bench.startup --runs 5

# 60 s of random and mutated protobuf against every RPC of a fresh grpcd; fails on a crash
# or an INTERNAL answer (FUZZ_ARGS="--seconds 600 --seed 7" for longer or reproducible runs).
FUZZ_ARGS ?=
fuzz: build
	$(PY) tools/fuzz_grpc.py --seconds 60 $(FUZZ_ARGS)

clean:
	rm -rf $(STAMPS) target build dist desktop/hft_lab/_proto desktop/hft_lab/*.so

# ==== packaged app (issue 9): make dist, make smoke-dist ================================
# dist/hft-lab/ (launcher dist/hft-lab/hft-lab) + dist/hft-lab-<version>-linux-<arch>.tar.gz,
# built by PyInstaller from build_app.spec. `dist-bundle` is the same without rebuilding first
# (it packages what the last `make build` produced; tests/test_dist.py uses it).
APP_VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' desktop/hft_lab/__init__.py)
DIST_APP := dist/hft-lab
DIST_TAR := dist/hft-lab-$(APP_VERSION)-linux-$(shell uname -m).tar.xz
# xz level of the archive (issue 19: -6 gives 62 MiB against 86 MiB with gzip); the tests pass -0,
# which writes the same files faster
XZ_LEVEL ?= -6

define PACKAGE_DIST
	$(PY) -m PyInstaller --noconfirm --clean --log-level WARN build_app.spec
	cp resources/hft-lab.desktop resources/icons/hft-lab.png resources/icons/hft-lab.svg $(DIST_APP)/
	$(PY) tools/collect_licenses.py --bundle $(DIST_APP) --workpath build/build_app
	rm -f dist/hft-lab-*-linux-*.tar.gz
	tar -C dist --owner=0 --group=0 --numeric-owner -cf - hft-lab | xz $(XZ_LEVEL) -T0 > $(DIST_TAR).part
	mv $(DIST_TAR).part $(DIST_TAR)
	@echo "bundle: $$(du -sh $(DIST_APP) | cut -f1) in $(DIST_APP)/ ; archive: $$(du -h $(DIST_TAR) | cut -f1) $(DIST_TAR)"
endef

.PHONY: dist-bundle smoke-dist

dist: build
	$(PACKAGE_DIST)

dist-bundle: $(STAMPS)/venv
	$(PACKAGE_DIST)

# run the bundle as a user would: no Python, no Rust, no repo on PATH
smoke-dist:
	@[ -x $(DIST_APP)/hft-lab ] || { echo "no bundle in $(DIST_APP): run 'make dist' first"; exit 1; }
	env -i HOME="$$HOME" QT_QPA_PLATFORM=offscreen $(DIST_APP)/hft-lab --smoke

# ==== install like an app (issue 19): make install / uninstall, make deb, licenses, glibc =====
# `make install` copies the bundle `make dist` made: PREFIX/lib/hft-lab/, PREFIX/bin/hft-lab,
# PREFIX/share/applications/hft-lab.desktop (absolute Exec/Icon), PREFIX/share/icons/hicolor/...,
# and a manifest; `make uninstall` removes exactly what the manifest lists. Root: PREFIX=/usr/local.
# Both run with the system python3 (desktop/hft_lab/installer.py is standard library only), so
# `sudo make install PREFIX=/usr/local` needs no venv. The extracted tarball does the same with
# `hft-lab/hft-lab install [--prefix P]`.
PREFIX ?= $(HOME)/.local
DEB_COMPRESS ?= xz
# tools the packaging steps and their tests use (desktop-file-validate, update-desktop-database,
# gio, gtk-update-icon-cache, objdump, xz, xwininfo); lintian only for `make lint-deb`
PACKAGING_APT := desktop-file-utils libglib2.0-bin gtk-update-icon-cache binutils xz-utils x11-utils

define APT_MISSING
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

$(STAMPS)/sysdeps-packaging: | $(STAMPS)
	$(call APT_MISSING,$(PACKAGING_APT))
	@touch $@
build: $(STAMPS)/sysdeps-packaging

.PHONY: install uninstall deb lint-deb glibc-min
install:
	$(PY_SYS) desktop/hft_lab/installer.py install --bundle $(DIST_APP) --prefix "$(PREFIX)"

uninstall:
	$(PY_SYS) desktop/hft_lab/installer.py uninstall --prefix "$(PREFIX)"

# dist/hft-lab_<version>_<arch>.deb from the same bundle (make dist first)
deb: $(STAMPS)/sysdeps-packaging
	$(PY_SYS) tools/build_deb.py --bundle $(DIST_APP) --compress $(DEB_COMPRESS)

lint-deb: deb
	$(call APT_MISSING,lintian)
	lintian --tag-display-limit 0 dist/hft-lab_$(APP_VERSION)_$$(dpkg --print-architecture).deb

# the minimum glibc of the bundle (highest GLIBC_x.y symbol version of its ELF files) and the
# host libraries it still needs
glibc-min:
	$(PY_SYS) tools/bundle_elf.py report $(DIST_APP)
