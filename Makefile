# The README's two commands: `make report` (the main job) and `make test`.
# Both create .venv when it is missing: torch==2.13.0 first (a CPU wheel on the build machines; a bare
# `torch` requirement would pull a multi-GB CUDA build), then the project with the extras the command needs:
# the report the notebook stack, the tests that plus the dev tools (pytest, Ray, Selenium, the RoPE reference),
# about 35 s more to install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell cat pyproject.toml | md5sum | cut -c1-12)
EXTRAS_report := notebooks
EXTRAS_test := notebooks,dev

.PHONY: report test env clean
report: $(VENV)/.installed-report-$(HASH)
	$(BIN)/cbat report --quick --out reports/default

test: $(VENV)/.installed-test-$(HASH)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

env: $(VENV)/.installed-test-$(HASH)

$(VENV)/.installed-%-$(HASH): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile torch==2.13.0
	$(BIN)/python -m pip install -q --no-compile -e '.[$(EXTRAS_$*)]'
	@# pip byte-compiles on one core (about 45 s); compileall uses every core. A file written for a newer Python
	@# (torch's py312 test helpers) does not compile here, as under pip, so its failure is not an error.
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	rm -f $(VENV)/.installed-$*-* && touch $@

clean:
	rm -rf $(VENV) reports .cache
