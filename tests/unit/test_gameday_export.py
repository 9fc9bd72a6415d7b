"""`whatif export` and `whatif run --export-format`: every scenario as a chaos experiment in
each format, an index saying why any is missing, the report linking them, the files published
with the run; and game-day journals given to --exercises feeding readiness and the edge model
(docs/gameday.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared import PROJECT
from whatif import pipeline
from whatif.gameday.plan import FORMATS

GAIA = PROJECT / "tests" / "data" / "public" / "gaia-micross"
JOURNALS = PROJECT / "tests" / "data" / "gameday" / "journals"
TARGETS = """service,k8s_namespace,k8s_selector,health_url,aws_target
redisservice,gaia,app=redis,http://redis.gaia:8080/health,tag:app=redis
webservice,gaia,app=web,http://web.gaia:8080/health,
"""


@pytest.fixture(scope="module")
def game_day_run(tmp_path_factory) -> tuple[Path, Path]:
    """GAIA's history run as of after the game days, with its journals and every format."""
    from whatif.cli import main

    folder = tmp_path_factory.mktemp("gameday")
    targets = folder / "targets.csv"
    targets.write_text(TARGETS)
    out = folder / "run"
    formats = [arg for name in FORMATS for arg in ("--export-format", name)]
    code = main(
        [
            "run",
            "--incidents", str(GAIA / "incidents.csv"),
            "--topology", str(GAIA / "topology.csv"),
            "--as-of", "2026-12-01",
            "--history-days", "2000",
            "--exercises", str(JOURNALS),
            "--draws", "300",
            "--out", str(out),
            *formats,
        ]
    )  # fmt: skip
    assert code == 0
    return out, targets


def test_every_scenario_gets_an_experiment_per_format_or_a_reason(game_day_run):
    out, _ = game_day_run
    scenarios = json.loads((out / "scenarios.json").read_text())["scenarios"]
    index = json.loads((out / "experiments" / "index.json").read_text())
    entries = index["experiments"]
    assert index["formats"] == list(FORMATS)
    assert {(e["scenario"], e["format"]) for e in entries} == {
        (s["id"], f) for s in scenarios for f in FORMATS
    }
    for entry in entries:
        if entry["file"]:
            assert (out / "experiments" / entry["file"]).is_file()
            assert entry["skipped"] is None
        else:
            assert entry["skipped"]  # a reason, never a silent gap
    written = {e["file"] for e in entries if e["file"]}
    on_disk = {
        p.relative_to(out / "experiments").as_posix()
        for p in (out / "experiments").rglob("*")
        if p.is_file() and p.name != "index.json"
    }
    assert written == on_disk
    # Published with the run, and linked from each scenario of the report.
    published = set(pipeline.artifacts(out))
    assert {f"experiments/{f}" for f in written} | {"experiments/index.json"} <= published
    report = (out / "report.md").read_text()
    for entry in entries:
        if entry["file"]:
            assert f"(experiments/{entry['file']})" in report


def test_the_export_command_writes_the_same_files_and_takes_targets(
    game_day_run, run_cli, tmp_path
):
    out, targets = game_day_run
    again = tmp_path / "again"
    code, stdout, err = run_cli("export", out, "--format", "chaostoolkit", "--out", again)
    assert code == 0, err
    assert stdout.startswith("wrote ") and str(again) in stdout
    for path in (again / "chaostoolkit").iterdir():
        assert path.read_bytes() == (out / "experiments" / "chaostoolkit" / path.name).read_bytes()
    targeted = tmp_path / "targeted"
    code, _, err = run_cli(
        "export", out, "--format", "chaosmesh", "--targets", targets, "--out", targeted
    )
    assert code == 0, err
    redis = next((targeted / "chaosmesh").glob("redisservice--*.yaml")).read_text()
    assert "gaia" in redis and "redis" in redis


