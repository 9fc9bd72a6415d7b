"""Benchmark of the importers (issue 19) at fleet scale: `whatif topology import` from a
Backstage catalog (files and API), Jaeger and Tempo's service graph in a real Prometheus,
`whatif topology merge`, and `whatif incidents import` from PagerDuty and incident.io, each
one a child process of the installed CLI against the loopback fakes of the tests.

Not a test: it asserts nothing about time. For each fleet size of --sizes (500, 5,000 and
20,000 services) bench/generate.py writes, into a temporary folder (`generate.py imports`),
the fleet `generate.py fleet` draws for bench_commands.py (same seed: a layered DAG with ~3.5
drawn dependencies per service plus 5 shared infrastructure hubs, about 4 edges per service,
a quarter of them soft) as the importers' sources hold it:

- catalog/: a Backstage catalog, one catalog-info.yaml per service in its team's folder
  (catalog/TEAM/SERVICE/catalog-info.yaml) and a Group per team (catalog/TEAM/group.yaml).
  Data-tier services are Resources (type database), the others Components (type service);
  spec.owner, spec.dependsOn with every dependency's ref, the soft ones also in the
  whatif.io/soft-depends-on annotation, pagerduty.com/service-id, on-call, tier and
  user-facing annotations and labels, a runbook link. entities.json: the same entities;
- traffic.csv: calls per hour on each edge (client: the dependent, server: its dependency;
  1 + LogNormal(log 20, 1.2)), failed calls per hour (that x Beta(1, 99)), soft edges as
  connection_type="messaging_system", and calls from the outside world (client "user") to
  each user-facing service; jaeger_links.json: the edges as Jaeger's dependency links with
  callCount = 168 x the calls per hour (the 7-day lookback);
- incidents.parquet: 15 incidents per service over two years up to 2026-11-01 (--max-incidents
  caps them), the clean history whatif.synthetic draws on the fleet (cascades included).

Then, each command in its own process, in the fleet's folder:

- backstage-files: `whatif topology import backstage catalog --out catalog.csv`;
- backstage-api:   `whatif topology import backstage URL --out catalog_api.csv`, URL a fake
                   Backstage (tests/fakes/backstage_server.py) serving entities.json from
                   `GET /api/catalog/entities/by-query` (the importer pages 500 at a time);
- jaeger:          `whatif topology import jaeger URL --end 2026-11-01T00:00:00Z --lookback 7d
                   --out traces.csv`, URL a fake Jaeger (jaeger_server.py) answering the links;
- tempo:           `whatif topology import tempo URL --end ... --lookback 7d --out tempo.csv`,
                   URL a REAL Prometheus (Debian's, as tests/fakes/prometheus.py runs it) into
                   which traffic.csv was backfilled as Tempo's service-graph counters
                   (traces_service_graph_request_total and _failed_total, labels client,
                   server, connection_type), one sample per --tempo-step (1 h) over
                   --tempo-days (8) days up to the end; the backfill (writing the OpenMetrics
                   text, `promtool tsdb create-blocks-from openmetrics`, starting Prometheus
                   and waiting for it to be idle) is timed apart, and the row is skipped, with
                   the reason, when prometheus is missing or the backfill takes longer than
                   --backfill-timeout;
- merge:           `whatif topology merge catalog.csv traces.csv --out merged.csv`;
- pagerduty:       `whatif incidents import pagerduty --since 2024-11-01 --until 2026-11-01
                   --url URL --topology catalog.csv --out pagerduty.csv`, URL a fake PagerDuty
                   over TLS (incident_servers.py; SSL_CERT_FILE = its certificate): 180-day
                   windows, offset pages of 100, windows over the 10,000 cap split in halves;
                   incidents named by the catalog's pagerduty.com/service-id;
- incident-io:     `whatif incidents import incident-io --since ... --until ... --url URL --out
                   incident_io.csv`, URL a fake incident.io (cursor pages of 250).

The tokens are the fakes' (BACKSTAGE_TOKEN, PAGERDUTY_TOKEN, INCIDENT_IO_API_KEY in the
commands' environment). Each fake runs in its own process (this script with --child serve,
started before the command and stopped after it, one at a time), so neither its memory nor
its threads are this script's; it reports the requests it answered and its own CPU seconds
while the command ran (Prometheus: its /metrics count of /api/v1/query requests and its
process's CPU). The fakes of the tests re-filter or re-sort their whole data for every page
(fine for tests, O(n) per page here): the Backstage, PagerDuty and incident.io fakes are
subclassed here to index their data once and answer every page from the index, with the
same answers (checked at start against the fakes' own for a few pages).

Every output is checked by a child (--child check) against what was generated, so that a
broken import cannot pass as fast: services (all of them from the catalog, the traced ones
from traces), hard and soft edges, trace call and error counts, owners and PagerDuty ids,
and the incidents (one row each, ids unique, per-service counts and start times as drawn).

How it measures, as bench_commands.py: each command is started with subprocess.Popen in its
own process group and reaped with os.wait4 (common.run_command): wall seconds from the fork
to its exit (interpreter start and imports included) and its own peak RSS (ru_maxrss of that
child: the whole process). This script imports nothing large (its mark is carried into its
children's). `--profile NAMES` (comma separated, or `all`) runs those commands once more at
the largest size under cProfile (while their fake still serves) and adds the top functions
by own and cumulative time to the results.

Results: bench/imports_results.md (--out) with the usual header (date, machine, versions,
engine commit, command, wall time, load average) and the same figures as JSON beside it.

    PYTHONPATH=plugins .venv/bin/python bench/bench_imports.py [--sizes 500,5000,20000]
        [--max-incidents N] [--commands NAMES] [--tempo-step 3600] [--tempo-days 8]
        [--backfill-timeout 1200] [--timeout 1800] [--profile NAMES] [--keep]
        [--out bench/imports_results.md]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import select
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_commands
import common
import report
from report import cell, ratio

SIZES = "500,5000,20000"
INCIDENTS_PER_SERVICE = 15
DEPENDENCIES = 3.5  # drawn per service, as bench_commands: ~4 edges per service with the hubs
END = common.AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ")  # the traces' end
SINCE = (common.AS_OF.date().replace(year=common.AS_OF.year - 2)).isoformat()  # two years
UNTIL = common.AS_OF.date().isoformat()
LOOKBACK = "7d"
LOOKBACK_HOURS = 7 * 24
TEMPO_STEP_S = 3600
TEMPO_DAYS = 8
TIMEOUT = 1800.0
BACKFILL_TIMEOUT = 1200.0
SERVER_START_TIMEOUT = 600.0
PROMTOOL_BLOCK = "486h"  # promtool's largest block below Prometheus' own 31-day cap
REQUESTS_METRIC = "traces_service_graph_request_total"
FAILED_METRIC = "traces_service_graph_request_failed_total"
CHILDREN = ("serve", "check", "pstats")
APIS = ("backstage", "jaeger", "prometheus", "pagerduty", "incident-io")
COMMANDS = (
    "backstage-files",
    "backstage-api",
    "jaeger",
    "tempo",
    "merge",
    "pagerduty",
    "incident-io",
)
OUTPUTS = {
    "backstage-files": "catalog.csv",
    "backstage-api": "catalog_api.csv",
    "jaeger": "traces.csv",
    "tempo": "tempo.csv",
    "merge": "merged.csv",
    "pagerduty": "pagerduty.csv",
    "incident-io": "incident_io.csv",
}
SERVED_BY = {
    "backstage-api": "backstage",
    "jaeger": "jaeger",
    "tempo": "prometheus",
    "pagerduty": "pagerduty",
    "incident-io": "incident-io",
}


def command_lines(cli: list[str], url: str = "URL") -> dict[str, list[str]]:
    """Each command's argv, run in the fleet's folder (`url`: its fake's base URL)."""
    window = ["--end", END, "--lookback", LOOKBACK]
    history = ["--since", SINCE, "--until", UNTIL, "--url", url]
    return {
        "backstage-files": [*cli, "topology", "import", "backstage", "catalog"],
        "backstage-api": [*cli, "topology", "import", "backstage", url],
        "jaeger": [*cli, "topology", "import", "jaeger", url, *window],
        "tempo": [*cli, "topology", "import", "tempo", url, *window],
        "merge": [*cli, "topology", "merge", "catalog.csv", "traces.csv"],
        "pagerduty": [
            *[*cli, "incidents", "import", "pagerduty", *history],
            *["--topology", "catalog.csv"],
        ],
        "incident-io": [*cli, "incidents", "import", "incident-io", *history],
    }


# --------------------------------------------------------------------------- fakes (child)


def _fakes() -> None:
    """tests/ on sys.path: the fakes are the tests' (tests/fakes)."""
    tests = str(common.ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)


def indexed_backstage(entities: list[dict]):
    """The tests' fake Backstage, with each filter's matching entities computed once: the
    fake filters the whole catalog again for every page. Same answers."""
    _fakes()
    import base64
    import threading

    from fakes.backstage_server import BackstageServer, matches

    class IndexedBackstage(BackstageServer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._chosen: dict[tuple[str, ...], list[dict]] = {}
            self._index_lock = threading.Lock()

        def _matching(self, filters: list[str]) -> list[dict]:
            key = tuple(filters)
            with self._index_lock:
                if key not in self._chosen:
                    self._chosen[key] = [e for e in self.entities if matches(e, filters)]
                return self._chosen[key]

        def _query(self, query):  # BackstageServer._query, the matching entities cached
            values: dict[str, list[str]] = {}
            for key, value in query:
                values.setdefault(key, []).append(value)
            cursor_text = values.get("cursor", [None])[-1]
            try:
                limit = int(values.get("limit", [self.default_limit])[-1])
                state = json.loads(base64.urlsafe_b64decode(cursor_text)) if cursor_text else None
            except ValueError:
                return super()._query(query)  # its 400
            if cursor_text and {"filter", "orderField", "fullTextFilterTerm"} & set(values):
                return super()._query(query)  # its 400
            if self.max_limit is not None:
                limit = min(limit, self.max_limit)
            if state is None:
                filters = values.get("filter", [])
                total = len(self._matching(filters))
                state = {"filter": filters, "offset": 0, "total": total, "page": 1}
            chosen = self._matching(state["filter"])
            offset, page = state["offset"], state["page"]
            items = chosen[offset : offset + limit]
            info: dict[str, str] = {}
            if offset + limit < len(chosen):
                nxt = {**state, "offset": offset + limit, "page": page + 1}
                info["nextCursor"] = self._cursor(nxt)
            if page > 1:
                previous = {**state, "offset": max(0, offset - limit), "page": page - 1}
                info["prevCursor"] = self._cursor(previous)
            return 200, {"items": items, "totalItems": state["total"], "pageInfo": info}, {}

    server = IndexedBackstage(entities)
    # The same answers as the fake's own, for the first page and the one after it.
    first = [("filter", "kind=component"), ("filter", "kind=resource"), ("limit", "500")]
    for query in (first, None):
        if query is None:
            cursor = server._query(first)[1]["pageInfo"].get("nextCursor")
            if cursor is None:
                break
            query = [("cursor", cursor), ("limit", "500")]
        if server._query(query) != BackstageServer._query(server, query):
            raise SystemExit("the indexed Backstage fake answers differently from the fake")
    return server


def indexed_pagerduty(incidents: list[dict]):
    """The tests' fake PagerDuty with its incidents sorted and indexed by creation once: the
    fake filters and sorts all of them for every page. Same answers."""
    _fakes()
    from bisect import bisect_left, bisect_right
    from datetime import UTC, datetime, timedelta

    from fakes.incident_servers import (
        PD_MAX_LIMIT,
        PagerDutyServer,
        _instant,
        _one,
        _wire,
        add_months,
    )

    class IndexedPagerDuty(PagerDutyServer):
        def __init__(self, incidents: list[dict]) -> None:
            super().__init__(incidents=incidents)
            self.incidents.sort(key=lambda i: (_instant(i["created_at"]), i["incident_number"]))
            self._seconds = [_instant(i["created_at"]).timestamp() for i in self.incidents]
            self._statuses = {i["status"] for i in self.incidents}

        def _route(self, path, query):
            until = _instant(_one(query, "until") or _wire(datetime.now(UTC)))
            since = _instant(_one(query, "since") or _wire(until - timedelta(days=30)))
            limit = min(int(_one(query, "limit") or 25), PD_MAX_LIMIT)
            offset = int(_one(query, "offset") or 0)
            statuses = set(query.get("statuses[]") or ())
            if (
                path.rstrip("/") != "/incidents"
                or add_months(since, 6) < until
                or until < since
                or offset + limit > self.cap
                or (statuses and not statuses >= self._statuses)
            ):
                return super()._route(path, query)  # its errors (or a status filter)
            lo = bisect_left(self._seconds, since.timestamp())
            hi = bisect_right(self._seconds, until.timestamp())
            page = self.incidents[lo + offset : min(lo + offset + limit, hi)]
            return {
                "incidents": page,
                "limit": limit,
                "offset": offset,
                "more": offset + len(page) < hi - lo,
                "total": hi - lo if _one(query, "total") == "true" else None,
            }

    server = IndexedPagerDuty(incidents)
    if server.incidents:
        start = server.incidents[len(server.incidents) // 3]["created_at"]
        until = _wire(_instant(start) + timedelta(days=180))
        for offset in ("0", "9900"):
            query = {
                "since": [start],
                "until": [until],
                "limit": ["100"],
                "offset": [offset],
                "total": ["true"],
                "statuses[]": ["triggered", "acknowledged", "resolved"],
            }
            if server._route("/incidents", query) != PagerDutyServer._route(
                server, "/incidents", query
            ):
                raise SystemExit("the indexed PagerDuty fake answers differently from the fake")
    return server


def indexed_incident_io(incidents: list[dict]):
    """The tests' fake incident.io with its listing sorted (newest first) and indexed once:
    the fake sorts all incidents and searches the cursor's id for every page. Same answers
    (for the standard and retrospective modes, the only ones generated)."""
    _fakes()
    from bisect import bisect_left, bisect_right

    from fakes.incident_servers import IIO_MAX_PAGE, IncidentIoServer, _instant, _one

    class IndexedIncidentIo(IncidentIoServer):
        def __init__(self, incidents: list[dict]) -> None:
            super().__init__(incidents=incidents)
            self.incidents.sort(key=lambda i: (_instant(i["created_at"]), i["id"]))
            self._seconds = [_instant(i["created_at"]).timestamp() for i in self.incidents]
            self._position = {i["id"]: k for k, i in enumerate(self.incidents)}
            self._modes = {i["mode"] for i in self.incidents}

        def _route(self, path, query):
            size = int(_one(query, "page_size") or 25)
            modes = set(query.get("mode[one_of]") or ("standard", "retrospective"))
            if (
                path.rstrip("/") != "/v2/incidents"
                or not 1 <= size <= IIO_MAX_PAGE
                or not modes >= self._modes
            ):
                return super()._route(path, query)
            low, high = self._day(query, "created_at[gte]"), self._day(query, "created_at[lte]")
            lo = 0 if low is None else bisect_left(self._seconds, low.timestamp())
            hi = len(self._seconds)
            if high is not None:
                hi = bisect_right(self._seconds, high.timestamp())
            count = max(0, hi - lo)
            start = 0  # in the listing, newest first: the listing's k-th is incidents[hi-1-k]
            after = _one(query, "after")
            if after:
                position = self._position.get(after)
                if position is None or not lo <= position < hi:
                    return super()._route(path, query)  # its 422
                start = hi - position
            page = [self.incidents[hi - 1 - k] for k in range(start, min(start + size, count))]
            meta: dict = {"page_size": size, "total_record_count": count}
            if start + size < count:
                meta["after"] = page[-1]["id"]
            return {"incidents": page, "pagination_meta": meta}

    server = IndexedIncidentIo(incidents)
    if len(server.incidents) > 2:
        first = server.incidents[0]["created_at"][:10]
        last = server.incidents[-1]["created_at"][:10]
        window = {"page_size": ["250"], "created_at[gte]": [first], "created_at[lte]": [last]}
        after = server.incidents[len(server.incidents) // 2]["id"]
        for query in (window, {**window, "after": [after]}):
            if server._route("/v2/incidents", query) != IncidentIoServer._route(
                server, "/v2/incidents", query
            ):
                raise SystemExit("the indexed incident.io fake answers differently from the fake")
    return server


SEVERITY_PRIORITY = {"SEV1": "P1", "SEV2": "P2", "SEV3": "P3", "SEV4": "P4"}
SEVERITY_NAME = {"SEV1": "Critical", "SEV2": "Major", "SEV3": "Minor", "SEV4": "Low"}


def _history(folder: Path) -> list[dict]:
    """incidents.parquet as plain records with ISO `Z` times, and the PagerDuty service id
    of each service (the catalog's annotation)."""
    import pandas as pd

    frame = pd.read_parquet(folder / "incidents.parquet")
    topology = pd.read_csv(folder / "topology.csv", usecols=["service"])
    ids = {name: f"PS{k:05d}" for k, name in enumerate(topology["service"])}
    for column in ("started_at", "resolved_at"):
        frame[column] = frame[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["service_id"] = frame["service"].map(ids)
    return frame.to_dict("records")


def pagerduty_incidents(folder: Path) -> list[dict]:
    _fakes()
    from fakes.incident_servers import pd_incident

    return [
        pd_incident(
            number,
            row["started_at"],
            service_id=row["service_id"],
            service=f"{row['service']} (prod)",  # PagerDuty's display name: not the catalog's
            resolved_at=row["resolved_at"],
            title=row["title"],
            priority=SEVERITY_PRIORITY.get(row["severity"]),
            teams=(row["team"],),
        )
        for number, row in enumerate(_history(folder), start=1)
    ]


def incident_io_incidents(folder: Path) -> list[dict]:
    _fakes()
    from fakes.incident_servers import iio_incident

    return [
        iio_incident(
            number,
            row["started_at"],
            services=(row["service"],),
            severity=SEVERITY_NAME.get(row["severity"]),
            name=row["title"],
            timestamps={
                "Reported at": row["started_at"],
                "Impact started": row["started_at"],
                "Resolved at": row["resolved_at"],
            },
        )
        for number, row in enumerate(_history(folder), start=1)
    ]


def _cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process (all its threads), or of another one."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_serve(folder: Path, api: str, args: argparse.Namespace) -> int:
    """Serve one fake API until stdin closes: one JSON line with its URL and set-up facts
    first, then one line of statistics for each `stats` line read (requests answered and
    CPU seconds since the last one)."""
    began = time.perf_counter()
    if api == "prometheus":
        return serve_prometheus(folder, args)
    _fakes()
    facts: dict = {}
    if api == "backstage":
        server = indexed_backstage(json.loads((folder / "entities.json").read_text()))
        facts["token"] = server.token
        facts["entities"] = len(server.entities)
    elif api == "jaeger":
        from fakes.jaeger_server import JaegerServer

        server = JaegerServer(json.loads((folder / "jaeger_links.json").read_text()))
        facts["links"] = len(server.links)
    elif api == "pagerduty":
        from fakes.incident_servers import PD_TOKEN

        server = indexed_pagerduty(pagerduty_incidents(folder))
        facts |= {"token": PD_TOKEN, "ca_file": str(server.ca_file)}
        facts["incidents"] = len(server.incidents)
    else:
        from fakes.incident_servers import IIO_TOKEN

        server = indexed_incident_io(incident_io_incidents(folder))
        facts |= {"token": IIO_TOKEN, "incidents": len(server.incidents)}
    server.start()
    facts |= {"url": server.url, "setup_s": time.perf_counter() - began}
    facts["rss_mib"] = common.max_rss_mib()
    print(json.dumps(facts), flush=True)
    cpu = _cpu_seconds()
    for line in sys.stdin:
        if line.strip() != "stats":
            continue
        with server._lock:
            requests = len(server.requests)
            server.requests.clear()
        now = _cpu_seconds()
        print(json.dumps({"requests": requests, "server_cpu_s": now - cpu}), flush=True)
        cpu = now
    server.stop()
    return 0


# --------------------------------------------------------------------------- Prometheus


def _labels(client: str, server: str, kind: str) -> str:
    """The series' labels as the exposition writes them (sorted; an empty value is no label,
    as in Prometheus)."""
    pairs = [("client", client), ("connection_type", kind), ("server", server)]
    return ",".join(f'{k}="{v}"' for k, v in pairs if v)


def write_openmetrics(folder: Path, path: Path, step_s: int, days: float) -> dict:
    """traffic.csv as the two service-graph counter families, one sample per step_s over the
    `days` up to END (in the format of tests/fakes/prometheus.openmetrics, written as a
    stream: at 20,000 services it is gigabytes)."""
    import pandas as pd

    traffic = pd.read_csv(folder / "traffic.csv", keep_default_na=False)
    end = int(common.AS_OF.timestamp())
    times = list(range(end - int(days * 86400), end + 1, step_s))
    stamps = [str(t) for t in times]
    hours = [(t - times[0]) / 3600 for t in times]
    whole = all(h.is_integer() for h in hours)
    samples = 0
    with path.open("w", encoding="utf-8") as out:
        for metric, per, first in (
            (REQUESTS_METRIC, "per_hour", "first"),
            (FAILED_METRIC, "failed_per_hour", "failed_first"),
        ):
            out.write(f"# TYPE {metric.removesuffix('_total')} counter\n")
            for client, server, kind, rate, start in zip(
                traffic["client"],
                traffic["server"],
                traffic["connection_type"],
                traffic[per].tolist(),
                traffic[first].tolist(),
                strict=True,
            ):
                prefix = f"{metric}{{{_labels(client, server, kind)}}} "
                values = (
                    [str(start + rate * int(h)) for h in hours]
                    if whole
                    else [repr(start + rate * h) for h in hours]
                )
                out.write(
                    "".join(f"{prefix}{v} {s}\n" for v, s in zip(values, stamps, strict=True))
                )
                samples += len(times)
        out.write("# EOF\n")
    return {
        "series": 2 * len(traffic),
        "samples": samples,
        "samples_per_series": len(times),
        "om_mib": path.stat().st_size / 2**20,
    }


def serve_prometheus(folder: Path, args: argparse.Namespace) -> int:
    """Backfill traffic.csv into a TSDB with promtool and serve it with a real Prometheus
    (as tests/fakes/prometheus.real_prometheus, with promtool's largest block so that it
    reads the text twice, not once per 2-hour block, and no time limit of its own), then
    answer `stats` lines with Prometheus' count of /api/v1/query requests and its CPU."""
    _fakes()
    from fakes.prometheus import prometheus_missing, prometheus_version, serving

    missing = prometheus_missing()
    if missing:
        print(json.dumps({"skipped": missing}), flush=True)
        return 0
    root = folder / "prometheus"
    root.mkdir(exist_ok=True)
    source, data = root / "series.om", root / "data"
    began = time.perf_counter()
    facts = write_openmetrics(folder, source, args.tempo_step, args.tempo_days)
    facts["write_s"] = time.perf_counter() - began
    began = time.perf_counter()
    command = ["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q"]
    done = subprocess.run(
        [*command, f"--max-block-duration={PROMTOOL_BLOCK}", str(source), str(data)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:  # an older promtool without the (hidden) flag: 2-hour blocks
        done = subprocess.run([*command, str(source), str(data)], capture_output=True, text=True)
    if done.returncode != 0:
        print(json.dumps({"error": f"promtool: {done.stderr.strip()[-300:]}"}), flush=True)
        return 0
    facts["promtool_s"] = time.perf_counter() - began
    facts["blocks"] = sum(1 for p in data.iterdir() if p.is_dir() and p.name != "wal")
    facts["tsdb_mib"] = sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) / 2**20
    source.unlink()  # gigabytes: not needed any more
    began = time.perf_counter()
    with serving(root, data, 600.0) as (url, process):
        facts["start_s"] = time.perf_counter() - began
        began = time.perf_counter()
        facts["settled"] = _settle(process.pid)
        facts["settle_s"] = time.perf_counter() - began
        facts["version"] = ".".join(map(str, prometheus_version()))
        facts["url"] = url
        facts["pid"] = process.pid
        print(json.dumps(facts), flush=True)
        cpu, count = _cpu_seconds(process.pid), _query_count(url)
        for line in sys.stdin:
            if line.strip() != "stats":
                continue
            now, total = _cpu_seconds(process.pid), _query_count(url)
            print(json.dumps({"requests": total - count, "server_cpu_s": now - cpu}), flush=True)
            cpu, count = now, total
    return 0


def _settle(pid: int, idle_s: float = 0.05, quiet: int = 5, limit_s: float = 300.0) -> bool:
    """Wait until the process has used less than idle_s CPU seconds a second for `quiet`
    seconds in a row (Prometheus loading or compacting its blocks), at most limit_s."""
    deadline = time.monotonic() + limit_s
    calm, last = 0, _cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _cpu_seconds(pid)
        calm = calm + 1 if now - last < idle_s else 0
        last = now
        if calm >= quiet:
            return True
    return False


def _query_count(url: str) -> int:
    """Prometheus' own count of the requests its /api/v1/query handler answered."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


# --------------------------------------------------------------------------- checks (child)


def _split(text: str | None) -> list[str]:
    return [part for part in (text or "").split(";") if part]


def _counts(text: str | None) -> dict[str, int]:
    out = {}
    for part in _split(text):
        name, _, value = part.rpartition("=")
        out[name] = int(value)
    return out


def _read_topology(path: Path) -> dict[str, dict]:
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        return {row["service"]: row for row in csv.DictReader(handle)}


def _edges(rows: dict[str, dict], column: str) -> set[tuple[str, str]]:
    return {(s, d) for s, row in rows.items() for d in _split(row.get(column))}


def _differ(what: str, got: set, expected: set) -> str | None:
    if got == expected:
        return None
    missing, extra = sorted(expected - got)[:3], sorted(got - expected)[:3]
    return (
        f"{what}: {len(got):,} where {len(expected):,} were expected "
        f"({len(expected - got):,} missing, e.g. {missing}; {len(got - expected):,} extra, "
        f"e.g. {extra})"
    )


def check_topology(path: Path, **wanted) -> dict:
    """An imported topology against the fleet: the services, hard, soft or all edges, trace
    call and error counts, owners and PagerDuty ids (whichever `wanted` names)."""
    rows = _read_topology(path)
    hard, soft = _edges(rows, "depends_on"), _edges(rows, "soft_depends_on")
    problems = [
        _differ("services", set(rows), wanted["services"]),
        _differ("hard edges", hard, wanted["hard"]) if "hard" in wanted else None,
        _differ("soft edges", soft, wanted["soft"]) if "soft" in wanted else None,
        _differ("edges", hard | soft, wanted["edges"]) if "edges" in wanted else None,
    ]
    for column, key in (("observed_calls", "calls"), ("observed_errors", "errors")):
        if key not in wanted:
            continue
        got = {(s, d): n for s, row in rows.items() for d, n in _counts(row[column]).items()}
        wrong = sum(got.get(edge) != n for edge, n in wanted[key].items())
        if wrong or len(got) != len(wanted[key]):
            problems.append(
                f"{column}: {wrong:,} of {len(wanted[key]):,} edges differ from the traffic "
                f"({len(got):,} counted)"
            )
    for column in ("owner_team", "pagerduty_service_id", "user_facing"):
        if column in wanted:
            wrong = sum(
                rows[s].get(column, "") != v for s, v in wanted[column].items() if s in rows
            )
            if wrong:
                problems.append(f"{column}: {wrong:,} services differ from the fleet")
    problems = [p for p in problems if p]
    return {
        "rows": len(rows),
        "edges": len(hard | soft),
        "soft": len(soft),
        "ok": not problems,
        "problems": problems,
    }


def check_incidents(path: Path, history) -> dict:
    """An imported history against the one drawn: one row per incident, ids unique, the
    same count per service (so the services are named as the topology names them) and the
    same start times."""
    import pandas as pd

    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    problems = []
    if len(rows) != len(history):
        problems.append(f"rows: {len(rows):,} where {len(history):,} incidents were drawn")
    if rows["incident_id"].nunique() != len(rows):
        problems.append(f"incident_id: {rows['incident_id'].nunique():,} distinct")
    per_service = rows["service"].value_counts().sort_index()
    expected = history["service"].value_counts().sort_index()
    if not per_service.equals(expected):
        unknown = sorted(set(per_service.index) - set(expected.index))[:3]
        problems.append(f"incidents per service differ from the history (unknown: {unknown})")
    started = history["started_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").sort_values()
    if rows["started_at"].sort_values().tolist() != started.tolist():
        problems.append("started_at differs from the history's start times")
    return {
        "rows": len(rows),
        "incidents": int(rows["incident_id"].nunique()),
        "services": int(rows["service"].nunique()),
        "ok": not problems,
        "problems": problems,
    }


def child_check(folder: Path) -> dict:
    """Every output present in folder, checked against the generated fleet."""
    import pandas as pd

    fleet = _read_topology(folder / "topology.csv")
    services = set(fleet)
    soft = _edges(fleet, "soft_depends_on")
    edges = _edges(fleet, "depends_on")
    hard = edges - soft
    traffic = pd.read_csv(folder / "traffic.csv", keep_default_na=False)
    inner = traffic[traffic["client"] != "user"]
    pairs = list(zip(inner["client"], inner["server"], strict=True))
    calls = dict(zip(pairs, (inner["per_hour"] * LOOKBACK_HOURS).tolist(), strict=True))
    errors = dict(zip(pairs, (inner["failed_per_hour"] * LOOKBACK_HOURS).tolist(), strict=True))
    traced = set(inner["client"]) | set(inner["server"])
    entry = set(traffic.loc[traffic["client"] == "user", "server"])
    ids = {name: f"PS{k:05d}" for k, name in enumerate(fleet)}
    owners = {name: row["owner_team"] for name, row in fleet.items()}
    catalog = {"services": services, "hard": hard, "soft": soft}
    catalog |= {"owner_team": owners, "pagerduty_service_id": ids}
    checks: dict[str, dict] = {}
    expected = {
        "backstage-files": catalog,
        "backstage-api": catalog,
        "jaeger": {"services": traced, "hard": edges, "soft": set(), "calls": calls},
        "tempo": {
            "services": traced | entry,
            "hard": hard,
            "soft": soft,
            "calls": calls,
            "errors": errors,
            "user_facing": dict.fromkeys(entry, "true"),
        },
        "merge": {"services": services, "hard": hard, "soft": soft, "calls": calls}
        | {"owner_team": owners},
    }
    for name, wanted in expected.items():
        path = folder / OUTPUTS[name]
        if path.exists():
            checks[name] = check_topology(path, **wanted)
    api, files = folder / OUTPUTS["backstage-api"], folder / OUTPUTS["backstage-files"]
    if api.exists() and files.exists() and api.read_bytes() != files.read_bytes():
        checks["backstage-api"]["ok"] = False
        checks["backstage-api"]["problems"].append("differs from the files' topology")
    history = pd.read_parquet(folder / "incidents.parquet", columns=["service", "started_at"])
    for name in ("pagerduty", "incident-io"):
        path = folder / OUTPUTS[name]
        if path.exists():
            checks[name] = check_incidents(path, history)
    return {"stage": "check", "checks": checks}


def child_pstats(folder: Path, name: str, top: int = 15) -> dict:
    """The top functions of a cProfile run by own and by cumulative time."""
    import pstats

    stats = pstats.Stats(str(folder / f"{name}.prof"))
    entries = stats.stats  # (file, line, function) -> (cc, nc, tt, ct, callers)

    def where(key: tuple) -> str:
        file, line, function = key
        for marker in ("site-packages/", "plugins/", "lib/python3"):
            if marker in file:
                file = file.split(marker, 1)[1]
                break
        return f"{file}:{line}({function})" if line else function

    def ranked(column: int) -> list[dict]:
        best = sorted(entries.items(), key=lambda kv: kv[1][column], reverse=True)[:top]
        return [
            {"function": where(k), "calls": v[1], "own_s": v[2], "cumulative_s": v[3]}
            for k, v in best
        ]

    return {
        "stage": "pstats",
        "name": name,
        "total_s": stats.total_tt,
        "own": ranked(2),
        "cumulative": ranked(3),
    }


# --------------------------------------------------------------------------- measuring


class Served:
    """A fake API in its own process (this script, --child serve): its facts once it
    serves (None: it did not within the time allowed, or it stopped), its statistics after
    each command; stopped (its process group killed if need be) on close."""

    def __init__(self, api: str, folder: Path, timeout: float, extra: list[str]) -> None:
        self.api = api
        self.log = (folder / f"serve-{api}.stderr").open("wb")
        command = [sys.executable, __file__, "--child", "serve", "--api", api]
        self.process = subprocess.Popen(
            [*command, "--dir", str(folder), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            start_new_session=True,
        )
        began = time.perf_counter()
        self.facts = self._line(timeout)
        self.waited_s = time.perf_counter() - began

    def _line(self, timeout: float) -> dict | None:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.process.stdout.readline()
        return json.loads(line) if line.strip() else None

    def stats(self) -> dict:
        try:
            self.process.stdin.write("stats\n")
            self.process.stdin.flush()
        except OSError:
            return {}
        return self._line(120.0) or {}

    def why_not(self, timeout: float) -> str:
        """Why it does not serve, for the results."""
        if self.facts is None:
            if self.process.poll() is None:
                return f"its set-up took longer than {timeout:g} s"
            tail = Path(self.log.name).read_text(errors="replace").strip().splitlines()
            return f"it stopped: {tail[-1] if tail else self.process.returncode}"
        return str(self.facts.get("skipped") or self.facts.get("error"))

    def close(self) -> None:
        with suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # what of its group is left
        self.process.stdout.close()
        self.log.close()


@contextmanager
def serving(api: str, folder: Path, timeout: float, extra: list[str]):
    common.progress(f"  starting the {api} fake ...")
    served = Served(api, folder, timeout, extra)
    try:
        if served.facts and "url" in served.facts:
            common.progress(f"  {api} serves at {served.facts['url']} ({served.waited_s:.1f} s)")
        yield served
    finally:
        served.close()


def _ok(result: dict | None) -> bool:
    return (
        bool(result)
        and not result.get("killed")
        and result.get("failed") is None
        and not result.get("skipped")
    )


def _seconds(result: dict | None) -> float | None:
    return result["seconds"] if _ok(result) else None


def measure_size(n: int, args, cli: list[str], env: dict[str, str]) -> dict:
    """A fleet of n services: its sources generated, then each command of --commands, each
    with its fake serving, and the outputs checked."""
    label = f"{n:,} services"
    wanted = args.commands
    profile = args.profile if n == max(args.sizes) else set()
    rows = INCIDENTS_PER_SERVICE * n
    if args.max_incidents:
        rows = min(rows, args.max_incidents)
    with common.scratch_folder(f"whatif-bench-imports-{n}-", args.keep) as folder:
        extra = ["--services", str(n), "--rows", str(rows), "--dependencies", str(DEPENDENCIES)]
        facts = common.generate("imports", folder, args.timeout, extra)
        row = {
            "requested": n,
            "incidents_asked": rows,
            "capped": rows < INCIDENTS_PER_SERVICE * n,
            "inputs": facts,
            "digest": report.engine_digest(),
            "commands": {},
            "servers": {},
        }
        results = row["commands"]

        def run(name: str, url: str = "URL", served: Served | None = None, **more) -> None:
            argv = [*command_lines(cli, url)[name], "--out", OUTPUTS[name]]
            result = bench_commands.timed(label, name, argv, folder, {**env, **more}, args.timeout)
            if served is not None:
                result |= served.stats()
            results[name] = result
            if name in profile or "all" in profile:
                row.setdefault("profiles", {})[name] = profile_command(
                    name, argv, folder, env, more
                )

        for name in COMMANDS:
            if name not in wanted:
                continue
            api = SERVED_BY.get(name)
            if name == "pagerduty" and not (folder / "catalog.csv").exists():
                results[name] = {"stage": name, "skipped": "no catalog.csv (backstage-files)"}
                continue
            if api is None:
                if name == "merge" and not all(
                    (folder / f).exists() for f in ("catalog.csv", "traces.csv")
                ):
                    results[name] = {"stage": name, "skipped": "no catalog.csv or traces.csv"}
                    continue
                run(name)
                continue
            timeout = args.backfill_timeout if api == "prometheus" else SERVER_START_TIMEOUT
            server_extra = ["--tempo-step", str(args.tempo_step), "--tempo-days"]
            server_extra.append(str(args.tempo_days))
            with serving(api, folder, timeout, server_extra) as served:
                row["servers"][api] = {**(served.facts or {}), "waited_s": served.waited_s}
                if not served.facts or "url" not in served.facts:
                    reason = served.why_not(timeout)
                    common.progress(f"  {name}: skipped ({api}: {reason})")
                    results[name] = {"stage": name, "skipped": f"{api}: {reason}"}
                    continue
                url, more = served.facts["url"], {}
                token = served.facts.get("token")
                if token:
                    variable = {
                        "backstage": "BACKSTAGE_TOKEN",
                        "pagerduty": "PAGERDUTY_TOKEN",
                        "incident-io": "INCIDENT_IO_API_KEY",
                    }[api]
                    more[variable] = token
                if served.facts.get("ca_file"):
                    more["SSL_CERT_FILE"] = served.facts["ca_file"]
                run(name, url, served, **more)
        common.progress(f"[{label}] checking the outputs ...")
        check = common.run_child(__file__, "check", folder, args.timeout)
        row["checks"] = check.get("checks", {})
        if "error" in check or check.get("killed"):
            row["check_error"] = check
        for name, result in results.items():
            verdict = row["checks"].get(name)
            if _ok(result) and verdict and not verdict["ok"]:
                common.progress(f"  {name}: CHECK FAILED: {verdict['problems']}")
    return row


def profile_command(name: str, argv: list[str], folder: Path, env: dict, more: dict) -> dict:
    """The command once more under cProfile (its fake still serving): its top functions."""
    output = folder / f"{name}.prof"
    if argv[0] == sys.executable:  # python -m whatif
        profiled = [sys.executable, "-m", "cProfile", "-o", str(output), *argv[1:]]
    else:
        profiled = [sys.executable, "-m", "cProfile", "-o", str(output), *argv]
    profiled[profiled.index("--out") + 1] = f"profiled-{OUTPUTS[name]}"
    common.progress(f"  profiling {name} ...")
    result = common.run_command(profiled, TIMEOUT, {**env, **more}, folder, stage=f"{name}-profile")
    if result["status"] != 0:
        return {"error": result.get("error")}
    summary = common.run_child(__file__, "pstats", folder, TIMEOUT, ["--name", name])
    summary["profiled_wall_s"] = result["seconds"]
    return summary


# --------------------------------------------------------------------------- report


def _check_cell(row: dict, name: str) -> str:
    verdict = row.get("checks", {}).get(name)
    if not _ok(row["commands"].get(name)):
        return "n/a"
    if verdict is None:
        return "not checked"
    return "✓" if verdict["ok"] else "✗ " + "; ".join(verdict["problems"])


def _result_cell(result: dict) -> str:
    if result.get("skipped"):
        return f"skipped ({result['skipped']})"
    return cell(result, "seconds", ".2f")


def results_table(rows: list[dict]) -> list[str]:
    lines = [
        "| services | command | wall s | peak RSS MiB | requests | fake's CPU s | rows | "
        "edges (soft) | output checked |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        for name in COMMANDS:
            result = row["commands"].get(name)
            if result is None:
                continue
            verdict = row.get("checks", {}).get(name) or {}
            requests = result.get("requests")
            if name == "backstage-files":
                requests_text = f"({row['inputs']['catalog_files']:,} files)"
            elif name == "merge":
                requests_text = "(2 files)"
            else:
                requests_text = "n/a" if requests is None else f"{requests:,}"
            cpu = result.get("server_cpu_s")
            edges = "—"
            if "edges" in verdict:
                edges = f"{verdict['edges']:,} ({verdict['soft']:,})"
            lines.append(
                f"| {row['inputs']['services']:,} | {name} | **{_result_cell(result)}** | "
                f"{cell(result, 'peak_rss_mib', ',.0f')} | {requests_text} | "
                f"{'n/a' if cpu is None else f'{cpu:.1f}'} | "
                f"{verdict.get('rows', 0):,} | {edges} | {_check_cell(row, name)} |"
            )
    return lines


def growth_table(rows: list[dict]) -> list[str]:
    """Between consecutive sizes: how many times longer each command took, and the exponent
    (the log-log slope: 1 = linear in the services)."""
    pairs = list(itertools.pairwise(rows))
    if not pairs:
        return ["(one size measured)"]
    lines = [
        "| command | "
        + " | ".join(
            f"{a['inputs']['services']:,} → {b['inputs']['services']:,} "
            f"(×{b['inputs']['services'] / a['inputs']['services']:.1f} services)"
            for a, b in pairs
        )
        + " |",
        "|---|" + "---:|" * len(pairs),
    ]
    for name in COMMANDS:
        cells = []
        for a, b in pairs:
            ta, tb = _seconds(a["commands"].get(name)), _seconds(b["commands"].get(name))
            grow = ratio(tb, ta)
            if grow is None:
                cells.append("n/a")
                continue
            slope = math.log(grow) / math.log(b["inputs"]["services"] / a["inputs"]["services"])
            cells.append(f"×{grow:.1f} (exponent {slope:.2f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def inputs_table(rows: list[dict]) -> list[str]:
    lines = [
        "| services | edges (soft) | catalog files (MiB) | Components / Resources / Groups | "
        "Jaeger links | Tempo series | incidents | generated in s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        f = row["inputs"]
        kinds = f["kinds"]
        capped = " (capped)" if row["capped"] else ""
        lines.append(
            f"| {f['services']:,} | {f['edges']:,} ({f['soft_edges']:,}) | "
            f"{f['catalog_files']:,} ({f['catalog_bytes'] / 2**20:.1f}) | "
            f"{kinds.get('Component', 0):,} / {kinds.get('Resource', 0):,} / "
            f"{kinds.get('Group', 0):,} | {f['links']:,} | {f['tempo_series']:,} | "
            f"{f['incidents']:,}{capped} | {f['generate_s']:.1f} |"
        )
    return lines


def servers_table(rows: list[dict]) -> list[str]:
    """How long each fake took to be ready (built and index checked), and the Prometheus
    backfill's parts."""
    lines = [
        "| services | Backstage fake s | Jaeger fake s | PagerDuty fake s (MiB) | "
        "incident.io fake s (MiB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        s = row["servers"]
        lines.append(
            f"| {row['inputs']['services']:,} | {_ready(s, 'backstage')} | "
            f"{_ready(s, 'jaeger')} | {_ready(s, 'pagerduty', True)} | "
            f"{_ready(s, 'incident-io', True)} |"
        )
    return lines


def _ready(servers: dict, api: str, mib: bool = False) -> str:
    facts = servers.get(api)
    if not facts or "url" not in facts:
        return "n/a"
    text = f"{facts['waited_s']:.1f}"
    return text + (f" ({facts['rss_mib']:,.0f})" if mib else "")


def backfill_table(rows: list[dict]) -> list[str]:
    lines = [
        "| services | series | samples | OpenMetrics MiB | write s | promtool s (blocks) | "
        "TSDB MiB | Prometheus start s | idle after s | backfill total s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        p = row["servers"].get("prometheus")
        if not p:
            continue
        if "url" not in p:
            why = p.get("skipped") or p.get("error") or "no answer"
            lines.append(
                f"| {row['inputs']['services']:,} | skipped: {why} "
                f"(after {p['waited_s']:.0f} s) |" + " |" * 8
            )
            continue
        total = p["write_s"] + p["promtool_s"] + p["start_s"] + p["settle_s"]
        lines.append(
            f"| {row['inputs']['services']:,} | {p['series']:,} | {p['samples']:,} | "
            f"{p['om_mib']:,.0f} | {p['write_s']:.1f} | {p['promtool_s']:.1f} ({p['blocks']}) | "
            f"{p['tsdb_mib']:,.0f} | {p['start_s']:.1f} | {p['settle_s']:.1f}"
            + ("" if p["settled"] else " (never idle)")
            + f" | **{total:.1f}** |"
        )
    return lines


def profile_lines(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        for name, summary in (row.get("profiles") or {}).items():
            if "own" not in summary:
                lines += [f"- {name}: no profile ({summary.get('error')})", ""]
                continue
            lines += [
                f"cProfile of `{name}` at {row['inputs']['services']:,} services (profiled run "
                f"{summary['profiled_wall_s']:.1f} s wall, {summary['total_s']:.1f} s "
                "profiled); top functions by own time, then by cumulative time:",
                "",
                "```",
                f"{'own s':>8} {'cum s':>8} {'calls':>10}  function",
            ]
            for entry in summary["own"]:
                lines.append(
                    f"{entry['own_s']:8.2f} {entry['cumulative_s']:8.2f} {entry['calls']:10,}  "
                    f"{entry['function']}"
                )
            lines += ["", f"{'own s':>8} {'cum s':>8} {'calls':>10}  function"]
            for entry in summary["cumulative"]:
                lines.append(
                    f"{entry['own_s']:8.2f} {entry['cumulative_s']:8.2f} {entry['calls']:10,}  "
                    f"{entry['function']}"
                )
            lines += ["```", ""]
    return lines


def failures(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        for name, result in row["commands"].items():
            if result.get("skipped") or _ok(result):
                continue
            lines.append(
                f"- {row['inputs']['services']:,} services, {name}: "
                + ("killed" if result.get("killed") else f"`{result.get('error')}`")
            )
            tail = result.get("stderr_tail")
            if tail:
                lines += ["", "  ```", *[f"  {line}" for line in tail[-10:]], "  ```"]
        if row.get("check_error"):
            lines.append(f"- {row['inputs']['services']:,} services, check: {row['check_error']}")
    return lines


def _display(argv: list[str]) -> str:
    return bench_commands._display_argv(argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=SIZES, help="services, comma separated")
    parser.add_argument(
        "--max-incidents",
        type=int,
        default=0,
        help=f"cap the incidents of a size ({INCIDENTS_PER_SERVICE} per service; 0: no cap)",
    )
    parser.add_argument(
        "--commands", default=",".join(COMMANDS), help="which commands, comma separated"
    )
    parser.add_argument(
        "--tempo-step", type=int, default=TEMPO_STEP_S, help="seconds between samples"
    )
    parser.add_argument("--tempo-days", type=float, default=TEMPO_DAYS, help="days of samples")
    parser.add_argument(
        "--backfill-timeout",
        type=float,
        default=BACKFILL_TIMEOUT,
        help="seconds the Prometheus backfill may take before the tempo row is skipped",
    )
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per command")
    parser.add_argument(
        "--profile", default="", help="commands to profile at the largest size (or all)"
    )
    parser.add_argument("--api", choices=APIS, help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    common.add_run_arguments(parser, Path(__file__).with_name("imports_results.md"), CHILDREN)
    args = parser.parse_args(argv)
    if args.child == "serve":
        return child_serve(Path(args.dir), args.api, args)
    if args.child == "check":
        print(json.dumps(child_check(Path(args.dir))))
        return 0
    if args.child == "pstats":
        print(json.dumps(child_pstats(Path(args.dir), args.name)))
        return 0

    args.sizes = sorted(set(common.parse_sizes(args.sizes)))
    args.commands = {c.strip() for c in args.commands.split(",") if c.strip()}
    unknown = args.commands - set(COMMANDS)
    if unknown:
        parser.error(f"unknown commands {sorted(unknown)}: choose from {', '.join(COMMANDS)}")
    args.profile = {c.strip() for c in args.profile.split(",") if c.strip()}
    if args.tempo_step < 1 or 86400 % args.tempo_step:
        parser.error("--tempo-step must divide a day (samples at the lookback's both ends)")
    engine = report.engine()
    digests = {"start": report.engine_digest()}
    load_before = os.getloadavg()[0]
    cli, env = bench_commands.whatif_cli()
    began = time.perf_counter()
    rows = [measure_size(n, args, cli, env) for n in args.sizes]
    total = time.perf_counter() - began
    parent_mib = common.max_rss_mib()
    digests["end"] = report.engine_digest()
    moved = len(set(digests.values()) | {r["digest"] for r in rows}) > 1
    if moved:
        common.progress(f"WARNING: the engine's files changed during the run: {digests}")

    prometheus = next(
        (
            r["servers"]["prometheus"]
            for r in rows
            if "version" in r["servers"].get("prometheus", {})
        ),
        None,
    )
    capped = [r for r in rows if r["capped"]]
    bad = [
        (r["inputs"]["services"], name)
        for r in rows
        for name, verdict in r.get("checks", {}).items()
        if not verdict["ok"]
    ]
    title = "whatif benchmark: the importers at fleet scale"
    parts = [
        *report.header(
            title,
            engine,
            ("yaml", "requests", "httpx", "pagerduty", "pandas"),
            total,
            included="input generation, starting the fakes, the Prometheus backfill, the "
            "checks" + (" and the profiled runs" if args.profile else ""),
            load_before=load_before,
            load_note="; the JSON gives the load before every command",
        ),
        f"- inputs (bench/generate.py imports, whatif.synthetic, seeded): the fleet of "
        f"bench_commands.py (a layered DAG with ~{DEPENDENCIES:g} drawn dependencies per service "
        "plus 5 shared infrastructure hubs, about 4 edges per service, a quarter of them soft) "
        "as a Backstage catalog (one catalog-info.yaml per service in its team's folder, a "
        "Group per team; data-tier services as Resources, the others as Components; "
        "spec.dependsOn refs, soft ones also in the whatif.io/soft-depends-on annotation), "
        "as trace traffic (per-hour calls and failures per edge, soft edges as "
        "messaging_system, calls from `user` to the user-facing services) and "
        f"{INCIDENTS_PER_SERVICE} incidents per service over two years up to {UNTIL} "
        "(the history whatif.synthetic draws, cascades included)"
        + (
            f"; incidents capped at {args.max_incidents:,} (--max-incidents) at "
            + ", ".join(f"{r['inputs']['services']:,}" for r in capped)
            + " services"
            if capped
            else ""
        ),
        "- each command a child process of the installed CLI (`"
        + _display(cli)
        + "`), run in the fleet's folder; seconds = wall time from the fork to its exit "
        "(interpreter start and imports included); peak RSS = `ru_maxrss` of that child from "
        f"`os.wait4` (the whole process; each includes at least this script's own "
        f"{parent_mib:.0f} MiB, which Linux carries into a child's mark)",
        "- the APIs: the loopback fakes of the tests (tests/fakes), each in its own process "
        "started before its command and stopped after it, one at a time, on the same 2 cores "
        "as the command (their CPU seconds during the command are given). The Backstage, "
        "PagerDuty and incident.io fakes are subclassed to index their data once (the tests' "
        "fakes filter or sort all of it for every page), answering the same (checked against "
        "the fakes' own answers at start). Requests = the requests the fake answered "
        "(Prometheus: its own count of /api/v1/query requests)"
        + (
            f"; Tempo: a real Prometheus {prometheus['version']} (Debian's), the traffic "
            f"backfilled with promtool as {prometheus['samples_per_series']} samples per series "
            f"(every {args.tempo_step / 3600:g} h over {args.tempo_days:g} days up to {END})"
            if prometheus
            else "; Tempo: no Prometheus served (see the rows)"
        ),
        "- every output checked against what was generated (services, hard and soft edges, "
        "trace counts, owners and PagerDuty ids; incidents one row each, ids unique, the same "
        "count per service and the same start times): "
        + (
            "**all outputs as expected**"
            if not bad
            else "**failed: " + ", ".join(f"{name} at {n:,}" for n, name in bad) + "**"
        ),
        f"- engine source digest (sha256 of plugins/whatif/**/*.py, first 12): {digests['start']}"
        + (
            " — **the engine's files changed during the run, so the commands measured "
            f"different versions; discard these figures and re-run** ({digests})"
            if moved
            else ", unchanged throughout the run"
        ),
        "",
        "Each command (seconds, peak RSS of the process, requests the fake answered, the fake's "
        "own CPU seconds meanwhile, rows and edges of the output, and its check):",
        "",
        *results_table(rows),
        "",
        "Growth between sizes (× the time; exponent = log-log slope, 1 = linear in the services):",
        "",
        *growth_table(rows),
        "",
        "Inputs per size:",
        "",
        *inputs_table(rows),
        "",
        "The Tempo rows' backfill, timed apart (writing the OpenMetrics text, promtool `tsdb "
        f"create-blocks-from openmetrics --max-block-duration={PROMTOOL_BLOCK}`, starting "
        "Prometheus until /-/ready, then until it used < 0.05 CPU s a second for 5 s):",
        "",
        *backfill_table(rows),
        "",
        "The fakes' set-up (seconds from their start to serving, data built and index checked; "
        "peak RSS of the incident fakes):",
        "",
        *servers_table(rows),
        "",
        "The commands, as run in each fleet's folder (URL: the fake's):",
        "",
        *[
            f"- {name}: `{_display([*argv, '--out', OUTPUTS[name]])}`"
            for name, argv in command_lines(cli).items()
        ],
        "",
    ]
    profiles = profile_lines(rows)
    if profiles:
        parts += profiles
    problems = failures(rows)
    if problems:
        parts += ["Failures:", "", *problems, ""]
    text = "\n".join(parts)
    print(text)
    out = Path(args.out)
    report.write(out, text)
    raw = {
        "title": title,
        "command": report.command_line(),
        "engine": engine,
        "digests": digests,
        "machine": report.machine(),
        "total_s": total,
        "load_before": load_before,
        "parent_peak_rss_mib": parent_mib,
        "settings": {
            "sizes": args.sizes,
            "incidents_per_service": INCIDENTS_PER_SERVICE,
            "max_incidents": args.max_incidents,
            "dependencies": DEPENDENCIES,
            "since": SINCE,
            "until": UNTIL,
            "end": END,
            "lookback": LOOKBACK,
            "tempo_step_s": args.tempo_step,
            "tempo_days": args.tempo_days,
            "backfill_timeout": args.backfill_timeout,
            "timeout": args.timeout,
            "commands": sorted(args.commands),
        },
        "commands": {
            name: _display([*argv, "--out", OUTPUTS[name]])
            for name, argv in command_lines(cli).items()
        },
        "sizes": rows,
    }
    report.write(out.with_suffix(".json"), json.dumps(raw, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
