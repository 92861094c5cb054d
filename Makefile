# mlplatform: `make local` (main job), `make test` (all tests), `make plan STACK=dev`, `make lint`, `make bench`.
# Works on a fresh clone where only python3 exists: the first target creates .venv and installs what it needs.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev
REQUIREMENTS := requirements.txt requirements-dev.txt $(wildcard training/requirements.txt serving/requirements.txt monitoring/requirements.txt)
STAMP := $(VENV)/.installed

.PHONY: venv test lint plan diff bench clean format checkov

venv: $(STAMP)

# Reinstall only when a requirements file changed; pip itself is idempotent, the stamp keeps reruns instant.
$(STAMP): $(REQUIREMENTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

plan: $(STAMP)
	$(PY) -m tools.plan --stack $(STACK)

# The whole lifecycle on this machine: demo data, training, serving, replayed traffic (normal, drifted), drift
# monitor, dev plan; report and summary under build/local/. CONTAINERS=1 runs them in the buildah images (root).
.PHONY: local
local: $(STAMP)
	$(PY) -m tools.local $(if $(filter 1,$(CONTAINERS)),--containers)

# Offline plan diff of dev and prod between BASE (a git ref) and the working tree: build/plan/diff.md.
BASE ?= origin/main
diff: $(STAMP)
	$(PY) -m tools.diff --base $(BASE)

# checkov over Dockerfiles and workflows, from its own virtualenv (see .checkov.yaml for the skipped checks).
CHECKOV_VENV := build/checkov-venv
$(CHECKOV_VENV)/.installed: policy/checkov-requirements.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r policy/checkov-requirements.txt
	touch $@

checkov: $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml

bench: $(STAMP)
	@mkdir -p build/bench
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
