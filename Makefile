PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo bench bench-hub lint typecheck clean table proto

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found; set PY=python3.x (>= 3.11)"; exit 1; }
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/buf lint

typecheck: $(STAMP)
	$(BIN)/mypy src/sighub

test: lint typecheck
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/python examples/demo.py

bench: $(STAMP)
	$(BIN)/python bench/bench_canon.py
	$(BIN)/python bench/bench_bundle.py
	$(BIN)/python bench/bench_client.py
	$(BIN)/python bench/bench_reload.py

# The hub at scale: a million indicators (about 6 minutes and 1.3 GB of temporary disk),
# then inclusion proofs from a hub whose log holds 10 million leaves (about 3 minutes and
# 2.4 GB).
bench-hub: $(STAMP)
	$(BIN)/python bench/bench_hub.py
	$(BIN)/python bench/bench_proof.py

# Regenerate the canon/1 folding table (only for a deliberate canon/2 change).
table: $(STAMP)
	$(BIN)/python -m sighub.client._canon._gen_table

# Regenerate src/sighub/client/_proto from proto/ (a test fails when the committed code is stale).
proto: $(STAMP)
	$(BIN)/python proto/gen.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
