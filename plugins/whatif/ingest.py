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
from typing import Any

import numpy as np
import pandas as pd

from whatif import classify, mappings, sources
from whatif.errors import UserError
from whatif.importers.common import parse_counts
from whatif.schemas import (
    INCIDENT_ALIASES,
    INCIDENT_OPTIONAL,
    INCIDENT_REQUIRED,
    NOTEBOOK_INCIDENT_COLUMNS,
    NOTEBOOK_TOPOLOGY_COLUMNS,
    TOPOLOGY_OBSERVED,
    TOPOLOGY_OPTIONAL,
    TOPOLOGY_REQUIRED,
    TOPOLOGY_TARGETS,
)

ROW = sources.ROW
TIMESTAMP_COLUMNS = ("started_at", "resolved_at", "detected_at", "acknowledged_at")
DURATION_COLUMNS = ("duration_minutes", "duration_s")

# Status words of an incident still open (PagerDuty, Opsgenie, Statuspage, incident.io, Jira
# and the like), compared ignoring case and with `_`/`-` read as spaces; any other word means
# it is over (resolved, closed, postmortem, cancelled...).
OPEN_STATUS_WORDS = frozenset(
    (
        "open",
        "triggered",
        "acknowledged",
        "investigating",
        "identified",
        "monitoring",
        "active",
        "ongoing",
        "in progress",
        "work in progress",
        "reopened",
        "triage",
        "in triage",
        "fixing",
    )
)

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


@dataclasses.dataclass
class Table:
    """One input after normalisation: the typed frame and the raw text of each source row."""

    frame: pd.DataFrame
    raw: pd.DataFrame
    path: str
    format: str  # "contract", "notebook" or "mapping:<name>"


def _detect_format(
    frame: pd.DataFrame, path: str, required: tuple[str, ...], notebook_keys: tuple[str, ...]
) -> str:
    columns = set(frame.columns)
    if set(required) <= columns:
        return "contract"
    if set(notebook_keys) <= columns:
        return "notebook"
    missing = [c for c in required if c not in columns]
    raise UserError(
        f"required column missing (the file has: {_column_list(frame)})",
        file=path,
        row=1,
        column=missing[0],
        hint="see docs/data-contract.md for the columns",
    )


def _column_list(frame: pd.DataFrame, shown: int = 12) -> str:
    """The file's column names for a one-line message: a few, each printable (a binary or
    mis-decoded file can have names of any length and content)."""
    names = [c if c.isprintable() else repr(c) for c in map(str, frame.columns) if c != ROW]
    names = [n if len(n) <= 40 else n[:37] + "..." for n in names]
    more = f", ... ({len(names)} columns)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def load_incidents(
    location: str | Path, mapping: str | None = None, conn_id: str | None = None
) -> Table:
    """Incidents from a file or object-storage URL (CSV, Parquet, JSON Lines)."""
    return incidents_table(sources.read_table(str(location), conn_id), str(location), mapping)


def incidents_table(raw: pd.DataFrame, display: str, mapping: str | None = None) -> Table:
    """Normalise a raw incidents table (every cell text, `_row`) onto the data contract."""
    view, fmt = raw, None
    if mapping:
        spec = mappings.load(mapping)
        view, fmt = mappings.apply(raw, spec, display), f"mapping:{spec.name}"
    fmt = fmt or _detect_format(raw, display, INCIDENT_REQUIRED, NOTEBOOK_INCIDENT_COLUMNS[:2])
    frame = _incidents_from_notebook(view) if fmt == "notebook" else _incidents_from_contract(view)
    return Table(frame=frame, raw=raw, path=display, format=fmt)


