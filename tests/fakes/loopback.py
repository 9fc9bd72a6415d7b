"""What the loopback API servers of the tests share: a threaded server that takes bursts of
concurrent clients, a quiet handler that answers JSON, a chat webhook, and an S3 endpoint that
refuses every request."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 refuses a burst of concurrent clients


class ServedApi:
    """A fake API on loopback, as the importers' tests use it: `_handler()` gives the request
    handler class, requests are recorded in `requests`, faults queued in `faults` (both under
    `_lock`); `tls` (a server context) serves HTTPS. Start it, use `url`, stop it."""

    tls: ssl.SSLContext | None = None

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = LoopbackServer(("127.0.0.1", 0), self._handler())
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Any:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class JSONHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, payload: Any, headers: dict | None = None) -> None:
        self._send_bytes(code, json.dumps(payload).encode(), headers)

    def _send_bytes(self, code: int, data: bytes, headers: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def chat_webhook() -> Iterator[tuple[str, list[dict]]]:
    """A chat incoming webhook on loopback: (its URL, the JSON bodies posted to it)."""
    posted: list[dict] = []

    class Hook(JSONHandler):
        def do_POST(self) -> None:
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self._send(200, {"ok": True})

    server = LoopbackServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", posted
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def s3_refusing(code: str, status: int = 403) -> Iterator[str]:
    """An S3 endpoint on loopback that answers every request with one S3 error (AccessDenied,
    InvalidAccessKeyId...), as a bucket whose policy or credentials refuse the caller: its
    URL."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>{code}</Message><RequestId>loopback</RequestId></Error>"
    ).encode()

    class Refusing(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _refuse(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _refuse

    server = LoopbackServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
