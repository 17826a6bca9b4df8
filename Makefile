# The two commands of the README: `make demo` (the whole pipeline on the embedded
# default) and `make test`. Both create or update the virtual environment first.
PYTHON ?= python3.10
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= runs/demo
# The published-size models `make bench` builds once for the inference and evaluator runs.
BENCH_MODELS ?= benchmarks/out/models
# Build-time dependencies of sdists resolve as of the lock (see constraints.txt).
RESOLVED_BEFORE := 2024-10-01

.PHONY: venv demo test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install-debian.sh
	bash scripts/install-debian.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt uv
	$(BIN)/uv pip install -q --python $(BIN)/python --exclude-newer $(RESOLVED_BEFORE) \
		-c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mbqa demo --out $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15 tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_windows.py
	$(BIN)/python benchmarks/bench_windows.py --repeat 5 --out benchmarks/out/windows-x5.json
	$(BIN)/python benchmarks/bench_input_pipeline.py
	$(BIN)/python benchmarks/bench_inference.py --work $(BENCH_MODELS)
	$(BIN)/python benchmarks/bench_evaluator.py --work $(BENCH_MODELS)
	$(BIN)/python benchmarks/summary.py

clean:
	rm -rf $(VENV) runs
