"""Topology from traces: Jaeger's dependency links (a loopback Jaeger and a saved answer) and
the service-graph metrics of Tempo / the OpenTelemetry collector in a REAL Prometheus
(backfilled series; skipped with a reason when the binaries are missing), plus a
fault-injecting fake of the Prometheus API for the failures."""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes.jaeger_server import jaeger_server
from fakes.prometheus import (
    Series,
    counter,
    expected_increase,
    minutes,
    prometheus_api_fake,
    prometheus_missing,
    real_prometheus,
    vector,
)
from whatif.errors import UserError
from whatif.importers.api import ApiError
from whatif.importers.common import ServiceRecord, topology_csv
from whatif.importers.traces import (
    FAILED_METRIC,
    REQUESTS_METRIC,
    edge_query,
    import_jaeger,
    import_tempo,
    prometheus_duration,
)
from whatif.llm import RetryPolicy

DATA = Path(__file__).resolve().parents[1] / "data" / "traces"
HOTROD = DATA / "jaeger_dependencies.json"
END = datetime(2025, 6, 2, tzinfo=UTC)
END_S = int(END.timestamp())
DAY = 86400
FAST = RetryPolicy(retries=2, base_s=0.01, cap_s=0.02)


def no_sleep(_: float) -> None:
    pass


def by_name(records: list[ServiceRecord]) -> dict[str, ServiceRecord]:
    return {r.service: r for r in records}


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name.startswith("whatif")
    ]


# ---------------------------------------------------------------------------------- Jaeger


def hotrod_links() -> list[dict]:
    return json.loads(HOTROD.read_text())["data"]


def test_jaeger_url_and_saved_answer_give_the_same_records(tmp_path):
    with jaeger_server(hotrod_links()) as jaeger:
        from_url = import_jaeger(jaeger.url, end=END, retry=FAST, sleep=no_sleep)
    from_file = import_jaeger(str(HOTROD), end=END)
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(hotrod_links()))  # a bare list of links is read as well
    assert from_url == from_file == import_jaeger(str(bare), end=END)
    assert [r.service for r in from_url] == [
        "customer", "driver", "frontend", "mysql", "redis", "route",
    ]  # fmt: skip
    assert topology_csv(from_url) == topology_csv(from_file)


def test_jaeger_parent_depends_on_child_with_its_call_counts():
    records = by_name(import_jaeger(str(HOTROD), end=END))
    frontend = records["frontend"]
    assert frontend.depends_on == ["customer", "driver", "route"]
    assert frontend.soft_depends_on == []
    assert frontend.observed_calls == {"customer": 100, "driver": 100, "route": 1000}
    assert records["customer"].depends_on == ["mysql"]
    assert records["driver"].depends_on == ["redis"]
    assert records["driver"].observed_calls == {"redis": 1386}
    assert records["mysql"].depends_on == records["redis"].depends_on == []
    # Requests received: the calls of the links where the service is the child; the root
    # (nothing calls it as far as Jaeger knows) has none recorded.
    assert records["frontend"].observed_requests is None
    assert records["route"].observed_requests == 1000
    assert records["redis"].observed_requests == 1386
    # Jaeger counts no errors; entry points are left for the topology contract to infer.
    assert all(r.observed_errors == {} for r in records.values())
    assert all(r.user_facing is None for r in records.values())


def test_jaeger_request_carries_the_window_and_the_token():
    with jaeger_server(hotrod_links(), token="jt-SECRET", prefix="/jaeger") as jaeger:
        import_jaeger(jaeger.url, end=END, token="jt-SECRET", sleep=no_sleep)
        import_jaeger(
            jaeger.url, end=END.replace(tzinfo=None), lookback_days=1.5, token="jt-SECRET"
        )
    first, second = jaeger.requests
    assert first["path"] == "/jaeger/api/dependencies"
    assert first["query"] == {"endTs": str(END_S * 1000), "lookback": str(7 * DAY * 1000)}
    assert first["headers"]["Authorization"] == "Bearer jt-SECRET"
    # A naive end is UTC, never the machine's zone.
    assert second["query"] == {"endTs": str(END_S * 1000), "lookback": str(129600 * 1000)}


