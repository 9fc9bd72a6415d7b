"""Topology from traces: who called whom, how often and how often it failed, as the tracing
backends already count it. Two sources:

- Jaeger's dependency links (`GET /api/dependencies?endTs=&lookback=`, or a saved answer of
  that endpoint): parent -> child with a call count. The parent depends on the child (a failure
  flows child -> parent). Jaeger counts no errors.
- The service-graph metrics that Grafana Tempo's metrics-generator and the OpenTelemetry
  collector's servicegraph connector write to Prometheus (`traces_service_graph_request_total`
  and `traces_service_graph_request_failed_total`, labels client, server, connection_type):
  the client depends on the server; `increase()` over the lookback gives the calls and the
  failed calls. The virtual client `user` (requests whose caller is not traced) is the outside
  world: the servers it calls are user-facing. Calls through a messaging system
  (connection_type="messaging_system") are soft dependencies: the queue decouples the producer
  from the consumer's failures.

Both return `ServiceRecord`s (common.py), sorted, for the topology CSV contract. Whatever is
left out (self-calls, edges without calls in the lookback, unusable names) is counted and
logged on one line per kind, never dropped silently."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from whatif.errors import UserError, shown
from whatif.importers.api import ApiError, JsonApi, origin
from whatif.importers.common import ServiceRecord, utc
from whatif.importers.fetch import TOKEN_VARIABLES
from whatif.llm import RetryPolicy

log = logging.getLogger(__name__)

REQUESTS_METRIC = "traces_service_graph_request_total"
FAILED_METRIC = "traces_service_graph_request_failed_total"
USER_CLIENT = "user"  # Tempo's and the collector's name for a caller that is not traced
MESSAGING = "messaging_system"
UNKNOWN_SERVER = "unknown"  # the collector's name for a callee without peer attributes

Fail = Callable[[str, str | None], NoReturn]


@dataclasses.dataclass
class _Edge:
    """Calls from `client` to `server` over the lookback; `errors` None when not counted."""

    client: str
    server: str
    calls: int
    errors: int | None = None
    soft: bool = False


# ---------------------------------------------------------------------------------- Jaeger


def import_jaeger(
    source: str,
    *,
    end: datetime,
    lookback_days: float = 7.0,
    token: str | None = None,
    timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
) -> list[ServiceRecord]:
    """The services and dependencies Jaeger saw in the `lookback_days` before `end`: from a
    Jaeger query base URL, or from a saved answer of /api/dependencies (a file, whose window
    is whatever it was saved with: `end` and `lookback_days` are not applied to it)."""
    window_ms = _lookback_seconds(lookback_days) * 1000
    if _is_url(source):
        api = JsonApi(
            "jaeger",
            source,
            token=token,
            token_variable=TOKEN_VARIABLES["jaeger"],
            timeout_s=timeout_s,
            retry=retry or RetryPolicy(),
            sleep=sleep or time.sleep,
        )
        params = {"endTs": int(utc(end).timestamp() * 1000), "lookback": window_ms}
        where = api.describe("GET", "/api/dependencies", params)
        answer = api.get("/api/dependencies", params)

        def fail(message: str, hint: str | None = None) -> NoReturn:
            raise ApiError(f"jaeger: {where}: {message}", hint=hint)

    else:
        where = str(source)
        answer = _read_json(source)

        def fail(message: str, hint: str | None = None) -> NoReturn:
            raise UserError(message, file=where, hint=hint)

        log.info("jaeger: %s is a saved answer: the window it was saved with applies", where)
    links = _jaeger_links(answer, fail)
    if not links:
        fail(
            "Jaeger has no dependency links for this window",
            "with Cassandra, Elasticsearch or OpenSearch storage Jaeger only shows links that "
            "its spark-dependencies job computed: run the job, or widen the lookback",
        )
    edges, lone = _usable(_sum_edges(_Edge(p, c, calls) for p, c, calls in links), "jaeger")
    return _records(edges, {}, lone, "jaeger")


def _jaeger_links(answer: Any, fail: Fail) -> list[tuple[str, str, int]]:
    """(parent, child, callCount) of each link in a Jaeger answer `{"data": [...], "errors":
    null, ...}` or a bare list of links; anything else fails as a whole (a partial topology
    would look complete)."""
    if isinstance(answer, dict):
        errors = answer.get("errors")
        if errors:
            fail(f"Jaeger answered errors: {_jaeger_errors(errors)}", None)
        if "data" not in answer:
            fail('not a Jaeger dependencies answer: no "data" field', _JAEGER_SHAPE)
        data = answer["data"] if answer["data"] is not None else []
    else:
        data = answer
    if not isinstance(data, list):
        fail(f"not a Jaeger dependencies answer: data is {type(data).__name__}", _JAEGER_SHAPE)
    links = []
    for index, link in enumerate(data):
        if not isinstance(link, dict):
            fail(f"link {index} is {type(link).__name__}, not an object", _JAEGER_SHAPE)
        parent, child, calls = link.get("parent"), link.get("child"), link.get("callCount")
        if not isinstance(parent, str) or not isinstance(child, str):
            fail(f"link {index} has no parent or child service name", _JAEGER_SHAPE)
        if not _is_count(calls):
            pair = f"{shown(parent)} -> {shown(child)}"
            fail(f"link {index} ({pair}): callCount {shown(calls)} is not a count", _JAEGER_SHAPE)
        links.append((parent, child, int(calls)))
    return links


_JAEGER_SHAPE = 'expected {"data": [{"parent": ..., "child": ..., "callCount": N}, ...]}'


def _jaeger_errors(errors: Any) -> str:
    items = errors if isinstance(errors, list) else [errors]
    texts = [str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in items]
    return shown("; ".join(texts), 200)


def _read_json(path: str) -> Any:
    """A saved answer; one line naming the file when it cannot be read or parsed."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(
            "no such file", file=str(path), hint="give a Jaeger query URL or a saved answer"
        ) from None
    except (OSError, UnicodeDecodeError) as problem:
        raise UserError(f"cannot read it: {problem}", file=str(path)) from None
    try:
        return json.loads(text)
    except ValueError as problem:
        raise UserError(
            f"not JSON: {problem}",
            file=str(path),
            hint="save the whole answer of /api/dependencies (curl -o FILE ...)",
        ) from None


