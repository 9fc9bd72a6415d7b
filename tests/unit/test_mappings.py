"""Export mappings: each shipped mapping turns its tool's export (tests/data/exports) into
contract rows, with the export's own row numbers in errors and in the quarantine."""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from shared import PROJECT, SAMPLE_TOPOLOGY, write
from whatif import ingest, mappings, resources, sources, validate
from whatif.errors import UserError

EXPORTS = PROJECT / "tests" / "data" / "exports"
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
HISTORY_DAYS = 730
TOOLS = ("pagerduty", "opsgenie", "incident-io", "jira")

# The row of each fixture whose resolved time is before its start (header = row 1).
RESOLVED_BEFORE_STARTED = {"pagerduty": 8, "opsgenie": 7, "incident-io": 8, "jira": 6}


def load(path: Path | str, mapping: str) -> ingest.Table:
    return ingest.incidents_table(sources.read_table(str(path)), str(path), mapping)


def check(table: ingest.Table) -> validate.Validated:
    topology = ingest.load_topology(str(SAMPLE_TOPOLOGY))
    return validate.validate(table, topology, AS_OF, HISTORY_DAYS)


@functools.cache
def validated(tool: str) -> validate.Validated:
    """Each fixture validated once (GX is slow); tests only read the result."""
    return check(load(EXPORTS / f"{tool}.csv", tool))


def used(tool: str, incident_id: str, service: str) -> pd.Series:
    frame = validated(tool).incidents
    rows = frame[(frame["incident_id"] == incident_id) & (frame["service"] == service)]
    assert len(rows) == 1, f"{incident_id}/{service}: {len(rows)} rows"
    return rows.iloc[0]


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


def reasons(tool: str) -> dict[int, set[str]]:
    quarantine = validated(tool).quarantine
    rows = zip(quarantine["row"], quarantine["reason"], strict=True)
    return {int(row): set(reason.split(";")) for row, reason in rows}


# --- every shipped mapping ------------------------------------------------------------


def test_the_four_mappings_are_shipped_and_say_where_their_columns_come_from():
    assert mappings.available() == ["incident-io", "jira", "opsgenie", "pagerduty"]
    for tool in TOOLS:
        spec = mappings.load(tool)
        assert spec.name == tool
        assert "http" in spec.description or "as seen" in spec.description


