"""Observability: stage timings, the run summary, log lines with run and scenario ids, the
alert message (the Airflow notifier that posts it: tests/airflow/test_alerts.py)."""

from __future__ import annotations

import json
import logging

import pytest
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