def _incidents_from_contract(raw: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({ROW: raw[ROW]})
    for column in (*INCIDENT_REQUIRED, *INCIDENT_OPTIONAL):
        source = next((c for c in (column, *INCIDENT_ALIASES.get(column, ())) if c in raw), None)
        frame[column] = clean_text(raw[source]) if source else ""
    zone = raw.attrs.get("timezone", "UTC")
    return _type_incidents(frame, zone, raw.attrs.get("timestamp_format"))


def _incidents_from_notebook(raw: pd.DataFrame) -> pd.DataFrame:
    """Notebook rows are one incident each, dated to the day, with no end time."""
    frame = pd.DataFrame({ROW: raw[ROW]})
    frame["incident_id"] = [f"row-{row}" for row in raw[ROW]]
    frame["service"] = clean_text(raw["service"])
    frame["started_at"] = clean_text(raw["date"])
    frame["resolved_at"] = ""
    frame["severity"] = clean_text(raw["impact"]) if "impact" in raw else ""
    frame["category"] = clean_text(raw["type"]) if "type" in raw else ""
    frame["title"] = ""
    frame["description"] = clean_text(raw["mitigation"]) if "mitigation" in raw else ""
    for column in (
        "detected_at",
        "acknowledged_at",
        "caused_by",
        "team",
        "load_factor",
        *DURATION_COLUMNS,
        "status",
    ):
        frame[column] = ""
    return _type_incidents(frame, "UTC")


def _clean_text(value: str) -> str:
    return re.sub(r"\s+", " ", str(value)).strip()


def text_isin(values: pd.Series, allowed: Any) -> np.ndarray:
    """Which cells of a text column are among `allowed` (a sequence; missing cells never), in
    Arrow's hash kernel: pandas' `isin` on Arrow strings took 3.9 s for a million ids against
    a million, this 0.35 s."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = pa.array(values.astype(str).where(values.notna()))
    found = pc.is_in(cells, value_set=pa.array(pd.Series(allowed, dtype=str).dropna()))
    return found.fill_null(False).to_numpy(zero_copy_only=False)


def map_distinct(values: pd.Series, function: Any) -> pd.Series:
    """`values.map(function)`, calling it once per distinct value (a column of a million rows
    has a handful of severities)."""
    return values.map({value: function(value) for value in values.unique()})


# Python's `\s` on text (str.isspace) but the space itself, spelled for Arrow's RE2, whose own
# `\s` is ASCII only.
OTHER_WHITE_SPACE = (
    r"\t-\r\x{1c}-\x{1f}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}"
    r"\x{205f}\x{3000}"
)
WHITE_SPACE_RE2 = f"[ {OTHER_WHITE_SPACE}]+"
FOLDABLE_RE2 = f"  |[{OTHER_WHITE_SPACE}]"  # something to fold: two spaces, or other white space


def clean_text(values: pd.Series) -> pd.Series:
    r"""Runs of white space folded to one space and the ends trimmed, for a whole column: in
    Arrow's compute kernels (pandas' own `str.replace(r"\s+")` calls Python per cell, as RE2's
    `\s` is narrower than Python's: 11.5 s, profiled, for a million incidents' text columns)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = values.astype(str)
    cells = pa.array(text)
    # Only the cells with something to fold go through the (ten times slower) replacement.
    foldable = pc.match_substring_regex(cells, FOLDABLE_RE2)
    if pc.any(foldable).as_py():
        folded = pc.replace_substring_regex(cells.filter(foldable), WHITE_SPACE_RE2, " ")
        cells = pc.replace_with_mask(cells, foldable, folded)
    return pd.Series(pc.utf8_trim(cells, " "), index=values.index, dtype=text.dtype)