# ---------------------------------------------------------------------- Tempo / collector


def import_tempo(
    source: str,
    *,
    end: datetime,
    lookback_days: float = 7.0,
    token: str | None = None,
    timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
) -> list[ServiceRecord]:
    """The services and dependencies in the service-graph metrics of the `lookback_days`
    before `end`, from a Prometheus (or Mimir, Thanos...) base URL."""
    window = prometheus_duration(lookback_days)
    if not _is_url(source):
        raise UserError(
            f"tempo: {shown(source)} is not a URL",
            hint="give the base URL of the Prometheus the service-graph metrics are written to",
        )
    api = _PrometheusApi(
        "prometheus",
        source,
        token=token,
        token_variable=TOKEN_VARIABLES["tempo"],
        timeout_s=timeout_s,
        retry=retry or RetryPolicy(),
        sleep=sleep or time.sleep,
    )
    at = utc(end)
    requests = _query_edges(api, REQUESTS_METRIC, window, at)
    if requests is None:
        raise UserError(
            f"prometheus at {origin(source)}: no {REQUESTS_METRIC} series in the {window} "
            f"before {at.isoformat()}: Tempo's metrics-generator (service-graphs processor) "
            "or the OpenTelemetry collector's servicegraph connector is probably not enabled",
            hint="enable it and remote-write (Tempo) or export (collector) its metrics to this "
            "Prometheus; a collector exporter with a namespace prefixes the metric name",
        )
    failed = _query_edges(api, FAILED_METRIC, window, at) or []
    return _records_from_service_graph(requests, failed)


def prometheus_duration(lookback_days: float) -> str:
    """The lookback as a Prometheus range: whole days as `7d`, anything else in seconds."""
    seconds = _lookback_seconds(lookback_days)
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds}s"


def edge_query(metric: str, window: str) -> str:
    """Calls per edge over the window. `sum by` folds away every other label (the collector's
    `failed`, extra dimensions, instances); connection_type stays to tell messaging edges."""
    return f"sum by (client, server, connection_type) (increase({metric}[{window}]))"


class _PrometheusApi(JsonApi):
    """JsonApi that reads Prometheus' own error document on 400 and 422 (a bad query, one that
    cannot be executed), so the line says what Prometheus said rather than an excerpt."""

    def error_detail(self, response: Any) -> tuple[str, str | None]:
        if response.status_code in (400, 422):
            try:
                document = response.json()
            except ValueError:
                document = None
            if isinstance(document, dict) and document.get("status") == "error":
                return _prometheus_error(document), (
                    "check that this is a Prometheus query API (Mimir and Thanos serve it "
                    "under their own prefix)"
                )
        return super().error_detail(response)


def _prometheus_error(document: dict[str, Any]) -> str:
    kind = document.get("errorType")
    text = shown(document.get("error") or "no error text", 200)
    return f"{kind}: {text}" if kind else text