def test_jaeger_self_links_zero_links_and_duplicates(caplog):
    links = [
        {"parent": "api", "child": "db", "callCount": 40},
        {"parent": "api", "child": "db", "callCount": 2},  # Jaeger adds duplicates up
        {"parent": "api", "child": "api", "callCount": 7},
        {"parent": "worker", "child": "worker", "callCount": 3},
        {"parent": "api", "child": "old-cache", "callCount": 0},
    ]
    with caplog.at_level(logging.INFO, logger="whatif"), jaeger_server(links) as jaeger:
        records = by_name(import_jaeger(jaeger.url, end=END, sleep=no_sleep))
    assert sorted(records) == ["api", "db", "worker"]  # worker only calls itself: kept
    assert records["api"].depends_on == ["db"]
    assert records["api"].observed_calls == {"db": 42}
    assert records["db"].observed_requests == 42
    assert records["api"].observed_requests is None  # its self-calls are not requests in
    assert records["worker"].depends_on == [] and records["worker"].observed_requests is None
    warned = warnings_of(caplog)
    assert len(warned) == 2, warned
    assert "2 self-calls are not dependencies (10 calls left out)" in warned[0]
    assert "api->api (7)" in warned[0] and "worker->worker (3)" in warned[0]
    assert "1 edges with no whole call in the lookback" in warned[1]
    assert "services seen only there are left out: old-cache" in warned[1]


def test_jaeger_retries_a_429_and_honours_retry_after():
    waits: list[float] = []
    with jaeger_server(hotrod_links()) as jaeger:
        jaeger.fail(429, headers={"Retry-After": "2"})
        records = import_jaeger(jaeger.url, end=END, retry=FAST, sleep=waits.append)
    assert len(records) == 6
    assert waits == [2.0]
    assert len(jaeger.requests) == 2


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("500", "HTTP 500 after 3 tries"),
        ("truncated", "the answer is not complete JSON"),
        ("401", "HTTP 401: no token was sent"),
    ],
)
def test_jaeger_faults_are_one_line_and_return_nothing(fault, expected):
    with jaeger_server(hotrod_links(), token="jt-SECRET") as jaeger:
        if fault == "500":
            jaeger.fail(500, times=None)
        elif fault == "truncated":
            jaeger.truncate(times=None)
        token = None if fault == "401" else "jt-SECRET"
        with pytest.raises(ApiError) as caught:
            import_jaeger(jaeger.url, end=END, token=token, retry=FAST, sleep=no_sleep)
    text = str(caught.value)
    assert expected in text
    assert "\n" not in text and text.startswith("jaeger: GET http://127.0.0.1:")
    assert "jt-SECRET" not in text
    if fault == "401":
        assert "$JAEGER_TOKEN" in text


def test_jaeger_errors_in_the_answer_and_empty_answers(tmp_path):
    answer = {"data": None, "errors": [{"code": 500, "msg": "cassandra: timeout"}]}
    saved = tmp_path / "errors.json"
    saved.write_text(json.dumps(answer))
    with pytest.raises(UserError, match="Jaeger answered errors: cassandra: timeout"):
        import_jaeger(str(saved), end=END)
    with jaeger_server([]) as jaeger, pytest.raises(UserError) as caught:
        import_jaeger(jaeger.url, end=END, sleep=no_sleep)
    assert "no dependency links" in str(caught.value)
    assert "spark-dependencies" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not JSON"),
        ('{"services": []}', 'no "data" field'),
        ('{"data": [{"parent": "a", "child": "b", "callCount": "12"}]}', "link 0 (a -> b)"),
        ('{"data": [{"parent": "a", "callCount": 3}]}', "link 0 has no parent or child"),
        ('{"data": {"parent": "a"}}', "data is dict"),
    ],
)
def test_jaeger_bad_saved_answers_name_the_file(tmp_path, content, expected):
    saved = tmp_path / "deps.json"
    saved.write_text(content)
    with pytest.raises(UserError) as caught:
        import_jaeger(str(saved), end=END)
    text = str(caught.value)
    assert text.startswith(str(saved)) and expected in text and "\n" not in text


def test_missing_file_and_bad_lookback_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        import_jaeger(str(tmp_path / "nope.json"), end=END)
    with pytest.raises(UserError, match="more than 0 days"):
        import_jaeger(str(HOTROD), end=END, lookback_days=0)
    with pytest.raises(UserError, match="not a URL"):
        import_tempo(str(HOTROD), end=END)


