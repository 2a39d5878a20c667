SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
export SAM_CLI_TELEMETRY := 0

SWAGGER_UI := functions/openapi/swagger_ui/.installed

.PHONY: run test unit integration e2e browser lint bench build validate openapi api-key demo clean

# What running needs (make run, demo, api-key, openapi); the test and lint tools come on top, with the first
# target that needs them (DEV below).
# Packages are installed by uv (pinned, installed into the venv by its pip), which downloads in parallel: a
# fresh clone serves in half the time pip alone takes.
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
INSTALL = $(UV) pip install --quiet --python $(PY)

$(UV):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: requirements-run.txt layers/checkout_core/requirements.txt layers/stripe/requirements.txt \
		layers/adyen/requirements.txt | $(UV)
	$(INSTALL) -r requirements-run.txt
	touch $@

DEV := $(VENV)/.dev-installed
$(DEV): requirements-dev.txt $(VENV)/.installed
	$(INSTALL) -r requirements-dev.txt
	touch $@

$(SWAGGER_UI): functions/openapi/swagger-ui.txt | $(VENV)/.installed
	$(PY) -m local.swagger_ui
	touch $@

# From Debian (CI runs as root): headless Chromium and its driver for tests/browser, jq for the walk-through.
DEBIAN_TOOLS := /usr/bin/chromium /usr/bin/chromedriver /usr/bin/jq
$(DEBIAN_TOOLS) &:
	@command -v apt-get >/dev/null || { echo "install chromium and chromium-driver"; exit 1; }
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	$(if $(filter 0,$(shell id -u)),,sudo) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver jq

$(SAM_VENV)/.installed:
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==1.170.0
	touch $@

run: $(VENV)/.installed $(SWAGGER_UI)  ## serve the API locally, AWS emulated in-process (RESET=1: start empty)
	LOCAL_RESET=$(RESET) $(PY) -m local

# The suite runs on TEST_WORKERS pytest-xdist workers, a test module (or class) per worker at a time (its
# module- and session-scoped runtimes start once per worker); end-to-end tests mostly wait on their runtimes,
# so there are more workers than cores. Modules are handed out in collection order, which tests/conftest.py
# makes longest first (pytest-xdist's own reorder would put a one-test module, however long, last).
# TEST_WORKERS=0 runs in this process (for a debugger).
TEST_WORKERS ?= 4
PARALLEL = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder)

test: $(DEV) $(SWAGGER_UI) $(DEBIAN_TOOLS)  ## the whole suite: unit, integration, e2e, browser
	$(PY) -m pytest $(PARALLEL)

unit: $(DEV)
	$(PY) -m pytest tests/unit

integration: $(DEV)
	$(PY) -m pytest $(PARALLEL) tests/integration

e2e: $(DEV) $(SWAGGER_UI)
	$(PY) -m pytest $(PARALLEL) tests/e2e

browser: $(DEV) $(SWAGGER_UI) $(DEBIAN_TOOLS)  ## the hosted page and Swagger UI in headless Chromium
	$(PY) -m pytest $(PARALLEL) tests/browser

lint: $(DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/checkout_core functions local

bench: $(DEV) build
	$(PY) -m bench

validate: $(SAM_VENV)/.installed
	$(SAM) validate --lint

build: $(SAM_VENV)/.installed $(DEV) $(SWAGGER_UI) validate  ## lint, sam build, check the layer
	$(VENV)/bin/cfn-lint --append-rules cfn_lint_serverless.rules -t template.yaml
	$(PY) -m local.check_dashboard template.yaml
	$(SAM) build
	$(PY) -m local.check_build .aws-sam/build

demo: $(VENV)/.installed $(SWAGGER_UI) /usr/bin/jq  ## the README walk-through against a fresh runtime
	$(PY) -m local.demo

openapi: $(VENV)/.installed
	$(PY) -m local.openapi docs/openapi.json

api-key: $(VENV)/.installed  ## make api-key TENANT=acme RETURN_HOSTS=shop.acme.com [MERCHANT_NAME="Acme Shop"] [TABLE=...]
	$(PY) -m local.api_key --tenant "$(TENANT)" --return-hosts "$(RETURN_HOSTS)" $(if $(MERCHANT_NAME),--merchant-name "$(MERCHANT_NAME)") $(if $(TABLE),--table "$(TABLE)")

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
