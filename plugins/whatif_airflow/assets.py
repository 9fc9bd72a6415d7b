"""The Asset the main DAG's publish task updates; consumers (what_if_consumers.py) schedule on
it.

A logical asset (its URI is its name): where each run's files went depends on the run's
publish_targets, so each event's extra says it (every target, the Confluence page) and carries
the top scenarios, and consumers need not read the report.
"""

from __future__ import annotations

from airflow.sdk import Asset

REPORT_ASSET = Asset(name="what_if_report")