# ---------------------------------------------------- Tempo / collector in a real Prometheus

WINDOW_DAYS = 1
TIMES = minutes(END_S - 2 * DAY, END_S)  # a sample a minute for two days up to END


def _edge(name: str, client: str, server: str, kind: str | None, samples, **extra) -> Series:
    labels = {"client": client, "server": server, **extra}
    if kind:
        labels["connection_type"] = kind
    return Series(name, labels, samples)


def _with_reset(at: int) -> tuple[tuple[int, float], ...]:
    """frontend -> customer: the generator restarted at `at`, its counter began again at 0."""
    before = counter([t for t in TIMES if t < at], [1], first=5000)
    after = counter([t for t in TIMES if t >= at], [1], first=0)
    return before + after


def _flat_after(stop: int) -> tuple[tuple[int, float], ...]:
    """frontend -> legacy-pricing: calls until `stop`, none afterwards (a retired edge)."""
    rising = counter([t for t in TIMES if t <= stop], [1])
    last = rising[-1][1]
    return rising + tuple((t, last) for t in TIMES if t > stop)


def service_graph_series() -> list[Series]:
    """A HotROD-like shop as Tempo's metrics-generator and the collector write it."""
    req, failed = REQUESTS_METRIC, FAILED_METRIC
    promo_times = [t for t in TIMES if t >= END_S - 5 * 3600]  # deployed 5 h before END
    return [
        _edge(req, "user", "frontend", "virtual_node", counter(TIMES, [3, 4, 2])),
        _edge(failed, "user", "frontend", "virtual_node", counter(TIMES, [0, 0, 1])),
        _edge(req, "frontend", "customer", None, _with_reset(END_S - 6 * 3600)),
        _edge(failed, "frontend", "customer", None, counter(TIMES, [0] * 9 + [1])),
        # The collector's way: a `failed` label on the request series as well.
        _edge(req, "frontend", "driver", None, counter(TIMES, [1]), failed="false"),
        _edge(req, "frontend", "driver", None, counter(TIMES, [0, 0, 0, 0, 1]), failed="true"),
        _edge(failed, "frontend", "driver", None, counter(TIMES, [0, 0, 0, 0, 1]), failed="true"),
        _edge(req, "frontend", "route", None, counter(TIMES, [10])),
        _edge(req, "customer", "mysql", "database", counter(TIMES, [1])),
        _edge(req, "driver", "redis", "virtual_node", counter(TIMES, [11, 12, 13])),
        _edge(failed, "driver", "redis", "virtual_node", counter(TIMES, [0, 1, 1])),
        _edge(req, "frontend", "notifications", "messaging_system", counter(TIMES, [2])),
        # driver both publishes to notifications and calls it directly: stays hard.
        _edge(req, "driver", "notifications", "messaging_system", counter(TIMES, [1])),
        _edge(req, "driver", "notifications", None, counter(TIMES, [0, 1, 1])),
        _edge(req, "route", "route", None, counter(TIMES, [1])),  # a self-call
        _edge(req, "frontend", "legacy-pricing", None, _flat_after(END_S - 30 * 3600)),
        _edge(req, "frontend", "promo", None, counter(promo_times, [1, 2], first=3)),
    ]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    missing = prometheus_missing()
    if missing:
        pytest.skip(f"real Prometheus tests skipped: {missing}")
    series = service_graph_series()
    with real_prometheus(series, tmp_path_factory.mktemp("prometheus")) as server:
        print(
            f"prometheus {server.version}: backfill {server.backfill_s:.2f} s, "
            f"ready {server.startup_s:.2f} s after launch"
        )
        yield server, series


def _half_up(value: float) -> int:
    assert abs(value - math.floor(value) - 0.5) > 0.01, f"{value} is too close to .5 to test"
    return math.floor(value + 0.5)


def expected_counts(series: list[Series], metric: str, left_open: bool) -> dict[tuple, int]:
    """What the service graph says per (client, server), from the samples written: each
    series' increase() over the window at END, summed per pair, rounded."""
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for item in series:
        if item.name == metric:
            value = expected_increase(item.samples, END_S, WINDOW_DAYS * DAY, left_open)
            if value is not None:
                totals[item.labels["client"], item.labels["server"]] += value
    return {pair: _half_up(value) for pair, value in totals.items()}


