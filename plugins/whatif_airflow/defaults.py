"""What the what-if DAG files share: their defaults, the deployment's settings (from
whatif.environment), and the trigger form's params generated from the engine's one parameter
spec (whatif.params)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Param
from whatif import environment, params

PROJECT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT / "include" / "data"
REPORTS_URL = environment.get("WHATIF_REPORTS_URL") or (PROJECT / "reports").as_uri()
EVENTS_FILE = environment.get("WHATIF_EVENTS_FILE") or str(PROJECT / "include" / "events.yaml")

# A run that has not finished this long after it was queued raises the deadline alert; 0 turns
# it off (needed under `airflow dags test`: Airflow 3.3.2's dag.test crashes at the end of a
# successful run of a DAG with a deadline, reading the alerts' ids from an unsaved DAG).
EXPECTED_RUN_MINUTES = environment.get_int("WHATIF_EXPECTED_RUN_MINUTES")
LLM_POOL = "whatif_llm"  # bounds the LLM calls of all runs together (make run, compose init)
# Scenarios narrated at once within one run (read when the DAG file is parsed).
LLM_CONCURRENCY = environment.get_int("WHATIF_LLM_MAX_CONCURRENCY")

# What every what-if DAG is: owned by the SRE platform team, tagged alike, never catching up,
# retrying with exponential backoff (user errors fail at once: tasks.fail_fast).
DAG_DEFAULTS: dict[str, Any] = {
    "start_date": pendulum.datetime(2026, 1, 5, tz="UTC"),
    "catchup": False,
    "tags": ["reliability", "sre", "what-if"],
    "default_args": {
        "owner": "sre-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
    },
}


def scenario_params() -> dict[str, Param]:
    """The trigger form of what_if_scenarios: every DAG setting of whatif.params, the inputs
    defaulting to the project's sample and the reports to REPORTS_URL."""
    return params.dag_params(
        defaults={
            "incidents": str(SAMPLE / "incidents.csv"),
            "topology": str(SAMPLE / "topology.csv"),
            "exercises": str(SAMPLE / "exercises.csv"),
            "publish_targets": [REPORTS_URL],
        },
        make=Param,
    )
