"""Talking to an LLM server: Ollama's /api/chat and any OpenAI-compatible chat-completions
server (OpenAI, Azure OpenAI, vLLM, llama.cpp's server, LM Studio), with what an unattended
weekly run needs around them:

- a timeout per call, retries of transient failures (timeouts, refused connections, 429, 5xx)
  with exponential backoff and full jitter, `Retry-After` honoured on 429 and 503;
- a circuit breaker: after `breaker_threshold` consecutive failed calls (each after its
  retries) no more calls are made for the rest of the run; its state can live in a file of
  the run's work folder, so that mapped Airflow tasks in other processes see it too;
- a response cache keyed by (provider, model, messages, schema version): a retried task or a
  re-run of the same DAG run makes no call again;
- the API key is sent in a header and nowhere else: not in errors, logs, cache keys or files.

The narrator (whatif.narrate) decides what to ask and checks what comes back; this module only
moves JSON text to and from the server.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from whatif.errors import UserError

log = logging.getLogger(__name__)

PROVIDERS = ("ollama", "openai")
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
RETRY_AFTER_STATUS = {429, 503}


class LLMError(Exception):
    """A call that failed for good (after its retries); `reason` is short and safe to show;
    `calls` and `latency_s` say what the failed attempts cost."""

    def __init__(self, reason: str, calls: int = 0, latency_s: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.calls = calls
        self.latency_s = latency_s


@dataclasses.dataclass(frozen=True)
class Completion:
    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0  # of the calls made for it (0 from the cache)
    calls: int = 0  # HTTP calls made, retries included (0 from the cache)
    cached: bool = False


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # after the first call
    base_s: float = 1.0  # backoff: full jitter in [0, min(cap, base * 2^k)]
    cap_s: float = 30.0
    max_retry_after_s: float = 120.0  # a longer Retry-After gives up instead of waiting

    def wait(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds before try `attempt + 1`: the server's Retry-After when it gave one, else
        full jitter; None: do not retry (a Retry-After longer than the limit)."""
        if retry_after is not None:
            return None if retry_after > self.max_retry_after_s else retry_after
        return random.uniform(0.0, min(self.cap_s, self.base_s * 2**attempt))


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; a success closes the count again.

    With `state` (a local JSON file or an object-storage URL), the count is read before each
    decision and written after each outcome, so separate processes (mapped tasks) share it;
    concurrent writers may lose an increment, which only delays the opening a little."""

    def __init__(self, threshold: int = 3, state: str | None = None) -> None:
        self.threshold = max(1, threshold)
        self.state = state
        self._lock = threading.Lock()
        self._failures = 0
        self._reason: str | None = None

    @property
    def is_open(self) -> bool:
        with self._lock:
            self._load()
            return self._failures >= self.threshold

    @property
    def reason(self) -> str | None:
        return self._reason

    def success(self) -> None:
        with self._lock:
            self._failures, self._reason = 0, None
            self._save()

    def failure(self, reason: str) -> None:
        with self._lock:
            self._load()
            self._failures += 1
            self._reason = reason
            if self._failures == self.threshold:
                log.warning(
                    "LLM circuit breaker opened after %d consecutive failures (last: %s): "
                    "the remaining scenarios use the template narrator",
                    self._failures,
                    reason,
                )
            self._save()

    def _load(self) -> None:
        if self.state:
            raw = _read_text(self.state)
            if raw:
                data = json.loads(raw)
                self._failures, self._reason = int(data["failures"]), data.get("reason")

    def _save(self) -> None:
        if self.state:
            _write_text(
                self.state, json.dumps({"failures": self._failures, "reason": self._reason})
            )


class ResponseCache:
    """Answers by key, one JSON file each, in a local folder or under an object-storage URL
    (ObjectStoragePath; connection `conn_id`). None: no cache."""

    def __init__(self, location: str | None, conn_id: str | None = None) -> None:
        self.location = location.rstrip("/") if location else None
        self.conn_id = conn_id

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.location:
            return None
        raw = _read_text(f"{self.location}/{key}.json", self.conn_id)
        return json.loads(raw) if raw else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.location:
            _write_text(f"{self.location}/{key}.json", json.dumps(value), self.conn_id)


def cache_key(provider: str, model: str, messages: list[dict], schema_version: int) -> str:
    """What identifies an answer: never the URL's credentials or the API key."""
    text = json.dumps(
        {"provider": provider, "model": model, "messages": messages, "schema": schema_version},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclasses.dataclass
class ChatClient:
    """One LLM server. `complete` returns the JSON text of one chat answer."""

    provider: str
    url: str
    model: str
    api_key: str | None = dataclasses.field(default=None, repr=False)
    timeout_s: float = 60.0
    temperature: float = 0.0
    seed: int = 42
    num_ctx: int = 8192
    # A pack is 1,000-2,500 tokens; a model that repeats itself would otherwise write until the
    # context is full (minutes on a CPU) and leave no room for the correction's answer.
    max_answer_tokens: int = 3072
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    breaker: CircuitBreaker = dataclasses.field(default_factory=CircuitBreaker)
    cache: ResponseCache = dataclasses.field(default_factory=lambda: ResponseCache(None))
    sleep: Callable[[float], None] = time.sleep
    _json_object_only: bool = dataclasses.field(default=False, init=False, repr=False)
    _local: threading.local = dataclasses.field(
        default_factory=threading.local, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise UserError(
                f"LLM provider {self.provider!r} is not known", hint=f"use {' or '.join(PROVIDERS)}"
            )
        self.url = self.url.rstrip("/")

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}"

    def complete(
        self, messages: list[dict], schema: dict[str, Any], schema_version: int
    ) -> Completion:
        key = cache_key(self.provider, self.model, messages, schema_version)
        hit = self.cache.get(key)
        if hit is not None:
            return Completion(
                hit["content"], hit.get("prompt_tokens", 0), hit.get("completion_tokens", 0),
                cached=True,
            )  # fmt: skip
        if self.breaker.is_open:
            raise LLMError("circuit open")
        began, posted = time.perf_counter(), self._posts()
        for attempt in range(self.retry.retries + 1):
            try:
                content, usage = self._call(messages, schema)
            except _Transient as problem:
                wait = self.retry.wait(attempt, problem.retry_after)
                if attempt == self.retry.retries or wait is None:
                    self.breaker.failure(problem.reason)
                    raise LLMError(
                        problem.reason, self._posts() - posted, time.perf_counter() - began
                    ) from None
                log.info("%s: %s; retrying in %.1f s", self.name, problem.reason, wait)
                self.sleep(wait)
                continue
            except LLMError as error:
                self.breaker.failure(error.reason)
                raise LLMError(
                    error.reason, self._posts() - posted, time.perf_counter() - began
                ) from None
            self.breaker.success()
            completion = Completion(
                content, usage[0], usage[1], time.perf_counter() - began,
                self._posts() - posted,
            )  # fmt: skip
            self.cache.put(
                key,
                {"content": content, "prompt_tokens": usage[0], "completion_tokens": usage[1]},
            )
            return completion
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ the HTTP call

    def _posts(self) -> int:
        """HTTP requests this thread has sent (what a completion's `calls` counts)."""
        return getattr(self._local, "posts", 0)

    def _session(self) -> Any:
        import requests

        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _call(self, messages: list[dict], schema: dict[str, Any]) -> tuple[str, tuple[int, int]]:
        if self.provider == "ollama":
            body = {
                "model": self.model,
                "messages": messages,
                "stream": False,
                "format": schema,
                "options": {
                    "temperature": self.temperature,
                    "seed": self.seed,
                    "num_ctx": self.num_ctx,
                    "num_predict": self.max_answer_tokens,
                },
            }
            data = self._post(f"{_ollama_base(self.url)}/api/chat", body)
            try:
                content = data["message"]["content"]
            except (KeyError, TypeError):
                raise LLMError("malformed answer: no message.content") from None
            return content, (int(data.get("prompt_eval_count", 0)), int(data.get("eval_count", 0)))
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "seed": self.seed,
            "max_tokens": self.max_answer_tokens,
            "response_format": self._response_format(schema),
        }
        url = self.url if self.url.endswith("/chat/completions") else f"{self.url}/chat/completions"
        try:
            data = self._post(url, body)
        except _Unsupported:
            self._json_object_only = True  # this server knows json_object, not json_schema
            body["response_format"] = self._response_format(schema)
            data = self._post(url, body)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LLMError("malformed answer: no choices[0].message.content") from None
        usage = data.get("usage") or {}
        return content, (int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self._json_object_only:  # llama.cpp's server reads the schema from here
            return {"type": "json_object", "schema": schema}
        return {
            "type": "json_schema",
            "json_schema": {"name": "tabletop_pack", "schema": schema, "strict": True},
        }

    def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        import requests

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
            headers["api-key"] = self.api_key  # Azure OpenAI's header
        self._local.posts = self._posts() + 1
        try:
            response = self._session().post(
                url, json=body, headers=headers, timeout=(min(10.0, self.timeout_s), self.timeout_s)
            )
        except requests.Timeout:
            raise _Transient(f"timeout after {self.timeout_s:g} s") from None
        except requests.ConnectionError:
            raise _Transient(f"cannot connect to {_origin(url)}") from None
        status = response.status_code
        # llama.cpp's server (llama-cpp-python) answers json_schema with a 500 naming it.
        if status in (400, 422, 500) and _unsupported_format(response.text, body):
            raise _Unsupported()
        if status in TRANSIENT_STATUS:
            after = retry_after_seconds(response.headers.get("Retry-After"))
            raise _Transient(
                f"HTTP {status}", retry_after=after if status in RETRY_AFTER_STATUS else None
            )
        if status in (401, 403):
            raise LLMError(f"HTTP {status}: the server refused the credentials (check the API key)")
        if status == 404:
            raise LLMError(f"HTTP 404: no such endpoint or model {self.model!r} on {_origin(url)}")
        if status >= 400:
            raise LLMError(f"HTTP {status}")
        try:
            return response.json()
        except ValueError:
            raise LLMError("the server's answer is not JSON") from None


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Unsupported(Exception):
    """The server rejected response_format json_schema."""


def _unsupported_format(text: str, body: dict[str, Any]) -> bool:
    fmt = body.get("response_format") or {}
    lowered = text.lower()
    return fmt.get("type") == "json_schema" and (
        "response_format" in lowered or "json_schema" in lowered
    )


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _origin(url: str) -> str:
    """scheme://host:port of a URL, without any user:password@ part."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _ollama_base(url: str) -> str:
    for suffix in ("/api/chat", "/api", "/v1"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def _read_text(location: str, conn_id: str | None = None) -> str | None:
    if "://" not in location or location.startswith("file://"):
        path = Path(location.removeprefix("file://"))
        return path.read_text() if path.exists() else None
    from whatif.sources import storage_path

    path = storage_path(location, conn_id)
    return path.read_text() if path.exists() else None


def _write_text(location: str, text: str, conn_id: str | None = None) -> None:
    if "://" not in location or location.startswith("file://"):
        path = Path(location.removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        partial.write_text(text)
        partial.replace(path)  # readers never see half a file
        return
    from whatif.sources import storage_path

    storage_path(location, conn_id).write_text(text)
