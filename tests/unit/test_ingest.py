"""Extract: both formats onto the data contract, vocabularies, timestamps, clear errors."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
from shared import NOTEBOOK_INCIDENTS, NOTEBOOK_TOPOLOGY, write
from whatif import ingest
from whatif.errors import UserError


def test_contract_incidents_are_typed_and_keep_their_file_rows(small_inputs):
    incidents, _ = small_inputs
    table = ingest.load_incidents(incidents)
    frame = table.frame
    assert table.format == "contract"
    assert list(frame["_row"]) == list(range(2, 9))  # header is row 1
    assert str(frame["started_at"].dtype) == "datetime64[ns, UTC]"
    assert frame.loc[frame["incident_id"] == "I7", "severity"].item() == "SEV3"  # P3
    assert frame.loc[frame["incident_id"] == "I2", "caused_by"].item() == "I1"
    assert frame["caused_by"].isna().sum() == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:00:00Z", "2026-03-01T12:00:00+00:00"),
        ("2026-03-01T12:00:00", "2026-03-01T12:00:00+00:00"),  # naive means UTC
        ("2026-03-01T14:00:00+02:00", "2026-03-01T12:00:00+00:00"),
        ("2026-03-01", "2026-03-01T00:00:00+00:00"),
    ],
)
def test_timestamps_become_utc(text, expected):
    parsed = ingest.parse_timestamps(pd.Series([text]))
    assert parsed.iloc[0].isoformat() == expected


def test_unparseable_timestamps_become_missing_for_validation_to_report():
    parsed = ingest.parse_timestamps(pd.Series(["yesterday", "", "2026-13-40T00:00:00Z"]))
    assert parsed.isna().all()


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("SEV0", "SEV1"),
        ("sev1", "SEV1"),
        ("P1", "SEV1"),
        ("critical", "SEV1"),
        ("major outage", "SEV1"),
        ("Major", "SEV2"),
        ("partial outage", "SEV2"),
        ("P2", "SEV2"),
        ("degraded performance", "SEV3"),
        ("minor", "SEV3"),
        ("sev-3", "SEV3"),
        ("P4", "SEV4"),
        ("P5", "SEV4"),
        ("low", "SEV4"),
        ("", None),
        ("banana", None),
    ],
)
def test_severity_vocabularies_map_onto_one_scale(word, expected):
    assert ingest.normalise_severity(word) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Database", "database"),
        ("Third party", "dependency"),
        ("Config change", "config"),
        ("Deployment", "deployment"),
        ("Capacity", "capacity"),
        ("Network", "network"),
        ("cosmic rays", "other"),
        ("", "other"),
    ],
)
def test_failure_modes_map_onto_the_vocabulary(text, expected):
    assert ingest.normalise_failure_mode(text) == expected


def test_notebook_incidents_are_one_incident_per_row_with_no_end_time():
    table = ingest.load_incidents(NOTEBOOK_INCIDENTS)
    frame = table.frame
    assert table.format == "notebook"
    assert frame["incident_id"].is_unique
    assert frame["resolved_at"].isna().all()
    assert frame["started_at"].notna().all()
    assert set(frame["severity"].dropna()) <= {"SEV1", "SEV2", "SEV3", "SEV4"}
    first = frame.iloc[0]
    assert (first["service"], first["category"], first["severity"]) == (
        "api-gateway",
        "deployment",
        "SEV2",
    )


def test_notebook_topology_reads_dependencies_as_depends_on():
    frame = ingest.load_topology(NOTEBOOK_TOPOLOGY).frame.set_index("service")
    assert frame.at["web-frontend", "depends_on"] == ["api-gateway"]
    assert frame.at["inventory", "depends_on"] == ["orders", "postgres"]
    assert frame.at["postgres", "depends_on"] == []


def test_missing_required_column_names_file_row_and_column(tmp_path: Path):
    path = write(tmp_path, "incidents.csv", "incident_id,service,resolved_at\nI1,db,2026-01-01\n")
    with pytest.raises(UserError) as caught:
        ingest.load_incidents(path)
    message = str(caught.value)
    assert str(path) in message and "row 1" in message and "column started_at" in message


def test_a_file_without_resolved_at_is_read_and_its_rows_have_no_end(tmp_path: Path):
    path = write(tmp_path, "incidents.csv", "incident_id,service,started_at\nI1,db,2026-01-01\n")
    table = ingest.load_incidents(path)
    assert table.format == "contract"
    assert table.frame["resolved_at"].isna().all()
    assert not table.frame["bad_resolved_at"].any()  # missing, not unreadable


def test_durations_are_numbers_and_anything_else_given_is_marked_for_a_warning(tmp_path: Path):
    path = write(
        tmp_path,
        "incidents.csv",
        """\
        incident_id,service,started_at,resolved_at,duration_minutes,duration_seconds
        I1,db,2026-01-01,,90,
        I2,db,2026-01-02,,,600
        I3,db,2026-01-03,,ninety,-5
        I4,db,2026-01-04,,inf,
        I5,db,2026-01-05,last tuesday,,
        """,
    )
    frame = ingest.load_incidents(path).frame.set_index("incident_id")
    assert frame.at["I1", "duration_minutes"] == 90.0
    assert frame.at["I2", "duration_s"] == 600.0  # duration_seconds is read as duration_s
    assert pd.isna(frame.at["I1", "duration_s"]) and pd.isna(frame.at["I2", "duration_minutes"])
    assert frame.loc[["I3", "I4"], "duration_minutes"].tolist() == [-1.0, -1.0]
    assert frame.at["I3", "duration_s"] == -1.0
    assert frame["bad_resolved_at"].tolist() == [False, False, False, False, True]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("Open", True),
        ("TRIGGERED", True),
        ("acknowledged", True),
        ("Investigating", True),
        ("identified", True),
        ("monitoring", True),
        ("active", True),
        ("ongoing", True),
        ("In Progress", True),
        ("in_progress", True),
        ("resolved", False),
        ("Closed", False),
        ("postmortem", False),
        ("", None),
    ],
)
def test_status_words_say_whether_an_incident_is_still_open(word, expected):
    result = ingest.open_status(pd.Series([word])).iloc[0]
    assert (None if pd.isna(result) else bool(result)) == expected


def test_missing_and_empty_files_are_user_errors(tmp_path: Path):
    with pytest.raises(UserError, match="file not found"):
        ingest.load_incidents(tmp_path / "nope.csv")
    with pytest.raises(UserError, match="empty"):
        ingest.load_topology(write(tmp_path, "empty.csv", ""))


def test_dependencies_are_split_trimmed_and_deduplicated():
    assert ingest.split_dependencies(" a; b ;;a ") == ["a", "b"]
    assert ingest.split_dependencies("") == []


def test_clean_text_folds_every_white_space_python_knows() -> None:
    """Arrow's kernels fold what Python's `\\s` matches (RE2's `\\s` is ASCII only): every such
    character, alone, in runs, at the ends; other characters (a zero-width space, a letter)
    stay."""
    import re

    spaces = [chr(c) for c in range(0x110000) if re.fullmatch(r"\s", chr(c))]
    cells = [f"{c}a{c}{c}b {c}" for c in spaces] + ["\u200bx\u00a0\u3000y\r\n", "", "plain"]
    cells += [
        "".join(random.Random(k).choices(["x", " ", "\t", "\u00a0", "é"], k=12)) for k in range(50)
    ]
    got = ingest.clean_text(pd.Series(cells, dtype=str)).tolist()
    assert got == [re.sub(r"\s+", " ", cell).strip() for cell in cells]
    assert got[0] == "a b" and got[len(spaces)] == "\u200bx y"
