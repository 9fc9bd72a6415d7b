"""Incidents from PagerDuty's REST API v2 (`GET /incidents`), read with PagerDuty's official
client (`pagerduty.RestApiV2Client`): its classic offset pagination (`iter_all`), its
retries of 429 and 5xx with a growing wait, and its exceptions, turned here into one line.

Two documented limits shape the reading. `since`/`until` may be at most 6 months apart, so
[since, until) is read in windows of at most 180 days. Classic pagination stops at
offset + limit = 10,000 (HTTP 400 beyond), so a window that holds more incidents than that
(its `total`) is split in two, again and again, until every part fits: no incident is lost
to the cap, and an incident met by two windows (their ends overlap by a second, since the
API does not say whether `until` is inclusive) is kept once.

The mapping follows the CSV mapping `resources/mappings/pagerduty.yaml`, so an incident reads
the same from the API as from the Analytics CSV export (docs/sources.md gives it in full):
incident_id is the `incident_number` (#1234, what people quote; the CSV's first choice);
the service is the topology's name for `service.id` (its `pagerduty_service_id` column)
else PagerDuty's `service.summary`. The token comes only from the argument (the CLI reads
$PAGERDUTY_TOKEN) and is never logged or shown."""

from __future__ import annotations

import logging
import ssl
import warnings
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from urllib.parse import urlencode, urlsplit

import pandas as pd

from whatif.errors import UserError
from whatif.importers.api import ApiError, excerpt, origin
from whatif.importers.common import created_within, iso_instant, latest_copies, parse_instant, utc
from whatif.importers.fetch import TOKEN_VARIABLES
from whatif.llm import RetryPolicy

log = logging.getLogger(__name__)

SOURCE = "pagerduty"
TOKEN_VARIABLE = TOKEN_VARIABLES["pagerduty"]
DEFAULT_URL = "https://api.pagerduty.com"
PATH = "/incidents"
STATUSES = ("triggered", "acknowledged", "resolved")  # every documented status
# since/until may be at most "6 months" apart; 180 days (plus the 1 s overlap) is shorter
# than any six calendar months (181 days at least).
MAX_WINDOW = timedelta(days=180)
OVERLAP = timedelta(seconds=1)
CAP = 10_000  # offset + limit may not exceed this (the client's ITERATION_LIMIT)
PAGE_SIZE = 100  # the documented maximum `limit`
RETRIED = (429, 500, 502, 503, 504)
COLUMNS = (
    "incident_id",
    "service",
    "started_at",
    "resolved_at",
    "acknowledged_at",
    "severity",
    "category",
    "title",
    "team",
    "status",
)


class _OverCap(Exception):
    """A window holds more incidents than one classic pagination may reach."""


def import_incidents(
    *,
    token: str,
    since: datetime,
    until: datetime,
    base_url: str = DEFAULT_URL,
    service_names: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
    page_size: int = PAGE_SIZE,
    cap: int = CAP,
    window: timedelta = MAX_WINDOW,
    verify: bool | ssl.SSLContext = True,
) -> pd.DataFrame:
    """The incidents created in [since, until) as rows of the incidents contract, one per
    incident, sorted by start, incident and service. ApiError (one line) when the API
    refuses the token or a page cannot be read after retries: never a partial history.
    `cap`, `page_size` and `window` are PagerDuty's limits (tests shrink them); `verify` is
    httpx's: a CA bundle context for a TLS-inspecting proxy (or the tests' server)."""
    since, until = utc(since), utc(until)
    if not token:
        raise ApiError(f"{SOURCE}: no API token", hint=f"set ${TOKEN_VARIABLE} to a REST API key")
    if until <= since:
        raise UserError(f"{SOURCE}: until {_wire(until)} is not after since {_wire(since)}")
    if page_size < 1 or cap < page_size or cap % page_size:
        raise ValueError(f"page_size {page_size} must divide the cap {cap}")
    client = _client(token, base_url, timeout_s, retry or RetryPolicy(), verify)
    try:
        listed: list[dict[str, Any]] = []
        for start, end in _windows(since, until, window):
            listed.extend(_fetch(client, start, end, page_size=page_size, cap=cap))
    finally:
        client.close()
    incidents = latest_copies(
        listed, ("id", "incident_number"), SOURCE, "listed by two overlapping windows"
    )
    kept = created_within(incidents, since, until, SOURCE, "")
    names = dict(service_names or {})
    _report_unnamed(kept, names)
    rows = [_named(incident, names) for incident in kept]
    rows.sort(key=lambda r: (r["started_at"] or "", r["incident_id"] or "", r["service"] or ""))
    return pd.DataFrame(rows, columns=list(COLUMNS))


