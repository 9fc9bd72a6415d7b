"""The real-history gallery (docs/examples/, scripts/gallery.py) and the wording of every
scenario: each public history and the sample is run as the gallery runs it, and

- no listed scenario is below the selection's bar unless it is forced or a labelled tail or
  common-mode scenario (docs/scenarios.md section 6);
- the committed gallery lists what the engine says today (regenerate it with the script);
- every sentence agrees with the numbers beside it: singular counts, a timeline that restores
  when the narrative says the outage ends, no "owned by its owners", no guessed SEV when the
  history records none, no "0.0%", the tail reasons' reach equal to the blast radius."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from shared import PROJECT
from whatif import simulate
from whatif.formatting import percent

spec = importlib.util.spec_from_file_location("gallery", PROJECT / "scripts" / "gallery.py")
gallery = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gallery)

RUNS = [*gallery.HISTORIES, "sample"]
PLURAL_AFTER_ONE = re.compile(r"(?<![\d.])1 (services|minutes|hours|incidents|teams|days)\b")


@functools.cache
def rendered(history: str, folder: str) -> Path:
    """One run per history per session (the tests below share it)."""
    out = Path(folder) / history
    if history == "sample":
        return gallery.run_sample(out)
    return gallery.run(history, out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    folder = str(tmp_path_factory.mktemp("gallery"))
    return {history: rendered(history, folder) for history in RUNS}


def scenarios_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "scenarios.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("history", RUNS)
def test_no_scenario_is_listed_below_the_bar_without_a_label(runs, history):
    doc = scenarios_of(runs[history])
    assert doc["scenarios"], history
    for scenario in doc["scenarios"]:
        reason = scenario["selection_reason"]
        labelled = scenario["forced"] or reason.startswith(("tail:", "common mode"))
        assert scenario["probability"] >= simulate.MEANINGFUL_PROBABILITY or labelled, (
            history,
            scenario["id"],
            scenario["probability"],
            reason,
        )
        if reason.startswith("tail:"):
            assert scenario["probability"] >= simulate.TAIL_PROBABILITY
    modes = doc["simulation"]["selection"]["modes_with_evidence"]
    assert all(s["trigger"]["failure_mode"] in modes for s in doc["scenarios"] if not s["forced"])


@pytest.mark.parametrize("history", gallery.HISTORIES)
def test_the_committed_gallery_is_what_the_engine_says_today(runs, history):
    committed = scenarios_of(gallery.EXAMPLES / history)
    today = scenarios_of(runs[history])
    assert [s["id"] for s in committed["scenarios"]] == [s["id"] for s in today["scenarios"]], (
        "run scripts/gallery.py to regenerate docs/examples"
    )
    assert [s["probability"] for s in committed["scenarios"]] == [
        s["probability"] for s in today["scenarios"]
    ]


def texts(scenario: dict[str, Any]) -> list[str]:
    """Every sentence of a scenario's pack."""
    found = [scenario["title"], scenario["narrative"], scenario["predicted_impact"]]
    for inject in scenario["injects"]:
        found += [inject["event"], inject["observed"]]
    found += [item["role"] + ": " + item["action"] for item in scenario["checklist"]]
    found += scenario["detection_signals"] + scenario["facilitator_questions"]
    found += [step for steps in scenario["mitigations"].values() for step in steps]
    return found


@pytest.mark.parametrize("history", RUNS)
def test_the_words_agree_with_the_numbers_beside_them(runs, history):
    doc = scenarios_of(runs[history])
    report = (runs[history] / "report.md").read_text(encoding="utf-8")
    assert "0.0%" not in report and "; ." not in report
    # Every link of the table lands on an anchor, whatever the service names hold.
    targets = re.findall(r"\]\(#([^)]*)\)", report)
    assert targets and all(re.fullmatch(r"[a-z0-9-]+", t) for t in targets), targets
    assert all(f'<a id="{t}"></a>' in report for t in targets)
    for scenario in doc["scenarios"]:
        sentences = texts(scenario)
        where = (history, scenario["id"])
        assert not any(PLURAL_AFTER_ONE.search(t) for t in sentences), where
        assert not any("owned by its owners" in t for t in sentences), where
        assert percent(scenario["probability"]) in scenario["narrative"], where
        # The timeline restores when the narrative says the outage ends.
        typical = scenario["expected_duration_minutes"]["p50"]
        assert scenario["injects"][-1]["minute"] == max(1, round(typical)), where
        if not scenario["impact"]["teams_paged"]:
            assert "no owner in the topology" in scenario["predicted_impact"], where
        if scenario["severity"] == "unknown":
            assert not any(re.search(r"\bSEV[1-4]\b", t) for t in sentences), where
            assert "severity unknown" in scenario["predicted_impact"], where
        reason = scenario["selection_reason"]
        if "rare but wide" in reason:
            reach = int(re.search(r"reaches (\d+) services", reason).group(1))
            assert reach == round(scenario["impact"]["blast_radius"]["p90"]), where
        if "rare but severe" in reason:
            assert scenario["severity"] != "unknown", where
    if not doc["simulation"]["severity_known"]:
        assert "severity unknown" in report