def _query_edges(
    api: JsonApi, metric: str, window: str, at: datetime
) -> list[tuple[str, str, str, float]] | None:
    """(client, server, connection_type, increase) of each usable series the query answers;
    None when it answers no series at all."""
    promql = edge_query(metric, window)
    seconds = at.timestamp()
    params = {"query": promql, "time": str(int(seconds)) if seconds.is_integer() else seconds}
    where = f"prometheus at {origin(api.base_url)}: query {promql!r} at {at.isoformat()}"
    answer = api.get("/api/v1/query", params)
    if not isinstance(answer, dict) or "status" not in answer:
        raise ApiError(f"{where}: not a Prometheus query answer", hint=_PROMETHEUS_HINT)
    if answer["status"] == "error":
        raise ApiError(f"{where}: {_prometheus_error(answer)}")
    if answer["status"] != "success":
        raise ApiError(f"{where}: status {shown(answer['status'])}", hint=_PROMETHEUS_HINT)
    if answer.get("warnings"):
        log.warning("%s: Prometheus warns: %s", where, _joined(answer["warnings"]))
    if answer.get("infos"):
        log.info("%s: Prometheus notes: %s", where, _joined(answer["infos"]))
    data = answer.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise ApiError(f"{where}: expected a vector, got {shown(kind)}", hint=_PROMETHEUS_HINT)
    result = data.get("result") or []
    return _vector_edges(result, where, metric) if result else None


_PROMETHEUS_HINT = "give the base URL of the Prometheus query API (…/api/v1/query answers)"


def _vector_edges(result: Any, where: str, metric: str) -> list[tuple[str, str, str, float]]:
    if not isinstance(result, list):
        raise ApiError(f"{where}: the result is not a list", hint=_PROMETHEUS_HINT)
    edges, unlabelled, unusable = [], 0, []
    for item in result:
        try:
            labels, (_, text) = item["metric"], item["value"]
            value = float(text)
            if not isinstance(labels, dict):
                raise TypeError(labels)
        except (KeyError, TypeError, ValueError):
            raise ApiError(f"{where}: a series is not {{metric, value}}: {shown(item)}") from None
        client, server = labels.get("client", ""), labels.get("server", "")
        if not client or not server:
            unlabelled += 1
        elif not math.isfinite(value) or value < 0:
            unusable.append(f"{client}->{server}={text}")
        else:
            edges.append((client, server, labels.get("connection_type", ""), value))
    if unlabelled:
        log.warning(
            "prometheus: %d %s series without a client or server label left out "
            "(not service-graph series)",
            unlabelled,
            metric,
        )
    if unusable:
        log.warning(
            "prometheus: %d %s series left out: the increase is not a count >= 0: %s",
            len(unusable),
            metric,
            _sample(unusable),
        )
    return edges


def _records_from_service_graph(
    requests: list[tuple[str, str, str, float]], failed: list[tuple[str, str, str, float]]
) -> list[ServiceRecord]:
    """Edges of whole calls (increase() extrapolates, so floats are summed per client and
    server first, then rounded); calls from `user` become the servers' outside requests."""
    calls: dict[tuple[str, str], float] = defaultdict(float)
    kinds: dict[tuple[str, str], set[str]] = defaultdict(set)
    for client, server, kind, value in requests:
        calls[client, server] += value
        kinds[client, server].add(kind)
    errors: dict[tuple[str, str], float] = defaultdict(float)
    for client, server, _, value in failed:
        errors[client, server] += value
    edges = [
        # A pair that is also called directly stays a hard dependency.
        _Edge(*key, _whole(calls[key]), _whole(errors.get(key, 0.0)), kinds[key] == {MESSAGING})
        for key in sorted(calls)
    ]
    kept, lone = _usable(edges, "prometheus")
    pairs = {(e.client, e.server) for e in kept}
    orphans = [f"{c}->{s}" for (c, s), n in sorted(errors.items()) if (c, s) not in pairs and n]
    if orphans:
        log.warning(
            "prometheus: failed calls of %d edges without calls in the lookback left out: %s",
            len(orphans),
            _sample(orphans),
        )
    entry = {e.server: e.calls for e in kept if e.client == USER_CLIENT}
    outside_failed = sum(e.errors or 0 for e in kept if e.client == USER_CLIENT)
    if outside_failed:
        log.info(
            "prometheus: %d failed calls from outside (client %r) have no caller record: "
            "they count in the servers' observed_requests only",
            outside_failed,
            USER_CLIENT,
        )
    inner = [e for e in kept if e.client != USER_CLIENT]
    if any(e.server == UNKNOWN_SERVER for e in inner):
        log.warning(
            "prometheus: calls to uninstrumented services without peer attributes are all "
            "counted under one service named %r (the collector's name); set peer.service on "
            "those client spans to tell them apart",
            UNKNOWN_SERVER,
        )
    return _records(inner, entry, lone - {USER_CLIENT}, "prometheus")


# ------------------------------------------------------------------------------- shared


