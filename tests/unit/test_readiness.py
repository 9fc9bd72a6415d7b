"""Readiness: the exercise log's validation, the score's components and their decay, the
selection feedback, the coverage of exercised what-ifs and the trend between runs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from shared import SAMPLE_AS_OF, SAMPLE_INCIDENTS, SAMPLE_TOPOLOGY, write
from test_model import topology_frame
from test_simulate import model_doc
from whatif import readiness, simulate
from whatif.config import RunConfig
from whatif.errors import UserError
from whatif.readiness import Exercise
from whatif.topology import Topology

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
TODAY = AS_OF.date()
LOG = """\
date,scenario,team,outcome,action_items,facilitator
2026-10-01,db:database,data,passed,Automate failover,Ana
2026-09-01,db--capacity,data,failed,,Ana
2026-10-20,web,web,partial,,Sam
2026-13-01,db,data,passed,,Ana
2026-12-24,db,data,passed,,Ana
2026-10-01,dbx:database,data,passed,,Ana
2026-10-01,db:melted,data,passed,,Ana
2026-10-01,db:database,data,aced,,Ana
2026-10-01,db:database,,passed,,Ana
"""


def test_every_row_of_the_exercise_log_is_used_or_quarantined_with_its_reason(tmp_path):
    used, found, quarantined = readiness.load_exercises(
        str(write(tmp_path, "exercises.csv", LOG)), ["db", "web", "api"], AS_OF
    )
    assert [(e.service, e.mode, e.outcome) for e in used] == [
        ("db", "capacity", "failed"), ("db", "database", "passed"), ("web", None, "partial"),
    ]  # fmt: skip
    assert found["rows_read"] == 9 and found["rows_used"] == 3
    assert {q["row"]: q["reason"] for q in quarantined} == {
        5: "bad_date", 6: "date_in_the_future", 7: "unknown_service",
        8: "unknown_failure_mode", 9: "bad_outcome", 10: "missing_team",
    }  # fmt: skip
    with pytest.raises(UserError, match="column outcome"):
        readiness.load_exercises(
            str(write(tmp_path, "bad.csv", "date,scenario,team\n2026-01-01,db,data\n")),
            ["db"],
            AS_OF,
        )


def test_exercises_naming_no_service_are_one_warning_with_a_did_you_mean(tmp_path):
    log = write(tmp_path, "exercises.csv", "date,scenario,team,outcome\n"
                "2026-10-01,dbx:database,data,passed\n2026-10-02,wbe,web,passed\n"
                "2026-10-03,dbx--capacity,data,failed\n2026-10-04,web,web,passed\n")  # fmt: skip
    _, found, quarantined = readiness.load_exercises(str(log), ["db", "web", "api"], AS_OF)
    assert [q["reason"] for q in quarantined] == ["unknown_service"] * 3
    assert found["warnings"] == [
        f"{log}: 3 exercises name no service of the topology and are quarantined: 'dbx' (rows "
        "2, 4; did you mean 'db'?), 'wbe' (row 3; did you mean 'web'?)"
    ]


def test_exercise_credit_halves_every_90_days_and_depends_on_the_outcome():
    fresh = Exercise(TODAY, "db", None, "data", "passed")
    assert readiness.credit(fresh, TODAY) == 1.0
    old = Exercise(date(2026, 8, 3), "db", None, "data", "passed")  # 90 days before
    assert readiness.credit(old, TODAY) == pytest.approx(0.5)
    assert readiness.credit(Exercise(TODAY, "db", None, "data", "failed"), TODAY) == 0.2
    assert readiness.credit(Exercise(TODAY, "db", None, "data", "partial"), TODAY) == 0.5


OWNERS = {"web": "web-team", "api": "api-team", "db": "data-team", "cache": "data-team"}
ATTRIBUTES = {
    "web": {"oncall": "w", "runbook_url": "https://r/web"},
    "api": {"oncall": "a", "runbook_url": None},
    "db": {"oncall": "d", "runbook_url": "https://r/db"},
    "cache": {"oncall": None, "runbook_url": None},
}


def scenario(service: str, mode: str, risk: float) -> dict:
    return {
        "id": f"{service}--{mode}", "title": f"What if {service} fails?", "risk_score": risk,
        "trigger": {"service": service, "failure_mode": mode},
    }  # fmt: skip


def incidents() -> pd.DataFrame:
    """data-team resolves in 120 minutes, the others in 30: it is the slow one."""
    rows = []
    for k, (service, minutes) in enumerate([("db", 120), ("db", 120), ("web", 30), ("api", 30)]):
        start = pd.Timestamp("2026-10-01T10:00:00Z") + pd.Timedelta(days=k)
        rows.append({
            "service": service, "started_at": start,
            "acknowledged_at": start + pd.Timedelta(minutes=minutes / 10),
            "resolved_at": start + pd.Timedelta(minutes=minutes),
        })  # fmt: skip
    return pd.DataFrame(rows)


def test_the_score_is_the_weighted_mean_of_four_explained_components():
    exercises = [Exercise(TODAY, "db", "database", "data-team", "passed")]
    scenarios = [scenario("db", "database", 0.6), scenario("web", "config", 0.2)]
    doc = readiness.readiness(scenarios, OWNERS, ATTRIBUTES, incidents(), exercises, AS_OF)
    teams = {t["team"]: t for t in doc["teams"]}
    data = teams["data-team"]["components"]
    assert data["coverage"]["score"] == 50.0  # db has both, cache neither
    assert "missing: cache" in data["coverage"]["detail"]
    assert data["exposure"]["score"] == 0.0  # the most exposed team
    assert teams["web-team"]["components"]["exposure"]["score"] == pytest.approx(
        100 * (1 - 0.2 / 0.6), abs=0.1
    )
    assert teams["api-team"]["components"]["exposure"]["score"] == 100.0
    assert data["exercises"]["score"] == 50.0  # one fresh pass: half of the two credits
    assert teams["web-team"]["components"]["exercises"]["score"] == 0.0
    assert data["response"]["score"] < teams["web-team"]["components"]["response"]["score"]
    for team in doc["teams"]:
        parts = team["components"]
        expected = sum(readiness.WEIGHTS[k] * parts[k]["score"] for k in readiness.WEIGHTS)
        assert team["score"] == pytest.approx(expected, abs=0.05)
        assert 0 <= team["score"] <= 100 and team["previous_score"] is None
    assert [t["score"] for t in doc["teams"]] == sorted(t["score"] for t in doc["teams"])


def test_the_trend_shows_each_teams_change_since_the_previous_run():
    first = readiness.readiness([], OWNERS, ATTRIBUTES, None, [], AS_OF)
    exercised = [Exercise(TODAY, "web", None, "web-team", "passed")] * 2
    second = readiness.readiness([], OWNERS, ATTRIBUTES, None, exercised, AS_OF, first)
    web = next(t for t in second["teams"] if t["team"] == "web-team")
    before = next(t for t in first["teams"] if t["team"] == "web-team")["score"]
    assert web["previous_score"] == before and web["change"] == pytest.approx(30.0)


def test_coverage_lists_what_was_exercised_and_the_largest_unexercised_risks_first():
    exercises = [
        Exercise(date(2026, 9, 1), "db", "database", "data-team", "failed"),
        Exercise(date(2026, 10, 1), "db", "database", "data-team", "passed"),
        Exercise(date(2026, 10, 5), "web", None, "web-team", "partial"),
    ]
    scenarios = [scenario("db", "database", 0.9), scenario("api", "network", 0.3),
                 scenario("cache", "capacity", 0.5), scenario("web", "config", 0.8)]  # fmt: skip
    coverage = readiness.exercise_coverage(scenarios, exercises, TODAY)
    assert [(e["service"], e["mode"], e["last"], e["outcome"]) for e in coverage["exercised"]] == [
        ("web", "any", "2026-10-05", "partial"), ("db", "database", "2026-10-01", "passed"),
    ]  # fmt: skip
    assert [u["id"] for u in coverage["unexercised"]] == ["cache--capacity", "api--network"]


def test_selection_prefers_the_never_exercised_and_the_recently_failed():
    exercises = [
        Exercise(date(2026, 10, 15), "s1", None, "t", "passed"),  # recent pass: down
        Exercise(date(2026, 10, 15), "s2", None, "t", "failed"),  # recent failure: up
        Exercise(date(2025, 1, 15), "s3", None, "t", "failed"),  # long ago: neutral
    ]
    factor = readiness.selection_factor
    assert factor(exercises, "s1", "database", TODAY) == (0.5, "passed an exercise on 2026-10-15")
    assert factor(exercises, "s2", "database", TODAY)[0] == 1.5
    assert factor(exercises, "s3", "database", TODAY) == (1.0, "failed an exercise on 2025-01-15")
    assert factor(exercises, "s4", "database", TODAY) == (1.2, "never exercised")
    # In the selection: s1 takes s0 down, so it outranks s2 and s3; after a recent pass it
    # leaves the report to s2, which failed its exercise, and the reasons say why.
    services = ["s0", "s1", "s2", "s3"]
    topology = Topology.from_frame(topology_frame(services, {"s0": ["s1"]}))
    doc = model_doc(services, {("s1", "s0"): (2.0, 3.0)})
    config = RunConfig(scenarios=2, draws=300)  # the four database failures clear the bar
    plain = {c["id"]: c for c in simulate.simulate(doc, topology, config)["scenarios"]}
    assert "s1--database" in plain and "s2--database" not in plain
    feedback = lambda s, m: factor(exercises, s, m, TODAY)  # noqa: E731
    chosen = simulate.simulate(doc, topology, config, feedback=feedback)["scenarios"]
    reasons = {c["id"]: c["selection_reason"] for c in chosen}
    assert "s1--database" not in reasons
    assert reasons["s2--database"] == ("top risk (rank 1 of 4; failed an exercise on 2026-10-15)")
    assert reasons["s0--database"].endswith("; never exercised)")
    # The risk shown is the model's, whatever the feedback.
    shown = {c["id"]: c["risk_score"] for c in chosen}
    assert shown["s0--database"] == plain["s0--database"]["risk_score"]


def test_a_run_with_an_exercise_log_writes_readiness_and_its_trend(run_cli, tmp_path, caplog):
    log = write(tmp_path, "exercises.csv", "date,scenario,team,outcome\n"
                "2026-10-01,postgres-primary:database,data-platform,passed\n"
                "2026-10-02,nosuch,data-platform,passed\n")  # fmt: skip
    published = tmp_path / "published"
    for out in ("first", "second"):
        code, _, err = run_cli(
            "run", "--incidents", SAMPLE_INCIDENTS, "--topology", SAMPLE_TOPOLOGY,
            "--out", tmp_path / out, "--as-of", SAMPLE_AS_OF, "--draws", "300",
            "--exercises", log, "--publish-to", published,
        )  # fmt: skip
        assert code == 0, err
        if out == "first":  # said once, where the names are checked (after validation)
            assert caplog.text.count("1 exercise names no service of the topology") == 1
    first = json.loads((tmp_path / "first" / "readiness.json").read_text())
    second = json.loads((tmp_path / "second" / "readiness.json").read_text())
    assert all(t["previous_score"] is None for t in first["teams"])
    assert [t["previous_score"] for t in second["teams"]] == [t["score"] for t in first["teams"]]
    assert (tmp_path / "second" / "quarantine_exercises.csv").read_text().count(
        "unknown_service"
    ) == 1
    assert (published / "latest" / "readiness.json").exists()
    report = (tmp_path / "second" / "report.md").read_text()
    assert "## Team readiness" in report and "Largest risks never exercised" in report
    assert (tmp_path / "second" / "plots" / "readiness.svg").exists()
