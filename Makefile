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

.PHONY: run report test test-fast slurm-test lint mutation publish rerender clean

# The venv holds torch's CUDA build (the only torch served here: 5.6 GB with torchvision), and pip
# stops half-way with "No space left on device" below that; say so before building anything.
VENV_MIN_GB ?= 7

$(BIN)/.installed: pyproject.toml
	@free=$$(df -Pk . | awk 'NR == 2 {print int($$4 / 1048576)}'); \
	if [ "$$free" -lt $(VENV_MIN_GB) ]; then \
	  echo "make: $$free GiB free on the disk of $(CURDIR); $(VENV) needs about $(VENV_MIN_GB) GiB" \
	    "(torch's CUDA build). Free space there, or set VENV_MIN_GB=0 to try anyway." >&2; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[workflow,docs,test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/snakemake $(RUN_STUDY) --cores $(CORES) --rerun-incomplete --logger=dmbn
	$(BIN)/snakemake --report results/$(RUN_STUDY)/report.html $(RUN_STUDY)
	@echo "every table and figure on one page: results/$(RUN_STUDY)/index.html; report: results/$(RUN_STUDY)/report.html"

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

# Mutation testing (outside CI; docs/mutation.md): mutmut mutates one module at a time and runs the
# fast unit tests that reach each mutated function; niced, one worker, each module bounded in time.
MUTATION_MODULES ?= tables metrics evaluate estimators esm data
MUTATION_TIMEOUT ?= 1800
mutation: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[mutation]'
	mkdir -p mutants
	for module in $(MUTATION_MODULES); do \
	  OMP_NUM_THREADS=1 timeout $(MUTATION_TIMEOUT) nice -n 15 $(BIN)/mutmut run --max-children 1 "dmbn.$$module.*" \
	    > mutants/$$module.log 2>&1 || echo "mutmut on $$module stopped (exit $$?): mutants/$$module.log"; \
	done
	$(BIN)/python benchmarks/mutation_scores.py $(MUTATION_MODULES)

# Copy a finished study into docs/results/<study>/ (committed): metrics, run cards, tables,
# comparisons, per-run summaries and figures (PNG), and a shift study's scores, ESM_μ summary and
# set manifests; the report (MBs) stays behind. RESULTS: where the study ran (a clean clone at one
# commit, say; default results/). The run cards name the commit of every run.
RESULTS ?= results
publish:
	@test -n "$(STUDY)" || (echo "usage: make publish STUDY=<study> [RESULTS=<results folder>]" && exit 1)
	@test -f $(RESULTS)/$(STUDY)/run_cards.csv || (echo "$(RESULTS)/$(STUDY) is not a finished study (no run_cards.csv)" && exit 1)
	rm -rf docs/results/$(STUDY) && mkdir -p docs/results/$(STUDY)
	cp $(RESULTS)/$(STUDY)/metrics.csv $(RESULTS)/$(STUDY)/run_cards.csv docs/results/$(STUDY)/
	cp -r $(RESULTS)/$(STUDY)/tables $(RESULTS)/$(STUDY)/comparisons $(RESULTS)/$(STUDY)/summaries docs/results/$(STUDY)/
	cd $(RESULTS)/$(STUDY) && find figures -name '*.png' -exec cp --parents {} $(CURDIR)/docs/results/$(STUDY)/ \;
	@# a shift study: its scores and ESM_μ summary, and the md5 manifest of every corrupted set
	if [ -d $(RESULTS)/$(STUDY)/shift ]; then mkdir -p docs/results/$(STUDY)/shift && \
	  cp $(RESULTS)/$(STUDY)/shift/scores.csv $(RESULTS)/$(STUDY)/shift/esm_mu_by_layer.csv docs/results/$(STUDY)/shift/ && \
	  for m in $(RESULTS)/data/*/shift/manifest.csv; do \
	    cp $$m docs/results/$(STUDY)/shift/manifest_$$(basename $$(dirname $$(dirname $$m))).csv; done; fi
	@# every page built from published files is checked against them again: a page whose generator
	@# now prints something else (a new study can add lines to another's page) fails here, not in CI
	@# (only in a checkout that has the pages: publishing into another folder has none to check)
	if [ -f tests/test_docs.py ]; then $(BIN)/python -m pytest -q tests/test_docs.py tests/test_prose_numbers.py \
	  tests/test_shift_findings.py || (echo "a page no longer shows what its generator prints: run the generator" \
	  "named on the page (docs/splice.py where the page marks its block) and put its output in place" && exit 1); fi
	@# a part of a study in parts (name_sN) is read only once a page's marker names it; any other study
	@# once a page names it (whole words: separate_full_s1 is not named by separate_full_s10)
	@if echo "$(STUDY)" | grep -qE '_s[0-9]+$$'; then grep -hE '<!-- generated by:' docs/*.md | grep -qw -- "$(STUDY)"; \
	  else grep -qw -- "$(STUDY)" docs/*.md; fi || echo "no page reads $(STUDY) yet: add it to the" \
	  "'<!-- generated by: ... -->' marker of the page that reads its study, run docs/splice.py on that page," \
	  "and correct the prose the prose-number test then names"

# The published studies' tables (and batch-size figures) rendered again from their committed files
# (presentation only: docs/rerender.py).
rerender: $(BIN)/.installed
	$(BIN)/python docs/rerender.py $(notdir $(wildcard docs/results/*))

clean:
	rm -rf .snakemake $(filter-out results/README.md,$(wildcard results/*))
