# appcare.maintenance — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COLLECTION_LINK := collections/ansible_collections/appcare/maintenance
DEMO_DIR ?= $(if $(TMPDIR),$(TMPDIR),/tmp)/appcare-demo-$(shell id -u)
APPCARE_DEMO_PORT ?= 55432
APPCARE_DEMO_SITE_PORT ?= 55433
TIER ?= daily
export APPCARE_DEMO_PORT APPCARE_DEMO_SITE_PORT
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections
export ANSIBLE_LOCALHOST_WARNING := false

.PHONY: all setup system-deps test unit integration molecule lint sanity demo demo-stop build bench bench-smoke clean ee matrix

all: test

system-deps:
	@scripts/install-system-deps.sh

$(STAMP): requirements.txt requirements-dev.txt | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# Lighthouse (npm), the reference web_page_info's figures are cross-checked against; where npm is missing the
# cross-check skips with its reason.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json | system-deps
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	  else echo "npm not found: the Lighthouse cross-check will skip"; fi

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

setup: system-deps $(STAMP) $(NODE_STAMP) $(COLLECTION_LINK)
	@scripts/awx-collection.sh

# Every test: unit, integration against real PostgreSQL 18 (and 15 where apt could install it),
# ruff, ansible-lint, ansible-test sanity, the collection build, and every benchmark's smoke run.
test: setup
	$(MAKE) unit integration molecule lint build sanity bench-smoke

unit: setup
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

# Two workers (the tests wait on servers more than they compute); every server a test starts takes a free port.
PYTEST_WORKERS ?= 2
integration: setup
	APPCARE_REQUIRE_DEBIAN_PG=$$(command -v apt-get >/dev/null && echo 1 || echo 0) \
	APPCARE_REQUIRE_LIGHTHOUSE=$$(command -v apt-get >/dev/null && echo 1 || echo 0) \
	APPCARE_REQUIRE_PROMETHEUS=$$(command -v apt-get >/dev/null && echo 1 || echo 0) \
	  $(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) tests/integration

