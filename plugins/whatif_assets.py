"""What the what-if DAG files share: their defaults, where reports go by default, and the
Asset that the main DAG's publish task updates (consumers schedule on it). It lives in
plugins/, which Airflow puts on sys.path (dags/ it does not); the engine (plugins/whatif) never
imports it."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Asset

PROJECT = Path(__file__).resolve().parents[1]
REPORTS_URL = os.environ.get("WHATIF_REPORTS_URL", (PROJECT / "reports").as_uri())

# The latest published report. A logical asset (its URI is its name): where each run's files
# went depends on the run's publish_targets, so each event's extra says it (every target, the
# Confluence page) and carries the top scenarios, and consumers need not read the report.
REPORT_ASSET = Asset(name="what_if_report")

# What every what-if DAG is: owned by the SRE platform team, tagged alike, never catching up,
# retrying with exponential backoff (user errors fail at once: see the main DAG file).
DAG_DEFAULTS = {
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