@pytest.mark.parametrize("tool", TOOLS)
def test_every_row_read_is_used_or_quarantined(tool):
    result = validated(tool)
    report = result.report["inputs"]["incidents"]
    assert report["format"] == f"mapping:{tool}"
    assert report["rows_read"] == report["rows_used"] + report["rows_quarantined"]
    assert report["rows_used"] == len(result.incidents)
    assert set(result.incidents["service"]) <= set(result.topology.services)
    assert str(result.incidents["started_at"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize("tool", TOOLS)
def test_resolved_before_started_is_quarantined_at_its_export_row(tool):
    row = RESOLVED_BEFORE_STARTED[tool]
    assert "resolved_before_started" in reasons(tool).get(row, set())


# --- PagerDuty ------------------------------------------------------------------------


def test_pagerduty_rows_become_contract_rows():
    first = used("pagerduty", "1041", "checkout")  # exported as "Checkout"
    assert first["_row"] == 2
    assert first["started_at"] == utc("2025-12-03T22:02:11Z")  # -08:00, the account's zone
    assert first["resolved_at"] == utc("2025-12-03T22:49:30Z")
    assert first["severity"] == "SEV2"  # urgency high
    assert first["title"] == "Checkout 5xx rate above 2%, customers cannot pay"
    assert first["team"] == "Commerce On-Call"  # escalation policy: no team column here
    assert used("pagerduty", "1044", "redis-cache")["severity"] == "SEV4"  # urgency low
    summer = used("pagerduty", "1045", "search")
    assert summer["started_at"] == utc("2026-04-07T23:20:00Z")  # -07:00 in summer
    assert summer["category"] == "deployment"  # from the title's keywords
    assert used("pagerduty", "1042", "postgres-primary")["category"] == "database"
    assert set(validated("pagerduty").incidents["incident_id"]) - {"1047"} == {
        "1041",
        "1042",
        "1043",
        "1044",
        "1045",
        "1048",
        "1049",
        "1050",
    }


def test_pagerduty_service_missing_from_the_topology_is_quarantined_at_its_row():
    assert reasons("pagerduty").get(7) == {"unknown_service"}
    quarantine = validated("pagerduty").quarantine.set_index("row")
    assert quarantine.loc[7, "service_name"] == "Legacy Billing"
    assert quarantine.loc[7, "file"].endswith("tests/data/exports/pagerduty.csv")
    assert set(reasons("pagerduty")) - {RESOLVED_BEFORE_STARTED["pagerduty"]} == {7}


def test_pagerduty_priority_wins_over_urgency_when_the_account_has_priorities(tmp_path):
    path = write(
        tmp_path,
        "pd.csv",
        """\
        incident_number,description,service_name,escalation_policy_name,created_on,resolved_on,urgency,priority_name
        7,a,checkout,Commerce,2026-01-01T10:00:00+00:00,2026-01-01T11:00:00+00:00,low,P1
        8,b,checkout,Commerce,2026-01-02T10:00:00+00:00,2026-01-02T11:00:00+00:00,low,
        """,
    )
    assert list(load(path, "pagerduty").frame["severity"]) == ["SEV1", "SEV4"]


# --- Opsgenie -------------------------------------------------------------------------


def test_opsgenie_impacted_services_are_split_into_one_row_each():
    for service in ("checkout", "payments"):
        row = used("opsgenie", "311", service)
        assert row["_row"] == 2
        assert row["started_at"] == utc("2025-11-20T09:58:00Z")  # impactStartDate
        assert row["detected_at"] == utc("2025-11-20T10:04:12.512Z")  # createdAt
        assert row["resolved_at"] == utc("2025-11-20T11:30:00Z")
        assert row["severity"] == "SEV1"  # P1
        assert row["team"] == "Commerce"
    assert used("opsgenie", "317", "email-provider")["severity"] == "SEV4"  # P5
    assert used("opsgenie", "317", "notifications")["_row"] == 8


def test_opsgenie_start_falls_back_to_created_at_and_offsets_become_utc():
    assert used("opsgenie", "312", "api-gateway")["started_at"] == utc("2026-01-09T18:22:40.101Z")
    offset = used("opsgenie", "314", "cart")
    assert offset["started_at"] == utc("2026-03-05T13:01:00Z")  # 14:01+01:00
    assert offset["resolved_at"] == utc("2026-03-05T13:47:00Z")


def test_opsgenie_repeated_record_keeps_the_latest_and_quarantines_the_earlier():
    # The earlier copy was still open: no end time, which alone would not cost it its place.
    assert reasons("opsgenie").get(9) == {"duplicate"}
    latest = used("opsgenie", "318", "inventory")
    assert latest["_row"] == 10
    assert latest["resolved_at"] == utc("2026-08-08T09:35:00Z")
    assert set(reasons("opsgenie")) - {RESOLVED_BEFORE_STARTED["opsgenie"]} == {9}
    report = validated("opsgenie").report["inputs"]["incidents"]
    assert report["rows_read"] == 12  # 10 export rows, two of them naming two services


# --- incident.io ----------------------------------------------------------------------


def test_incident_io_affected_services_are_split_and_impact_start_is_the_start():
    services = validated("incident-io").incidents.query("incident_id == 'INC-102'")["service"]
    assert sorted(services) == ["inventory", "orders", "postgres-primary"]
    row = used("incident-io", "INC-102", "orders")
    assert row["_row"] == 3
    assert row["started_at"] == utc("2026-01-21T02:09:30Z")  # Impact started
    assert row["detected_at"] == utc("2026-01-21T02:14:00Z")  # Reported at
    assert row["resolved_at"] == utc("2026-01-21T03:20:00Z")
    assert row["severity"] == "SEV1"  # Critical
    assert used("incident-io", "INC-101", "cart")["severity"] == "SEV2"  # Major
    assert used("incident-io", "INC-101", "cart")["category"] == "deployment"


def test_incident_io_timestamps_fall_back_in_order_and_offsets_become_utc():
    search = used("incident-io", "INC-103", "search")  # no Impact started
    assert search["started_at"] == utc("2026-02-03T08:15:00Z")  # Reported at, +01:00
    assert search["severity"] == "SEV3"  # Minor
    storage = used("incident-io", "INC-108", "object-storage")  # no Resolved at
    assert storage["resolved_at"] == utc("2026-08-12T13:05:00Z")  # Fixed at
    assert storage["severity"] == "SEV3"  # a custom "SEV3"


def test_incident_io_incident_without_affected_service_is_quarantined_at_its_row():
    assert reasons("incident-io").get(6) == {"missing_service"}
    assert set(reasons("incident-io")) - {RESOLVED_BEFORE_STARTED["incident-io"]} == {6}
    quarantine = validated("incident-io").quarantine.set_index("row")
    assert quarantine.loc[6, "reference"] == "INC-105"


# --- Jira -----------------------------------------------------------------------------


def test_jira_issues_become_contract_rows():
    for service in ("checkout", "payments"):  # Custom field (Affected services), split
        row = used("jira", "OPS-412", service)
        assert row["_row"] == 2  # a record spanning two lines is still row 2
        assert row["started_at"] == utc("2025-11-28T09:41:00Z")  # naive: read as UTC
        assert row["resolved_at"] == utc("2025-11-28T11:03:00Z")
        assert row["severity"] == "SEV1"  # Highest, through the mapping's values
        assert row["description"].startswith("Deadlocks on the orders table blocked")
    assert used("jira", "OPS-418", "catalog")["severity"] == "SEV3"  # Component/s; Medium
    assert used("jira", "OPS-447", "service-discovery")["severity"] == "SEV4"  # Lowest
    assert used("jira", "OPS-452", "fraud-detection")["_row"] == 8  # no component


def test_jira_component_missing_from_the_topology_is_quarantined_at_its_row():
    assert reasons("jira").get(5) == {"unknown_service"}
    quarantine = validated("jira").quarantine.set_index("row")
    assert quarantine.loc[5, "component/s"] == "Mobile App"
    assert quarantine.loc[5, "issue key"] == "OPS-436"
    assert set(reasons("jira")) - {RESOLVED_BEFORE_STARTED["jira"]} == {5}


def test_jira_times_are_read_in_the_zone_a_copy_of_the_mapping_names(tmp_path):
    spec = yaml.safe_load((resources.folder("mappings") / "jira.yaml").read_text(encoding="utf-8"))
    spec["timezone"] = "Europe/Paris"
    mapping = tmp_path / "jira-paris.yaml"
    mapping.write_text(yaml.safe_dump(spec), encoding="utf-8")
    frame = load(EXPORTS / "jira.csv", str(mapping)).frame.set_index(["incident_id", "service"])
    assert frame.loc[("OPS-412", "checkout"), "started_at"] == utc("2025-11-28T08:41:00Z")  # CET
    assert frame.loc[("OPS-447", "service-discovery"), "started_at"] == utc(
        "2026-06-03T00:14:00Z"  # CEST
    )


def test_jira_default_date_format_is_read():
    frame = load(EXPORTS / "jira-default-dates.csv", "jira").frame
    assert frame["started_at"].iloc[0] == utc("2026-07-14T15:42:00Z")


# --- writing and choosing mappings ----------------------------------------------------


def test_unknown_mapping_name_lists_the_available_ones():
    with pytest.raises(UserError) as error:
        load(EXPORTS / "pagerduty.csv", "servicenow")
    assert "no such mapping" in str(error.value)
    assert "incident-io, jira, opsgenie, pagerduty" in str(error.value)


def test_missing_required_source_column_names_file_row_and_column(tmp_path):
    path = write(
        tmp_path,
        "pd.csv",
        """\
        incident_number,description,service_name,resolved_on,urgency
        7,a,checkout,2026-01-01T11:00:00+00:00,high
        """,
    )
    with pytest.raises(UserError) as error:
        load(path, "pagerduty")
    assert (error.value.file, error.value.row, error.value.column) == (str(path), 1, "created_on")
    assert "created_on, created_at" in str(error.value)
    assert str(error.value).startswith(f"{path}, row 1, column created_on:")


def test_missing_optional_source_column_leaves_it_empty_with_a_warning(tmp_path, caplog):
    path = write(
        tmp_path,
        "pd.csv",
        """\
        incident_number,description,service_name,created_on,resolved_on
        7,a,checkout,2026-01-01T10:00:00+00:00,2026-01-01T11:00:00+00:00
        """,
    )
    with caplog.at_level(logging.WARNING, logger="whatif.mappings"):
        frame = load(path, "pagerduty").frame
    assert frame["severity"].isna().all() and list(frame["team"]) == [""]
    assert "no column priority_name or urgency in the file" in caplog.text
    assert "the pagerduty mapping leaves severity empty" in caplog.text


def test_values_translate_each_item_of_a_split_cell(tmp_path):
    mapping = write(
        tmp_path,
        "mine.yaml",
        """\
        name: mine
        columns: {incident_id: id, service: hit, started_at: from, resolved_at: to}
        split: {service: "|"}
        values: {service: {Checkout Service: checkout, Card Payments: payments}}
        constants: {severity: SEV3}
        """,
    )
    path = write(
        tmp_path,
        "mine.csv",
        """\
        id,hit,from,to
        X1,Checkout Service | Card Payments,2026-01-01T10:00:00Z,2026-01-01T11:00:00Z
        """,
    )
    frame = load(path, str(mapping)).frame
    assert list(frame["service"]) == ["checkout", "payments"]
    assert list(frame["_row"]) == [2, 2] and list(frame["severity"]) == ["SEV3", "SEV3"]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ("{incident_id: id, service: s, started_at: a, resolved_at: b, servce: s}", "'servce'"),
        ("{incident_id: id, service: s, resolved_at: b}", "where started_at comes from"),
    ],
)
def test_a_mapping_must_name_contract_columns_and_all_required_ones(tmp_path, columns, message):
    mapping = write(tmp_path, "bad.yaml", f"columns: {columns}\n")
    with pytest.raises(UserError) as error:
        mappings.load(str(mapping))
    assert message in str(error.value) and error.value.file == str(mapping)