# One molecule scenario per role (molecule/<role>), each against its own real local PostgreSQL.
molecule: setup
	@for scenario in $$(ls -d molecule/*/molecule.yml | cut -d/ -f2); do \
	  echo "== molecule scenario $$scenario"; \
	  PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule reset -s $$scenario >/dev/null 2>&1; \
	  PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s $$scenario >.molecule-$$scenario.log 2>&1 \
	    || { tail -80 .molecule-$$scenario.log; exit 1; }; \
	  rm -f .molecule-$$scenario.log; \
	done

lint: setup
	$(BIN)/ruff check plugins tests benchmarks demo molecule
	$(BIN)/pycodestyle --max-line-length 160 --ignore E402,W503,W504,E741 plugins tests benchmarks demo molecule
	$(BIN)/ansible-lint -q

sanity: setup
	scripts/sanity.sh

build: setup
	rm -rf .build && mkdir -p .build
	$(BIN)/ansible-galaxy collection build --force --output-path .build >/dev/null
	$(BIN)/ansible-galaxy collection install --force -p .build/installed .build/appcare-maintenance-*.tar.gz >/dev/null
	for module in $$(ls plugins/modules/*.py | xargs -n1 basename | sed 's/\.py$$//'); do \
	  ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.build/installed $(BIN)/ansible-doc appcare.maintenance.$$module >/dev/null || exit 1; done
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.build/installed $(BIN)/ansible-doc -t callback appcare.maintenance.maintenance_report >/dev/null
	@echo "collection builds, installs from its tarball and documents itself"
	rm -rf .build

# The real daily run against an embedded PostgreSQL 18 with a sample application database.
demo: DEMO_CHECKOUT = $${APPCARE_DEMO_DATA:-$(CURDIR)/.demo}/app-checkout
demo: setup
	@$(BIN)/python tests/pgserver.py stop --dir $(DEMO_DIR) >/dev/null
	@echo "starting PostgreSQL 18 on 127.0.0.1:$(APPCARE_DEMO_PORT) in $(DEMO_DIR)"
	@$(BIN)/python tests/pgserver.py start --dir $(DEMO_DIR) --port $(APPCARE_DEMO_PORT) >/dev/null
	@# The server logs into $(DEMO_DIR)/log (the weekly log review reads it); the sample application makes its
	@# week's mistakes there: real errors, a deadlock, a lock wait, a temporary file, and each run's release one of its own.
	@$(BIN)/python demo/load_sample.py --port $(APPCARE_DEMO_PORT) --keys-dir "$${APPCARE_DEMO_DATA:-$(CURDIR)/.demo}/keys" \
	  --server-dir $(DEMO_DIR) --errors --release-dir "$${APPCARE_DEMO_DATA:-$(CURDIR)/.demo}"
	@# The sample application's web site (the weekly page timings, the monthly broken links), for the run only, and where
	@# npm is installed its checkout for the dependency audit: a package.json and lock file pinned to packages with
	@# published advisories (a copy - npm only reads them, against the registry it is configured with).
	@if command -v npm >/dev/null; then mkdir -p "$(DEMO_CHECKOUT)" && \
	  cp tests/fixtures/dependency_audit/npm-vulnerable/package.json tests/fixtures/dependency_audit/npm-vulnerable/package-lock.json "$(DEMO_CHECKOUT)/"; \
	  else echo "(npm is not installed: no dependency audit in the demo - apt-get install npm)"; fi
	@echo "starting the demo application site on 127.0.0.1:$(APPCARE_DEMO_SITE_PORT) (stopped after the run)"
	@# broken-local is broken on purpose: its failed tasks make ansible-playbook exit 2; anything else is an error.
	@echo "$(BIN)/ansible-playbook -i inventories/local playbooks/$(TIER).yml"
	@$(BIN)/python demo/appsite.py --quiet --port $(APPCARE_DEMO_SITE_PORT) --root demo/site & site=$$!; \
	  trap 'kill $$site 2>/dev/null' EXIT; \
	  for _ in $$(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$(APPCARE_DEMO_SITE_PORT)) 2>/dev/null && break; sleep 0.1; done; \
	  kill -0 $$site 2>/dev/null || { echo "the demo application site did not start: is port $(APPCARE_DEMO_SITE_PORT) taken? (APPCARE_DEMO_SITE_PORT=...)"; exit 1; }; \
	  APPCARE_DEMO_CHECKOUT=$$(command -v npm >/dev/null && echo "$(DEMO_CHECKOUT)") \
	  APPCARE_DEMO_LOG_DIR=$(DEMO_DIR)/log $(BIN)/ansible-playbook -i inventories/local playbooks/$(TIER).yml; status=$$?; \
	  if [ $$status -eq 2 ]; then echo "(exit 2: broken-local is broken on purpose - see its row in the report)"; \
	  elif [ $$status -ne 0 ]; then exit $$status; fi
	@echo
	@echo "Dashboard of this run:     $(CURDIR)/reports/latest.html  (report: reports/latest.json)"
	@echo "The demo server keeps running on 127.0.0.1:$(APPCARE_DEMO_PORT) (databases ims and crm)."
	@echo "Other tiers:               make demo TIER=weekly   (or monthly, quarterly)"
	@echo "Stop and remove it:        make demo-stop"

demo-stop:
	@$(BIN)/python tests/pgserver.py stop --dir $(DEMO_DIR)

bench: setup
	$(BIN)/python benchmarks/health_check.py
	$(BIN)/python benchmarks/pitr_drill.py

# Every benchmark at its smallest (--smoke), one after another: the whole code path of each, stopping at the
# first failure. It checks that the benchmarks still run, never a timing target (see benchmarks/README.md).
BENCHMARKS := backup_throughput health_check http_probes inspect_scaling pitr_drill reindex_under_load verify_restore storage_backup log_review link_crawl
bench-smoke: setup
	@for bench in $(BENCHMARKS); do \
	  echo "== benchmarks/$$bench.py --smoke"; \
	  $(BIN)/python benchmarks/$$bench.py --smoke || { echo "benchmarks/$$bench.py --smoke failed"; exit 1; }; \
	done

clean:
	rm -rf $(VENV) collections .build .matrix tests/output .pytest_cache .ruff_cache

# The execution environment for AWX (execution-environment.yml): collection tarball, then ansible-builder with podman
# or docker where one works. PG_MAJOR: the PostgreSQL client's major version (at least the newest server's).
EE_IMAGE ?= appcare-maintenance-ee:latest
PG_MAJOR ?= 18
ee: setup
	rm -rf .build/ee && mkdir -p .build/ee
	$(BIN)/ansible-galaxy collection build --output-path .build/ee .
	mv .build/ee/appcare-maintenance-*.tar.gz .build/ee/appcare-maintenance.tar.gz
	@if podman info >/dev/null 2>&1; then runtime=podman; \
	elif docker info >/dev/null 2>&1; then runtime=docker; \
	else \
	  $(BIN)/ansible-builder create --file execution-environment.yml --context .build/ee/context >/dev/null; \
	  echo "make ee: no working podman or docker here (not installed, or its daemon is not running): no image built."; \
	  echo "  The build context is in .build/ee/context; build it where a container runtime is, for example"; \
	  echo "  podman build --build-arg PG_MAJOR=$(PG_MAJOR) -t $(EE_IMAGE) .build/ee/context"; \
	  exit 1; \
	fi; \
	echo "make ee: building $(EE_IMAGE) with $$runtime (PostgreSQL client $(PG_MAJOR))"; \
	$(BIN)/ansible-builder build --container-runtime $$runtime --file execution-environment.yml \
	  --context .build/ee/context --tag $(EE_IMAGE) --build-arg PG_MAJOR=$(PG_MAJOR)

# Sanity, the unit tests and one tier against PostgreSQL 18 on every other ansible-core version requirements-dev.txt
# allows (2.16-2.18; .venv's 2.19 is make test's), each in its own venv under .matrix/<version> (scripts/matrix.sh).
matrix: system-deps $(COLLECTION_LINK)
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/matrix.sh
