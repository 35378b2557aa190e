# Two commands do everything on a fresh machine:
#   make run    build .venv, run the default study (quickstart: offline), write the report
#   make test   build .venv, run the test suite (what .ci/run calls)

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
CORES   ?= all
TARGET  ?=
# The study `make run`/`make report` build: TARGET, else config.yaml's default_study. Each study
# gets its own report, results/<study>/report.html.
RUN_STUDY = $(or $(TARGET),$(shell $(BIN)/python -c "import yaml; print(yaml.safe_load(open('config.yaml'))['default_study'])"))

.PHONY: run report test test-fast slurm-test lint publish clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[workflow,test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete $(RUN_STUDY)
	$(BIN)/snakemake --report results/$(RUN_STUDY)/report.html $(RUN_STUDY)
	@echo "tables and figures: results/$(RUN_STUDY)/; report: results/$(RUN_STUDY)/report.html"

report: $(BIN)/.installed
	$(BIN)/snakemake --report results/$(RUN_STUDY)/report.html $(RUN_STUDY)

test: $(BIN)/.installed
	$(BIN)/python -m pytest

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not slow and not slurm"

# A real single-node SLURM cluster (root on Debian; skipped elsewhere): tests/slurm/setup.sh.
slurm-test: $(BIN)/.installed
	$(BIN)/python -m pytest -m slurm -s tests/test_slurm.py

lint: $(BIN)/.installed
	$(BIN)/snakemake --lint

# Copy a finished study's tables, figures (PNG) and metrics into docs/results/<study>/ (committed).
publish:
	@test -n "$(STUDY)" || (echo "usage: make publish STUDY=<study>" && exit 1)
	rm -rf docs/results/$(STUDY) && mkdir -p docs/results/$(STUDY)
	cp results/$(STUDY)/metrics.csv docs/results/$(STUDY)/
	cp -r results/$(STUDY)/tables results/$(STUDY)/comparisons docs/results/$(STUDY)/
	cd results/$(STUDY) && find figures -name '*.png' -exec cp --parents {} ../../docs/results/$(STUDY)/ \;

clean:
	rm -rf .snakemake $(filter-out results/README.md,$(wildcard results/*))
