# Tailwise front door. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: help setup demo test test-fast coverage lint format bench-generate bench-ingest bench-features \
	bench-online bench-offline bench-serve bench-ranking bench-train bench-drift bench-datasets bench-experiments \
	bench-experiment-e2e bench-overload bench-crash bench-ray-nodes bench-autoscale bench-soak bench-capacity clean repro serve drift-demo

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Tailwise needs Python 3.11 (found %d.%d); set PYTHON=/path/to/python3.11" % sys.version_info[:2])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(BIN)/uv pip install --python $(BIN)/python --constraint requirements.lock -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) ## Create .venv and install pinned dependencies (quick when nothing changed)

demo: setup ## Run the platform end to end on generated data, ending with the API up
	TAILWISE_DEMO=1 $(BIN)/tailwise redis
	TAILWISE_DEMO=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro evaluate
	$(BIN)/tailwise models challenge
	$(BIN)/tailwise models list
	$(BIN)/tailwise report --data data/clean
	$(BIN)/tailwise features apply
	$(BIN)/tailwise features materialize
	$(BIN)/tailwise features get --user $$($(BIN)/python -c "import pandas as pd; print(pd.read_parquet('data/features/user_profile.parquet')['user_id'].iloc[0])") --context '{"device": "mobile", "country": "DE"}'
	$(BIN)/tailwise serve --stop
	TAILWISE_DEMO=1 $(BIN)/tailwise serve --background --set redis_durability=warn
	serving/demo_requests.sh
	TAILWISE_DEMO=1 $(BIN)/tailwise simulate --truth data/raw --days 2 --users-per-day 150 --time-limit 120
	$(BIN)/tailwise events consume --once
	$(BIN)/tailwise monitor run --model $$(cat data/models/LATEST)
	@echo "Data: data/raw -> data/clean -> data/features -> data/models -> data/served; reports: monitoring/reports/index.html"
	@echo "The API is still up at http://127.0.0.1:8000 (docs: /docs; stop: $(BIN)/tailwise serve --stop)"

serve: setup ## Serve the HTTP API in the foreground (Ctrl-C stops it)
	$(BIN)/tailwise serve

test: setup ## Run every test (fast and slow)
	$(BIN)/pytest -q

test-fast: setup ## Run the fast tests only
	$(BIN)/pytest -q -m "not slow"

coverage: setup ## Fast tests with line coverage of the packages (numba kernels run as Python)
	NUMBA_DISABLE_JIT=1 $(BIN)/pytest -q -m "not slow" --cov=tailwise --cov=training \
		--cov=serving --cov=monitoring --cov-report=term-missing:skip-covered

lint: setup ## Lint, type-check and check the import layers (pyproject [tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: setup ## Format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-generate: setup ## Measure generation at 1M users / 100k items / ~20M events
	$(BIN)/python bench/generate_scale.py

bench-ingest: setup ## Measure ingestion of the 20M-event data set
	$(BIN)/python bench/ingest_scale.py

bench-features: setup ## Measure the feature build on the 20M-event clean set (after bench-ingest)
	$(BIN)/python bench/features_build.py

bench-train: setup ## Model quality over 3 seeds against the baselines and the oracle
	$(BIN)/python bench/train_quality.py

bench-datasets: setup ## generate -> ingest -> train on six profiles and the corner shop (long)
	$(BIN)/python bench/datasets.py

bench-drift: setup ## Drift on 100k rows x 40 features
	$(BIN)/python bench/monitor_drift.py

drift-demo: setup ## The closed loop twice: a control run and a shifted world (~25 min)
	$(BIN)/tailwise redis
	$(BIN)/python bench/drift_scenario.py

bench-serve: setup ## Load-test the API at 25..600 req/s, with feast serve for scale (after make demo)
	$(BIN)/python bench/serve_load.py --config cache_ttl_seconds=0 --ray-worker-niceness 0

bench-overload: setup ## Twice the sustained rate: fast 503s, accepted p99, recovery (after make demo)
	$(BIN)/python bench/overload.py

bench-crash: setup ## kill -9 of the serving replica under load: errors, restart, no event lost
	$(BIN)/python bench/replica_crash.py

bench-ray-nodes: setup ## 3 Ray nodes on this host: replicas spread, a worker node lost under load
	$(BIN)/python bench/ray_nodes.py

MINUTES ?= 30
bench-autoscale: setup ## Replicas follow ongoing requests: 1 -> 2 under load, back to 1 after
	$(BIN)/python bench/autoscale.py

bench-soak: setup ## Soak: MINUTES (30) at 100 req/s with events; p99, RSS, Redis memory, errors
	$(BIN)/python bench/soak.py --minutes $(MINUTES)

bench-capacity: setup ## Unit costs (Redis commands and bytes, CPU per request) and the capacity plan from them
	$(BIN)/python bench/capacity.py

bench-ranking: setup ## Time the request path's stages in one process (CPU per request)
	$(BIN)/python bench/ranking_step.py --label after

bench-experiments: setup ## Experiment statistics and Thompson sampling against their bands (~4 min)
	$(BIN)/python bench/experiment_stats.py

bench-experiment-e2e: setup ## Champion vs challenger vs popularity: simulated shoppers, the served bandit, the report (~15 min)
	$(BIN)/python bench/experiment_e2e.py

bench-online: setup ## Measure materialisation and online lookups (100k people), SDK vs direct
	$(BIN)/python bench/online_lookup.py --users 100000 --items 10000

bench-offline: setup ## Compare Feast's duckdb and file offline stores (after bench-online)
	$(BIN)/python bench/offline_store.py --data bench/work/clean-100000u-10000i-60d-s42 \
		--features bench/work/features-100000u-10000i-60d-s42 --rows 10000

clean: ## Remove generated data and caches (keeps .venv)
	rm -rf data/raw data/clean data/features data/feast data/training data/evaluation data/models \
		data/served/requests data/served/events/event_date=* data/scenarios monitoring/reports .pytest_cache .ruff_cache .mypy_cache

repro: setup ## Rebuild the DVC pipeline (dvc.yaml) where inputs or params changed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
