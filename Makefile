# Two commands: `make demo` and `make test`. Both set up the virtual environment first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# No telemetry, no network at run time; Prefect keeps its state inside the project.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(CURDIR)/.prefect
export DO_NOT_TRACK := 1
export PM4PY_SHOW_PROGRESS_BAR := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120

.PHONY: install demo test lint sample clean chromium java bench constraints notebooks

# Versions pinned by constraints.txt (reproducible clones); setuptools' notice about
# editable installs is silenced, errors are not.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

constraints: install  ## re-pin every installed version into constraints.txt
	head -3 constraints.txt > constraints.new
	$(BIN)/python -m pip freeze --exclude-editable >> constraints.new
	mv constraints.new constraints.txt

notebooks: install  ## open the notebooks in JupyterLab (installs the `notebooks` extra)
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,notebooks]'
	$(BIN)/jupyter lab notebooks/

demo: install  ## load data/sample into warehouse/demo.duckdb and build the journeys
	$(BIN)/journey demo

CHROMIUM := $(shell command -v chromium || command -v chromium-browser)

chromium:  ## Debian's chromium for the browser test and static images (needs root and apt)
ifeq ($(CHROMIUM),)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium with apt (the browser test and static images need it)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "chromium is not installed, and installing it needs root and apt"; \
		echo "(sudo apt-get install chromium): the browser test is skipped"; \
	fi
endif

JAVA := $(shell command -v java)

java:  ## a Java runtime for the Spark tests and engine.kind spark (needs root and apt)
ifeq ($(JAVA),)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's openjdk-17-jre-headless with apt (Spark needs Java)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			openjdk-17-jre-headless; \
	else \
		echo "java is not installed, and installing it needs root and apt"; \
		echo "(sudo apt-get install openjdk-17-jre-headless): the Spark tests are skipped"; \
	fi
endif

test: install chromium java  ## lint, then the whole test suite (2 workers)
	$(BIN)/ruff check journey_mining pipelines tests scripts benchmarks
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: install
	$(BIN)/ruff check journey_mining pipelines tests scripts benchmarks

sample: install  ## regenerate data/sample (seeded: the same files every time)
	$(BIN)/journey generate --out data/sample --accounts 400 --seed 7 --force

clean:
	rm -rf $(VENV) warehouse reports .prefect .pytest_cache

bench: install  ## the benchmark on 1 M events and the command timings; results in BENCHMARKS.md
	$(BIN)/python benchmarks/run.py --events 1000000
	$(BIN)/python benchmarks/run.py --events 1000000 --command
	$(BIN)/python benchmarks/operations.py
