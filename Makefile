# Two commands do all the set-up on a fresh machine:
#   make demo   - builds the environment, colorizes a small synthetic film end to end
#   make test   - builds the environment, runs the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench venv clean

$(BIN)/filmcolor: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch pinned first: the CPU build (an unpinned torch pulls GBs of CUDA packages)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

venv: $(BIN)/filmcolor

demo: venv
	$(BIN)/filmcolor demo --out-dir demo-out

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) demo-out bench/out
