"""Extract: read incident and topology files and normalise them onto the data contract.

Reading never drops a row: every input row keeps its file row number (`_row`, the header is
row 1, as in a spreadsheet) so that validation can quarantine it with a reason and a user can
find it. Two formats are accepted for each input: the data contract (docs/data-contract.md)
and the legacy What-If notebook format.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd

from whatif.errors import UserError
from whatif.schemas import (
    FAILURE_MODES,
    INCIDENT_OPTIONAL,
    INCIDENT_REQUIRED,
    NOTEBOOK_INCIDENT_COLUMNS,
    NOTEBOOK_TOPOLOGY_COLUMNS,
    TOPOLOGY_OPTIONAL,
    TOPOLOGY_REQUIRED,
)

ROW = "_row"
TIMESTAMP_COLUMNS = ("started_at", "resolved_at", "detected_at", "acknowledged_at")

SEVERITY_WORDS: dict[str, str] = {
    **{w: "SEV1" for w in ("sev0", "sev1", "p0", "p1", "critical", "major outage", "outage")},
    **{w: "SEV2" for w in ("sev2", "p2", "major", "high", "partial outage")},
    **{
        w: "SEV3"
        for w in (
            "sev3",
            "p3",
            "minor",
            "medium",
            "moderate",
            "degraded performance",
            "degraded",
            "degradation",
        )
    },
    **{w: "SEV4" for w in ("sev4", "p4", "p5", "low", "none", "info", "informational", "cosmetic")},
}

# First match wins: the keywords a failure-mode description is recognised by.
FAILURE_MODE_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dependency", ("dependency", "third party", "third-party", "upstream", "vendor", "provider")),
    ("database", ("database", "db", "sql", "replication", "deadlock")),
    (
        "capacity",
        (
            "capacity",
            "load",
            "saturation",
            "resource",
            "memory",
            "cpu",
            "disk full",
            "overload",
            "traffic",
            "exhaust",
        ),
    ),
    ("deployment", ("deploy", "release", "rollout", "rollback")),
    ("config", ("config", "configuration", "feature flag", "misconfig")),
    ("network", ("network", "dns", "latency", "connectivity", "packet", "bgp", "timeout")),
    ("hardware", ("hardware", "disk", "host", "node failure", "power")),
    ("security", ("security", "ddos", "attack", "certificate", "cert", "auth")),
    ("data", ("data", "corruption", "schema", "migration")),
)


@dataclasses.dataclass
class Table:
    """One input file after normalisation: the typed frame and the raw text of each row."""

    frame: pd.DataFrame
    raw: pd.DataFrame
    path: str
    format: str  # "contract" or "notebook"


def read_csv(path: str | Path) -> pd.DataFrame:
    """All cells as text ('' when empty), plus each row's file row number."""
    path = Path(path)
    if not path.exists():
        raise UserError("file not found", file=str(path), hint="check the path")
    if path.is_dir():
        raise UserError("is a folder, not a file", file=str(path))
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UserError("the file is empty", file=str(path)) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"not a readable CSV file: {_first_line(exc)}", file=str(path)) from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    frame[ROW] = np.arange(2, len(frame) + 2)
    return frame


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _detect_format(
    frame: pd.DataFrame, path: str, required: tuple[str, ...], notebook_keys: tuple[str, ...]
) -> str:
    columns = set(frame.columns)
    if set(required) <= columns:
        return "contract"
    if set(notebook_keys) <= columns:
        return "notebook"
    missing = [c for c in required if c not in columns]
    present = ", ".join(c for c in frame.columns if c != ROW)
    raise UserError(
        f"required column missing (the file has: {present})",
        file=path,
        row=1,
        column=missing[0],
        hint="see docs/data-contract.md for the columns",
    )


def load_incidents(path: str | Path) -> Table:
    raw = read_csv(path)
    fmt = _detect_format(raw, str(path), INCIDENT_REQUIRED, NOTEBOOK_INCIDENT_COLUMNS[:2])
    frame = _incidents_from_notebook(raw) if fmt == "notebook" else _incidents_from_contract(raw)
    return Table(frame=frame, raw=raw, path=str(path), format=fmt)


