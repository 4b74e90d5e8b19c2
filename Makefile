# The README's two commands: `make report` (the main job) and `make test`.
# Both create .venv when it is missing: torch==2.13.0 first (a CPU wheel on the build machines; a bare
# `torch` requirement would pull a multi-GB CUDA build), then the project with its extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

.PHONY: report test env clean
report: $(STAMP)
	$(BIN)/cbat report --quick --out reports/default

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[notebooks,dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	rm -f $(VENV)/.installed-* && touch $@

clean:
	rm -rf $(VENV) reports .cache