def _type_incidents(
    frame: pd.DataFrame, zone: str, timestamp_format: str | None = None
) -> pd.DataFrame:
    """Parse timestamps (unparseable -> NaT, for validation to report) and map vocabularies;
    naive timestamps are in `zone` (UTC unless a mapping says otherwise). A row without a
    category takes its failure mode from its title and description, and one without a
    severity may take it from its title's impact words (whatif.classify); `failure_mode_source`
    and `severity_source` say which ("column", "text" or "none")."""
    frame["severity_raw"] = frame["severity"]
    frame["severity"], frame["severity_source"] = classify.severities(
        map_distinct(frame["severity"], normalise_severity),
        frame["severity_raw"] != "",
        frame["title"],
    )
    frame["category"], frame["failure_mode_source"] = classify.failure_modes(
        frame["category"], frame["title"], frame["description"]
    )
    resolved_given = frame["resolved_at"] != ""
    for column in TIMESTAMP_COLUMNS:
        frame[column] = parse_timestamps(frame[column], zone, timestamp_format)
    # Given but unreadable: validation warns and the row counts as one whose end is unknown.
    frame["bad_resolved_at"] = resolved_given & frame["resolved_at"].isna()
    for column in ("incident_id", "service", "caused_by"):
        frame[column] = frame[column].replace("", pd.NA)
    frame["load_factor"] = positive_numbers(frame["load_factor"])
    frame["duration_minutes"] = non_negative_numbers(
        frame["duration_minutes"], MAX_DURATION_MINUTES
    )
    frame["duration_s"] = non_negative_numbers(frame["duration_s"], MAX_DURATION_MINUTES * 60)
    return frame


def positive_numbers(text: pd.Series) -> pd.Series:
    """Finite numbers > 0; empty text is NaN, and anything else given (a word, 0, a negative,
    inf) is -1, for validation to warn about and then ignore."""
    values = pd.to_numeric(text.replace("", pd.NA), errors="coerce").astype(float)
    given = text.astype(str).str.strip() != ""
    return values.where(~given | ((values > 0) & np.isfinite(values)), -1.0)


# The longest duration read from duration_minutes / duration_s: ten years. Longer is no
# incident (a typo, seconds written as minutes), and ends computed from it must stay within
# the timestamps' range (EARLIEST..LATEST).
MAX_DURATION_MINUTES = 10 * 365.25 * 24 * 60


def non_negative_numbers(text: pd.Series, most: float = np.inf) -> pd.Series:
    """Finite numbers from 0 to `most`; empty text is NaN, and anything else given (a word, a
    negative, inf, more than `most`) is -1, for validation to warn about and then ignore."""
    values = pd.to_numeric(text.replace("", pd.NA), errors="coerce").astype(float)
    given = text.astype(str).str.strip() != ""
    ok = (values >= 0) & (values <= most) & np.isfinite(values)
    return values.where(~given | ok, -1.0)


def open_status(status: pd.Series) -> pd.Series:
    """Per row: True when the status word says the incident is still open, False for any
    other word, NA when no status is given."""
    key = status.fillna("").astype(str).str.lower().str.replace(r"[\s_-]+", " ", regex=True)
    key = key.str.strip()
    return key.isin(OPEN_STATUS_WORDS).astype("boolean").where(key != "", pd.NA)


# Zone abbreviations seen in exports, with their fixed offsets (an abbreviation names one).
ZONE_ABBREVIATIONS = {
    "UTC": "+00:00",
    "GMT": "+00:00",
    "Z": "+00:00",
    "PST": "-08:00",
    "PDT": "-07:00",
    "MST": "-07:00",
    "MDT": "-06:00",
    "CST": "-06:00",
    "CDT": "-05:00",
    "EST": "-05:00",
    "EDT": "-04:00",
    "CET": "+01:00",
    "CEST": "+02:00",
    "BST": "+01:00",
    "IST": "+05:30",
    "JST": "+09:00",
}
# Timestamps are read from 1900-01-01 up to (not including) 2190-01-01. pandas holds them in
# nanoseconds (1677 to 2262) and the time between two of them in nanoseconds too (at most 292
# years): within these 290 years every timestamp, and every duration between two of them,
# fits. One outside (a typo in the year, 0001-01-01 or 9999-12-31 written for "unknown") is
# unreadable: NaT, for validation to report as it reports any bad timestamp.
EARLIEST = pd.Timestamp("1900-01-01")
LATEST = pd.Timestamp("2190-01-01")
_NAMED_ZONE = re.compile(
    r"^(?P<time>.*?\d)\s*(?:\[(?P<b>[^\]]+)\]|\s(?P<z>[A-Za-z][A-Za-z_+-]*(?:/[A-Za-z0-9_+-]+)*))$"
)


