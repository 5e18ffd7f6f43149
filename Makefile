# GenoFed task runner: people and CI call the same targets.
# `make demo` and `make test` both create .venv from the pinned dependencies
# in pyproject.toml when it is missing or older than pyproject.toml, with every
# extra (a site agent's own install is `pip install genofed`, without them).

PYTHON      ?= python3.11
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
DEMO_DIR    ?= demo
PYTEST_ARGS ?=
# pyproject.toml's extras: synthetic cohorts, plots, Flower's simulation engine, dev tools.
ALL_EXTRAS  := synth,plot,simulation,dev,train

.PHONY: demo test lint format protos check-protos bench plink2 chromium docker-compose docker-e2e clean help

help:
	@echo "make demo      synthetic 3-site cohort + federated study (simulation engine)"
	@echo "make test      unit, reference (vs plink2) and architecture tests"
	@echo "make lint      ruff, strict mypy (math cores, common, privacy), import-linter contracts"
	@echo "make protos    regenerate genofed/protos/v1 generated code"
	@echo "make bench     benchmarks against plink2 (long; not part of make test)"
	@echo "make docker-e2e  images + compose federation (coordinator, 3 sites, TLS) vs simulation (root; not part of make test)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(ALL_EXTRAS)]'
	touch $(STAMP)

venv: $(STAMP)

# plink2 is the reference implementation that tests compare against (Debian package);
# python-pyvcf-examples ships the real 1000 Genomes VCF the VCF reader is checked on.
plink2:
	@if ! command -v plink2 >/dev/null 2>&1 || ! test -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0 || ! test -e /usr/share/doc/python3-vcf/test/1kg.vcf.gz; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq plink2 libopenblas0-pthread python-pyvcf-examples >/dev/null; \
	  else \
	    echo "error: plink2 is missing; run: sudo apt-get install -y plink2 libopenblas0-pthread python-pyvcf-examples" >&2; exit 1; \
	  fi; \
	fi

# Headless Chromium renders the privacy officer's HTML report in a test (Debian package);
# without it that one test is skipped with its reason.
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: chromium is missing, so the HTML report's browser test is skipped; run: sudo apt-get install -y chromium" >&2; \
	  fi; \
	fi

# Debian's docker-compose validates docker/compose.yml in a test (`config -q`, no daemon);
# without it that test is skipped with its reason.
docker-compose:
	@if ! command -v docker-compose >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; \
	  else \
	    echo "note: docker-compose is missing, so the compose file test is skipped; run: sudo apt-get install -y docker-compose" >&2; \
	  fi; \
	fi

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(BIN)/genofed demo --out $(DEMO_DIR)

test: $(STAMP) plink2 chromium docker-compose
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

protos: $(STAMP)
	$(BIN)/python -m genofed.protos.generate

bench: $(STAMP) plink2
	$(BIN)/python bench/freq_hardy.py
	$(BIN)/python bench/dp_freq.py
	$(BIN)/python bench/secagg.py --deployment
	$(BIN)/python bench/suppression.py
	$(BIN)/python bench/prs.py
	$(BIN)/python bench/pca.py
	$(BIN)/python bench/survival.py
	$(BIN)/python bench/deploy_rounds.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/gwas.py

# Container deployment end to end (root: installs docker.io, docker-compose, mmdebstrap if
# missing and starts dockerd if it is not running); see docker/README.md.
docker-e2e: $(STAMP)
	GENOFED_BIN=$(BIN) docker/e2e.sh

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
