"""What changed since the previous run (whatif.changes): the rules on small documents, and the
report that opens with them when a previous run is given or published."""

from __future__ import annotations

import json

from whatif import changes


def scenario(sid: str, service: str, p: float) -> dict:
    return {"id": sid, "title": f"What if {service} fails?", "probability": p,
            "trigger": {"service": service, "failure_mode": "other"}}  # fmt: skip


def model(rates: dict[str, tuple[float, float, float]]) -> dict:
    return {"services": [
        {"service": s, "root_rate_per_day": {"mean": m, "p05": lo, "p95": hi}}
        for s, (m, lo, hi) in rates.items()
    ]}  # fmt: skip


def test_new_dropped_and_moved_beyond_the_interval():
    before = {"run": {"id": "r1", "date": "2026-11-02"},
              "scenarios": [scenario("a--other", "a", 0.2), scenario("b--other", "b", 0.1),
                            scenario("c--other", "c", 0.05)]}  # fmt: skip
    after = {"scenarios": [scenario("a--other", "a", 0.4), scenario("b--other", "b", 0.11),
                           scenario("d--other", "d", 0.3)]}  # fmt: skip
    rates_before = model({"a": (0.02, 0.015, 0.025), "b": (0.01, 0.005, 0.02),
                          "c": (0.01, 0.0, 0.02), "d": (0.03, 0.02, 0.04)})  # fmt: skip
    rates_after = model({"a": (0.05, 0.04, 0.06), "b": (0.011, 0.006, 0.02),
                         "c": (0.01, 0.0, 0.02), "d": (0.03, 0.02, 0.04)})  # fmt: skip
    found = changes.compare(before, rates_before, after, rates_after)
    assert found["previous_run"] == {"id": "r1", "date": "2026-11-02"}
    assert [s["id"] for s in found["new"]] == ["d--other"]
    assert [s["id"] for s in found["dropped"]] == ["c--other"]
    # a's rate left its interval: its scenario moved; b's moved inside both: noise.
    assert found["moved"] == [
        {"id": "a--other", "title": "What if a fails?", "before": 0.2, "after": 0.4}
    ]
    assert found["rates"] == [{"service": "a", "before": 0.02, "after": 0.05}]
    assert not changes.nothing_changed(found)


def test_the_same_run_again_changes_nothing_and_readiness_moves_by_a_point():
    doc = {"scenarios": [scenario("a--other", "a", 0.2)]}
    rates = model({"a": (0.02, 0.015, 0.025)})
    assert changes.nothing_changed(changes.compare(doc, rates, doc, rates))
    readiness = {"teams": [
        {"team": "t1", "score": 60.0, "previous_score": 52.5, "change": 7.5},
        {"team": "t2", "score": 60.0, "previous_score": 59.8, "change": 0.2},
        {"team": "t3", "score": 40.0, "previous_score": None, "change": None},
    ]}  # fmt: skip
    found = changes.compare(doc, rates, doc, rates, readiness)
    assert found["readiness"] == [{"team": "t1", "before": 52.5, "after": 60.0}]


def test_a_second_run_opens_with_what_changed_since_the_first(run_cli, small_inputs, tmp_path):
    incidents, topology = small_inputs
    common = ("--incidents", incidents, "--topology", topology, "--draws", "300",
              "--cascade-draws", "200", "--backtest-folds", "0", "--no-llm-cache")  # fmt: skip
    first, second, third = tmp_path / "w1", tmp_path / "w2", tmp_path / "w3"
    assert run_cli("run", *common, "--as-of", "2026-06-01", "--out", first)[0] == 0
    assert "changes" not in json.loads((first / "scenarios.json").read_text()) or (
        json.loads((first / "scenarios.json").read_text())["changes"] is None
    )
    # The same data a week on: the same scenarios, nothing beyond the intervals.
    code, _, err = run_cli("run", *common, "--as-of", "2026-06-08", "--out", second,
                           "--previous", first)  # fmt: skip
    assert code == 0, err
    doc = json.loads((second / "scenarios.json").read_text())
    assert doc["changes"]["previous_run"]["date"] == "2026-06-01"
    report = (second / "report.md").read_text()
    opening = report[: report.index("Risk matrix")]
    assert "## What changed since 2026-06-01" in opening
    # Published, then a run whose previous is the target's latest/ (no --previous).
    target = (tmp_path / "reports").as_uri()
    assert run_cli("publish", second, "--to", target)[0] == 0
    code, _, err = run_cli("run", *common, "--as-of", "2026-06-15", "--out", third,
                           "--publish-to", target)  # fmt: skip
    assert code == 0, err
    changed = json.loads((third / "scenarios.json").read_text())["changes"]
    assert changed["previous_run"]["date"] == "2026-06-08"
    assert changed["previous_run"]["id"] == doc["run"]["id"]
    # The Confluence page opens with them too (escaped text, like everything on it).
    from whatif.confluence import render_storage

    page = render_storage(json.loads((third / "scenarios.json").read_text()), [])
    assert "<h2>What changed since 2026-06-08" in page
    assert page.index("What changed since") < page.index("<h2>Summary</h2>")


def test_a_reused_out_folder_forgets_the_previous_run_it_was_given(run_cli, small_inputs, tmp_path):
    """--out reused: a run without --previous says nothing changed against the previous run an
    earlier run in that folder was given (it is no previous run of this one)."""
    incidents, topology = small_inputs
    common = ("--incidents", incidents, "--topology", topology, "--draws", "300",
              "--cascade-draws", "200", "--backtest-folds", "0", "--no-llm-cache")  # fmt: skip
    first, out = tmp_path / "first", tmp_path / "out"
    assert run_cli("run", *common, "--as-of", "2026-06-01", "--out", first)[0] == 0
    code, _, err = run_cli("run", *common, "--as-of", "2026-06-08", "--out", out,
                           "--previous", first)  # fmt: skip
    assert code == 0, err
    assert json.loads((out / "scenarios.json").read_text())["changes"] is not None
    code, _, err = run_cli("run", *common, "--as-of", "2026-06-15", "--out", out)
    assert code == 0, err
    assert json.loads((out / "scenarios.json").read_text()).get("changes") is None
    assert "What changed since" not in (out / "report.md").read_text()