def test_tempo_edges_and_counts_from_a_real_prometheus(prometheus, caplog):
    server, series = prometheus
    with caplog.at_level(logging.INFO, logger="whatif"):
        records = by_name(
            import_tempo(server.url, end=END, lookback_days=WINDOW_DAYS, sleep=no_sleep)
        )
    calls = expected_counts(series, REQUESTS_METRIC, server.left_open)
    errors = expected_counts(series, FAILED_METRIC, server.left_open)
    assert calls["frontend", "legacy-pricing"] == 0  # the retired edge, by construction
    assert calls["frontend", "promo"] > 0  # extrapolated from its first samples
    assert sorted(records) == [
        "customer",
        "driver",
        "frontend",
        "mysql",
        "notifications",
        "promo",
        "redis",
        "route",
    ]  # fmt: skip  (no "user", no legacy-pricing)

    frontend = records["frontend"]
    assert frontend.depends_on == ["customer", "driver", "promo", "route"]
    assert frontend.soft_depends_on == ["notifications"]  # through a queue only
    assert records["driver"].depends_on == ["notifications", "redis"]
    assert records["driver"].soft_depends_on == []
    assert records["customer"].depends_on == ["mysql"]
    assert records["route"].depends_on == []  # its self-calls are not a dependency
    for record in records.values():
        for dependency in record.dependencies():
            assert record.observed_calls[dependency] == calls[record.service, dependency]
            assert record.observed_errors[dependency] == errors.get((record.service, dependency), 0)
    assert frontend.observed_errors["customer"] > 0 and frontend.observed_errors["route"] == 0
    # Calls from outside (`user`) count in the server's requests and make it user-facing.
    assert frontend.user_facing is True
    assert frontend.observed_requests == calls["user", "frontend"]
    assert all(r.user_facing is None for n, r in records.items() if n != "frontend")
    assert records["notifications"].observed_requests == (
        calls["frontend", "notifications"] + calls["driver", "notifications"]
    )
    assert records["driver"].observed_requests == calls["frontend", "driver"]

    warned = warnings_of(caplog)
    assert any("1 self-calls are not dependencies" in w and "route->route" in w for w in warned)
    assert any(
        "1 edges with no whole call" in w and "left out: legacy-pricing" in w for w in warned
    ), warned


def test_tempo_counter_reset_is_counted_not_lost(prometheus):
    server, _ = prometheus
    records = by_name(import_tempo(server.url, end=END, lookback_days=WINDOW_DAYS))
    # 18 h of one call a minute before the restart and 6 h after: a day's worth either way.
    assert records["frontend"].observed_calls["customer"] == pytest.approx(24 * 60, abs=2)


def test_tempo_without_service_graph_series_names_the_metric(prometheus):
    server, _ = prometheus
    with pytest.raises(UserError) as caught:
        import_tempo(server.url, end=END + timedelta(days=30), lookback_days=1)
    text = str(caught.value)
    assert REQUESTS_METRIC in text and "metrics-generator" in text and "servicegraph" in text
    assert "\n" not in text


# ------------------------------------------------------------ the Prometheus API, faulted


def _answer(*items: tuple[str, str, str | None, float], **extra) -> dict:
    edges = []
    for client, server, kind, value in items:
        labels = {"client": client, "server": server}
        if kind:
            labels["connection_type"] = kind
        edges.append((labels, value))
    return vector(*edges, **extra)


def test_tempo_queries_as_documented_with_the_token():
    ok = _answer(("user", "web", "virtual_node", 10.4), ("web", "db", "database", 4.6))
    with prometheus_api_fake([(200, ok, {}), (200, _answer(), {})]) as fake:
        records = by_name(import_tempo(fake.url, end=END, token="pt-SECRET", sleep=no_sleep))
    first, second = fake.requests
    assert first["path"] == second["path"] == "/api/v1/query"
    assert first["query"] == {"query": edge_query(REQUESTS_METRIC, "7d"), "time": str(END_S)}
    assert second["query"]["query"] == edge_query(FAILED_METRIC, "7d")
    assert first["query"]["query"] == (
        "sum by (client, server, connection_type) "
        "(increase(traces_service_graph_request_total[7d]))"
    )
    assert first["headers"]["Authorization"] == "Bearer pt-SECRET"
    assert records["web"].observed_requests == 10 and records["web"].user_facing is True
    assert records["web"].observed_calls == {"db": 5}  # 4.6 rounds to 5
    assert records["web"].observed_errors == {"db": 0}  # counted: none failed
    assert records["db"].observed_requests == 5


def test_prometheus_durations():
    assert prometheus_duration(7) == "7d"
    assert prometheus_duration(1.5) == "129600s"
    assert prometheus_duration(1 / 24) == "3600s"
    with pytest.raises(UserError):
        prometheus_duration(-1)


def test_tempo_warnings_in_the_answer_are_logged(caplog):
    ok = _answer(("web", "db", None, 3.0), warnings=["PromQL info: some series dropped"])
    with prometheus_api_fake([(200, ok, {})]) as fake, caplog.at_level(logging.INFO):
        records = import_tempo(fake.url, end=END, sleep=no_sleep)
    assert [r.service for r in records] == ["db", "web"]
    assert any(
        "Prometheus warns: PromQL info: some series dropped" in w for w in warnings_of(caplog)
    )


def _error(kind: str, text: str) -> dict:
    return {"status": "error", "errorType": kind, "error": text}


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([(422, _error("execution", "query processing would load too many samples"), {})],
         "HTTP 422: execution: query processing would load too many samples"),
        ([(400, _error("bad_data", 'invalid parameter "query"'), {})],
         'HTTP 400: bad_data: invalid parameter "query"'),
        ([(200, _error("internal", "store gateway unreachable"), {})],
         "internal: store gateway unreachable"),
        ([(500, b"internal error", {})], "HTTP 500 after 3 tries"),
        ([(200, b'{"status":"success","data":{"resultType":"vec', {})],
         "the answer is not complete JSON"),
        ([(401, b"Unauthorized", {})], "HTTP 401: no token was sent (set $PROMETHEUS_TOKEN"),
        ([(200, {"status": "success", "data": {"resultType": "matrix", "result": []}}, {})],
         "expected a vector, got matrix"),
        ([(200, _answer(("a", "b", None, 1)), {}), (503, b"overloaded", {})],
         "HTTP 503 after 3 tries"),  # the second query failing fails the whole import
    ],
)  # fmt: skip
def test_tempo_faults_are_one_line_and_return_nothing(answers, expected):
    with prometheus_api_fake(answers) as fake, pytest.raises(ApiError) as caught:
        import_tempo(fake.url, end=END, retry=FAST, sleep=no_sleep)
    text = str(caught.value)
    assert expected in text, text
    assert "\n" not in text and text.startswith("prometheus")


def test_tempo_unusable_series_are_counted(caplog):
    ok = _answer(("web", "db", None, 3.0), ("", "db", None, 2.0), ("web", "cache", None, math.nan))
    failed = _answer(("web", "gone", None, 2.0))
    with (
        prometheus_api_fake([(200, ok, {}), (200, failed, {})]) as fake,
        caplog.at_level(logging.WARNING),
    ):
        records = by_name(import_tempo(fake.url, end=END, sleep=no_sleep))
    assert sorted(records) == ["db", "web"]
    warned = warnings_of(caplog)
    assert len(warned) == 3, warned
    assert "1 traces_service_graph_request_total series without a client or server" in warned[0]
    assert "the increase is not a count >= 0: web->cache=NaN" in warned[1]
    assert "failed calls of 1 edges without calls in the lookback left out: web->gone" in warned[2]


def test_nothing_left_is_an_error_not_an_empty_topology(tmp_path, caplog):
    saved = tmp_path / "idle.json"
    saved.write_text(json.dumps([{"parent": "api", "child": "db", "callCount": 0}]))
    with pytest.raises(UserError, match="jaeger: every edge was left out"):
        import_jaeger(str(saved), end=END)
    retired = _answer(("web", "db", None, 0.2))
    with (
        prometheus_api_fake([(200, retired, {}), (200, _answer(), {})]) as fake,
        pytest.raises(UserError, match="prometheus: every edge was left out"),
    ):
        import_tempo(fake.url, end=END, sleep=no_sleep)
    assert any("web->db" in w for w in warnings_of(caplog))
