"""Observability: stage timings, the run summary, log lines with run and scenario ids, and
alerts posted to a chat webhook (the Airflow notifier, against a loopback webhook)."""

from __future__ import annotations

import asyncio
import json
import logging
import os

import pytest
from fakes.loopback import chat_webhook
from whatif import observe


def test_stages_are_timed_also_when_they_fail_and_summed_per_stage(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="whatif.run")
    with observe.stage(tmp_path, "fit", "manual__1"):
        pass
    for part in ("db--database", "web--config"):
        with observe.stage(tmp_path, "narrate", "manual__1", part):
            pass
    with pytest.raises(RuntimeError), observe.stage(tmp_path, "report", "manual__1"):
        raise RuntimeError("boom")
    (tmp_path / "validation.json").write_text(
        json.dumps({"inputs": {"incidents": {"rows_read": 10, "rows_used": 8,
                                             "rows_quarantined": 2}}})
    )  # fmt: skip
    (tmp_path / "scenarios.json").write_text(
        json.dumps({"scenarios": [{}, {}], "narration": {"llm_scenarios": 1, "fallbacks": 1,
                                                          "calls": 3, "cached": 0}})
    )  # fmt: skip
    summary = observe.run_summary(tmp_path)
    assert list(summary["stages"]) == ["fit", "narrate", "report"]  # the pipeline's order
    assert summary["stages"]["narrate"]["tasks"] == 2
    assert summary["inputs"]["incidents"] == {
        "rows_read": 10,
        "rows_used": 8,
        "rows_quarantined": 2,
    }
    assert summary["scenarios"] == 2 and summary["narration"]["calls"] == 3
    failed = json.loads((tmp_path / "_stage" / "timings" / "report.json").read_text())
    assert failed["outcome"] == "failed"
    lines = [r.getMessage() for r in caplog.records]
    assert "narrate done in 0.0 s [run_id=manual__1 stage=narrate scenario_id=web--config]" in lines
    record = next(r for r in caplog.records if "scenario_id=db--database" in r.getMessage())
    assert record.run_id == "manual__1" and record.scenario_id == "db--database"


def test_an_alert_is_one_escaped_chat_post():
    message = observe.alert_message(
        "run failed", "what_if_scenarios", "manual__1", "task fit: <b>&</b>", "http://x/log"
    )
    assert message == {
        "text": ":rotating_light: what_if_scenarios: run failed\nrun: manual__1\n"
        "task fit: &lt;b&gt;&amp;&lt;/b&gt;\nlogs: http://x/log"
    }


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
