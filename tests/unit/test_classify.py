"""Failure modes and severities from incident text: the rule data, real titles, precedence,
the sources recorded per row, and the evidence counts in model.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from shared import PROJECT, TOPOLOGY_CSV, write
from whatif import classify, ingest, resources
from whatif.schemas import FAILURE_MODES, SEVERITIES, ModelDoc

TITLES = pd.read_csv(
    PROJECT / "tests" / "data" / "public" / "incident-titles.csv", dtype=str, keep_default_na=False
)


def test_the_rule_files_load_and_name_only_known_modes_and_severities():
    spec = classify.rules()
    assert (
        set(spec.category_precedence) == set(spec.text_precedence) == set(FAILURE_MODES) - {"other"}
    )
    assert set(spec.category_words) <= set(FAILURE_MODES)
    assert {rule.label for rule in spec.severity_rules} <= set(SEVERITIES)
    for rules in spec.text_rules.values():
        assert rules, "every mode can be recognised in text"
        assert all(rule.why for rule in rules)
    raw = yaml.safe_load(resources.read_text("classify", "failure_modes.yaml"))
    assert set(raw["modes"]) == set(spec.text_rules)


def test_a_bad_rule_is_refused_when_the_rules_load():
    with pytest.raises(ValueError, match="lowercase"):
        classify._rule({"match": "(capture)", "why": "a capturing group"}, "network")
    with pytest.raises(ValueError, match="lowercase"):
        classify._rule({"match": "DNS", "why": "upper case"}, "network")


@pytest.mark.parametrize(
    ("source", "title", "mode"),
    TITLES[["source", "title", "failure_mode"]].itertuples(index=False),
    ids=[f"{s}:{m}" for s, m in zip(TITLES["source"], TITLES["failure_mode"], strict=True)],
)
def test_real_titles_get_their_failure_mode(source, title, mode):
    assert classify.text_modes(pd.Series([title])).iloc[0] == ("" if mode == "other" else mode)


def test_real_titles_cover_every_mode():
    assert set(TITLES["failure_mode"]) == set(FAILURE_MODES)


@pytest.mark.parametrize(
    ("title", "severity"),
    TITLES[["title", "severity"]].itertuples(index=False),
)
def test_status_page_impact_words_give_a_severity(title, severity):
    assert classify.text_severities(pd.Series([title])).iloc[0] == severity


@pytest.mark.parametrize(
    "title",
    [
        "Elevated errors on ChatGPT",  # OpenAI's status page
        "Increased latency affecting ChatGPT",  # OpenAI's status page
        "We are investigating reports of degraded performance.",  # GitHub's status page
        "[RESOLVED] Increased Error Rates",  # AWS Health Dashboard
        "Haiku Partial Outage",  # Anthropic's status page
    ],
)
def test_impact_words_alone_are_no_cause(title):
    assert classify.text_modes(pd.Series([title])).iloc[0] == ""


def test_precedence_decides_between_modes_in_text():
    # Google Cloud's status page: an upgrade (deployment) of a data store (database) after a
    # capacity update: what changed wins over what it hit.
    title = (
        "Cloud Redis BASIC Tier Instances cannot proceed version upgrade after their "
        "maintenance or capacity update"
    )
    assert classify.text_modes(pd.Series([title])).iloc[0] == "deployment"
    # Dan Luu's post-mortem list: the config that made a quota service fail, not the quota.
    title = "A bad config caused a quota service to fail, which caused multiple services to fail"
    assert classify.text_modes(pd.Series([title])).iloc[0] == "config"
    spec = classify.rules()
    assert spec.text_precedence.index("config") < spec.text_precedence.index("capacity")


def test_category_words_keep_their_order_and_read_phrases_first():
    values = pd.Series(
        ["disk full", "disk", "Third party", "third-party failures", "DB2 outage", "Network"]
    )
    assert list(classify.category_modes(values)) == [
        "capacity",  # the phrase "disk full" of capacity comes before hardware's "disk"
        "hardware",
        "dependency",
        "dependency",
        "database",
        "network",
    ]


def _incidents(tmp_path: Path, rows: str, header: str) -> ingest.Table:
    return ingest.load_incidents(write(tmp_path, "incidents.csv", header + rows))


def test_a_category_wins_over_the_text_and_each_row_records_its_source(tmp_path: Path):
    frame = _incidents(
        tmp_path,
        "I1,db,2026-01-01,capacity,Elevated DB errors\n"  # category given: the column decides
        "I2,db,2026-01-02,,Elevated DB errors\n"  # none: the title decides
        "I3,db,2026-01-03,,Elevated errors on ChatGPT\n"  # impact words only: other
        "I4,db,2026-01-04,cosmic rays,Elevated DB errors\n",  # given, unrecognised: other
        "incident_id,service,started_at,category,title\n",
    ).frame.set_index("incident_id")
    assert list(frame["category"]) == ["capacity", "database", "other", "other"]
    assert list(frame["failure_mode_source"]) == ["column", "text", "none", "column"]


def test_without_a_category_column_the_description_counts_too(tmp_path: Path):
    frame = _incidents(
        tmp_path,
        "I1,db,2026-01-01,Outage,The primary database ran out of disk space\n",
        "incident_id,service,started_at,title,description\n",
    ).frame
    assert (frame["category"].item(), frame["failure_mode_source"].item()) == ("capacity", "text")


def test_severity_comes_from_the_column_else_from_impact_words(tmp_path: Path):
    frame = _incidents(
        tmp_path,
        "I1,db,2026-01-01,SEV4,Haiku Partial Outage\n"  # the column wins
        "I2,db,2026-01-02,,Haiku Partial Outage\n"
        "I3,db,2026-01-03,,Major outage\n"
        "I4,db,2026-01-04,,Elevated errors on ChatGPT\n"  # no impact word of the rules
        "I5,db,2026-01-05,banana,Major outage\n",  # a word given but unknown: warned, kept None
        "incident_id,service,started_at,severity,title\n",
    ).frame.set_index("incident_id")
    assert list(frame["severity"].fillna("unknown")) == [
        "SEV4",
        "SEV2",
        "SEV1",
        "unknown",
        "unknown",
    ]
    assert list(frame["severity_source"]) == ["column", "text", "text", "none", "none"]
    assert list(frame["severity_raw"]) == ["SEV4", "", "", "", "banana"]


def test_classifying_a_column_makes_no_python_call_per_row():
    """Whole columns: the Python calls made do not grow with the rows (a loop per row, or
    pandas calling `re` once per value, would add thousands)."""
    spec = classify.rules()
    words = ["Elevated DB errors", "Planned Maintenance", "Elevated errors", "DNS failures"]

    def calls(rows: int) -> int:
        text = pd.Series([f"{words[i % 4]} {i}" for i in range(rows)])  # every value distinct
        count = 0

        def profile(frame, event, arg):
            nonlocal count
            count += event in ("call", "c_call")

        sys.setprofile(profile)
        try:
            classify.text_modes(text)
            classify.text_severities(text)
        finally:
            sys.setprofile(None)
        return count

    assert spec.text_patterns  # loaded before counting
    calls(10)  # caches warmed
    small, large = calls(10), calls(5000)
    assert large < small + 500, (small, large)


def test_fit_records_where_modes_and_severities_come_from(run_cli, tmp_path: Path):
    titles = [
        ("db", "Elevated DB errors"),
        ("api", "Planned Maintenance"),
        ("cache", "Elevated rate limiting errors on the API"),
        ("web", "Elevated errors on ChatGPT"),
        ("api", "Haiku Partial Outage"),
        ("db", "[RESOLVED] Network Connectivity Issue"),
    ]
    rows = "".join(
        f"I{i},{service},2026-0{i}-01T10:00:00Z,2026-0{i}-01T11:00:00Z,{title}\n"
        for i, (service, title) in enumerate(titles, start=1)
    )
    incidents = write(
        tmp_path, "incidents.csv", "incident_id,service,started_at,resolved_at,title\n" + rows
    )
    topology = write(tmp_path, "topology.csv", TOPOLOGY_CSV)
    out = tmp_path / "model.json"
    code, _, err = run_cli(
        "fit",
        "--incidents",
        incidents,
        "--topology",
        topology,
        "--as-of",
        "2026-08-01T00:00:00Z",
        "--cascade-window-minutes",
        "0",
        "--out",
        out,
    )
    assert code == 0, err
    doc = ModelDoc.model_validate_json(out.read_text())
    sources = json.loads(out.read_text())["evidence_sources"]
    assert doc.evidence_sources == sources
    assert sources["failure_mode"] == {"column": 0, "text": 4, "none": 2}
    assert sources["severity"] == {"column": 0, "text": 1, "none": 5}


def test_a_history_without_any_severity_counts_none_as_known():
    from whatif import model

    rows = pd.DataFrame(
        {
            "category": ["database", "other"],
            "failure_mode_source": [None, None],  # a clean table written before the sources
            "severity": [None, None],
            "severity_source": [None, None],
        }
    )
    counts = model.evidence_sources(rows, rows)
    assert counts["failure_mode"] == {"column": 1, "text": 0, "none": 1}
    assert counts["severity"] == {"column": 0, "text": 0, "none": 2}