# --------------------------------------------------------------------------- the client


def _client(
    token: str, base_url: str, timeout_s: float, retry: RetryPolicy, verify: bool | ssl.SSLContext
) -> Any:
    """PagerDuty's client, set up for this import: our base URL, timeout and retries (429
    and 5xx `retry.retries` times, its wait doubling from `retry.base_s`; network errors as
    many times), its log lines on our logger (the user sees one line: ours)."""
    import pagerduty

    client = pagerduty.RestApiV2Client(token, verify=verify)
    try:
        client.url = base_url.rstrip("/")
    except pagerduty.UrlError:
        client.close()
        raise UserError(
            f"{SOURCE}: the base URL {origin(base_url)} is not https://",
            hint="PagerDuty's API is served over HTTPS only, e.g. https://api.eu.pagerduty.com",
        ) from None
    client.timeout = timeout_s
    # A status's count of 0 would mean the client's default (429: retried without end), so
    # these statuses are retried at least once.
    client.retry = dict.fromkeys(RETRIED, max(retry.retries, 1))
    client.max_http_attempts = max(retry.retries, 1)
    client.max_network_attempts = max(retry.retries, 0)
    client.sleep_timer = retry.base_s / client.sleep_timer_base  # the first wait: base_s
    client.log = _ClientLog()
    return client


class _ClientLog:
    """The client's own lines (retry notices, "server error!") at INFO on our logger: what
    the user sees of a failure is the one ApiError line."""

    def debug(self, message: str, *args: Any) -> None:
        log.debug("%s: " + message, SOURCE, *args)

    def info(self, message: str, *args: Any) -> None:
        log.info("%s: " + message, SOURCE, *args)

    warning = error = info


# --------------------------------------------------------------------------- windows


