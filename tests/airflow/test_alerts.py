"""The alerts of the what-if DAGs (whatif_airflow.alerts), posted to a loopback chat webhook as
the dag-processor (a failed run) and the triggerer (a deadline miss) call them."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from fakes.loopback import chat_webhook


@pytest.fixture
def webhook():
    with chat_webhook() as (url, posted):
        yield url, posted


class FakeTask:
    task_id = "fit"
    log_url = "http://airflow/log/fit"


class FakeRun:
    dag_id = "what_if_scenarios"
    run_id = "scheduled__2026-11-30"


def test_the_webhook_notifier_posts_failures_and_deadline_misses(webhook, monkeypatch):
    url, posted = webhook
    monkeypatch.setenv("AIRFLOW_CONN_WHATIF_ALERTS", json.dumps({"conn_type": "http", "host": url}))
    from whatif_airflow.alerts import WebhookAlert

    context = {"dag_run": FakeRun(), "ti": FakeTask(), "reason": "task_failure"}
    WebhookAlert("run failed")(context)  # as the dag-processor calls it
    alert = WebhookAlert("run not finished 60 minutes after it was queued")
    alert.context = {"dag_run": FakeRun()}
    asyncio.run(alert.async_notify(alert.context))  # as the triggerer awaits a deadline alert
    assert [p["text"].splitlines()[0] for p in posted] == [
        ":rotating_light: what_if_scenarios: run failed",
        ":rotating_light: what_if_scenarios: run not finished 60 minutes after it was queued",
    ]
    assert "task fit: task_failure" in posted[0]["text"]
    assert "logs: http://airflow/log/fit" in posted[0]["text"]


def test_without_the_alerts_connection_nothing_is_sent_and_nothing_fails(webhook, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_WHATIF_ALERTS", raising=False)
    assert "AIRFLOW_CONN_WHATIF_ALERTS" not in os.environ
    from whatif_airflow.alerts import post_alert

    assert post_alert("whatif_alerts", {"text": "x"}) is False
    assert webhook[1] == []
