# Entry point for developers and CI. Creates its own virtualenv with Python 3.13.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
# Two stamps. `make run` installs only what running the service needs (requirements-run.txt: the
# layer's pins, the AWS emulator) and the card-tokens CLI; `make test` and the other developer
# targets add the tools (requirements-dev.txt) on top. Either reuses what the other installed.
RUN_STAMP := $(VENV)/.installed-run
STAMP     := $(VENV)/.installed-dev
CLIENT    := $(VENV)/bin/card-tokens
PORT   ?= 3000
MOTO_PORT ?= 5005
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check --progress-bar off
comma := ,
PYTHON_NOT_FOUND := error: Python 3.13 not found. Install it (e.g. pyenv install 3.13.0) or run make PYTHON=/path/to/python3.13

# Python 3.13: $(PYTHON) if given (and then only that one), else python3.13 on PATH, else pyenv's.
ifneq ($(strip $(PYTHON)),)
PYTHON_VERSION := $(shell PYENV_VERSION=3.13.0 "$(PYTHON)" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)
ifneq ($(filter 3.13.%,$(PYTHON_VERSION)),)
PYTHON313 := $(shell PYENV_VERSION=3.13.0 "$(PYTHON)" -c 'import sys; print(sys.executable)')
else ifneq ($(filter-out help,$(or $(MAKECMDGOALS),help)),)
$(error PYTHON=$(PYTHON) is $(if $(PYTHON_VERSION),Python $(PYTHON_VERSION),not a Python that runs), but this project needs Python 3.13. Give one (make PYTHON=/path/to/python3.13 ...), or leave PYTHON unset: the Makefile then finds python3.13 on the PATH or pyenv's 3.13)
endif
else
PYTHON313 := $(shell for c in python3.13 "$$(PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null)" ; do \
	[ -n "$$c" ] && PYENV_VERSION=3.13.0 "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { PYENV_VERSION=3.13.0 "$$c" -c 'import sys; print(sys.executable)'; break; }; done)
endif

# $(call step,WHAT,COMMAND): says what it is doing, does it (its output shown), says how long it took.
step = echo "$(1)…"; t0=$${EPOCHREALTIME:-$$(date +%s)}; $(2) && \
	awk -v t0="$$t0" -v t1="$${EPOCHREALTIME:-$$(date +%s)}" 'BEGIN { printf "  done in %.1f s\n", t1 - t0 }'
# VERBOSE=1 (not 0, no or false): --verbose for make run and make invoke.
verbose = $(if $(filter-out 0 no false,$(VERBOSE)), --verbose)
# The pinned lines of requirements files (not comments, not -r includes).
pins = $(shell grep -hcvE '^[[:space:]]*(\#|-|$$)' $(1) | awk '{ n += $$1 } END { print n }')

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}' \
		| sed -e 's/\$$(PORT)/$(PORT)/g' -e 's/\$$(MOTO_PORT)/$(MOTO_PORT)/g'

# What `make run` needs. A change to these pins rebuilds .venv from scratch (the tools come back
# with the next `make test`).
$(RUN_STAMP): requirements-run.txt layers/card_tokens/requirements.txt
	@if [ -z "$(PYTHON313)" ]; then echo "$(PYTHON_NOT_FOUND)" >&2; exit 1; fi
	@if [ -e $(VENV) ]; then echo "Removing $(VENV): $(if $(wildcard $@),$? changed,it was made before requirements-run.txt)"; fi
	@rm -rf $(VENV)
	@$(call step,Creating $(VENV) with $(PYTHON313),$(PYTHON313) -m venv $(VENV))
	@$(call step,Installing the runtime: $(call pins,requirements-run.txt layers/card_tokens/requirements.txt) pinned packages and their dependencies (requirements-run.txt: the layer's pins$(comma) moto[server]$(comma) PyYAML),$(PIP_INSTALL) -r requirements-run.txt)
	@touch $@

# The card-tokens command (client/card_tokens_client), installed editable into .venv.
$(CLIENT): $(RUN_STAMP) pyproject.toml
	@$(call step,Installing the card-tokens command (pip install -e .),$(PIP_INSTALL) --no-deps -e .)
	@touch $@
	@echo "$(VENV) is ready for make run: $$(ls -d $(VENV)/lib/python3.13/site-packages/*.dist-info | wc -l) packages, $$(du -sh $(VENV) | cut -f1)."

# The developer tools on top: sam, cfn-lint, mypy, ruff, pytest, schemathesis, matplotlib, ...
# (after the CLI, never at the same time as its pip, and not again when only pyproject.toml changed)
$(STAMP): $(RUN_STAMP) requirements-dev.txt | $(CLIENT)
	@$(call step,Installing the developer tools: $(call pins,requirements-dev.txt) pinned packages and their dependencies (requirements-dev.txt: SAM CLI$(comma) cfn-lint$(comma) mypy$(comma) ruff$(comma) pytest$(comma) schemathesis$(comma) matplotlib$(comma) …),$(PIP_INSTALL) -r requirements-dev.txt)
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create the virtualenv with the pinned dependencies

# make run AWS_ENDPOINT_URL=http://127.0.0.1:4566 uses that emulator instead of starting moto.
# Only a value given on make's command line counts: one exported in the shell is ignored.
# make run VERBOSE=1 also prints the functions' own logs (Powertools JSON lines, EMF metrics).
# It registers a demo merchant (its publishable key in the banner) and writes its AWS credentials
# to .local-stack/credentials, profile card-tokens-demo, which sign /payments locally.
.PHONY: run
run: $(CLIENT) ## Serve the API locally on http://127.0.0.1:$(PORT) (moto, no Docker; VERBOSE=1 adds the functions' JSON logs; AWS_ENDPOINT_URL=... uses yours)
	$(PY) -m local.stack --port $(PORT) --moto-port $(MOTO_PORT)$(if $(filter command line,$(origin AWS_ENDPOINT_URL)), --aws-endpoint-url $(AWS_ENDPOINT_URL))$(verbose)

# make invoke EVENT=events/jwks.json: the function template.yaml routes the event to (FUNCTION=...
# for another), in this process, against the emulator of a running `make run` (MOTO_PORT).
.PHONY: invoke
invoke: $(CLIENT) ## Run a sample event through its handler, no Docker: EVENT=events/issue_token.json (needs make run; FUNCTION=, VERBOSE=1)
	$(PY) -m local.invoke$(if $(EVENT), $(EVENT))$(if $(FUNCTION), --function $(FUNCTION)) --moto-port $(MOTO_PORT)$(verbose)

.PHONY: lint
lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/card_tokens/card_tokens functions local client

.PHONY: test
test: $(STAMP) $(CLIENT) browser-deps lint ## Everything CI runs: lint, unit, integration, template checks, e2e, log scan
	$(PY) -m pytest

.PHONY: client
client: $(CLIENT) ## Install the card-tokens command (the CLI) into .venv

# The checkout page's browser test (tests/e2e/test_checkout_page.py): Debian's Chromium, driven by
# playwright-core pinned in tests/browser/package-lock.json. Never `npx playwright install`.
BROWSER_DIR := tests/browser
# Another Chromium-based browser can stand in: make test CHROMIUM=/usr/bin/google-chrome
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM

.PHONY: browser-deps
browser-deps: $(BROWSER_DIR)/node_modules/.package-lock.json ## Chromium (apt-get) and playwright-core (npm ci) for the browser test
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "error: $(CHROMIUM) is missing: as root, apt-get update && apt-get install -y chromium" >&2; exit 1; \
		fi; \
		echo "Installing Debian's chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

$(BROWSER_DIR)/node_modules/.package-lock.json: $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { \
		echo "error: node (>= 20) and npm are needed for the browser test" >&2; exit 1; }
	cd $(BROWSER_DIR) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

.PHONY: build
build: $(STAMP) ## sam build (python3.13, arm64, no Docker)
	PATH="$(dir $(PYTHON313)):$$PATH" $(VENV)/bin/sam build --template-file template.yaml
	@# Lambda cannot write bytecode to /opt or /var/task: ship it, or every cold start compiles
	@# botocore, Powertools and the layer from source (bench/results.md, cold start).
	$(PYTHON313) -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build

.PHONY: validate
validate: $(STAMP) ## sam validate --lint and cfn-lint
	$(VENV)/bin/sam validate --lint --template-file template.yaml
	$(VENV)/bin/cfn-lint template.yaml

# checkov leaves out a resource whose Condition is false with the parameters' defaults (the
# checkout page, a custom domain, Bot Control, ...): .ci/scan_variants.py writes both templates
# again with defaults that turn every condition on (and fails if one stays off), scanned too.
SCAN_DIR := .aws-sam/scan

.PHONY: scan
scan: $(STAMP) ## checkov over template.yaml and deploy/, also with every condition on (own venv: checkov pins an older boto3)
	@cmp -s requirements-scan.txt $(VENV)/checkov/requirements-scan.txt || { \
		rm -rf $(VENV)/checkov && $(PYTHON313) -m venv $(VENV)/checkov && \
		$(VENV)/checkov/bin/pip install --quiet --disable-pip-version-check -r requirements-scan.txt && \
		cp requirements-scan.txt $(VENV)/checkov/requirements-scan.txt; }
	@rm -rf $(SCAN_DIR)
	$(PY) .ci/scan_variants.py $(SCAN_DIR)
	$(VENV)/checkov/bin/checkov --framework cloudformation --quiet --compact --skip-download \
		--file template.yaml --file deploy/github-oidc-role.yaml \
		$(addprefix --file $(SCAN_DIR)/,template-all-conditions.yaml github-oidc-role-all-conditions.yaml)

# pip-audit --strict over each requirements file as pip installs it: .ci/audit.py resolves the file
# with pip (it pins direct dependencies only), audits that full list and checks that every package
# came back audited. It first checks that an advisory database answers, before pip-audit is even
# installed, and fails saying so where none does: pip-audit alone would skip every package and
# pass. Own venv (.venv/pip-audit), its pip included, so its dependencies stay out of .venv.
# AUDIT_SERVICE=pypi|osv|esms picks one (default: the first that answers); OSV_URL=... an OSV mirror.
AUDIT_VENV  := $(VENV)/pip-audit
AUDIT_FILES := layers/card_tokens/requirements.txt requirements-dev.txt requirements-scan.txt requirements-audit.txt
AUDIT_ARGS  := --service $(or $(AUDIT_SERVICE),auto)$(if $(OSV_URL), --osv-url $(OSV_URL))

.PHONY: audit
audit: ## pip-audit --strict over the layer's and the tools' pins (fails if no advisory database answers)
	@if [ -z "$(PYTHON313)" ]; then echo "error: Python 3.13 not found. Install it (e.g. pyenv install 3.13.0) or run make PYTHON=/path/to/python3.13" >&2; exit 1; fi
	$(PYTHON313) .ci/audit.py --probe-only $(AUDIT_ARGS) $(AUDIT_FILES)
	@cmp -s requirements-audit.txt $(AUDIT_VENV)/requirements-audit.txt || { \
		rm -rf $(AUDIT_VENV) && $(PYTHON313) -m venv $(AUDIT_VENV) && \
		$(AUDIT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-audit.txt && \
		cp requirements-audit.txt $(AUDIT_VENV)/requirements-audit.txt; }
	$(AUDIT_VENV)/bin/python .ci/audit.py $(AUDIT_ARGS) --pip-audit $(AUDIT_VENV)/bin/pip-audit \
		$(AUDIT_FILES) -- --strict

# Our Stripe schemas (tests/processors/stripe_schemas.py, what the Stripe fake validates) against
# Stripe's published OpenAPI document (openapi/spec3.json of github.com/stripe/openapi), which the
# repository does not ship: give its path. Not part of make test.
ifneq ($(filter stripe-spec-check,$(MAKECMDGOALS)),)
ifeq ($(strip $(STRIPE_SPEC)),)
$(error STRIPE_SPEC is not set: make stripe-spec-check STRIPE_SPEC=/path/to/spec3.json (openapi/spec3.json of github.com/stripe/openapi))
endif
endif

.PHONY: stripe-spec-check
stripe-spec-check: $(STAMP) ## Check the Stripe fake's schemas against Stripe's published OpenAPI spec (STRIPE_SPEC=/path/spec3.json)
	PYTHONPATH=layers/card_tokens $(PY) -m tests.processors.check_stripe_spec "$(STRIPE_SPEC)"

.PHONY: events
events: $(CLIENT) ## Regenerate events/ with a fresh token (local stack, or URL=https://... of a deployed stack)
	$(PY) -m local.events $(if $(URL),--url $(URL),--port $(PORT)) --moto-port $(MOTO_PORT)

.PHONY: rotate
rotate: $(RUN_STAMP) ## Rotate the signing key of the running local stack (make run)
	$(PY) -m local.rotation --moto-port $(MOTO_PORT)

.PHONY: bench
bench: $(STAMP) ## Benchmark: warm/cold latency vs the floor and the tutorial, AWS calls, sizes (bench/results.md)
	$(PY) -m bench.run

.PHONY: fuzz
fuzz: $(STAMP) ## Fuzz openapi.yaml against a fresh local stack: every check, stateful phase (EXAMPLES=400)
	FUZZ_EXAMPLES=$(or $(EXAMPLES),400) $(PY) -m pytest tests/e2e/test_fuzz_contract.py -p no:randomly

.PHONY: soak
soak: $(STAMP) ## A longer concurrent soak against a fresh local stack (PAYMENTS=400)
	SOAK_PAYMENTS=$(or $(PAYMENTS),400) $(PY) -m pytest tests/e2e/test_concurrency.py -p no:randomly

.PHONY: chaos
chaos: $(STAMP) ## Fault-proxy chaos test against a fresh local stack, longer (INTENTS=300 per mode), and the payment model (EXAMPLES=200)
	CHAOS_INTENTS=$(or $(INTENTS),300) CHAOS_REPORT=$(or $(REPORT),docs/reliability-chaos.md) $(PY) -m pytest tests/e2e/test_chaos.py -p no:randomly -s
	CHAOS_EXAMPLES=$(or $(EXAMPLES),200) $(PY) -m pytest tests/integration/test_payment_model.py -p no:randomly

.PHONY: deploy
deploy: build ## sam deploy (ENV=default|staging|prod)
	$(VENV)/bin/sam deploy --config-env $(or $(ENV),default)

.PHONY: clean
clean: ## Remove build output and the virtualenv
	rm -rf .aws-sam $(VENV) .pytest_cache .mypy_cache .ruff_cache
