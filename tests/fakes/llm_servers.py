"""A loopback LLM server for tests and benchmarks: Ollama's /api/chat and the OpenAI
chat-completions API (/v1/chat/completions), with faults on demand.

Each request takes the next scripted action (`script`), else the default one: answer with
`responder(prompt_document)` as the message content after `latency` seconds. Actions:
("answer", content) · ("status", code, headers, body) · ("hang", seconds) · ("raw", bytes).
Every request is recorded (path, headers, body), and so is the most requests in flight at
once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from fakes.loopback import JSONHandler, LoopbackServer

Responder = Callable[[dict[str, Any]], str]


def grounded_answer(document: dict[str, Any]) -> str:
    """A valid, grounded tabletop pack built only from the prompt's own names and numbers,
    as a well-behaved model would write it."""
    scenario = document["scenario"]
    service = scenario["trigger"]["service"]
    mode = scenario["trigger"]["failure_mode"]
    others = [s for s in scenario["affected_services"] if s != service][:3]
    owner = document["services"].get(service, {}).get("owner_team")
    role = f"{owner} on-call" if owner else "Incident commander"
    pack = {
        "title": f"What if {service} fails ({mode})?",
        "narrative": (
            f"There is a {scenario['probability_percent']}% chance that {service} fails "
            f"within {document['horizon_days']:g} days"
            + (f"; it spreads to {', '.join(others)}." if others else ".")
        ),
        "injects": [
            {"minute": 0, "event": f"{service} fails.", "observed": "No alert yet."},
            {"minute": 5, "event": "Alerts fire.", "observed": f"{role} is paged."},
        ],
        "predicted_impact": f"A {scenario['most_likely_severity']} incident.",
        "detection_signals": [f"Error rate of {service} rises."],
        "mitigations": {
            "immediate": [f"Follow the {service} runbook."],
            "short_term": ["Rehearse the failover."],
            "long_term": ["Remove the single point of failure."],
        },
        "checklist": [{"role": role, "action": f"Confirm the {service} failure."}],
        "facilitator_questions": [f"How would we know that {service} is failing?"],
    }
    return json.dumps(pack)


class LLMServer:
    def __init__(
        self,
        responder: Responder = grounded_answer,
        latency: float = 0.0,
        json_schema_supported: bool = True,
        unsupported_status: int = 400,
    ) -> None:
        self.responder = responder
        self.latency = latency
        self.json_schema_supported = json_schema_supported
        self.unsupported_status = unsupported_status  # llama-cpp-python's server: 500
        self.script: deque[tuple] = deque()
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        self._server = LoopbackServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith(("/chat", "/chat/completions"))]

    def _next_action(self) -> tuple:
        with self._lock:
            return self.script.popleft() if self.script else ("default",)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "test-model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                with server._lock:
                    server.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                try:
                    self._answer(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, body: dict[str, Any]) -> None:
                action = server._next_action()
                kind = action[0]
                if kind == "hang":
                    time.sleep(action[1])
                    return
                if kind == "status":
                    _, code, headers, payload = action
                    self._send(code, payload, headers)
                    return
                if kind == "raw":
                    self._send_bytes(200, action[1])
                    return
                fmt = body.get("response_format") or {}
                if fmt.get("type") == "json_schema" and not server.json_schema_supported:
                    self._send(
                        server.unsupported_status,
                        {"error": {"message": "response_format type json_schema unsupported"}},
                    )
                    return
                if server.latency:
                    time.sleep(server.latency)
                if kind == "answer":
                    content = action[1]
                else:
                    document = json.loads(body["messages"][1]["content"])
                    content = server.responder(document)
                self._send(200, self._wrap(body, content))

            def _wrap(self, body: dict[str, Any], content: str) -> dict[str, Any]:
                if self.path == "/api/chat":
                    return {
                        "model": body["model"],
                        "created_at": "2026-11-26T00:00:00Z",
                        "message": {"role": "assistant", "content": content},
                        "done": True,
                        "prompt_eval_count": 120,
                        "eval_count": 80,
                    }
                return {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": content},
                        }
                    ],
                    "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
                }

        return Handler


@contextmanager
def llm_server(**options: Any) -> Iterator[LLMServer]:
    server = LLMServer(**options).start()
    try:
        yield server
    finally:
        server.stop()
