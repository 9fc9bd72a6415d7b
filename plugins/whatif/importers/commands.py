"""`whatif topology import|merge` and `whatif incidents import`: the importers on the command
line. Each writes the same CSV contract as a hand-written file, whole or not at all, and says
in one line what it wrote; tokens come from environment variables only."""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from typing import Any

from whatif.errors import UserError
from whatif.importers import fetch

log = logging.getLogger("whatif")


def add_commands(commands: Any) -> None:
    """The `topology` and `incidents` command groups, on the CLI's subparsers."""
    topology = commands.add_parser(
        "topology", help="import a topology from Backstage, Jaeger or Tempo; merge topologies"
    )
    actions = topology.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser(
        "import",
        help="a topology CSV from a Backstage catalog (files or API), Jaeger's dependencies "
        "or the service-graph metrics of Tempo / the OpenTelemetry collector in Prometheus",
        description="Tokens: BACKSTAGE_TOKEN, JAEGER_TOKEN, PROMETHEUS_TOKEN (docs/sources.md).",
    )
    imp.add_argument("kind", choices=fetch.TOPOLOGY_KINDS, help="the kind of source")
    imp.add_argument(
        "source",
        metavar="SOURCE",
        help="backstage: a folder or file of catalog-info YAML, or the Backstage base URL; "
        "jaeger: the query service's base URL or a saved /api/dependencies answer; "
        "tempo: the Prometheus base URL",
    )
    imp.add_argument("--out", required=True, metavar="FILE", help="topology CSV to write")
    _add_trace_window(imp)
    imp.set_defaults(handler=cmd_topology_import)

    merge = actions.add_parser(
        "merge",
        help="declared (catalog) and observed (traces) topologies as one: catalog attributes "
        "win, edges are the union, differences named",
    )
    merge.add_argument("inputs", nargs="+", metavar="TOPOLOGY", help="topology files")
    merge.add_argument("--out", required=True, metavar="FILE", help="topology CSV to write")
    merge.set_defaults(handler=cmd_topology_merge)

    incidents = commands.add_parser(
        "incidents", help="import incidents from PagerDuty or incident.io"
    )
    actions = incidents.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser(
        "import",
        help="an incidents CSV from PagerDuty's REST API or incident.io's API v2",
        description="API keys: PAGERDUTY_TOKEN, INCIDENT_IO_API_KEY (docs/sources.md).",
    )
    imp.add_argument("kind", choices=fetch.INCIDENT_KINDS, help="the kind of source")
    imp.add_argument("--since", required=True, metavar="DATE", help="created on or after")
    imp.add_argument("--until", metavar="DATE", help="created before (default: now)")
    imp.add_argument("--out", required=True, metavar="FILE", help="incidents CSV to write")
    imp.add_argument(
        "--url",
        metavar="URL",
        help="the API's base URL (default https://api.pagerduty.com, https://api.incident.io; "
        "PagerDuty's EU service: https://api.eu.pagerduty.com)",
    )
    imp.add_argument(
        "--topology",
        metavar="PATH",
        help="pagerduty: name each incident's service by the topology's pagerduty_service_id "
        "column (the Backstage annotation pagerduty.com/service-id) instead of PagerDuty's name",
    )
    imp.add_argument(
        "--services-field",
        metavar="NAME",
        help='incident-io: the custom field that lists affected services (default "Affected '
        'services")',
    )
    imp.set_defaults(handler=cmd_incidents_import)


def _add_trace_window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lookback",
        default=f"{fetch.DEFAULT_LOOKBACK_DAYS:g}d",
        metavar="DURATION",
        help="jaeger, tempo: the traces of this long before --end (default %(default)s)",
    )
    parser.add_argument("--end", metavar="TIMESTAMP", help="jaeger, tempo: default now")


def cmd_topology_import(args: argparse.Namespace) -> int:
    from whatif.cli import output_file
    from whatif.config import parse_timestamp
    from whatif.importers.common import topology_csv, write_whole

    out = output_file(args.out)
    end = parse_timestamp(args.end, "--end") if args.end else datetime.now(UTC)
    source = fetch.with_environment_token(fetch.Source(args.kind, args.source))
    records = fetch.import_topology(source, end, fetch.parse_lookback(args.lookback))
    _check_not_empty(records, f"{args.kind} {args.source}")
    write_whole(out, topology_csv(records))
    print(f"wrote {out}: {summary(records)} from {args.kind}")
    return 0


def cmd_topology_merge(args: argparse.Namespace) -> int:
    from whatif.cli import output_file
    from whatif.importers import merge
    from whatif.importers.common import topology_csv, write_whole

    if len(args.inputs) < 2:
        raise UserError("give at least two topologies to merge")
    out = output_file(args.out)
    records = merge.merge([merge.read_records(path) for path in args.inputs], args.inputs)
    write_whole(out, topology_csv(records))
    print(f"wrote {out}: {summary(records)} from {len(args.inputs)} topologies")
    return 0


def cmd_incidents_import(args: argparse.Namespace) -> int:
    from whatif.cli import output_file
    from whatif.config import parse_timestamp
    from whatif.importers.common import incidents_csv, write_whole

    out = output_file(args.out)
    since = parse_timestamp(args.since, "--since")
    until = parse_timestamp(args.until, "--until") if args.until else datetime.now(UTC)
    names = None
    if args.topology:
        if args.kind != "pagerduty":
            raise UserError("--topology names PagerDuty services only: drop it for incident-io")
        from whatif.importers import merge

        names = fetch.pagerduty_names(merge.read_records(args.topology))
        if not names:
            log.warning("%s has no pagerduty_service_id: PagerDuty's names are kept", args.topology)
    options = {"services_field": args.services_field} if args.services_field else {}
    source = fetch.with_environment_token(fetch.Source(args.kind, args.url, options=options))
    rows = fetch.import_incidents(source, since, until, names)
    write_whole(out, incidents_csv(rows))
    incidents = rows["incident_id"].nunique() if len(rows) else 0
    print(
        f"wrote {out}: {incidents} incidents ({len(rows)} rows) created "
        f"{since.date().isoformat()} to {until.date().isoformat()} from {args.kind}"
    )
    return 0


def _check_not_empty(records: list, what: str) -> None:
    if not records:
        raise UserError(
            f"{what}: no services found; nothing written",
            hint="check the source holds Components/Resources or traffic in the lookback",
        )


def summary(records: list) -> str:
    """`12 services, 30 dependencies (4 soft), 28 with trace counts`."""
    edges = sum(len(r.dependencies()) for r in records)
    soft = sum(len(r.soft_depends_on) for r in records)
    counted = sum(len(r.observed_calls) for r in records)
    text = f"{len(records)} services, {edges} dependencies"
    if soft:
        text += f" ({soft} soft)"
    if counted:
        text += f", {counted} with trace counts"
    return text