def test_a_mapping_without_resolved_at_is_accepted(tmp_path):
    mapping = write(
        tmp_path, "ends.yaml", "columns: {incident_id: id, service: s, started_at: a}\n"
    )
    assert "resolved_at" not in mappings.load(str(mapping)).columns


def test_pagerduty_seconds_to_resolve_gives_the_end_when_resolved_on_is_empty(tmp_path):
    path = write(
        tmp_path,
        "pd.csv",
        """\
        incident_number,description,service_name,created_on,resolved_on,seconds_to_resolve
        7,a,checkout,2026-01-01T10:00:00+00:00,,5400
        8,b,checkout,2026-01-02T10:00:00+00:00,2026-01-02T11:00:00+00:00,3600
        9,c,checkout,2026-01-03T10:00:00+00:00,2026-01-03T11:00:00+00:00,60
        """,
    )
    result = check(load(path, "pagerduty"))
    frame = result.incidents.set_index("incident_id")
    assert frame.at["7", "resolved_at"] == utc("2026-01-01T11:30:00Z")
    assert frame["duration_source"].to_dict() == {
        "7": "duration_column",
        "8": "resolved_at",
        "9": "resolved_at",  # 60 s against an hour: resolved_on is kept, with a warning
    }
    assert frame.at["9", "resolved_at"] == utc("2026-01-03T11:00:00Z")
    assert any(
        "differ by more than a minute" in w and "(1 rows: 4)" in w
        for w in result.report["warnings"]
    )


