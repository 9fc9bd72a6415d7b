"""Declarative column mappings from incident-tool exports onto the data contract.

A mapping is a YAML file (`resources/mappings/<name>.yaml`, or any path given to --mapping):

    name: pagerduty
    description: PagerDuty incidents CSV export
    columns:                      # contract column: export column, or a list tried in order
      incident_id: incident_number
      service: service_name
      started_at: created_on
      severity: [priority, urgency]
    timezone: UTC                 # zone of naive timestamps in this export (default UTC)
    timestamp_format: "%d/%b/%y %I:%M %p"   # non-ISO timestamps (ISO ones are still read)
    split: {service: ","}         # a cell naming several services: one row per service
    values:                       # per-column value translations, applied before vocabularies
      severity: {high: SEV2, low: SEV4}
    constants: {category: other}  # a column the export lacks, set for every row

The mapped table keeps every source row's `_row`, so errors and quarantine point at the export.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from whatif import resources
from whatif.errors import UserError, shown
from whatif.schemas import INCIDENT_OPTIONAL, INCIDENT_REQUIRED
from whatif.sources import ROW

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Mapping:
    name: str
    columns: dict[str, tuple[str, ...]]
    timezone: str = "UTC"
    timestamp_format: str | None = None  # strftime format of non-ISO timestamps, e.g. Jira's
    split: dict[str, str] = dataclasses.field(default_factory=dict)
    values: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    constants: dict[str, str] = dataclasses.field(default_factory=dict)
    description: str = ""


def available() -> list[str]:
    return sorted(p.stem for p in resources.folder("mappings").glob("*.yaml"))


def locate(name_or_path: str) -> Path:
    """The file of a mapping given by name (resources/mappings/<name>.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = resources.folder("mappings") / f"{name_or_path}.yaml"
    if not path.exists():
        raise UserError(
            f"--mapping {name_or_path!r}: no such mapping",
            hint=f"use a path or one of {', '.join(available()) or 'none'}",
        )
    return path


def load(name_or_path: str) -> Mapping:
    """A mapping by name (resources/mappings/<name>.yaml) or by path."""
    path = locate(name_or_path)
    import yaml

    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise UserError(
            f"not UTF-8 text (byte {error.start})",
            file=str(path),
            hint="a mapping is a YAML file: save it as UTF-8",
        ) from None
    except yaml.YAMLError as error:
        raise UserError(f"not valid YAML: {str(error).splitlines()[0]}", file=str(path)) from None
    return _parse(spec, path)


# What a mapping's fields hold, checked before use: a mapping is written by hand, and a
# wrong shape must be one line naming the field, not a crash of the reader.
Scalar = str | int | float


def _parse(spec: Any, path: Path) -> Mapping:
    if not isinstance(spec, dict) or not isinstance(spec.get("columns"), dict):
        raise UserError("a mapping needs a 'columns' table", file=str(path))
    columns = {
        str(target): _column_names(target, source, path)
        for target, source in spec["columns"].items()
    }
    constants = {
        str(k): _scalar(v, f"constants: {k}", path)
        for k, v in _table(spec, "constants", path).items()
    }
    contract = (*INCIDENT_REQUIRED, *INCIDENT_OPTIONAL)
    unknown = [t for t in (*columns, *constants) if t not in contract]
    if unknown:
        raise UserError(
            f"{shown(repr(unknown[0]))} is not a column of the data contract",
            file=str(path),
            hint=f"map onto {', '.join(contract)}",
        )
    missing = [t for t in INCIDENT_REQUIRED if t not in columns and t not in constants]
    if missing:
        raise UserError(f"the mapping does not say where {missing[0]} comes from", file=str(path))
    return Mapping(
        name=str(spec.get("name") or path.stem),
        columns=columns,
        timezone=_timezone(spec.get("timezone"), path),
        timestamp_format=_timestamp_format(spec.get("timestamp_format"), path),
        split=_separators(_table(spec, "split", path), path),
        values={str(k): _translations(k, v, path) for k, v in _table(spec, "values", path).items()},
        constants=constants,
        description=str(spec.get("description") or ""),
    )


def _problem(field: str, message: str, path: Path, hint: str | None = None) -> UserError:
    return UserError(f"{shown(field)}: {message}", file=str(path), hint=hint)


def _table(spec: dict[str, Any], field: str, path: Path) -> dict[Any, Any]:
    """An optional table of the mapping ({} when absent or empty)."""
    value = spec.get(field) or {}
    if not isinstance(value, dict):
        raise _problem(field, "must be a table (name: value lines)", path)
    return value


def _scalar(value: Any, field: str, path: Path) -> str:
    """A text or a number as text; anything else (a list, a table, nothing) is an error."""
    if isinstance(value, bool) or not isinstance(value, Scalar):
        boolean = isinstance(value, bool)
        hint = "quote yes, no, on and off: YAML reads them as true/false" if boolean else None
        raise _problem(field, f"must be a text or a number, not {shown(repr(value))}", path, hint)
    return str(value)


def _column_names(target: Any, source: Any, path: Path) -> tuple[str, ...]:
    """The export columns a contract column comes from: one name or a list, first wins."""
    listed = source if isinstance(source, list) else [source]
    names = tuple(_scalar(c, f"columns: {target}", path).strip().lower() for c in listed)
    if not names or not all(names):
        raise _problem(f"columns: {target}", "give an export column name or a list of them", path)
    return names


def _separators(split: dict[Any, Any], path: Path) -> dict[str, str]:
    """split: column -> the text between the services of one cell (never empty)."""
    separators = {str(k): _scalar(v, f"split: {k}", path) for k, v in split.items()}
    for column, separator in separators.items():
        if not separator:
            raise _problem(f"split: {column}", "the separator must not be empty", path)
    return separators


def _translations(column: Any, table: Any, path: Path) -> dict[str, str]:
    """values: column -> {word in the export: word for whatif}, keys compared ignoring case."""
    if not isinstance(table, dict):
        raise _problem(f"values: {column}", "must be a table (export word: contract word)", path)
    field = f"values: {column}"
    return {
        _scalar(a, field, path).strip().lower(): _scalar(b, field, path) for a, b in table.items()
    }


def _timezone(value: Any, path: Path) -> str:
    """The zone of naive timestamps, checked now (a wrong name would fail every row later)."""
    if value is None or value == "":
        return "UTC"
    zone = _scalar(value, "timezone", path)
    try:
        pd.Timestamp("2026-01-01").tz_localize(zone)
    except (LookupError, ValueError, TypeError, OSError):  # unknown key, a path, a folder
        raise _problem(
            "timezone",
            f"{shown(repr(zone))} is not a time zone",
            path,
            "use an IANA name such as Europe/Paris, or UTC",
        ) from None
    return zone


def _timestamp_format(value: Any, path: Path) -> str | None:
    """A strftime format pandas can read with, checked now."""
    if value is None or value == "":
        return None
    text = _scalar(value, "timestamp_format", path)
    try:
        pd.to_datetime(pd.Series(["2026-01-01"]), format=text, errors="coerce")
    except ValueError as error:
        raise _problem(
            "timestamp_format",
            f"not a usable format: {shown(error, 120)}",
            path,
            "use Python strftime codes such as %d/%b/%y %I:%M %p",
        ) from None
    return text


def apply(raw: pd.DataFrame, mapping: Mapping, display: str) -> pd.DataFrame:
    """The export's columns renamed, translated and split onto the contract's columns."""
    out = pd.DataFrame({ROW: raw[ROW]})
    for target, candidates in mapping.columns.items():
        present = [c for c in candidates if c in raw.columns]
        if not present and target not in INCIDENT_REQUIRED:  # optional: leave it empty
            log.warning(
                "%s: no column %s in the file; the %s mapping leaves %s empty",
                display,
                " or ".join(candidates),
                mapping.name,
                target,
            )
            continue
        if not present:
            raise UserError(
                f"the {mapping.name} mapping needs one of these columns: {', '.join(candidates)}",
                file=display,
                row=1,
                column=candidates[0],
                hint="check the export, or write your own mapping (see docs/mappings.md)",
            )
        values = raw[present[0]]
        for other in present[1:]:  # the first non-empty column wins
            values = values.where(values.str.strip() != "", raw[other])
        out[target] = values
    for target, value in mapping.constants.items():
        out[target] = value
    for target, separator in mapping.split.items():  # before `values`: they name one item
        if target in out:
            out[target] = out[target].map(
                lambda v, s=separator: [p.strip() for p in str(v).split(s) if p.strip()] or [""]
            )
            out = out.explode(target, ignore_index=True)
    for target, table in mapping.values.items():
        if target in out:
            out[target] = out[target].map(lambda v, t=table: t.get(str(v).strip().lower(), v))
    out.attrs["timezone"] = mapping.timezone
    out.attrs["timestamp_format"] = mapping.timestamp_format
    return out
