"""Validate: GX suites; hard errors stop with file/row/column, soft ones quarantine rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from shared import INCIDENTS_CSV, NOTEBOOK_INCIDENTS, NOTEBOOK_TOPOLOGY, TOPOLOGY_CSV, write
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


def _validate(
    folder: Path, incidents_text: str, topology_text: str = TOPOLOGY_CSV, **options: bool
):
    incidents = ingest.load_incidents(write(folder, "incidents.csv", incidents_text))
    topology = ingest.load_topology(write(folder, "topology.csv", topology_text))
    return validate.validate(incidents, topology, AS_OF, 730, **options)


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


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "web,api;serach,",
            "row 2, column depends_on: depends_on names 'serach', which is no service of the "
            "topology (fix the name, or give an external service a row of its own or run with "
            "--allow-external-dependencies)",
        ),
        (
            "web,APi,",
            "row 2, column depends_on: depends_on names 'APi', which is no service of the "
            "topology (did you mean 'api'?)",
        ),
        (
            "web,dbb,",
            "row 2, column depends_on: depends_on names 'dbb', which is no service of the "
            "topology (did you mean 'db'?)",
        ),
        (
            'web,"api,cache",',
            "row 2, column depends_on: depends_on 'api,cache' joins services with ',' "
            "(separate dependencies with ';': api;cache)",
        ),
        (
            'web,"api,stripe",',
            "row 2, column depends_on: depends_on 'api,stripe' holds a ',', which no service "
            "name has (separate dependencies with ';': api;stripe)",
        ),
    ],
)
def test_a_dependency_that_is_no_service_is_a_user_error_with_a_did_you_mean(
    tmp_path, row, message
):
    topology = TOPOLOGY_CSV.replace("web,api,", row)
    with pytest.raises(UserError) as error:
        _validate(tmp_path, INCIDENTS_CSV, topology)
    assert str(error.value) == f"{tmp_path / 'topology.csv'}, {message}"


def test_an_external_dependency_is_declared_with_a_row_of_its_own(tmp_path):
    topology = TOPOLOGY_CSV.replace("web,api,", "web,api;payments-saas,") + (
        "payments-saas,,external,,false,,,,\n"
    )
    result = _validate(tmp_path, INCIDENTS_CSV, topology)
    assert result.topology.dependents_of("payments-saas") == ["web"]
    assert not result.topology.implicit


def test_service_names_that_differ_only_in_case_are_one_line_naming_both_rows(tmp_path):
    topology = TOPOLOGY_CSV + "Cache,,data,data-team,false,,,,\n"
    with pytest.raises(UserError) as error:
        _validate(tmp_path, INCIDENTS_CSV, topology)
    assert str(error.value) == (
        f"{tmp_path / 'topology.csv'}, row 6, column service: services 'cache' (row 5) and "
        "'Cache' differ only in case and would be two services (give the service one name in "
        "every row)"
    )


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


# --- rows without an end time -----------------------------------------------------------------

ENDS_TOPOLOGY = "service,depends_on\ndb,\napi,db\n"


def _sources(result) -> dict[str, str]:
    return dict(
        zip(result.incidents["incident_id"], result.incidents["duration_source"], strict=True)
    )


def test_rows_without_resolved_at_are_used_not_quarantined(tmp_path):
    text = """\
        incident_id,service,started_at,resolved_at
        E1,db,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z
        E2,db,2026-02-05T10:00:00Z,
        E3,api,2026-03-05T10:00:00Z,
        """
    result = _validate(tmp_path, text, ENDS_TOPOLOGY)
    report = result.report["inputs"]["incidents"]
    assert (report["rows_read"], report["rows_used"], report["rows_quarantined"]) == (3, 3, 0)
    assert result.quarantine.empty
    # Both started months before as_of, far longer ago than the longest recorded incident
    # (an hour) lasts: records never closed, not incidents still going.
    assert _sources(result) == {"E1": "resolved_at", "E2": "not_recorded", "E3": "not_recorded"}
    assert report["durations"] == {
        "resolved_at": 1,
        "duration_column": 0,
        "open": 0,
        "not_recorded": 2,
    }
    assert report["rows_rates_only"] == 2
    assert any(
        "2 rows have no end time and count for rates only" in w for w in result.report["warnings"]
    )


def test_a_duration_column_gives_the_end_and_says_so(tmp_path):
    text = """\
        incident_id,service,started_at,duration_minutes,duration_s
        D1,db,2026-01-05,90,
        D2,api,2026-01-06T10:00:00Z,,600
        D3,db,2026-01-07T10:00:00Z,0,
        """
    result = _validate(tmp_path, text, ENDS_TOPOLOGY)
    ends = result.incidents.set_index("incident_id")["resolved_at"]
    assert ends["D1"] == pd.Timestamp("2026-01-05T01:30:00Z")  # a date only: from midnight UTC
    assert ends["D2"] == pd.Timestamp("2026-01-06T10:10:00Z")
    assert ends["D3"] == pd.Timestamp("2026-01-07T10:00:00Z")
    assert set(_sources(result).values()) == {"duration_column"}
    assert result.report["inputs"]["incidents"]["rows_rates_only"] == 0


def test_a_duration_that_is_not_a_number_is_ignored_with_a_warning(tmp_path):
    text = """\
        incident_id,service,started_at,resolved_at,duration_minutes,duration_seconds
        B1,db,2026-01-05T10:00:00Z,,ninety,
        B2,db,2026-01-06T10:00:00Z,,-5,
        B3,db,2026-01-07T10:00:00Z,,,1e400
        B4,db,2026-01-08T10:00:00Z,2026-01-08T10:30:00Z,30,
        """
    result = _validate(tmp_path, text, ENDS_TOPOLOGY)
    report = result.report["inputs"]["incidents"]
    assert report["rows_used"] == 4
    assert _sources(result) == {
        "B1": "not_recorded",
        "B2": "not_recorded",
        "B3": "not_recorded",  # 1e400 seconds is inf: not a duration
        "B4": "resolved_at",
    }
    used = result.incidents.set_index("incident_id")
    assert used.loc[["B1", "B2"], "duration_minutes"].isna().all()  # ignored, not kept as -1
    bad = next(e for e in report["expectations"] if e["reason"] == "bad_duration")
    assert (bad["level"], bad["unexpected_count"], bad["sample_rows"]) == ("warn", 3, [2, 3, 4])
    warnings = "\n".join(result.report["warnings"])
    assert "duration_minutes or duration_s is not a number >= 0" in warnings


def test_resolved_at_and_a_duration_that_disagree_keep_resolved_at_with_a_warning(tmp_path):
    text = """\
        incident_id,service,started_at,resolved_at,duration_minutes
        C1,db,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,60.5
        C2,db,2026-01-06T10:00:00Z,2026-01-06T11:00:00Z,120
        C3,db,2026-01-07T10:00:00Z,2026-01-07T09:00:00Z,30
        """
    result = _validate(tmp_path, text, ENDS_TOPOLOGY)
    ends = result.incidents.set_index("incident_id")["resolved_at"]
    assert ends["C2"] == pd.Timestamp("2026-01-06T11:00:00Z")  # not 12:00
    assert set(_sources(result).values()) == {"resolved_at"}
    # Ending before it starts stays a contradiction to quarantine, whatever the duration says.
    assert dict(zip(result.quarantine["row"], result.quarantine["reason"], strict=True)) == {
        4: "resolved_before_started"
    }
    disagree = next(
        e
        for e in result.report["inputs"]["incidents"]["expectations"]
        if e["reason"] == "duration_disagrees"
    )
    assert (disagree["level"], disagree["sample_rows"]) == ("warn", [3])  # 30 s off is fine


def test_an_unreadable_resolved_at_costs_the_duration_not_the_row(tmp_path):
    text = """\
        incident_id,service,started_at,resolved_at,duration_minutes
        U1,db,2026-05-31T23:30:00Z,2026-05-31T23:40:00Z,
        U2,db,2026-05-31T23:50:00Z,soon,
        U3,db,2026-05-31T23:55:00Z,later,3
        """
    result = _validate(tmp_path, text, ENDS_TOPOLOGY)
    assert result.quarantine.empty
    # U2 started 10 minutes before as_of, as long as the longest recorded incident: without its
    # unreadable end it would look open, but someone wrote an end, so it is over.
    assert _sources(result) == {"U1": "resolved_at", "U2": "not_recorded", "U3": "duration_column"}
    assert "resolved_at is not an ISO-8601 timestamp" in "\n".join(result.report["warnings"])


OPEN_OR_NOT = """\
    incident_id,service,started_at,resolved_at{status_header}
    R1,db,2026-05-20T00:00:00Z,2026-05-22T00:00:00Z{resolved}
    O1,db,2026-05-31T00:00:00Z,{open_word}
    O2,api,2026-05-01T00:00:00Z,{open_word}
    N1,api,2026-05-31T12:00:00Z,{closed_word}
    """


def test_without_a_status_an_end_missing_for_longer_than_any_incident_lasts_is_not_recorded(
    tmp_path,
):
    text = OPEN_OR_NOT.format(status_header="", resolved="", open_word="", closed_word="")
    result = _validate(tmp_path, text, ENDS_TOPOLOGY)
    # The longest recorded incident lasted two days: O1 and N1 (started one day and half a day
    # before as_of) may still be going; O2 (a month) is a record never closed.
    assert _sources(result) == {
        "R1": "resolved_at",
        "O1": "open",
        "O2": "not_recorded",
        "N1": "open",
    }
    assert result.report["inputs"]["incidents"]["durations"]["open"] == 2


def test_a_status_column_says_which_rows_are_still_open(tmp_path):
    text = OPEN_OR_NOT.format(
        status_header=",status",
        resolved=",Resolved",
        open_word=",Investigating",
        closed_word=",closed",
    )
    result = _validate(tmp_path, text, ENDS_TOPOLOGY)
    assert _sources(result) == {
        "R1": "resolved_at",
        "O1": "open",
        "O2": "open",  # the status says so, however long ago it started
        "N1": "not_recorded",  # closed, with no end: its end is not recorded
    }


def test_an_empty_status_falls_back_to_the_rule_for_files_without_one(tmp_path):
    text = OPEN_OR_NOT.format(status_header=",status", resolved=",", open_word=",", closed_word=",")
    assert _sources(_validate(tmp_path, text, ENDS_TOPOLOGY))["O1"] == "open"


def test_with_no_recorded_duration_at_all_no_row_is_taken_as_open(tmp_path):
    text = """\
        incident_id,service,started_at
        F1,db,2026-05-31T23:00:00Z
        F2,api,2026-05-31T23:59:00Z
        """
    result = _validate(tmp_path, text, ENDS_TOPOLOGY)
    assert _sources(result) == {"F1": "not_recorded", "F2": "not_recorded"}
    report = result.report["inputs"]["incidents"]
    assert (report["rows_used"], report["rows_rates_only"]) == (2, 2)


def _daily_history(first: str, last: str, service: str = "db") -> str:
    """An incident on every day from first to last (inclusive), one service."""
    days = pd.date_range(first, last, freq="D")
    rows = [
        f"D{i},{service},{d:%Y-%m-%d}T10:00:00Z,{d:%Y-%m-%d}T11:00:00Z" for i, d in enumerate(days)
    ]
    return "incident_id,service,started_at,resolved_at\n" + "\n".join(rows) + "\n"


def test_a_history_that_stops_long_before_as_of_is_named_with_the_as_of_to_use(tmp_path):
    result = _validate(tmp_path, _daily_history("2026-01-01", "2026-03-01"))  # as-of 2026-06-01
    quiet = result.report["inputs"]["incidents"]["quiet_tail"]
    assert quiet["newest_incident"].startswith("2026-03-01T10:00")
    assert quiet["days"] == pytest.approx(91.6, abs=0.1)
    assert quiet["suggested_as_of"] == "2026-03-02"
    assert quiet["rate_per_day_before"] == pytest.approx(60 / 59, rel=0.02)  # one a day
    assert quiet["chance_at_that_rate"] < 1e-30
    [line] = [w for w in result.report["warnings"] if "newest incident" in w]
    assert line.endswith(
        "the newest incident starts 2026-03-01, 92 days before --as-of 2026-06-01, and those "
        "days count as days without incidents, lowering every rate (before them the history had "
        "one incident every 1.0 days: a silence this long has a chance of less than one in a "
        "million); if the export ends there, rerun with --as-of 2026-03-02"
    )


def test_a_recent_history_or_one_that_goes_on_after_as_of_has_no_quiet_tail(tmp_path):
    recent = _validate(tmp_path, _daily_history("2026-01-01", "2026-05-10"))  # 22 days before
    assert "quiet_tail" not in recent.report["inputs"]["incidents"]
    assert not any("newest incident" in w for w in recent.report["warnings"])
    # Quiet before as-of, but the export goes on after it: a real quiet spell, not an end.
    text = _daily_history("2026-01-01", "2026-03-01") + "L1,db,2026-08-01T10:00:00Z,\n"
    ongoing = _validate(tmp_path, text)
    assert "quiet_tail" not in ongoing.report["inputs"]["incidents"]
    assert ongoing.report["inputs"]["incidents"]["data_end"].startswith("2026-08-01")
    # A newer row quarantined for another fault says nothing about where the export ends.
    text = _daily_history("2026-01-01", "2026-03-01") + "G1,ghost,2026-05-30T10:00:00Z,\n"
    faulty = _validate(tmp_path, text)
    assert faulty.report["inputs"]["incidents"]["quiet_tail"]["suggested_as_of"] == "2026-03-02"


def test_an_empty_window_proposes_the_as_of_after_the_newest_incident(tmp_path):
    old = _daily_history("2023-01-01", "2023-02-14")
    with pytest.raises(UserError) as error:
        _validate(tmp_path, old)  # as-of 2026-06-01, window from 2024-06-01
    assert str(error.value).endswith(
        "no usable incident rows (quarantined by reason: outside_window: 45) (the history "
        "window is 2024-06-01 to 2026-06-01 and the newest incident starts 2023-02-14: rerun "
        "with --as-of 2023-02-15; in Airflow, a run whose data interval ends then)"
    )
    # Rows quarantined for something else keep the general hint.
    with pytest.raises(UserError, match=r"\(see quarantine.csv; check the history window"):
        _validate(tmp_path, _daily_history("2026-01-01", "2026-01-03", service="ghost"))


def test_the_rate_before_a_quiet_tail_counts_incidents_not_their_rows_per_service(tmp_path):
    one_row = _daily_history("2026-01-01", "2026-03-01")
    # The same incidents, each affecting db and api: twice the rows, the same incidents.
    two_rows = one_row + "".join(
        line.replace(",db,", ",api,") + "\n" for line in one_row.splitlines()[1:]
    )
    rates = [
        _validate(tmp_path, text).report["inputs"]["incidents"]["quiet_tail"]
        for text in (one_row, two_rows)
    ]
    assert rates[0]["rate_per_day_before"] == rates[1]["rate_per_day_before"]


def test_service_names_that_read_like_a_sentence_or_a_link_are_warned(tmp_path):
    topology = TOPOLOGY_CSV + (
        "Visit www.githubstatus.com for more information,,,,,,,,\nGit Operations,,,,,,,,\n"
    )
    result = _validate(tmp_path, INCIDENTS_CSV, topology)
    warned = [w for w in result.report["warnings"] if "read like a sentence" in w]
    assert len(warned) == 1
    assert "'Visit www.githubstatus.com for more information'" in warned[0]
    assert "Git Operations" not in warned[0]


def test_a_very_long_service_name_is_warned_like_a_sentence(tmp_path):
    name = "Service " + "x" * 80
    result = _validate(tmp_path, INCIDENTS_CSV, TOPOLOGY_CSV + f"{name},,,,,,,,\n")
    warned = [w for w in result.report["warnings"] if "read like a sentence" in w]
    assert len(warned) == 1 and "'Service xxxxx" in warned[0]


def test_external_dependencies_allowed_become_leaf_services_named_in_one_warning(tmp_path):
    topology = TOPOLOGY_CSV.replace("web,api,", "web,api;stripe;dbb,").replace(
        "api,db;cache,", "api,db;cache;stripe,"
    )
    result = _validate(tmp_path, INCIDENTS_CSV, topology, allow_external=True)
    assert result.topology.dependents_of("stripe") == ["api", "web"]
    assert result.topology.dependencies_of("stripe") == []  # a leaf
    assert set(result.topology.implicit) == {"stripe", "dbb"}
    warned = [w for w in result.report["warnings"] if "external leaf" in w]
    assert warned == [
        f"{tmp_path / 'topology.csv'}: 2 dependencies without a row of their own, taken as "
        "external leaf services (--allow-external-dependencies): 'stripe' (rows 2, 3), 'dbb' "
        "(row 2; did you mean 'db'?)"
    ]
    assert result.report["inputs"]["topology"]["rows_used"] == 4


@pytest.mark.parametrize(
    ("depends_on", "message"),
    [
        (
            "api;DB",
            "row 2, column depends_on: depends_on names 'DB', which is no service of the "
            "topology (did you mean 'db'?)",
        ),
        (
            '"api,stripe"',
            "row 2, column depends_on: depends_on 'api,stripe' holds a ',', which no service "
            "name has (separate dependencies with ';': api;stripe)",
        ),
        (
            "api;Stripe;stripe",
            "row 2, column depends_on: depends_on names 'Stripe' (row 2) and 'stripe' differ "
            "only in case and would be two services (give the service one name in every row)",
        ),
    ],
)
def test_allowed_external_dependencies_still_refuse_commas_and_case_variants(
    tmp_path, depends_on, message
):
    topology = TOPOLOGY_CSV.replace("web,api,", f"web,{depends_on},")
    with pytest.raises(UserError) as error:
        _validate(tmp_path, INCIDENTS_CSV, topology, allow_external=True)
    assert str(error.value) == f"{tmp_path / 'topology.csv'}, {message}"


def test_a_soft_dependency_that_is_no_service_names_its_own_column(tmp_path):
    topology = "service,depends_on,soft_depends_on\nweb,api,cahce\napi,db;cache,\ndb,,\ncache,,\n"
    with pytest.raises(UserError) as error:
        _validate(tmp_path, INCIDENTS_CSV, topology)
    assert str(error.value) == (
        f"{tmp_path / 'topology.csv'}, row 2, column soft_depends_on: soft_depends_on names "
        "'cahce', which is no service of the topology (did you mean 'cache'?)"
    )


def test_every_topology_problem_is_found_at_once_and_its_rows_set_aside(tmp_path):
    """The error names the first problem and counts the others; the rest is for the stopped
    run's validation.json (every line) and quarantine.csv (the rows at fault, as read)."""
    topology = (
        TOPOLOGY_CSV.replace("web,api,", "web,dbb;search,")
        + "Cache,,data,data-team,false,,,,\n"
        + ",db,,,,,,,\n"
    )
    path = tmp_path / "topology.csv"
    with pytest.raises(UserError) as error:
        _validate(tmp_path, INCIDENTS_CSV, topology)
    assert str(error.value) == (
        f"{path}, row 7, column service: every topology row needs a service name (fix the file "
        "and run again; 3 more problems in this file)"
    )
    partial = error.value.partial
    assert partial["problems"][1:] == [  # the hard checks first, then in the file's order
        f"{path}, row 2, column depends_on: depends_on names 'dbb', which is no service of the "
        "topology (did you mean 'db'?)",
        f"{path}, row 2, column depends_on: depends_on names 'search', which is no service of "
        "the topology (fix the name, or give an external service a row of its own or run with "
        "--allow-external-dependencies)",
        f"{path}, row 6, column service: services 'cache' (row 5) and 'Cache' differ only in "
        "case and would be two services (give the service one name in every row)",
    ]
    quarantine = partial["quarantine"]
    assert dict(zip(quarantine["row"], quarantine["reason"], strict=True)) == {
        2: "unknown_dependency", 5: "case_variant", 6: "case_variant", 7: "missing_service",
    }  # fmt: skip
    assert set(quarantine["file"]) == {str(path)}
    assert list(quarantine["service"]) == ["web", "cache", "Cache", ""]  # the rows as read
    counts = partial["inputs"]["topology"]
    assert (counts["rows_read"], counts["rows_quarantined"]) == (6, 4)
