SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
export SAM_CLI_TELEMETRY := 0

SWAGGER_UI := functions/openapi/swagger_ui/.installed

.PHONY: run test unit integration e2e browser lint bench build validate openapi api-key demo clean

$(VENV)/.installed: requirements-dev.txt layers/checkout_core/requirements.txt layers/stripe/requirements.txt \
		layers/adyen/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
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

test: $(VENV)/.installed $(SWAGGER_UI) $(DEBIAN_TOOLS)  ## the whole suite: unit, integration, e2e, browser
	$(PY) -m pytest

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

integration: $(VENV)/.installed
	$(PY) -m pytest tests/integration

e2e: $(VENV)/.installed $(SWAGGER_UI)
	$(PY) -m pytest tests/e2e

browser: $(VENV)/.installed $(SWAGGER_UI) $(DEBIAN_TOOLS)  ## the hosted page and Swagger UI in headless Chromium
	$(PY) -m pytest tests/browser

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/checkout_core functions local

bench: $(VENV)/.installed build
	$(PY) -m bench

validate: $(SAM_VENV)/.installed
	$(SAM) validate --lint

build: $(SAM_VENV)/.installed $(VENV)/.installed $(SWAGGER_UI) validate  ## lint, sam build, check the layer
	$(VENV)/bin/cfn-lint --append-rules cfn_lint_serverless.rules -t template.yaml
	$(SAM) build
	$(PY) -m local.check_build .aws-sam/build

demo: $(VENV)/.installed $(SWAGGER_UI) /usr/bin/jq  ## the README walk-through against a fresh runtime
	$(PY) -m local.demo

openapi: $(VENV)/.installed
	$(PY) -m local.openapi docs/openapi.json

api-key: $(VENV)/.installed  ## make api-key TENANT=acme RETURN_HOSTS=shop.acme.com [TABLE=...]
	$(PY) -m local.api_key --tenant "$(TENANT)" --return-hosts "$(RETURN_HOSTS)" $(if $(TABLE),--table "$(TABLE)")

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