def test_opsgenie_status_says_which_incidents_without_an_end_are_still_open(tmp_path):
    path = write(
        tmp_path,
        "og.csv",
        """\
        TinyId,Message,Status,Priority,ImpactedServices,CreatedAt,ImpactStartDate,ImpactEndDate
        401,Checkout down,resolved,P1,checkout,2026-10-01T10:00:00Z,,2026-10-01T11:00:00Z
        402,Cart slow,open,P3,cart,2025-12-01T10:00:00Z,,
        403,Search yellow,closed,P3,search,2026-10-31T23:30:00Z,,
        """,
    )
    result = check(load(path, "opsgenie"))
    sources = result.incidents.set_index("incident_id")["duration_source"].to_dict()
    # The status decides, both ways: 402 has been open far longer than the one recorded
    # duration (an hour), 403 started half an hour before as_of but is closed.
    assert sources == {"401": "resolved_at", "402": "open", "403": "not_recorded"}
    report = result.report["inputs"]["incidents"]
    assert report["durations"] == {
        "resolved_at": 1,
        "duration_column": 0,
        "open": 1,
        "not_recorded": 1,
    }
    assert report["rows_rates_only"] == 2


def test_cli_validates_a_pagerduty_export(run_cli, tmp_path):
    out = tmp_path / "validation.json"
    code, stdout, _ = run_cli(
        "validate",
        "--incidents",
        EXPORTS / "pagerduty.csv",
        "--topology",
        SAMPLE_TOPOLOGY,
        "--mapping",
        "pagerduty",
        "--as-of",
        "2026-11-01",
        "--out",
        out,
    )
    assert code == 0
    assert "incidents: 10 rows read" in stdout
    assert '"format": "mapping:pagerduty"' in out.read_text()


