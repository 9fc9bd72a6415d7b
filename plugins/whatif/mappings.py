"""Declarative column mappings from incident-tool exports onto the data contract.

A mapping is a YAML file (`include/mappings/<name>.yaml`, or any path given to --mapping):

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
import os
from pathlib import Path
from typing import Any

import pandas as pd

from whatif.errors import UserError
from whatif.schemas import INCIDENT_OPTIONAL, INCIDENT_REQUIRED
from whatif.sources import ROW

log = logging.getLogger(__name__)

MAPPINGS_DIR = Path(
    os.environ.get(
        "WHATIF_MAPPINGS_DIR", Path(__file__).resolve().parents[2] / "include" / "mappings"
    )
)


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
    return sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))


def locate(name_or_path: str) -> Path:
    """The file of a mapping given by name (include/mappings/<name>.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = MAPPINGS_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise UserError(
            f"--mapping {name_or_path!r}: no such mapping",
            hint=f"use a path or one of {', '.join(available()) or 'none'}",
        )
    return path


def load(name_or_path: str) -> Mapping:
    """A mapping by name (include/mappings/<name>.yaml) or by path."""
    path = locate(name_or_path)
    import yaml

    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise UserError(f"not valid YAML: {str(error).splitlines()[0]}", file=str(path)) from None
    return _parse(spec, path)


def _parse(spec: dict[str, Any], path: Path) -> Mapping:
    if not isinstance(spec, dict) or not isinstance(spec.get("columns"), dict):
        raise UserError("a mapping needs a 'columns' table", file=str(path))
    columns = {
        str(target): tuple(
            str(c).strip().lower() for c in (source if isinstance(source, list) else [source])
        )
        for target, source in spec["columns"].items()
    }
    constants = {str(k): str(v) for k, v in (spec.get("constants") or {}).items()}
    contract = (*INCIDENT_REQUIRED, *INCIDENT_OPTIONAL)
    unknown = [t for t in (*columns, *constants) if t not in contract]
    if unknown:
        raise UserError(
            f"{unknown[0]!r} is not a column of the data contract",
            file=str(path),
            hint=f"map onto {', '.join(contract)}",
        )
    missing = [t for t in INCIDENT_REQUIRED if t not in columns and t not in constants]
    if missing:
        raise UserError(f"the mapping does not say where {missing[0]} comes from", file=str(path))
    return Mapping(
        name=str(spec.get("name") or path.stem),
        columns=columns,
        timezone=str(spec.get("timezone") or "UTC"),
        timestamp_format=str(spec["timestamp_format"]) if spec.get("timestamp_format") else None,
        split={str(k): str(v) for k, v in (spec.get("split") or {}).items()},
        values={
            str(k): {str(a).strip().lower(): str(b) for a, b in v.items()}
            for k, v in (spec.get("values") or {}).items()
        },
        constants=constants,
        description=str(spec.get("description") or ""),
    )


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
                hint="check the export, or write your own mapping (see include/mappings)",
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