def parse_timestamps(
    values: pd.Series, zone: str = "UTC", timestamp_format: str | None = None
) -> pd.Series:
    """ISO-8601 text to UTC. An offset is honoured; a trailing zone name ("Europe/Paris",
    "[America/New_York]", "PDT") is applied; a naive timestamp is in `zone` (UTC by default).
    With `timestamp_format` (a mapping's, e.g. Jira's "%d/%b/%y %I:%M %p"), text in that format
    is read first, in `zone`; the rest as above. Bad or empty text becomes NaT, for validation
    to report."""
    text = values.astype(str).str.strip()
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if timestamp_format:
        # A format with an offset (%z) or zone (%Z) gives aware values, often several offsets
        # in one column (summer and winter time), which pandas reads together only into UTC.
        aware = "%z" in timestamp_format or "%Z" in timestamp_format
        formatted = pd.to_datetime(text, format=timestamp_format, errors="coerce", utc=aware)
        done = formatted.notna()
        if done.any():
            parsed[done] = _localised(formatted[done], zone)
        text = text.where(~done, "")
    named = text.str.contains(r"[A-Za-z]{2,}|\]$", regex=True) & (text != "")
    plain = ~named & (text != "")
    if plain.any():
        parsed[plain] = _parse_iso(text[plain], zone)
    if named.any():
        # One vectorised parse per zone name, not per value: an export that writes the zone
        # on every timestamp has about as many distinct values as rows.
        parts = text[named].str.extract(_NAMED_ZONE)
        names = parts["b"].fillna(parts["z"])
        unnamed = names.isna()
        if unnamed.any():
            parsed[unnamed[unnamed].index] = _parse_iso(text[named][unnamed], zone)
        for name in names.dropna().unique():
            rows = names.index[names == name]
            parsed[rows] = _parse_in_zone(parts.loc[rows, "time"], name, zone)
    return parsed


def _parse_iso(text: pd.Series, zone: str) -> pd.Series:
    """Vectorised: aware values converted, naive ones localised to `zone`."""
    aware = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True)
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    if aware.any():
        out[aware] = _within_range(
            pd.to_datetime(text[aware], utc=True, format="ISO8601", errors="coerce")
        )
    if (~aware).any():
        try:
            naive = pd.to_datetime(text[~aware], format="ISO8601", errors="coerce")
        except ValueError:  # "Mixed timezones": an offset the pattern missed ("+05")
            out[~aware] = _parse_each(text[~aware], zone)
        else:
            out[~aware] = _localised(naive, zone)
    return out


def _localised(parsed: pd.Series, zone: str) -> pd.Series:
    """Parsed timestamps in range, in UTC: naive ones are taken to be in `zone`."""
    parsed = _within_range(parsed)
    if parsed.dt.tz is None:
        parsed = parsed.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    return parsed.dt.tz_convert("UTC")


def _parse_each(text: pd.Series, zone: str) -> pd.Series:
    """One distinct value at a time, for a column that mixes naive values with offsets that
    pandas reads (which it refuses to parse together): slower, and only then."""
    one = {
        value: _localised(
            pd.to_datetime(pd.Series([value]), format="ISO8601", errors="coerce"), zone
        ).iloc[0]
        for value in text.unique()
    }
    return text.map(one).astype("datetime64[ns, UTC]")


def _within_range(parsed: pd.Series) -> pd.Series:
    """Parsed timestamps, in whatever resolution pandas chose for them (years outside
    1677-2262 come back in microseconds), with those outside EARLIEST..LATEST made NaT."""
    if parsed.dt.tz is None:
        low, high = EARLIEST, LATEST
    else:
        low, high = EARLIEST.tz_localize("UTC"), LATEST.tz_localize("UTC")
    return parsed.where((parsed >= low) & (parsed < high))


def _parse_in_zone(times: pd.Series, name: str, zone: str) -> pd.Series:
    """Timestamps written with the zone name or abbreviation `name` after them (NaT when
    `name` is no zone)."""
    if name.upper() in ZONE_ABBREVIATIONS:
        return _parse_iso(times + ZONE_ABBREVIATIONS[name.upper()], zone)
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError (a KeyError), ValueError...: not a zone
        return pd.Series(pd.NaT, index=times.index, dtype="datetime64[ns, UTC]")
    return _parse_iso(times, name)


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
    """Map a free-text category onto the failure-mode vocabulary; 'other' when unrecognised
    (the words of each mode: resources/classify/failure_modes.yaml)."""
    return str(classify.category_modes(pd.Series([value])).iloc[0])