def test_cli_main_returns_zero_for_a_mapped_export():
    from whatif.cli import main

    args = ["validate", "--incidents", str(EXPORTS / "pagerduty.csv")]
    args += ["--topology", str(SAMPLE_TOPOLOGY), "--mapping", "pagerduty", "--as-of", "2026-11-01"]
    assert main(args) == 0


def test_a_split_row_is_used_or_quarantined_service_by_service(tmp_path):
    mapping = write(
        tmp_path,
        "multi.yaml",
        """\
        name: multi
        columns: {incident_id: id, service: services, started_at: start, resolved_at: end}
        split: {service: "|"}
        """,
    )
    export = write(
        tmp_path,
        "export.csv",
        """\
        id,services,start,end
        A,checkout|ghost-service,2026-05-01T10:00:00Z,2026-05-01T11:00:00Z
        B,payments,2026-05-02T10:00:00Z,2026-05-02T11:00:00Z
        """,
    )
    table = ingest.incidents_table(sources.read_table(str(export)), str(export), str(mapping))
    result = validate.validate(
        table,
        ingest.load_topology(str(SAMPLE_TOPOLOGY)),
        datetime(2026, 11, 1, tzinfo=UTC),
        HISTORY_DAYS,
    )
    assert sorted(
        zip(result.incidents["incident_id"], result.incidents["service"], strict=True)
    ) == [("A", "checkout"), ("B", "payments")]
    quarantined = result.quarantine[["row", "split_service", "reason"]].to_dict("records")
    assert quarantined == [
        {"row": 2, "split_service": "ghost-service", "reason": "unknown_service"}
    ]
    report = result.report["inputs"]["incidents"]
    assert (
        report["rows_read"],
        report["rows_used"],
        report["rows_quarantined"],
        report["source_rows"],
    ) == (3, 2, 1, 2)
    assert report["quarantined_by_reason"] == {"unknown_service": 1}