def _incidents_from_contract(raw: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({ROW: raw[ROW]})
    for column in (*INCIDENT_REQUIRED, *INCIDENT_OPTIONAL):
        frame[column] = raw[column].map(_clean_text) if column in raw else ""
    return _type_incidents(frame)


def _incidents_from_notebook(raw: pd.DataFrame) -> pd.DataFrame:
    """Notebook rows are one incident each, dated to the day, with no end time."""
    frame = pd.DataFrame({ROW: raw[ROW]})
    frame["incident_id"] = [f"row-{row}" for row in raw[ROW]]
    frame["service"] = raw["service"].map(_clean_text)
    frame["started_at"] = raw["date"].map(_clean_text)
    frame["resolved_at"] = ""
    frame["severity"] = raw["impact"].map(_clean_text) if "impact" in raw else ""
    frame["category"] = raw["type"].map(_clean_text) if "type" in raw else ""
    frame["title"] = ""
    frame["description"] = raw["mitigation"].map(_clean_text) if "mitigation" in raw else ""
    for column in ("detected_at", "acknowledged_at", "caused_by", "team"):
        frame[column] = ""
    return _type_incidents(frame)


def _clean_text(value: str) -> str:
    return re.sub(r"\s+", " ", str(value)).strip()


def _type_incidents(frame: pd.DataFrame) -> pd.DataFrame:
    """Parse timestamps (unparseable -> NaT, for validation to report) and map vocabularies."""
    frame["severity_raw"] = frame["severity"]
    frame["severity"] = frame["severity"].map(normalise_severity)
    frame["category"] = frame["category"].map(normalise_failure_mode)
    for column in TIMESTAMP_COLUMNS:
        frame[f"{column}_raw"] = frame[column]
        frame[column] = parse_timestamps(frame[column])
    for column in ("incident_id", "service", "caused_by"):
        frame[column] = frame[column].replace("", pd.NA)
    return frame


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO-8601 text to UTC; a naive timestamp means UTC; bad or empty text becomes NaT."""
    parsed = pd.to_datetime(values.replace("", None), utc=True, format="ISO8601", errors="coerce")
    return parsed.astype("datetime64[ns, UTC]")


def normalise_severity(value: str) -> str | None:
    """Map the many severity vocabularies onto SEV1 (worst) .. SEV4; None when unknown."""
    key = _clean_text(value).lower()
    if not key:
        return None
    if key in SEVERITY_WORDS:
        return SEVERITY_WORDS[key]
    match = re.fullmatch(r"(?:sev|p|s)[\s-]?([0-5])", key)
    if match:
        return SEVERITY_WORDS.get(f"sev{match.group(1)}", "SEV4")
    return None


def normalise_failure_mode(value: str) -> str:
    """Map a free-text category onto the failure-mode vocabulary; 'other' when unrecognised."""
    key = _clean_text(value).lower()
    if key in FAILURE_MODES:
        return key
    words = set(re.findall(r"[a-z]+", key))
    for mode, keywords in FAILURE_MODE_KEYWORDS:
        for keyword in keywords:
            if (" " in keyword and keyword in key) or keyword in words:
                return mode
    return "other"


def load_topology(path: str | Path) -> Table:
    raw = read_csv(path)
    fmt = _detect_format(raw, str(path), TOPOLOGY_REQUIRED, NOTEBOOK_TOPOLOGY_COLUMNS[:2])
    if fmt == "notebook":
        raw_view = raw.rename(columns={"dependencies": "depends_on", "criticality": "tier"})
    else:
        raw_view = raw
    frame = pd.DataFrame({ROW: raw_view[ROW]})
    for column in (*TOPOLOGY_REQUIRED, *TOPOLOGY_OPTIONAL):
        frame[column] = raw_view[column].map(_clean_text) if column in raw_view else ""
    frame["depends_on"] = frame["depends_on"].map(split_dependencies)
    frame["user_facing"] = frame["user_facing"].map(_parse_bool)
    frame["slo_target"] = frame["slo_target"].map(_parse_slo)
    frame["traffic_weight"] = pd.to_numeric(frame["traffic_weight"], errors="coerce")
    frame["service"] = frame["service"].replace("", pd.NA)
    return Table(frame=frame, raw=raw, path=str(path), format=fmt)


def split_dependencies(text: str) -> list[str]:
    """`a; b;a` -> ['a', 'b']: order kept, blanks and repeats dropped."""
    names = [_clean_text(part) for part in str(text).split(";")]
    return list(dict.fromkeys(name for name in names if name))


def _parse_bool(text: str) -> bool | None:
    key = text.strip().lower()
    if key in ("true", "yes", "y", "1", "t"):
        return True
    if key in ("false", "no", "n", "0", "f"):
        return False
    return None


def _parse_slo(text: str) -> float:
    """0.999 or 99.9 (a percentage) -> 0.999; NaN when empty or not a number."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        return float("nan")
    return value / 100.0 if 1.0 < value <= 100.0 else value
