"""Validate: GX suites; hard errors stop with file/row/column, soft ones quarantine rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import INCIDENTS_CSV, NOTEBOOK_INCIDENTS, NOTEBOOK_TOPOLOGY, TOPOLOGY_CSV, write
from whatif import ingest, validate
from whatif.errors import UserError

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)

MESSY_ROWS = """\
I8,ghost,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,SEV2,database,unknown service,
I9,db,not-a-date,2026-01-05T11:00:00Z,SEV2,database,bad start,
I10,db,2026-01-05T12:00:00Z,2026-01-05T11:00:00Z,SEV2,database,ends before it starts,
I6,db,2026-04-01T08:00:00Z,2026-04-01T09:45:00Z,SEV3,database,corrected copy of I6,
,db,2026-04-02T08:00:00Z,2026-04-02T09:00:00Z,SEV3,database,no id,
I11,db,2020-01-01T08:00:00Z,2020-01-01T09:00:00Z,SEV3,database,too old,
I12,api,2026-04-03T08:00:00Z,2026-04-03T09:00:00Z,whatever,other,odd severity,I404
"""


def _validate(folder: Path, incidents_text: str, topology_text: str = TOPOLOGY_CSV):
    incidents = ingest.load_incidents(write(folder, "incidents.csv", incidents_text))
    topology = ingest.load_topology(write(folder, "topology.csv", topology_text))
    return validate.validate(incidents, topology, AS_OF, 730)


def test_clean_input_is_used_whole(tmp_path):
    result = _validate(tmp_path, INCIDENTS_CSV)
    report = result.report["inputs"]["incidents"]
    assert (report["rows_read"], report["rows_used"], report["rows_quarantined"]) == (7, 7, 0)
    assert result.quarantine.empty
    assert all(e["success"] for e in report["expectations"])


def test_bad_rows_are_quarantined_with_reasons_and_none_are_lost(tmp_path):
    result = _validate(tmp_path, INCIDENTS_CSV + MESSY_ROWS)
    reasons = dict(zip(result.quarantine["row"], result.quarantine["reason"], strict=True))
    assert reasons == {
        7: "duplicate",  # I6 appears again at row 12: the latest record wins
        9: "unknown_service",
        10: "bad_started_at",
        11: "resolved_before_started",
        13: "missing_incident_id",
        14: "outside_window",
    }
    report = result.report["inputs"]["incidents"]
    assert report["rows_read"] == report["rows_used"] + report["rows_quarantined"] == 14
    assert report["quarantined_by_reason"]["duplicate"] == 1
    assert result.incidents.set_index("incident_id").at["I6", "title"] == "corrected copy of I6"
    # A row with an odd severity or an unknown cause is used, with a warning.
    kept = result.incidents.set_index("incident_id").loc["I12"]
    assert kept["severity"] is None or kept["severity"] != kept["severity"]
    assert kept["caused_by"] is None or kept["caused_by"] != kept["caused_by"]
    warnings = " ".join(result.report["warnings"])
    assert "severity is not a known word" in warnings and "caused_by names no incident" in warnings


def test_quarantine_keeps_the_raw_row_and_where_it_came_from(tmp_path):
    result = _validate(tmp_path, INCIDENTS_CSV + MESSY_ROWS)
    row = result.quarantine.set_index("row").loc[10]
    assert row["started_at"] == "not-a-date"
    assert row["file"].endswith("incidents.csv")


def test_expectations_are_reported_with_level_and_counts(tmp_path):
    result = _validate(tmp_path, INCIDENTS_CSV + MESSY_ROWS)
    by_reason = {e["reason"]: e for e in result.report["inputs"]["incidents"]["expectations"]}
    assert by_reason["unknown_service"]["level"] == "soft"
    assert by_reason["unknown_service"]["unexpected_count"] == 1
    assert by_reason["unknown_service"]["sample_rows"] == [9]
    assert by_reason["unknown_severity"]["level"] == "warn"
    assert by_reason["missing_service"]["success"] is True


def test_duplicate_topology_service_is_a_hard_error_naming_the_row(tmp_path):
    topology = TOPOLOGY_CSV + "db,,data,data-team,false,,,,\n"
    with pytest.raises(UserError) as caught:
        _validate(tmp_path, INCIDENTS_CSV, topology)
    message = str(caught.value)
    assert "topology.csv, row 6, column service" in message  # the repeating row
    assert "'db' (rows 4, 6)" in message


def test_no_usable_incident_is_a_user_error(tmp_path):
    text = "incident_id,service,started_at,resolved_at\nI1,ghost,2026-01-01,2026-01-01\n"
    with pytest.raises(UserError, match=r"no usable incident rows.*unknown_service: 1"):
        _validate(tmp_path, text)


def test_service_names_match_the_topology_ignoring_case_and_spaces(tmp_path):
    text = "incident_id,service,started_at,resolved_at\nI1, DB ,2026-01-01,2026-01-01T01:00:00\n"
    result = _validate(tmp_path, text)
    assert list(result.incidents["service"]) == ["db"]


def test_topology_values_out_of_range_are_ignored_with_a_warning(tmp_path):
    topology = TOPOLOGY_CSV.replace("web-primary,0.999,1.0", "web-primary,150,7")
    result = _validate(tmp_path, INCIDENTS_CSV, topology)
    assert result.topology.attribute("web", "slo_target") is None
    assert result.topology.attribute("web", "traffic_weight") is None
    assert any("slo_target" in w for w in result.report["warnings"])


def test_notebook_cycle_is_warned_once_and_does_not_stop_the_run():
    incidents = ingest.load_incidents(NOTEBOOK_INCIDENTS)
    topology = ingest.load_topology(NOTEBOOK_TOPOLOGY)
    result = validate.validate(incidents, topology, datetime(2026, 1, 1, tzinfo=UTC), 730)
    cycles = [w for w in result.report["warnings"] if "cycle" in w]
    assert len(cycles) == 1 and "inventory <-> orders" in cycles[0]
    assert result.report["inputs"]["incidents"]["rows_used"] == 40


def test_depends_on_naming_an_undeclared_service_adds_it_with_a_warning(tmp_path):
    topology = TOPOLOGY_CSV.replace("web,api,", "web,api;search,")
    result = _validate(tmp_path, INCIDENTS_CSV, topology)
    assert "search" in result.topology.services
    assert result.topology.dependents_of("search") == ["web"]
    assert any("no row of their own" in w for w in result.report["warnings"])


def test_unclear_user_facing_values_are_inferred_with_a_warning(tmp_path):
    topology = TOPOLOGY_CSV.replace("frontend,web-team,true,", "frontend,web-team,maybe,")
    result = _validate(tmp_path, INCIDENTS_CSV, topology)
    assert bool(result.topology.attribute("web", "user_facing")) is True  # nothing depends on web
    warnings = [w for w in result.report["warnings"] if "user_facing is not true or false" in w]
    assert len(warnings) == 1 and "(1 rows: 2)" in warnings[0]


MODEL_TOPOLOGY = """\
service,depends_on,soft_depends_on,created_at
web,api,cache,2025-06-01
api,db,,yesterday-ish
db,,,
cache,,,
"""

LOAD_ROWS = """\
incident_id,service,started_at,resolved_at,load_factor
L1,db,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,1.8
L2,db,2026-01-06T10:00:00Z,2026-01-06T11:00:00Z,
L3,db,2026-01-07T10:00:00Z,2026-01-07T11:00:00Z,lots
L4,db,2026-01-08T10:00:00Z,2026-01-08T11:00:00Z,-2
"""


def test_criticality_creation_dates_and_load_factors_are_read_and_bad_values_warned(tmp_path):
    result = _validate(tmp_path, LOAD_ROWS, MODEL_TOPOLOGY)
    topology = result.topology
    criticality = {
        (topology.services[u], topology.services[v]): c
        for u, v, c in zip(
            topology.edge_dependency, topology.edge_dependent, topology.criticality, strict=True
        )
    }
    # cache is a dependency of web although depends_on omits it; the others are hard.
    assert criticality == {("api", "web"): "hard", ("cache", "web"): "soft", ("db", "api"): "hard"}
    created = topology.attributes["created_at"]
    assert created["web"] == datetime(2025, 6, 1, tzinfo=UTC)
    assert created[["api", "db", "cache"]].isna().all()
    loads = dict(zip(result.incidents["incident_id"], result.incidents["load_factor"], strict=True))
    assert loads["L1"] == 1.8
    assert all(v != v for k, v in loads.items() if k != "L1")  # NaN: missing or ignored
    assert len(result.incidents) == 4  # a bad load factor does not cost the row
    warnings = "\n".join(result.report["warnings"])
    assert "created_at is not an ISO-8601 timestamp" in warnings and "(1 rows: 3)" in warnings
    assert "load_factor must be a positive number" in warnings and "(2 rows: 4, 5)" in warnings


def test_the_staged_topology_keeps_criticality_and_creation_dates(tmp_path):
    from whatif.topology import Topology

    topology = _validate(tmp_path, LOAD_ROWS, MODEL_TOPOLOGY).topology
    staged = tmp_path / "staged.csv"
    topology.to_frame().to_csv(staged, index=False)
    again = Topology.from_frame(ingest.load_topology(staged).frame)
    assert list(again.criticality) == list(topology.criticality)
    assert again.attributes["created_at"].equals(topology.attributes["created_at"])
    plain = _validate(tmp_path, INCIDENTS_CSV).topology
    assert plain.edge_criticality is None and set(plain.criticality) == {"unknown"}
    plain.to_frame().to_csv(staged, index=False)
    assert Topology.from_frame(ingest.load_topology(staged).frame).edge_criticality is None
