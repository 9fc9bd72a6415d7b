"""A JSON-over-HTTP API as the importers need it: a base URL, a bearer token, timeouts,
retries with backoff on 429, 5xx, timeouts and refused connections (`Retry-After` honoured),
and every failure turned into one line that says which source, which request, what went wrong
and what to do (a `UserError`, exit code 2). Tokens are sent, never logged or shown."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from whatif.errors import UserError
from whatif.llm import RETRY_AFTER_STATUS, TRANSIENT_STATUS, RetryPolicy, retry_after_seconds

log = logging.getLogger(__name__)

Params = Mapping[str, Any] | list[tuple[str, Any]]


class ApiError(UserError):
    """A source's API answered something unusable: one line, exit code 2."""


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclasses.dataclass
class JsonApi:
    """GET (or POST) JSON from one API. `name` says which source in messages ("backstage");
    `token_variable` names the environment variable the token came from, for the hint when
    the server refuses it; `auth` builds the authorisation headers from the token (bearer by
    default: PagerDuty wants `Token token=...`)."""

    name: str
    base_url: str
    token: str | None = None
    token_variable: str | None = None
    timeout_s: float = 30.0
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    auth: Callable[[str], dict[str, str]] = lambda token: {"Authorization": f"Bearer {token}"}
    sleep: Callable[[float], None] = time.sleep
    calls: int = 0  # HTTP requests sent, retries included

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._session: Any = None

    def get(self, path: str, params: Params | None = None) -> Any:
        return self.request("GET", path, params=params)

    def request(
        self, method: str, path: str, params: Params | None = None, body: Any = None
    ) -> Any:
        """The answer's JSON, after retries of transient failures; ApiError otherwise."""
        shown = self.describe(method, path, params)
        for attempt in range(self.retry.retries + 1):
            try:
                return self._once(method, path, params, body)
            except _Transient as problem:
                wait = self.retry.wait(attempt, problem.retry_after)
                if attempt == self.retry.retries or wait is None:
                    raise ApiError(
                        f"{self.name}: {shown}: {problem.reason}"
                        + (f" after {attempt + 1} tries" if attempt else ""),
                        hint="the server is failing or rate-limiting: try again later",
                    ) from None
                log.info("%s: %s: %s; retrying in %.1f s", self.name, shown, problem.reason, wait)
                self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def describe(self, method: str, path: str, params: Params | None = None) -> str:
        """The request as shown in messages: origin, path and query, never the token."""
        query = f"?{urlencode(list(_pairs(params)))}" if params else ""
        return f"{method} {origin(self.base_url)}{self._path(path)}{query}"

    def _path(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return urlsplit(path).path
        return urlsplit(self.base_url).path + "/" + path.lstrip("/")

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _once(self, method: str, path: str, params: Params | None, body: Any) -> Any:
        import requests

        if self._session is None:
            self._session = requests.Session()
        headers = {"Accept": "application/json", **self.headers}
        if self.token:
            headers.update(self.auth(self.token))
        self.calls += 1
        try:
            response = self._session.request(
                method,
                self._url(path),
                params=list(_pairs(params)) if params else None,
                json=body,
                headers=headers,
                timeout=(min(10.0, self.timeout_s), self.timeout_s),
            )
        except requests.Timeout:
            raise _Transient(f"no answer within {self.timeout_s:g} s") from None
        except requests.ConnectionError:
            raise _Transient(f"cannot connect to {origin(self.base_url)}") from None
        return self._answer(response, method, path, params)

    def _answer(self, response: Any, method: str, path: str, params: Params | None) -> Any:
        status = response.status_code
        shown = self.describe(method, path, params)
        if status in TRANSIENT_STATUS:
            after = self.retry_after(response) if status in RETRY_AFTER_STATUS else None
            raise _Transient(f"HTTP {status}", retry_after=after)
        if status in (401, 403):
            where = f"${self.token_variable}" if self.token_variable else "the token"
            what = "no token was sent" if not self.token else "the server refused the token"
            raise ApiError(
                f"{self.name}: {shown}: HTTP {status}: {what}",
                hint=f"set {where} to a token that may read it",
            )
        if status == 404:
            raise ApiError(
                f"{self.name}: {shown}: HTTP 404: no such endpoint",
                hint=f"check the {self.name} base URL",
            )
        if status >= 400:
            detail, hint = self.error_detail(response)
            raise ApiError(f"{self.name}: {shown}: HTTP {status}: {detail}", hint=hint)
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                f"{self.name}: {shown}: the answer is not complete JSON "
                f"({len(response.content)} bytes: {excerpt(response.text)})",
                hint="nothing was written; try again, and check any proxy in between",
            ) from None

    def retry_after(self, response: Any) -> float | None:
        """Seconds the server asks us to wait (429, 503): its Retry-After header."""
        return retry_after_seconds(response.headers.get("Retry-After"))

    def error_detail(self, response: Any) -> tuple[str, str | None]:
        """(what the server said, a hint) for a 4xx/5xx answer that is not retried: an
        excerpt of the body here; an API with its own error document reads it instead."""
        return excerpt(response.text), None


def _pairs(params: Params | None) -> list[tuple[str, Any]]:
    if not params:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, Any]] = []
    for key, value in items:
        values = value if isinstance(value, list | tuple) else [value]
        out.extend((key, v) for v in values if v is not None)
    return out


def origin(url: str) -> str:
    """scheme://host:port of a URL, without any user:password@ part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def excerpt(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def token_from(variable: str) -> str | None:
    """A token from the environment only (a flag would leave it in the shell history)."""
    from whatif import environment

    value = environment.get(variable)
    return value.strip() if value and value.strip() else None