def test_export_errors_are_one_line(game_day_run, run_cli, tmp_path):
    out, _ = game_day_run
    code, _, err = run_cli("export", tmp_path, "--format", "fis")
    assert code == 2 and "no scenarios.json" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "targets.csv"
    bad.write_text("service,k8s_namespace\nredisservice,gaia\nredis-service,gaia\n")
    code, _, err = run_cli("export", out, "--format", "fis", "--targets", bad, "--out", tmp_path)
    assert code == 2
    assert err.strip() == (
        f"whatif: error: {bad}, row 3, column service: 'redis-service' is no service of the "
        "run's topology"
    )


def test_game_day_journals_are_exercises_and_edge_evidence(game_day_run):
    out, _ = game_day_run
    staged = json.loads((out / "_stage" / "exercises.json").read_text())
    reasons = staged["validation"]["quarantined_by_reason"]
    used = staged["exercises"]
    assert used and all(e["facilitator"] == "chaostoolkit" for e in used)
    assert staged["validation"]["rows_read"] == len(used) + sum(reasons.values())
    trials = staged["cascade_trials"]
    model = json.loads((out / "model.json").read_text())
    edges = {(e["depends_on"], e["service"]): e["evidence"] for e in model["edges"]}
    on_edges = [t for t in trials if (t[0], t[1]) in edges]
    assert model["inputs"]["gameday_trials"] == len(on_edges) > 0
    for (dependency, dependent), evidence in edges.items():
        mine = [t for t in on_edges if (t[0], t[1]) == (dependency, dependent)]
        assert evidence["gameday_trials"] == len(mine)
        assert evidence["gameday_hits"] == sum(bool(t[2]) for t in mine)
    # Readiness counts each used journal's scenario as exercised, with its outcome.
    readiness = json.loads((out / "readiness.json").read_text())
    exercised = {
        (e["service"], e["mode"], e["outcome"]) for e in readiness["coverage"]["exercised"]
    }
    latest = {}
    for e in sorted(used, key=lambda e: e["day"]):
        latest[e["service"], e["mode"]] = e["outcome"]
    scenario_ids = {s["id"] for s in json.loads((out / "scenarios.json").read_text())["scenarios"]}
    expected = {(s, m, o) for (s, m), o in latest.items() if f"{s}--{m}" in scenario_ids}
    assert expected and exercised == expected


def test_a_rerun_into_the_same_folder_without_export_drops_the_old_experiments(tmp_path):
    from whatif.cli import main

    args = [
        "run",
        "--incidents", str(GAIA / "incidents.csv"),
        "--topology", str(GAIA / "topology.csv"),
        "--as-of", "2021-09-01",
        "--draws", "200",
        "--out", str(tmp_path),
    ]  # fmt: skip
    assert main([*args, "--export-format", "litmus"]) == 0
    assert (tmp_path / "experiments" / "index.json").is_file()
    assert main(args) == 0
    assert not (tmp_path / "experiments").exists()
    assert not any(a.startswith("experiments/") for a in pipeline.artifacts(tmp_path))


@pytest.mark.parametrize("mode", ["capacity", "network", "deployment", "config", "data", "other"])
def test_the_formats_agree_on_what_is_injected_and_what_is_a_stand_in(mode):
    """The same scenario is exported by every format, or by none; a mode that cannot be
    injected as such says so (a note) in every format."""
    import importlib

    from whatif.gameday.plan import Plan, Target

    target = Target("orders", "shop", (("app", "orders"),), "http://o/h", "tag:app=orders")
    plan = Plan(
        scenario_id=f"orders--{mode}",
        title=f"What if orders fails ({mode})?",
        description="predicted",
        trigger=target,
        mode=mode,
        dependents=(Target("web", "shop", (("app", "web"),), "http://w/h"),),
        probability=0.2,
        risk_score=0.1,
        duration_p50_minutes=20.0,
        duration_p90_minutes=60.0,
        severity="SEV2",
        run_id="r1",
    )
    results = {f: importlib.import_module(f"whatif.gameday.{f}").export(plan) for f in FORMATS}
    assert all(r.skipped is None for r in results.values()), results
    stand_in = mode in ("config", "data", "other")
    for experiment in results.values():
        assert (experiment.note is not None and "orders" in experiment.note) or not stand_in
