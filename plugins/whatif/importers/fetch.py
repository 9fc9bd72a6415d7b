"""One entry point per kind of source, shared by the CLI (`whatif topology import`,
`whatif incidents import`) and the DAG (params topology_source / incident_source with the
whatif_* connections): which module reads it, where its token comes from, and the history
window or trace lookback it is read over."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whatif.errors import UserError

if TYPE_CHECKING:  # the CLI reads the kinds from here at start-up: no pandas for that
    import pandas as pd

    from whatif.importers.common import ServiceRecord

TOPOLOGY_KINDS = ("backstage", "jaeger", "tempo")
INCIDENT_KINDS = ("pagerduty", "incident-io")
# Where each kind's token is read from (the environment; the DAG: the connection's password).
TOKEN_VARIABLES = {
    "backstage": "BACKSTAGE_TOKEN",
    "jaeger": "JAEGER_TOKEN",
    "tempo": "PROMETHEUS_TOKEN",
    "pagerduty": "PAGERDUTY_TOKEN",
    "incident-io": "INCIDENT_IO_API_KEY",
}
DEFAULT_URLS = {"pagerduty": "https://api.pagerduty.com", "incident-io": "https://api.incident.io"}
DEFAULT_LOOKBACK_DAYS = 7.0
IMPORTED_TOPOLOGY = "imported_topology.csv"  # in the run's work folder (the DAG)
IMPORTED_INCIDENTS = "imported_incidents.csv"


@dataclasses.dataclass(frozen=True)
class Source:
    """A source to import from: its kind, its location (base URL, file or folder; None for the
    kind's public API), its token, and kind-specific options (incident.io's services_field)."""

    kind: str
    location: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def with_environment_token(source: Source) -> Source:
    """The source with its token from the kind's environment variable, when it has none."""
    from whatif.importers.api import token_from

    if source.token:
        return source
    return dataclasses.replace(source, token=token_from(TOKEN_VARIABLES[source.kind]))


def import_topology(
    source: Source, end: datetime, lookback_days: float = DEFAULT_LOOKBACK_DAYS
) -> list[ServiceRecord]:
    """The services of one source (traces over [end - lookback, end])."""
    if source.kind not in TOPOLOGY_KINDS:
        raise UserError(f"no topology source {source.kind!r}: one of {', '.join(TOPOLOGY_KINDS)}")
    if not source.location:
        raise UserError(f"the {source.kind} source needs a location (a URL or a file)")
    if source.kind == "backstage":
        from whatif.importers import backstage

        return backstage.import_topology(source.location, token=source.token)
    from whatif.importers import traces

    read = traces.import_jaeger if source.kind == "jaeger" else traces.import_tempo
    return read(source.location, end=end, lookback_days=lookback_days, token=source.token)


def import_topologies(
    sources: Sequence[Source], end: datetime, lookback_days: float = DEFAULT_LOOKBACK_DAYS
) -> list[ServiceRecord]:
    """One topology from one or more sources: several are merged (whatif.importers.merge)."""
    from whatif.importers import merge

    imported = [import_topology(source, end, lookback_days) for source in sources]
    if len(imported) == 1:
        return imported[0]
    return merge.merge(imported, [s.kind for s in sources])


def import_incidents(
    source: Source,
    since: datetime,
    until: datetime,
    service_names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The incidents created in [since, until) as rows of the incidents contract."""
    if source.kind not in INCIDENT_KINDS:
        raise UserError(f"no incident source {source.kind!r}: one of {', '.join(INCIDENT_KINDS)}")
    if not source.token:
        variable = TOKEN_VARIABLES[source.kind]
        raise UserError(f"{source.kind} needs an API key: set {variable}")
    if until <= since:
        raise UserError(f"--until {until.isoformat()} is not after --since {since.isoformat()}")
    base_url = source.location or DEFAULT_URLS[source.kind]
    if source.kind == "pagerduty":
        from whatif.importers import pagerduty

        return pagerduty.import_incidents(
            token=source.token,
            since=since,
            until=until,
            base_url=base_url,
            service_names=dict(service_names or {}),
        )
    from whatif.importers import incidentio

    options = {k: v for k, v in source.options.items() if k == "services_field" and v}
    return incidentio.import_incidents(
        token=source.token, since=since, until=until, base_url=base_url, **options
    )


def stage_imports(
    inputs: Any,
    folder: Path,
    as_of: datetime,
    history_days: int,
    topology_sources: Sequence[Source] = (),
    incident_source: Source | None = None,
    lookback_days: float = DEFAULT_LOOKBACK_DAYS,
) -> Any:
    """The run's inputs (whatif.pipeline.Inputs) with the topology and/or the incidents
    imported into `folder` first: the weekly DAG run reads its sources where they live. The
    topology's traces end at `as_of`; the incidents are those of the history window."""
    from whatif.importers import merge
    from whatif.importers.common import incidents_csv, topology_csv, write_whole

    displays = dict(inputs.displays)
    records: list[ServiceRecord] | None = None
    if topology_sources:
        records = import_topologies(topology_sources, as_of, lookback_days)
        what = " + ".join(f"{s.kind} {s.location}" for s in topology_sources)
        if not records:
            raise UserError(f"{what}: no services found", hint="check the source and the lookback")
        path = write_whole(folder / IMPORTED_TOPOLOGY, topology_csv(records))
        inputs = dataclasses.replace(inputs, topology=str(path), topology_from_sql=False)
        displays["topology"] = what
    if incident_source is not None:
        names = None
        if incident_source.kind == "pagerduty":
            if records is None and inputs.topology:
                records = merge.read_records(inputs.topology, inputs.conn_id)
            names = pagerduty_names(records or [])
        since, until = history_window(as_of, history_days)
        rows = import_incidents(incident_source, since, until, names)
        path = write_whole(folder / IMPORTED_INCIDENTS, incidents_csv(rows))
        inputs = dataclasses.replace(inputs, incidents=str(path), mapping=None, sql=None)
        displays["incidents"] = f"{incident_source.kind} {incident_source.location or 'API'}"
    return dataclasses.replace(inputs, displays=displays)


def pagerduty_names(records: Sequence[ServiceRecord]) -> dict[str, str]:
    """PagerDuty service id -> topology service, from the column pagerduty_service_id (the
    Backstage PagerDuty plugin's annotation, kept by `whatif topology import backstage`)."""
    return {r.pagerduty_service_id: r.service for r in records if r.pagerduty_service_id}


def parse_lookback(text: str) -> float:
    """`7d`, `36h`, `90m`, `2w` or a number of days -> days."""
    units = {"m": 1 / 1440, "h": 1 / 24, "d": 1.0, "w": 7.0}
    value = str(text).strip().lower()
    try:
        days = float(value[:-1]) * units[value[-1]] if value[-1:] in units else float(value)
    except ValueError:
        days = float("nan")
    if not days > 0:
        raise UserError(f"lookback {text!r}: give a duration such as 7d, 36h or 90m")
    return days


def history_window(as_of: datetime, history_days: int) -> tuple[datetime, datetime]:
    """[since, until) of the incidents a run over `history_days` before `as_of` reads."""
    return as_of - timedelta(days=history_days), as_of
