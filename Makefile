# Two commands on a fresh machine: `make run` (the app) and `make test` (the suite).
# Each bootstraps .venv when it is missing or pyproject.toml changed, and is quick otherwise.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: run test test-fast lint bench dist dist-cuda clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,cluster]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m resnext_gui $(ARGS)

# Lint (ruff) and types (strict mypy over the whole package), then the whole suite.
test: lint
	$(PY) -m pytest $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The inner loop (under a minute on 2 cores): no standalone build, no soaks, no teaching or OpenVINO
# conversion runs, no app or CLI processes (see the markers in pyproject.toml). Two workers, one thread each,
# whole files per worker so module fixtures are built once; FAST_WORKERS=4 on a bigger machine.
FAST_WORKERS ?= 2
test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(FAST_WORKERS) --dist loadfile -m "not slow and not dist and not e2e" $(ARGS)

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,cluster,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/bench.py $(ARGS)
	$(PY) benchmarks/decode.py
	$(PY) benchmarks/isa_limit.py
	$(PY) benchmarks/library.py
	$(PY) benchmarks/library_restore.py
	$(PY) benchmarks/cam_methods.py
	$(PY) benchmarks/similar.py
	$(PY) benchmarks/cluster.py

DIST_STAMP := $(VENV)/.dist-stamp

$(DIST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,dist]'
	@touch $(DIST_STAMP)

# The standalone apps (both bundle the ImageNet weights when present at build time):
#   make dist       the light CPU app, dist/resnext-gui/resnext-gui, and its download, dist/resnext-gui-VERSION-linux-ARCH.tar.xz
#   make dist-cuda  the app with PyTorch and CUDA for NVIDIA GPUs, dist/resnext-gui-cuda/resnext-gui
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
ARCHIVE := dist/resnext-gui-$(VERSION)-linux-$(shell uname -m).tar.xz

dist: $(DIST_STAMP)
	RESNEXT_GUI_FLAVOUR=light $(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN build.spec
	packaging/make-archive.sh dist/resnext-gui $(ARCHIVE)
	@du -sh dist/resnext-gui $(ARCHIVE)

dist-cuda: $(DIST_STAMP)
	RESNEXT_GUI_FLAVOUR=cuda $(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN build.spec
	@du -sh dist/resnext-gui-cuda

clean:
	rm -rf build dist .pytest_cache
