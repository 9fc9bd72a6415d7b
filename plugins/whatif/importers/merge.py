"""`whatif topology merge`: the declared graph (a catalog) and the observed one (traces) as one
topology. Edges are the union: a dependency the catalog forgot is still a path failure takes,
and one the traces did not see in the lookback (a rare batch job, an uninstrumented database)
is still declared. Attributes come from the declared files first; trace counts from the
observed ones. What only one side has is named in one line each, for the catalog's owners."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from whatif import ingest
from whatif.importers.common import TOPOLOGY_COLUMNS, ServiceRecord, listing

log = logging.getLogger("whatif")

# The attributes of a service: every column but its edges and the trace counts.
ATTRIBUTES = tuple(
    c
    for c in TOPOLOGY_COLUMNS
    if c not in ("service", "depends_on", "soft_depends_on") and not c.startswith("observed_")
)
SHOWN = 5  # names shown per line; the rest counted


def read_records(location: str, conn_id: str | None = None) -> list[ServiceRecord]:
    """A topology file (any format `whatif validate` reads) as service records."""
    frame = ingest.load_topology(location, conn_id).frame
    return [_record(row) for row in frame.to_dict("records") if isinstance(row["service"], str)]


def _record(row: dict) -> ServiceRecord:
    soft = row.get("soft_depends_on") or []
    requests = row.get("observed_requests")
    return ServiceRecord(
        service=row["service"],
        depends_on=[d for d in row["depends_on"] if d not in soft],
        soft_depends_on=list(soft),
        tier=row.get("tier") or None,
        owner_team=row.get("owner_team") or None,
        user_facing=row.get("user_facing") if isinstance(row.get("user_facing"), bool) else None,
        runbook_url=row.get("runbook_url") or None,
        oncall=row.get("oncall") or None,
        pagerduty_service_id=row.get("pagerduty_service_id") or None,
        k8s_namespace=row.get("k8s_namespace") or None,
        k8s_selector=row.get("k8s_selector") or None,
        health_url=row.get("health_url") or None,
        aws_target=row.get("aws_target") or None,
        observed_requests=None if requests is None or np.isnan(requests) else int(requests),
        observed_calls=dict(row.get("observed_calls") or {}),
        observed_errors=dict(row.get("observed_errors") or {}),
    )


def is_observed(records: Sequence[ServiceRecord]) -> bool:
    """Whether a topology came from traces: any trace count in it."""
    return any(r.observed_calls or r.observed_requests is not None for r in records)


def merge(
    topologies: Sequence[Sequence[ServiceRecord]], names: Sequence[str]
) -> list[ServiceRecord]:
    """One topology from several: declared ones (no trace counts) first in the order given,
    then observed ones; the first non-empty value of each attribute wins, edges are the union
    (soft when any input says soft), and trace counts are the largest any input saw (two
    tracing systems watching the same traffic count it once)."""
    order = sorted(range(len(topologies)), key=lambda i: is_observed(topologies[i]))
    merged: dict[str, ServiceRecord] = {}
    for i in order:
        for record in topologies[i]:
            _merge_into(merged.setdefault(record.service, ServiceRecord(record.service)), record)
    for record in merged.values():
        record.depends_on = [d for d in record.depends_on if d not in record.soft_depends_on]
    _report(topologies, names)
    return sorted(merged.values(), key=lambda r: r.service)


def _merge_into(target: ServiceRecord, record: ServiceRecord) -> None:
    for name in ATTRIBUTES:
        if getattr(target, name) in (None, "") and getattr(record, name) not in (None, ""):
            setattr(target, name, getattr(record, name))
    target.depends_on = list(dict.fromkeys([*target.depends_on, *record.depends_on]))
    target.soft_depends_on = list(dict.fromkeys([*target.soft_depends_on, *record.soft_depends_on]))
    if record.observed_requests is not None:
        target.observed_requests = max(target.observed_requests or 0, record.observed_requests)
    for mine, theirs in (
        (target.observed_calls, record.observed_calls),
        (target.observed_errors, record.observed_errors),
    ):
        for name, count in theirs.items():
            mine[name] = max(mine.get(name, 0), count)


def _edges(records: Sequence[ServiceRecord]) -> set[tuple[str, str]]:
    return {(r.service, d) for r in records for d in r.dependencies()}


def _report(topologies: Sequence[Sequence[ServiceRecord]], names: Sequence[str]) -> None:
    """One line per difference between the declared and the observed graph."""
    declared = [t for t in topologies if not is_observed(t)]
    observed = [t for t in topologies if is_observed(t)]
    if not (declared and observed):
        log.info("merged %s: no catalog and traces to compare", ", ".join(names))
        return
    in_catalog = set().union(*map(_edges, declared))
    in_traces = set().union(*map(_edges, observed))
    catalog_services = {r.service for t in declared for r in t}
    trace_services = {r.service for t in observed for r in t}
    for noun, what, items in (
        ("edge", "seen only in traces (add to the catalog?)", in_traces - in_catalog),
        ("edge", "only in the catalog (not called in the lookback)", in_catalog - in_traces),
        ("service", "seen only in traces", trace_services - catalog_services),
    ):
        if items:
            log.warning(
                "%d %s%s %s: %s", len(items), noun, "s"[: len(items) != 1], what, _named(items)
            )


def _named(items: set) -> str:
    """Sorted, the first few shown: `caller -> dependency` for edges."""
    texts = sorted(f"{item[0]} -> {item[1]}" if isinstance(item, tuple) else item for item in items)
    return listing(texts, SHOWN)
