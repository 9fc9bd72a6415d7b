"""A loopback Jaeger query service for tests: `GET {prefix}/api/dependencies?endTs=&lookback=`
answering `{"data": [links], "total": 0, "limit": 0, "offset": 0, "errors": null}` as Jaeger's
HTTP handler does (cmd/query/app/http_handler.go: endTs in epoch milliseconds is required,
an unparsable one is a 400 with Jaeger's error document; lookback in milliseconds, 24 h when
absent).

Optional bearer token (anything else: 401, as an authenticating proxy in front of Jaeger
would answer). Faults on demand: `fail(status, times, headers)` answers the next `times`
requests with `status` (e.g. one 429 with Retry-After, or a 500 forever with times=None);
`truncate(times)` cuts the next answers' JSON in half. Every request is recorded (path,
query, headers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.loopback import JSONHandler, ServedApi


class JaegerServer(ServedApi):
    def __init__(
        self, links: list[dict[str, Any]], token: str | None = None, prefix: str = ""
    ) -> None:
        self.links = links
        self.token = token
        self.prefix = prefix.rstrip("/")
        super().__init__()

    @property
    def url(self) -> str:
        """What a user configures: the query service's base URL."""
        return super().url + self.prefix

    def fail(
        self, status: int, times: int | None = 1, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next `times` requests (None: all of them) with `status`."""
        with self._lock:
            self.faults.append(
                {"status": status, "times": times, "headers": headers or {}, "truncate": False}
            )

    def truncate(self, times: int | None = 1) -> None:
        """Send only the first half of the next `times` answers (a dropped connection)."""
        with self._lock:
            self.faults.append({"status": 200, "times": times, "headers": {}, "truncate": True})

    def _take_fault(self) -> dict[str, Any] | None:
        with self._lock:
            for fault in self.faults:
                if fault["times"] is None or fault["times"] > 0:
                    if fault["times"] is not None:
                        fault["times"] -= 1
                    return fault
        return None

    def _handler(self) -> type[JSONHandler]:
        server = self

        class Handler(JSONHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with server._lock:
                    server.requests.append(
                        {"path": parts.path, "query": query, "headers": dict(self.headers)}
                    )
                fault = server._take_fault()
                if fault and not fault["truncate"]:
                    self._error(fault["status"], f"injected HTTP {fault['status']}", fault)
                    return
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    self._send_bytes(401, b"Unauthorized\n", {"WWW-Authenticate": "Bearer"})
                    return
                if parts.path != f"{server.prefix}/api/dependencies":
                    self._send_bytes(404, b"404 page not found\n")
                    return
                problem = _bad_params(query)
                if problem:
                    self._error(400, problem)
                    return
                body = json.dumps(
                    {"data": server.links, "total": 0, "limit": 0, "offset": 0, "errors": None}
                ).encode()
                if fault:  # truncate
                    body = body[: len(body) // 2]
                self._send_bytes(200, body)

            def _error(self, status: int, message: str, fault: dict | None = None) -> None:
                document = {
                    "data": None,
                    "total": 0,
                    "limit": 0,
                    "offset": 0,
                    "errors": [{"code": status, "msg": message}],
                }
                self._send(status, document, (fault or {}).get("headers"))

        return Handler


def _bad_params(query: dict[str, str]) -> str | None:
    """Jaeger's own checks: endTs must parse as an integer; lookback, when given, too."""
    for name in ("endTs", "lookback"):
        value = query.get(name)
        if value is None and name == "lookback":
            continue
        try:
            int(value or "")
        except ValueError:
            return f'unable to parse {name}: strconv.ParseInt: parsing "{value or ""}"'
    return None


@contextmanager
def jaeger_server(links: list[dict[str, Any]], **options: Any) -> Iterator[JaegerServer]:
    server = JaegerServer(links, **options).start()
    try:
        yield server
    finally:
        server.stop()