def _windows(since: datetime, until: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """[since, until) cut into windows of at most `size`, each reaching 1 s into the next
    (an incident created on a boundary is listed whatever the API's inclusivity)."""
    cuts = [since]
    while cuts[-1] + size < until:
        cuts.append(cuts[-1] + size)
    cuts.append(until)
    return [(start, min(end + OVERLAP, until)) for start, end in pairwise(cuts)]


def _fetch(
    client: Any, start: datetime, end: datetime, *, page_size: int, cap: int
) -> list[dict[str, Any]]:
    """Every incident of one window: the whole listing when it fits under the cap, else the
    two halves' (recursively)."""
    try:
        return _list(client, start, end, page_size=page_size, cap=cap)
    except _OverCap as over:
        span = end - start
        if span <= 2 * OVERLAP:
            raise ApiError(
                f"{SOURCE}: {_shown(client, _params(start, end))}: {over} incidents created "
                f"within {span.total_seconds():g} s, more than one listing may reach ({cap})",
                hint="nothing was written; ask PagerDuty support how to export them",
            ) from None
        middle = start + timedelta(seconds=int(span.total_seconds()) // 2)
        log.info(
            "%s: %s to %s holds %s incidents, more than one listing reaches (%d): split in two",
            SOURCE,
            _wire(start),
            _wire(end),
            over,
            cap,
        )
        first = _fetch(client, start, middle + OVERLAP, page_size=page_size, cap=cap)
        return first + _fetch(client, middle, end, page_size=page_size, cap=cap)


def _params(start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "since": _wire(start),
        "until": _wire(end),
        "time_zone": "UTC",  # timestamps rendered (and since/until read) in UTC
        "statuses[]": list(STATUSES),
        "sort_by": "created_at:asc",  # new incidents join the end: offsets stay put
    }


def _list(client: Any, start: datetime, end: datetime, *, page_size: int, cap: int) -> list[dict]:
    """One window through `iter_all` with `total=true`: _OverCap as soon as the total says
    the cap would cut the listing short (or, in an answer without a total, when the client
    stopped at its own cap with `more` still true)."""
    import pagerduty

    params = _params(start, end)

    def watch(item: Any, _number: int, total: Any) -> None:
        if isinstance(total, int) and total > cap:
            raise _OverCap(total)
        if not isinstance(item, dict):
            raise ApiError(
                f"{SOURCE}: {_shown(client, params)}: an incident that is not an object: "
                f"{excerpt(repr(item))}",
                hint=f"check the {SOURCE} base URL",
            )

    listed: list[dict[str, Any]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for incident in client.iter_all(
                PATH, params=params, page_size=page_size, item_hook=watch, total=True
            ):
                listed.append(_entry(incident))
        except pagerduty.Error as problem:
            raise _failure(problem, _shown(client, params), client) from None
    texts = [str(w.message) for w in caught]
    if any('lacks a "more" property' in t for t in texts):
        raise ApiError(
            f"{SOURCE}: {_shown(client, params)}: the answer has no `more`: cannot page through it",
            hint=f"check the {SOURCE} base URL",
        )
    if any(t.startswith("Stopping iter_all") for t in texts):  # no total, and more at the cap
        raise _OverCap(f"at least {len(listed)}")
    return listed


def _failure(problem: Exception, shown: str, client: Any) -> ApiError:
    """The client's exception as one line: what was asked, what went wrong, what to do."""
    response = getattr(problem, "response", None)
    tries = f" after {client.max_http_attempts + 1} tries"
    if response is not None:  # the very request that failed (a later page: its offset)
        url = urlsplit(str(response.request.url))
        shown = f"GET {origin(str(response.request.url))}{url.path}?{url.query}"
    if response is None:
        import httpx

        cause = problem.__cause__
        what = (
            f"no answer within {client.timeout:g} s"
            if isinstance(cause, httpx.TimeoutException)
            else f"cannot connect to {origin(client.url)}"
        )
        return ApiError(
            f"{SOURCE}: {shown}: {what} after {client.max_network_attempts + 1} tries",
            hint="check the base URL and the network, or try again later",
        )
    status = response.status_code
    if status in (401, 403):
        return ApiError(
            f"{SOURCE}: {shown}: HTTP {status}: the server refused the token",
            hint=f"set ${TOKEN_VARIABLE} to a REST API key that may read incidents",
        )
    if status in RETRIED:
        return ApiError(
            f"{SOURCE}: {shown}: HTTP {status}{tries}",
            hint="the server is failing or rate-limiting: try again later",
        )
    if 200 <= status < 300:
        try:
            response.json()
        except ValueError:
            return ApiError(
                f"{SOURCE}: {shown}: the answer is not complete JSON "
                f"({len(response.content)} bytes: {excerpt(response.text)})",
                hint="nothing was written; try again, and check any proxy in between",
            )
        return ApiError(
            f"{SOURCE}: {shown}: the answer has no `incidents` list: {excerpt(response.text)}",
            hint=f"check the {SOURCE} base URL",
        )
    if status == 404:
        return ApiError(
            f"{SOURCE}: {shown}: HTTP 404: no such endpoint", hint=f"check the {SOURCE} base URL"
        )
    return ApiError(f"{SOURCE}: {shown}: HTTP {status}: {_error_text(response)}")


def _error_text(response: Any) -> str:
    """PagerDuty's error document (`error.message` and `error.errors`) as a short text."""
    try:
        error = response.json().get("error") or {}
        parts = [str(error.get("message") or ""), *map(str, error.get("errors") or [])]
        text = "; ".join(p.strip() for p in parts if p and p.strip())
    except (ValueError, AttributeError):
        text = ""
    return excerpt(text or response.text, 160)


# --------------------------------------------------------------------------- rows


def _entry(incident: dict[str, Any]) -> dict[str, Any]:
    """What the import keeps of an incident as it arrives: its keys (for the de-duplication
    and the window), its service's id and name, and its row of the incidents contract (the
    rest dropped at once: a two-year history of 300,000 incidents held whole took 1.7 GB,
    bench/imports_results.md)."""
    service = incident.get("service") or {}
    return {
        "id": incident.get("id"),
        "incident_number": incident.get("incident_number"),
        "created_at": incident.get("created_at"),
        "updated_at": incident.get("updated_at"),
        "service_id": service.get("id"),
        "service_name": service.get("summary") or service.get("id") or "?",
        "row": _row(incident),
    }


def _report_unnamed(incidents: list[dict[str, Any]], names: Mapping[str, str]) -> None:
    """One line naming the PagerDuty services the topology has no pagerduty_service_id for
    (their rows keep PagerDuty's name, which validation may not find in the topology)."""
    if not names:
        return
    missing = Counter(i["service_name"] for i in incidents if i["service_id"] not in names)
    if missing:
        shown = ", ".join(f"{name} ({count})" for name, count in sorted(missing.items())[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        log.warning(
            "%s: %d incidents on services no topology row names by pagerduty_service_id kept "
            "PagerDuty's service name: %s%s",
            SOURCE,
            sum(missing.values()),
            shown,
            more,
        )


def _row(incident: dict[str, Any]) -> dict[str, str | None]:
    """One incident as a row of the incidents contract (mapping in the module docstring),
    named by PagerDuty's service name (import_incidents renames by the topology's ids)."""
    service = incident.get("service") or {}
    priority = incident.get("priority") or {}
    teams = [t.get("summary") for t in incident.get("teams") or [] if t and t.get("summary")]
    status = incident.get("status")
    resolved = incident.get("resolved_at")
    if not resolved and status == "resolved":
        resolved = incident.get("last_status_change_at")  # answers without resolved_at
    number = incident.get("incident_number")
    title = incident.get("title") or None
    return {
        "incident_id": str(number) if number is not None else incident.get("id"),
        "service": service.get("summary") or None,
        "started_at": iso_instant(incident.get("created_at")),
        "resolved_at": iso_instant(resolved),
        "acknowledged_at": _first_acknowledgement(incident.get("acknowledgements") or []),
        "severity": priority.get("summary") or priority.get("name") or incident.get("urgency"),
        "category": title,
        "title": title,
        "team": teams[0] if teams else (incident.get("escalation_policy") or {}).get("summary"),
        "status": status,
    }


def _named(entry: dict[str, Any], names: Mapping[str, str]) -> dict[str, str | None]:
    """The entry's row, its service named by the topology when its id has a row there."""
    row = entry["row"]
    name = names.get(entry["service_id"] or "")
    return {**row, "service": name} if name else row


def _first_acknowledgement(acknowledgements: list[dict[str, Any]]) -> str | None:
    """The earliest acknowledgement's time. PagerDuty lists acknowledgements only while an
    incident is acknowledged (empty once resolved), so most history rows have none."""
    times = [a.get("at") for a in acknowledgements if a and a.get("at")]
    parsed = [t for t in (parse_instant(x) for x in times) if t is not None]
    if parsed:
        return iso_instant(min(parsed).isoformat())
    return iso_instant(times[0]) if times else None


# --------------------------------------------------------------------------- helpers


def _wire(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(client: Any, params: dict[str, Any]) -> str:
    """The request as shown in messages (never the token: it travels in a header)."""
    return f"GET {origin(client.url)}{urlsplit(client.url).path}{PATH}?{urlencode(params, True)}"
