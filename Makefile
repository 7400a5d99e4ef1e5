# dormguard: `make demo` runs the whole system on embedded defaults, `make test` runs every test.
# Both create .venv and install what they need (system packages too when run as root on Debian).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.dormguard-installed
APT_PACKAGES := mosquitto openssl victoria-metrics postgresql chromium fonts-wqy-microhei
export OPENBLAS_NUM_THREADS := 1

.PHONY: demo test install system-packages lint bench chaos clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# face_recognition the fast way: dlib-bin (prebuilt) and the model package come with the
# project's dependencies; face-recognition itself goes in with --no-deps so pip never builds dlib.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps face-recognition==1.3.0
	touch $(STAMP)

install: $(STAMP)

system-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  fi; \
	elif ! command -v mosquitto >/dev/null 2>&1; then \
	  echo "note: mosquitto is not installed; run as root or: sudo apt-get install mosquitto"; \
	fi

test: system-packages install
	$(BIN)/python tests/photos.py >/dev/null
	$(BIN)/python -m pytest -q

demo: system-packages install
	$(BIN)/dormguard demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/gate_latency.py
	$(BIN)/python bench/gate_rush.py
	$(BIN)/python bench/bridge_throughput.py
	$(BIN)/python bench/gateway_ingest.py
	$(BIN)/python bench/board.py

# The whole system for real under six faults, counted end to end (about 15 min; needs root).
# CI runs the short one: $(BIN)/python bench/chaos.py --short (docs/reliability.md).
chaos: system-packages install
	$(BIN)/python bench/chaos.py

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache
