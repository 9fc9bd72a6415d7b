"""Prometheus for tests: a REAL Prometheus server holding service-graph series, and a small
fault-injecting fake of its query API for the error cases.

The real one (`real_prometheus`): the series are written as OpenMetrics text, backfilled into
a TSDB with `promtool tsdb create-blocks-from openmetrics`, and served by `prometheus` with a
configuration that scrapes nothing, on a free loopback port, in a temporary folder; it is
stopped on exit. Without the binaries (Debian's `prometheus` package; see
scripts/ensure-prometheus.sh) `prometheus_missing()` says why, for a pytest skip.

`expected_increase` is PromQL's increase() (promql/functions.go extrapolatedRate) written out,
so a test derives the exact answer from the samples it wrote instead of hard-coding one:
counter resets are added back; the result is extrapolated towards the window's edges when
the first/last sample is within 1.1 average sample intervals of them (else by half an
interval), and never below the counter's zero point. Prometheus 2 selects samples in the
closed window [t - range, t]; Prometheus 3 in (t - range, t] (`left_open`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.loopback import JSONHandler, ServedApi


@dataclasses.dataclass(frozen=True)
class Series:
    """One counter series: its metric name (with `_total`), labels and (unix s, value)."""

    name: str
    labels: dict[str, str]
    samples: tuple[tuple[int, float], ...]


def prometheus_missing() -> str | None:
    """Why the real-Prometheus tests cannot run here, or None when they can."""
    missing = [name for name in ("prometheus", "promtool") if not shutil.which(name)]
    if missing:
        return (
            f"{' and '.join(missing)} not installed (Debian's prometheus package; "
            "run scripts/ensure-prometheus.sh as root)"
        )
    return None


def prometheus_version() -> tuple[int, int]:
    """(major, minor) of the installed prometheus binary."""
    text = subprocess.run(
        ["prometheus", "--version"], capture_output=True, text=True, check=True, timeout=30
    )
    found = re.search(r"version (\d+)\.(\d+)", text.stdout + text.stderr)
    if not found:
        raise RuntimeError(f"cannot read the version of prometheus: {text.stdout!r}")
    return int(found[1]), int(found[2])


def openmetrics(series: Sequence[Series]) -> str:
    """The series as an OpenMetrics exposition with timestamps: one family block per metric
    (`foo_total` samples of a counter family `foo`), series after series, `# EOF` last."""
    families: dict[str, list[Series]] = {}
    for item in series:
        if not item.name.endswith("_total"):
            raise ValueError(f"{item.name}: counters only here")
        families.setdefault(item.name.removesuffix("_total"), []).append(item)
    lines = []
    for family, members in families.items():
        lines.append(f"# TYPE {family} counter")
        for item in members:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(item.labels.items()))
            for stamp, value in item.samples:
                lines.append(f"{item.name}{{{labels}}} {value:g} {stamp}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def expected_increase(
    samples: Sequence[tuple[int, float]], at: int, window_s: int, left_open: bool
) -> float | None:
    """What `increase(series[window_s])` evaluated at `at` answers (None: no answer, fewer
    than two samples in the window)."""
    start = at - window_s
    inside = [(t, v) for t, v in samples if (t > start if left_open else t >= start) and t <= at]
    if len(inside) < 2:
        return None
    result = inside[-1][1] - inside[0][1]
    previous = 0.0
    for _, value in inside:
        if value < previous:  # a counter reset: what it had counted before counts too
            result += previous
        previous = value
    to_start = inside[0][0] - start
    to_end = at - inside[-1][0]
    sampled = inside[-1][0] - inside[0][0]
    average = sampled / (len(inside) - 1)
    if result > 0 and inside[0][1] >= 0:
        to_start = min(to_start, sampled * (inside[0][1] / result))  # the counter's zero
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return result * (interval / sampled)


@dataclasses.dataclass
class RealPrometheus:
    url: str
    version: tuple[int, int]
    startup_s: float  # from launching the process to /-/ready answering 200
    backfill_s: float  # promtool writing the blocks

    @property
    def left_open(self) -> bool:
        """Prometheus 3 leaves the sample at exactly t - range out of a range selector."""
        return self.version[0] >= 3


@contextmanager
def real_prometheus(
    series: Sequence[Series], folder: Path, ready_within_s: float = 60.0
) -> Iterator[RealPrometheus]:
    """A Prometheus server holding `series` (backfilled), on loopback, until the block
    exits. `folder` receives the data, the configuration and prometheus.log."""
    folder.mkdir(parents=True, exist_ok=True)
    source, data = folder / "series.om", folder / "data"
    source.write_text(openmetrics(series), encoding="utf-8")
    started = time.monotonic()
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    backfill_s = time.monotonic() - started
    started = time.monotonic()
    with serving(folder, data, ready_within_s) as (url, _process):
        yield RealPrometheus(
            url, prometheus_version(), time.monotonic() - started, backfill_s=backfill_s
        )


@contextmanager
def serving(
    folder: Path, data: Path, ready_within_s: float = 60.0
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Prometheus serving the TSDB in `data` on a free loopback port, with no scrape target
    (so nothing but the backfilled series), until the block exits: (its URL, the process).
    `folder` receives the configuration and prometheus.log."""
    config = folder / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n", encoding="utf-8")
    port = _free_port()
    log_path = folder / "prometheus.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                "--storage.tsdb.retention.time=10y",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=folder,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process, log_path, ready_within_s)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _wait_ready(url: str, process: subprocess.Popen, log_path: Path, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}: {_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"prometheus not ready within {within_s:g} s: {_tail(log_path)}")


def _tail(path: Path, lines: int = 5) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return " | ".join(text[-lines:])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def minutes(start: int, end: int, step: int = 60) -> list[int]:
    """Sample times from `start` to `end` inclusive, every `step` seconds."""
    return list(range(start, end + 1, step))


def counter(
    times: Sequence[int], increments: Sequence[float], first: float = 0.0
) -> tuple[tuple[int, float], ...]:
    """A counter's samples at `times`: `first`, then the increments added in turn (cycled)."""
    value, samples = first, []
    for index, stamp in enumerate(times):
        if index:
            value += increments[(index - 1) % len(increments)]
        samples.append((stamp, float(value)))
    return tuple(samples)


# ------------------------------------------------------------------ the fault-injecting fake


class PrometheusApiFake(ServedApi):
    """A loopback stand-in for the query API that answers from a script: each request gets
    the next (status, body, headers) of `answers` (the last one repeats). A dict body is sent
    as JSON, bytes as they are (truncated JSON, an HTML error page). Requests are recorded
    (path, query, headers)."""

    def __init__(self, answers: list[tuple[int, Any, dict[str, str]]]) -> None:
        self.answers = answers
        super().__init__()

    def _handler(self) -> type[JSONHandler]:
        fake = self

        class Handler(JSONHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with fake._lock:
                    index = min(len(fake.requests), len(fake.answers) - 1)
                    fake.requests.append(
                        {
                            "path": parts.path,
                            "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                            "headers": dict(self.headers),
                        }
                    )
                status, body, headers = fake.answers[index]
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self._send_bytes(status, data, headers)

        return Handler


@contextmanager
def prometheus_api_fake(
    answers: list[tuple[int, Any, dict[str, str]]],
) -> Iterator[PrometheusApiFake]:
    fake = PrometheusApiFake(answers)
    fake._thread.start()
    try:
        yield fake
    finally:
        fake._server.shutdown()
        fake._server.server_close()


def vector(*edges: tuple[dict[str, str], float], **extra: Any) -> dict[str, Any]:
    """A successful instant-query answer holding these (labels, value) samples."""
    result = [{"metric": labels, "value": [1748822400, _number(v)]} for labels, v in edges]
    return {"status": "success", "data": {"resultType": "vector", "result": result}, **extra}


def _number(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:g}"