def load_topology(location: str | Path, conn_id: str | None = None) -> Table:
    """A topology from a file or object-storage URL (CSV, Parquet, JSON Lines)."""
    return topology_table(sources.read_table(str(location), conn_id), str(location))


def topology_table(raw: pd.DataFrame, display: str) -> Table:
    """Normalise a raw topology table onto the data contract."""
    fmt = _detect_format(raw, display, TOPOLOGY_REQUIRED, NOTEBOOK_TOPOLOGY_COLUMNS[:2])
    if fmt == "notebook":
        raw_view = raw.rename(columns={"dependencies": "depends_on", "criticality": "tier"})
    else:
        raw_view = raw
    frame = pd.DataFrame({ROW: raw_view[ROW]})
    for column in (*TOPOLOGY_REQUIRED, *TOPOLOGY_OPTIONAL, *TOPOLOGY_OBSERVED, *TOPOLOGY_TARGETS):
        frame[column] = clean_text(raw_view[column]) if column in raw_view else ""
    frame["depends_on"] = frame["depends_on"].map(split_dependencies)
    _read_criticality(frame)
    _read_observed(frame)
    given = frame["created_at"] != ""
    frame["created_at"] = parse_timestamps(frame["created_at"])
    frame["bad_created_at"] = given & frame["created_at"].isna()
    frame["user_facing"] = frame["user_facing"].map(_parse_bool)
    frame["slo_target"] = frame["slo_target"].map(_parse_slo)
    # Float even when every weight is a whole number: validation marks bad ones with inf.
    frame["traffic_weight"] = pd.to_numeric(frame["traffic_weight"], errors="coerce").astype(float)
    frame["service"] = frame["service"].replace("", pd.NA)
    return Table(frame=frame, raw=raw, path=display, format=fmt)


def _read_criticality(frame: pd.DataFrame) -> None:
    """`soft_depends_on` names the dependencies a service survives without (a cache, a
    fallback); they are dependencies even when depends_on omits them. Once any row names one,
    every other dependency is hard; without the column, criticality is unknown (None)."""
    soft = frame["soft_depends_on"].map(split_dependencies)
    if not soft.map(bool).any():
        frame["soft_depends_on"] = None
        return
    frame["soft_depends_on"] = soft
    frame["depends_on"] = [
        list(dict.fromkeys([*deps, *extra]))
        for deps, extra in zip(frame["depends_on"], soft, strict=True)
    ]


def _read_observed(frame: pd.DataFrame) -> None:
    """Trace counts (docs/sources.md): observed_requests a number >= 0, observed_calls and
    observed_errors `dependency=count` pairs of the row's own dependencies. A value that is not
    is ignored and the row flagged `bad_observed_counts` (a warning: the row is used)."""
    requests = pd.to_numeric(frame["observed_requests"], errors="coerce").astype(float)
    bad = (frame["observed_requests"] != "") & ~(requests >= 0)
    frame["observed_requests"] = requests.where(requests >= 0)
    for column in ("observed_calls", "observed_errors"):
        parsed, wrong = [], []
        for text, deps in zip(frame[column], frame["depends_on"], strict=True):
            counts, problem = _counts_of(text, deps)
            parsed.append(counts)
            wrong.append(problem)
        frame[column] = parsed
        bad |= np.array(wrong, dtype=bool)
    frame["bad_observed_counts"] = bad.to_numpy()


def _counts_of(text: str, dependencies: list[str]) -> tuple[dict[str, int], bool]:
    """({dependency: count}, whether the text was bad); {} for empty or bad text."""
    if not text:
        return {}, False
    try:
        counts = parse_counts(text)
    except ValueError:
        return {}, True
    if set(counts) - set(dependencies):
        return {}, True
    return counts, False


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
