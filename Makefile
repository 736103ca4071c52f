# Two entry points on a fresh machine:
#   make demo   venv + install + run the default scenario on the embedded file store
#   make test   venv + test extras + Debian's influxdb on a loopback port + the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test install install-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/twin run scenarios/cigre_mv_day.yaml

test: install-test
	VENV=$(VENV) bash scripts/test.sh

bench: install
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) runs build *.egg-info
