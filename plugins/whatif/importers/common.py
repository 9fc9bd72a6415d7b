"""What every importer produces: service records written as the topology CSV contract, and
incident rows written as the incidents CSV contract (docs/data-contract.md). Files are written
whole or not at all (a temporary file renamed into place), so an import that fails half-way
never leaves a partial topology or history where the weekly run would read it."""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from whatif.schemas import INCIDENT_OPTIONAL, INCIDENT_REQUIRED

log = logging.getLogger("whatif")

# The topology columns an importer writes, in this order (docs/sources.md).
TOPOLOGY_COLUMNS = (
    "service",
    "depends_on",
    "soft_depends_on",
    "tier",
    "owner_team",
    "user_facing",
    "runbook_url",
    "oncall",
    "pagerduty_service_id",
    "k8s_namespace",
    "k8s_selector",
    "health_url",
    "aws_target",
    "observed_requests",
    "observed_calls",
    "observed_errors",
)


@dataclasses.dataclass
class ServiceRecord:
    """One service of an imported topology. Dependencies are names of services (never refs);
    observed_* are counts from traces over the import's lookback: requests the service received,
    and per dependency the calls it made to it and how many of them failed."""

    service: str
    depends_on: list[str] = dataclasses.field(default_factory=list)
    soft_depends_on: list[str] = dataclasses.field(default_factory=list)
    tier: str | None = None
    owner_team: str | None = None
    user_facing: bool | None = None
    runbook_url: str | None = None
    oncall: str | None = None
    pagerduty_service_id: str | None = None
    # Where it runs, for the game-day exports (docs/gameday.md).
    k8s_namespace: str | None = None
    k8s_selector: str | None = None
    health_url: str | None = None
    aws_target: str | None = None
    observed_requests: int | None = None
    observed_calls: dict[str, int] = dataclasses.field(default_factory=dict)
    observed_errors: dict[str, int] = dataclasses.field(default_factory=dict)

    def dependencies(self) -> list[str]:
        """Hard and soft, each once, in order."""
        return list(dict.fromkeys([*self.depends_on, *self.soft_depends_on]))

    def as_row(self) -> dict[str, str]:
        return {
            "service": self.service,
            "depends_on": ";".join(self.depends_on),
            "soft_depends_on": ";".join(self.soft_depends_on),
            "tier": self.tier or "",
            "owner_team": self.owner_team or "",
            "user_facing": "" if self.user_facing is None else str(self.user_facing).lower(),
            "runbook_url": self.runbook_url or "",
            "oncall": self.oncall or "",
            "pagerduty_service_id": self.pagerduty_service_id or "",
            "k8s_namespace": self.k8s_namespace or "",
            "k8s_selector": self.k8s_selector or "",
            "health_url": self.health_url or "",
            "aws_target": self.aws_target or "",
            "observed_requests": ""
            if self.observed_requests is None
            else str(self.observed_requests),
            "observed_calls": format_counts(self.observed_calls),
            "observed_errors": format_counts(self.observed_errors),
        }


def format_counts(counts: dict[str, int]) -> str:
    """`name=count;name=count`, sorted by name (a stable file for diffs)."""
    return ";".join(f"{name}={int(counts[name])}" for name in sorted(counts))


def parse_counts(text: str) -> dict[str, int]:
    """The inverse of format_counts; ValueError naming the first bad part."""
    counts: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in str(text or "").split(";"))):
        name, sep, value = part.rpartition("=")
        if not sep or not name.strip():
            raise ValueError(f"{part!r} is not name=count")
        number = float(value)
        if not number >= 0 or number != int(number):
            raise ValueError(f"{part!r}: the count is not a whole number >= 0")
        counts[name.strip()] = int(number)
    return counts


def topology_csv(records: Sequence[ServiceRecord]) -> str:
    """The records as topology CSV text, sorted by service name."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TOPOLOGY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in sorted(records, key=lambda r: r.service):
        writer.writerow(record.as_row())
    return buffer.getvalue()


def incidents_csv(rows: pd.DataFrame) -> str:
    """Incident rows (contract columns; the required ones first) as CSV text, sorted by start,
    incident and service."""
    columns = [*INCIDENT_REQUIRED, *(c for c in INCIDENT_OPTIONAL if c in rows.columns)]
    ordered = rows.sort_values(["started_at", "incident_id", "service"], kind="stable")
    return ordered.to_csv(columns=columns, index=False, lineterminator="\n")


def write_whole(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder and a rename: the
    file is either the old one or the complete new one, never a part."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def unique_sorted(names: Iterable[str]) -> list[str]:
    return sorted(dict.fromkeys(n for n in names if n))


def listing(items: Sequence[str], limit: int = 8) -> str:
    """The first `limit` items of a warning line, then how many more (never a wall of names)."""
    from whatif.errors import shown

    more = len(items) - limit
    return ", ".join(shown(i, 120) for i in items[:limit]) + (
        f" and {more} more" if more > 0 else ""
    )


# --- what the incident importers share ------------------------------------------------------


def utc(when: datetime) -> datetime:
    """Aware UTC (a naive time is read as UTC, never the machine's zone)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_instant(value: Any) -> datetime | None:
    """An API's ISO-8601 timestamp as aware UTC; None when empty or not a time."""
    if not value:
        return None
    try:
        return utc(datetime.fromisoformat(str(value)))
    except ValueError:
        return None


def iso_instant(value: Any) -> str | None:
    """ISO-8601 UTC with a Z; a value that does not read as a time is kept as it is (the
    validation stage reports it, with its row)."""
    if value is None or value == "":
        return None
    when = utc(value) if isinstance(value, datetime) else parse_instant(value)
    if when is None:
        return str(value)
    return when.isoformat().replace("+00:00", "Z")


def latest_copies(
    listed: list[dict[str, Any]], keys: tuple[str, str], source: str, why: str
) -> list[dict[str, Any]]:
    """Each incident once, by the first of `keys` it has (an API listing that overlaps or
    shifts while it is read lists some twice): the copy last updated wins; how many were
    listed twice is logged, with `why`."""
    chosen: dict[str, dict[str, Any]] = {}
    for incident in listed:
        key = str(incident.get(keys[0]) or incident.get(keys[1]))
        held = chosen.get(key)
        if held is None or str(incident.get("updated_at") or "") >= str(
            held.get("updated_at") or ""
        ):
            chosen[key] = incident
    if len(listed) > len(chosen):
        log.info("%s: %d incidents %s, kept once", source, len(listed) - len(chosen), why)
    return list(chosen.values())


def created_within(
    incidents: list[dict[str, Any]], since: datetime, until: datetime, source: str, why: str
) -> list[dict[str, Any]]:
    """Those created in [since, until) (an API filter that is coarser or inclusive lists a few
    more), how many were left out logged with `why`."""
    kept = []
    for incident in incidents:
        created = parse_instant(incident.get("created_at"))
        if created is None or since <= created < until:
            kept.append(incident)
    if len(kept) < len(incidents):
        log.info(
            "%s: %d incidents created outside [%s, %s)%s left out",
            source,
            len(incidents) - len(kept),
            iso_instant(since),
            iso_instant(until),
            f" ({why})" if why else "",
        )
    return kept