def _sum_edges(edges: Iterable[_Edge]) -> list[_Edge]:
    """One edge per (client, server): a saved file or an old Jaeger may list a pair twice;
    Jaeger itself adds such duplicates up."""
    merged: dict[tuple[str, str], _Edge] = {}
    for edge in edges:
        key = (edge.client, edge.server)
        if key in merged:
            merged[key].calls += edge.calls
        else:
            merged[key] = dataclasses.replace(edge)
    return [merged[key] for key in sorted(merged)]


def _usable(edges: list[_Edge], source: str) -> tuple[list[_Edge], set[str]]:
    """The edges that are dependencies, and the services met only calling themselves. Left
    out, each kind counted on one line: names that are blank or hold `;` (the CSV's list
    separator), self-calls (a service calling itself is not a dependency; the service keeps
    its record), and edges without a whole call in the lookback (with the services seen only
    there: nothing says they still run)."""
    kept, bad, self_calls, zero = [], [], [], []
    for edge in edges:
        if any(not n.strip() or ";" in n for n in (edge.client, edge.server)):
            bad.append(f"{edge.client!r}->{edge.server!r}")
        elif edge.client == edge.server:
            self_calls.append(edge)
        elif edge.calls == 0:
            zero.append(edge)
        else:
            kept.append(edge)
    lone = {e.client for e in self_calls}
    if bad:
        log.warning(
            "%s: %d edges left out: a service name is blank or holds ';': %s",
            source,
            len(bad),
            _sample(bad),
        )
    if self_calls:
        log.warning(
            "%s: %d self-calls are not dependencies (%d calls left out): %s",
            source,
            len(self_calls),
            sum(e.calls for e in self_calls),
            _sample(f"{e.client}->{e.server} ({e.calls})" for e in self_calls),
        )
    if zero:
        met = lone | {n for e in kept for n in (e.client, e.server)}
        gone = sorted({n for e in zero for n in (e.client, e.server)} - met - {USER_CLIENT})
        log.warning(
            "%s: %d edges with no whole call in the lookback are not dependencies: %s%s",
            source,
            len(zero),
            _sample(f"{e.client}->{e.server}" for e in zero),
            f"; services seen only there are left out: {_sample(gone)}" if gone else "",
        )
    return kept, lone


def _records(
    edges: list[_Edge], entry_calls: dict[str, int], lone: set[str], source: str
) -> list[ServiceRecord]:
    """One record per service met. observed_requests: the calls a service received from
    other services and from outside (`entry_calls`); None when nothing was seen calling it
    (Jaeger does not record who called a root)."""
    records = {name: ServiceRecord(service=name) for name in lone}
    received: dict[str, int] = defaultdict(int)
    for server, count in entry_calls.items():
        records.setdefault(server, ServiceRecord(service=server)).user_facing = True
        received[server] += count
    for edge in edges:
        caller = records.setdefault(edge.client, ServiceRecord(service=edge.client))
        records.setdefault(edge.server, ServiceRecord(service=edge.server))
        (caller.soft_depends_on if edge.soft else caller.depends_on).append(edge.server)
        caller.observed_calls[edge.server] = edge.calls
        if edge.errors is not None:
            caller.observed_errors[edge.server] = edge.errors
        received[edge.server] += edge.calls
    for name, item in records.items():
        item.depends_on.sort()
        item.soft_depends_on.sort()
        item.observed_requests = received.get(name)
    if not records:
        raise UserError(
            f"{source}: every edge was left out (see the warnings above): no topology to write",
            hint="widen the lookback, or check that the services are traced",
        )
    log.info("%s: %d services, %d dependencies", source, len(records), len(edges))
    return [records[name] for name in sorted(records)]


def _lookback_seconds(lookback_days: float) -> int:
    try:
        seconds = round(float(lookback_days) * 86400)
    except (TypeError, ValueError):
        seconds = 0
    if not seconds >= 1:
        raise UserError(
            f"the lookback must be more than 0 days, not {shown(lookback_days)}",
            hint="e.g. 7 for a week of traces",
        )
    return seconds


def _is_url(source: str) -> bool:
    return str(source).lower().startswith(("http://", "https://"))


def _is_count(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, float) and value.is_integer() and value >= 0


def _whole(value: float) -> int:
    """Round half up: 2.5 extrapolated calls are 3 (Python's round() would say 2)."""
    return math.floor(value + 0.5)


def _joined(texts: Any) -> str:
    items = texts if isinstance(texts, list) else [texts]
    return shown("; ".join(str(t) for t in items), 300)


def _sample(items: Iterable[str], limit: int = 10) -> str:
    listed = list(items)
    more = f" and {len(listed) - limit} more" if len(listed) > limit else ""
    return ", ".join(shown(item) for item in listed[:limit]) + more
