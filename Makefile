# Every target builds its own environment: on a fresh machine `make demo` and
# `make test` are the only commands needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: demo test bench lint clean sysdeps

# System packages the tests drive for real: Alertmanager (the collector's alert
# target) and Chromium (the HTML report, rendered headless). Installed with apt-get
# when missing; without root or apt-get this fails loudly instead of skipping tests.
SYSTEM_PACKAGES := prometheus-alertmanager chromium
SYSTEM_BINARIES := /usr/bin/prometheus-alertmanager /usr/bin/chromium

sysdeps:
	@missing=0; for b in $(SYSTEM_BINARIES); do test -x $$b || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  echo "installing system packages: $(SYSTEM_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/otel-llm demo

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The benchmark environment also holds the peers we measure against, pinned so
# pip's resolver does not backtrack (OpenLIT's own pins otherwise take minutes).
# otel-llm comes with its collector extra (the storage bench), not dev: dev pins agent
# frameworks whose SDK ranges exclude the SDK versions OpenLIT allows.
$(BENCH_STAMP): pyproject.toml bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[collector]' -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/overhead.py
	$(BENCH_VENV)/bin/python bench/storage.py
	$(BENCH_VENV)/bin/python bench/collector.py
	$(BENCH_VENV)/bin/python bench/startup.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .ruff_cache
