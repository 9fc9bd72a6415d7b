"""`whatif topology merge`: the declared graph and the observed one as one topology."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from whatif.importers import merge
from whatif.importers.common import ServiceRecord, topology_csv

CATALOG = [
    ServiceRecord("web", ["api"], tier="edge", owner_team="team-web", user_facing=True),
    ServiceRecord("api", ["db"], ["cache"], owner_team="team-api", runbook_url="https://rb/api"),
    ServiceRecord("db", tier="data", owner_team="team-data", pagerduty_service_id="PDB1"),
    ServiceRecord("cache", tier="data"),
    ServiceRecord("batch", ["db"], owner_team="team-data"),
]
TRACES = [
    ServiceRecord("web", ["api"], observed_calls={"api": 900}),
    ServiceRecord(
        "api",
        ["db", "payments"],
        ["cache"],
        tier="core",  # the catalog says nothing: the traces' value is used
        owner_team="someone-else",  # the catalog's wins
        observed_requests=900,
        observed_calls={"db": 700, "payments": 30, "cache": 1200},
        observed_errors={"db": 4},
    ),
    ServiceRecord("db", observed_requests=700),
    ServiceRecord("cache", observed_requests=1200),
    ServiceRecord("payments", observed_requests=30),
]


def _by_name(records: list[ServiceRecord]) -> dict[str, ServiceRecord]:
    return {r.service: r for r in records}


def test_catalog_attributes_win_edges_are_the_union_and_counts_come_from_traces(caplog):
    with caplog.at_level(logging.INFO, logger="whatif"):
        # The traces given first: declared topologies are still read first.
        merged = _by_name(merge.merge([TRACES, CATALOG], ["traces.csv", "catalog.csv"]))
    assert sorted(merged) == ["api", "batch", "cache", "db", "payments", "web"]
    api = merged["api"]
    assert api.owner_team == "team-api" and api.tier == "core"
    assert api.runbook_url == "https://rb/api"
    assert api.depends_on == ["db", "payments"] and api.soft_depends_on == ["cache"]
    assert api.observed_calls == {"db": 700, "payments": 30, "cache": 1200}
    assert api.observed_errors == {"db": 4} and api.observed_requests == 900
    assert merged["db"].pagerduty_service_id == "PDB1"
    assert merged["batch"].depends_on == ["db"] and merged["batch"].observed_calls == {}
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines == [
        "1 edge seen only in traces (add to the catalog?): api -> payments",
        "1 edge only in the catalog (not called in the lookback): batch -> db",
        "1 service seen only in traces: payments",
    ]


def test_two_trace_sources_count_the_same_traffic_once():
    jaeger = [ServiceRecord("api", ["db"], observed_calls={"db": 100}), ServiceRecord("db")]
    tempo = [
        ServiceRecord("api", ["db"], observed_calls={"db": 120}, observed_errors={"db": 2}),
        ServiceRecord("db", observed_requests=120),
    ]
    merged = _by_name(merge.merge([jaeger, tempo], ["jaeger", "tempo"]))
    assert merged["api"].observed_calls == {"db": 120}
    assert merged["db"].observed_requests == 120


def test_a_soft_edge_in_any_input_is_soft():
    catalog = [ServiceRecord("api", ["queue"]), ServiceRecord("queue")]
    traces = [ServiceRecord("api", [], ["queue"], observed_calls={"queue": 5})]
    merged = _by_name(merge.merge([catalog, traces], ["catalog", "traces"]))
    assert merged["api"].depends_on == [] and merged["api"].soft_depends_on == ["queue"]


def test_written_topology_reads_back_as_the_same_records(tmp_path: Path):
    merged = merge.merge([CATALOG, TRACES], ["catalog", "traces"])
    path = tmp_path / "topology.csv"
    path.write_text(topology_csv(merged))
    again = merge.read_records(str(path))
    assert [r.as_row() for r in again] == [r.as_row() for r in merged]


@pytest.fixture
def two_topologies(tmp_path: Path) -> tuple[Path, Path]:
    catalog, traces = tmp_path / "catalog.csv", tmp_path / "traces.csv"
    catalog.write_text(topology_csv(CATALOG))
    traces.write_text(topology_csv(TRACES))
    return catalog, traces


def test_merge_command_writes_a_topology_that_fits(run_cli, two_topologies, tmp_path: Path, caplog):
    catalog, traces = two_topologies
    out = tmp_path / "merged.csv"
    code, stdout, err = run_cli("topology", "merge", catalog, traces, "--out", out)
    assert code == 0, err
    assert stdout.strip() == (
        f"wrote {out}: 6 services, 5 dependencies (1 soft), 4 with trace counts from 2 topologies"
    )
    assert "1 edge seen only in traces (add to the catalog?): api -> payments" in caplog.text
    code, _, err = run_cli("validate", "--incidents", _incidents(tmp_path), "--topology", out)
    assert code == 0, err


def test_merge_needs_two_topologies_and_says_so(run_cli, two_topologies, tmp_path: Path):
    code, _, err = run_cli("topology", "merge", two_topologies[0], "--out", tmp_path / "m.csv")
    assert code == 2
    assert err.strip() == "whatif: error: give at least two topologies to merge"
    assert not (tmp_path / "m.csv").exists()


def _incidents(folder: Path) -> Path:
    path = folder / "incidents.csv"
    path.write_text(
        "incident_id,service,started_at,resolved_at\n"
        "I1,db,2026-11-01T10:00:00Z,2026-11-01T11:00:00Z\n"
        "I2,api,2026-11-03T10:00:00Z,2026-11-03T10:30:00Z\n"
    )
    return path
