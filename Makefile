# powernest: every target bootstraps what it needs on a fresh Debian machine.
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
PYTEST  := $(VENV)/bin/pytest
INVENTORY ?= hosts.yaml
PYTEST_ARGS ?=

.PHONY: setup lab run premerge twins test bench report clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed
	sh scripts/setup-system.sh

lab: setup
	$(VENV)/bin/powernest lab build

# Targets run side by side (pytest-xdist, one group per target: kinds.run_group).
XDIST = $(shell $(VENV)/bin/powernest inventory xdist-args $(INVENTORY) --hosts '$(HOSTS)' \
	--shard '$(SHARD)')
HOSTS ?=
# One CI job of several: SHARD=K/N drives every N-th host from the K-th (by name) into
# reports/shard-K, under the RUN_ID all the jobs share; `make report` then joins them.
SHARD ?=
RUN_ID ?=
SELECT = --inventory $(INVENTORY) $(if $(HOSTS),--hosts $(HOSTS)) $(if $(RUN_ID),--run-id $(RUN_ID)) \
	$(if $(SHARD),--shard $(SHARD) --reports reports/shard-$(firstword $(subst /, ,$(SHARD))))

run: lab
	$(PYTEST) suites $(SELECT) $(XDIST) $(PYTEST_ARGS)

premerge: lab
	$(PYTEST) suites $(SELECT) $(XDIST) -m premerge $(PYTEST_ARGS)

# The suites against the emulated powervm LPAR and kvm host (nightly: about 27 min).
twins: lab
	$(VENV)/bin/powernest lab twin powervm,kvm -- $(PYTEST) suites -n 2 --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

# gitlab-ci-local, the GitLab pipeline engine that runs ci/gitlab-ci.yml in make test
# (pinned: later releases need Node.js 22; bookworm has 18, this machine kind 20).
GITLAB_CI_LOCAL_VERSION = 4.60.0
GITLAB_CI_LOCAL_DIR = .tools/gitlab-ci-local-$(GITLAB_CI_LOCAL_VERSION)
GITLAB_CI_LOCAL = $(GITLAB_CI_LOCAL_DIR)/node_modules/.bin/gitlab-ci-local
$(GITLAB_CI_LOCAL): | setup
	npm install --no-audit --no-fund --prefix $(GITLAB_CI_LOCAL_DIR) \
	  gitlab-ci-local@$(GITLAB_CI_LOCAL_VERSION)

test: lab $(GITLAB_CI_LOCAL)
	$(PYTEST) tests $(PYTEST_ARGS)

# Figures: where the latest run's time went; twin boots, dead-host detection, hosts side
# by side; L1 boot against restore, make premerge and make run wall times, how busy a run
# keeps its workers.
bench: lab
	$(PY) bench/time_profile.py
	$(PY) bench/lab_figures.py
	$(PY) bench/run_figures.py

# The dashboard of the latest run; with shards (reports/shard-*), first their run RUN_ID
# (default: each one's newest) joined into reports/<run id>, the run the page shows.
report: $(VENV)/.installed
	$(if $(wildcard reports/shard-*),$(VENV)/bin/powernest report merge reports/shard-* -o reports \
	  $(if $(RUN_ID),--run-id $(RUN_ID)),$(VENV)/bin/powernest report dashboard reports)

clean:
	rm -rf reports $(VENV) .pytest_cache .tools
