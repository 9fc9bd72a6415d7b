"""Report: escaped HTML, deterministic pictures, Mermaid cascades that follow the graph."""

from __future__ import annotations

import json

from conftest import INCIDENTS_CSV, TOPOLOGY_CSV, write
from whatif import pipeline, report
from whatif.config import RunConfig, WhatIf

HOSTILE = "<script>alert(1)</script>"


def test_html_escapes_every_piece_of_data(tmp_path):
    topology = write(tmp_path, "topology.csv", TOPOLOGY_CSV.replace("data-team", HOSTILE))
    incidents = write(tmp_path, "incidents.csv", INCIDENTS_CSV)
    out = tmp_path / "out"
    pipeline.run_all(
        pipeline.Inputs(incidents=str(incidents), topology=str(topology)),
        out,
        RunConfig(draws=200, scenarios=3, history_days=3650, what_if=(WhatIf("db"),)),
    )
    html = (out / "report.html").read_text()
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 0
    assert json.loads((out / "scenarios.json").read_text())["scenarios"]


def test_risk_matrix_is_deterministic_svg():
    scenarios = [
        {"probability": 0.2, "severity": "SEV2", "impact": {"impact_score": 3.0}},
        {"probability": 0.01, "severity": "SEV1", "impact": {"impact_score": 30.0}},
    ]
    first = report.risk_matrix_svg(scenarios)
    assert first.startswith("<svg") and first == report.risk_matrix_svg(scenarios)


def test_mermaid_cascade_draws_failure_flow_among_affected_services():
    scenario = {
        "trigger": {"service": "db"},
        "affected_services": ["db", "api"],
        "impact": {"affected_probability": {"db": 1.0, "api": 0.4}},
    }
    edges = [("db", "api"), ("api", "web"), ("cache", "api")]
    text = report.mermaid_cascade(scenario, edges)
    assert text.splitlines()[0] == "graph LR"
    assert 'n1["db (100%)"]' in text and 'n0["api (40%)"]' in text
    assert "n1 --> n0" in text
    assert "web" not in text and "cache" not in text
