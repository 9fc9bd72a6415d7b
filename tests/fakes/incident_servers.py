"""Loopback PagerDuty and incident.io APIs for the incident importers' tests: the endpoints and
rules the importers depend on, as documented, with faults on demand.

PagerDuty REST API v2, `GET /incidents` (PagerDuty/api-schema, reference/REST/openapiv3.json):
HTTPS only (PagerDuty's client refuses any other scheme, so this server speaks TLS with a
certificate made on the fly: `server.client_tls` is the context that trusts it); auth
`Authorization: Token token=<key>` (else 401); classic pagination `limit` (at most 100),
`offset`, `total=true` (else `total` is null), `more`; `since`/`until` filter on `created_at`,
at most 6 months apart (else 400 "Invalid Input Provided", code 2001, as answered to a
2-year range in xginn8/grafana-pagerduty#19); `offset + limit` beyond the cap (10,000; `cap=`
makes it small for tests) is 400 code 2002 "Offset+limit exceeds maximum allowed value of
10000..." (the text seen in faros-ai/airbyte-connectors#991 and cloudquery#12750).
Whether `since` and `until` are inclusive is not documented (PagerDuty/developer-docs#74):
this fake includes both ends, the case where a window split meets an incident twice.

incident.io API v2, `GET /v2/incidents` (docs.incident.io/api-reference/incidents-v2/list):
plain HTTP (the importer's JsonApi takes either); `Authorization: Bearer <key>` (else 401);
`page_size` (default 25, at most 250, else 422) and the cursor `after` (the id of the last
incident of the previous page); `pagination_meta: {after, page_size, total_record_count}`,
`after` left out on the last page; `created_at[gte]` / `created_at[lte]` with a date
(YYYY-MM-DD, as in the documented examples; anything else 422): `lte=D` means created on or
before D 00:00:00Z, as the documentation words it; `mode` defaults to standard and
retrospective (test and tutorial incidents left out). Errors have the documented shape
(`type`, `status`, `request_id`, `errors`), 429 included (`rate_limit.retry_after`); a
`Retry-After` header is added to 429s unless `retry_after_header=False` (the documentation
shows only the body's field).

Faults: `fail(status, times, start, headers, truncate)` answers the next `times` requests,
from the `start`-th request on (1 = the next one), with `status` and an error document in the
API's shape, or (truncate=True) with HTTP 200 and the first half of the real answer's JSON, as
a proxy that cut the body would. Every request is recorded (path, query as lists, headers).
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import ssl
import tempfile
import threading
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.loopback import JSONHandler, ServedApi

PD_TOKEN = "pd-token-SECRET-7f3a"
IIO_TOKEN = "iio-key-SECRET-9c2e"
PD_CAP = 10_000
PD_MAX_LIMIT = 100
IIO_MAX_PAGE = 250


# --------------------------------------------------------------------------- shared


class _Problem(Exception):
    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload


class _FakeApi(ServedApi):
    """What both fakes share: a token, the server thread, the request record and the faults."""

    def __init__(self, token: str) -> None:
        self.token = token
        super().__init__()

    def fail(
        self,
        status: int = 200,
        *,
        times: int = 1,
        start: int = 1,
        headers: dict[str, str] | None = None,
        truncate: bool = False,
    ) -> None:
        """Answer `times` requests, from the `start`-th one after now on, with `status` (an
        error document) or, with truncate=True, with the first half of the real answer."""
        with self._lock:
            self.faults.append(
                {
                    "status": status,
                    "times": times,
                    "from": len(self.requests) + start,
                    "headers": headers or {},
                    "truncate": truncate,
                }
            )

    def calls(self, path: str = "") -> list[dict[str, Any]]:
        return [r for r in self.requests if path in r["path"]]

    def _take_fault(self, number: int) -> dict[str, Any] | None:
        with self._lock:
            for fault in self.faults:
                if fault["times"] > 0 and number >= fault["from"]:
                    fault["times"] -= 1
                    return fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(JSONHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query, keep_blank_values=True)
                record = {"path": parts.path, "query": query, "headers": dict(self.headers)}
                with api._lock:
                    api.requests.append(record)
                    number = len(api.requests)
                fault = api._take_fault(number)
                if fault and not fault["truncate"]:
                    record["fault"] = fault["status"]
                    payload = api._error(fault["status"], f"injected HTTP {fault['status']}")
                    self._send(fault["status"], payload, api._fault_headers(fault))
                    return
                try:
                    api._check_auth(self.headers.get("Authorization"))
                    answer = api._route(parts.path, query)
                except _Problem as problem:
                    self._send(problem.status, problem.payload)
                    return
                data = json.dumps(answer).encode()
                if fault:  # truncated: a complete HTTP answer whose JSON stops half-way
                    record["fault"] = "truncated"
                    data = data[: len(data) // 2]
                self._send_bytes(200, data)

        return Handler

    # what each API defines
    def _check_auth(self, header: str | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _route(self, path: str, query: dict[str, list[str]]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _error(self, status: int, message: str) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _fault_headers(self, fault: dict[str, Any]) -> dict[str, str]:
        return fault["headers"]


def _instant(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def add_months(when: datetime, months: int) -> datetime:
    """The same day and time `months` later (the month's last day when it has fewer days)."""
    month0 = when.month - 1 + months
    year, month = when.year + month0 // 12, month0 % 12 + 1
    for day in range(when.day, 27, -1):
        try:
            return when.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return when.replace(year=year, month=month, day=min(when.day, 28))


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


# --------------------------------------------------------------------------- TLS


_TLS_LOCK = threading.Lock()
_TLS: tuple[ssl.SSLContext, ssl.SSLContext] | None = None
_CA_FILE: Path | None = None  # the certificate as a file, for a client in another process


def _tls_pair() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context that trusts it): one self-signed certificate for
    127.0.0.1 and localhost, made once per test process."""
    global _TLS
    with _TLS_LOCK:
        if _TLS is None:
            _TLS = _make_tls()
        return _TLS


def _make_tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "whatif loopback")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    folder = Path(tempfile.mkdtemp(prefix="whatif-tls-"))
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(key_pem)
    global _CA_FILE
    _CA_FILE = folder / "cert.pem"
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


# --------------------------------------------------------------------------- PagerDuty


def pd_incident(
    number: int,
    created_at: str,
    *,
    service_id: str = "PSVC001",
    service: str = "Checkout API",
    status: str = "resolved",
    resolved_at: str | None = "auto",
    title: str | None = None,
    priority: str | None = "P2",
    urgency: str = "high",
    teams: tuple[str, ...] = ("Payments",),
    escalation_policy: str = "Payments Escalation",
    acknowledged_at: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An incident as GET /incidents lists it (the documented example's fields). resolved_at
    "auto": 45 minutes after creation when resolved, else null."""
    created = _instant(created_at)
    if resolved_at == "auto":
        resolved_at = _wire(created + timedelta(minutes=45)) if status == "resolved" else None
    ident = f"Q{number:06d}"
    return {
        "id": ident,
        "type": "incident",
        "summary": f"[#{number}] {title or f'Incident {number}'}",
        "self": f"https://api.pagerduty.com/incidents/{ident}",
        "html_url": f"https://example.pagerduty.com/incidents/{ident}",
        "incident_number": number,
        "title": title or f"Incident {number}",
        "created_at": created_at,
        "updated_at": resolved_at or created_at,
        "status": status,
        "incident_key": uuid.uuid5(uuid.NAMESPACE_URL, ident).hex,
        "service": {
            "id": service_id,
            "type": "service_reference",
            "summary": service,
            "self": f"https://api.pagerduty.com/services/{service_id}",
        },
        "assignments": [],
        "assigned_via": "escalation_policy",
        "last_status_change_at": resolved_at
        or (acknowledged_at[-1] if acknowledged_at else created_at),
        "resolved_at": resolved_at,
        "alert_counts": {"all": 1, "triggered": 0, "resolved": 1},
        "is_mergeable": True,
        "escalation_policy": {
            "id": "PEP0001",
            "type": "escalation_policy_reference",
            "summary": escalation_policy,
        },
        "teams": [
            {"id": f"PT{i:05d}", "type": "team_reference", "summary": team}
            for i, team in enumerate(teams)
        ],
        "pending_actions": [],
        "acknowledgements": [
            {
                "at": at,
                "acknowledger": {"id": "PUSER01", "type": "user_reference", "summary": "Ada"},
            }
            for at in acknowledged_at
        ],
        "priority": (
            {"id": "PPRIO01", "type": "priority_reference", "summary": priority}
            if priority
            else None
        ),
        "resolve_reason": None,
        "urgency": urgency,
    }


def _wire(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PagerDutyServer(_FakeApi):
    """GET /incidents over HTTPS with PagerDuty's rules (module docstring)."""

    def __init__(
        self,
        incidents: list[dict[str, Any]] | None = None,
        token: str = PD_TOKEN,
        cap: int = PD_CAP,
    ) -> None:
        self.tls = _tls_pair()[0]
        super().__init__(token)
        self.cap = cap
        self.incidents: list[dict[str, Any]] = list(incidents or [])

    @property
    def client_tls(self) -> ssl.SSLContext:
        """What a client must trust to talk to this server."""
        return _tls_pair()[1]

    @property
    def ca_file(self) -> Path:
        """The same, as a PEM file (SSL_CERT_FILE for a client that is not told `verify`)."""
        _tls_pair()
        assert _CA_FILE is not None
        return _CA_FILE

    def windows(self) -> list[tuple[datetime, datetime]]:
        """(since, until) of each listing request, in order (a page of one window repeats)."""
        return [
            (_instant(r["query"]["since"][0]), _instant(r["query"]["until"][0]))
            for r in self.calls("/incidents")
            if "since" in r["query"] and "until" in r["query"]
        ]

    def _check_auth(self, header: str | None) -> None:
        if header != f"Token token={self.token}":
            raise _Problem(401, {"error": {"message": "Unauthorized", "code": 2006}})

    def _error(self, status: int, message: str) -> Any:
        return {"error": {"message": message, "code": status}}

    def _route(self, path: str, query: dict[str, list[str]]) -> Any:
        if path.rstrip("/") != "/incidents":
            raise _Problem(404, {"error": {"message": "Not Found", "code": 2100}})
        until = _instant(_one(query, "until") or _wire(datetime.now(UTC)))
        since = _instant(_one(query, "since") or _wire(until - timedelta(days=30)))
        if add_months(since, 6) < until or until < since:
            error = {"message": "Invalid Input Provided", "code": 2001}
            raise _Problem(400, {"error": {**error, "errors": [" is invalid."]}})
        limit = min(int(_one(query, "limit") or 25), PD_MAX_LIMIT)
        offset = int(_one(query, "offset") or 0)
        if offset + limit > self.cap:
            raise _Problem(
                400,
                {
                    "error": {
                        "message": "Arguments Caused Error",
                        "code": 2002,
                        "errors": [
                            f"Offset+limit exceeds maximum allowed value of {self.cap}. Please "
                            "try to refine your search to reduce the returned set of records "
                            "below this number, like adding a date range."
                        ],
                    }
                },
            )
        statuses = set(query.get("statuses[]") or ())
        with self._lock:
            matching = sorted(
                (
                    i
                    for i in self.incidents
                    if since <= _instant(i["created_at"]) <= until
                    and (not statuses or i["status"] in statuses)
                ),
                key=lambda i: (_instant(i["created_at"]), i["incident_number"]),
            )
        page = matching[offset : offset + limit]
        return {
            "incidents": page,
            "limit": limit,
            "offset": offset,
            "more": offset + len(page) < len(matching),
            "total": len(matching) if _one(query, "total") == "true" else None,
        }


@contextmanager
def pagerduty_server(**options: Any) -> Iterator[PagerDutyServer]:
    server = PagerDutyServer(**options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- incident.io


STATUSES = {  # incident.io's default statuses and their categories
    "Triage": "triage",
    "Investigating": "live",
    "Fixing": "live",
    "Monitoring": "live",
    "Paused": "paused",
    "Documenting": "learning",
    "Closed": "closed",
    "Declined": "declined",
    "Merged": "merged",
    "Canceled": "canceled",
}


def iio_incident(
    number: int,
    created_at: str,
    *,
    services: tuple[str, ...] = ("checkout-api",),
    services_field: str = "Affected services",
    status: str = "Closed",
    severity: str | None = "Major",
    name: str | None = None,
    summary: str | None = "What happened, in a sentence.",
    timestamps: dict[str, str | None] | None = None,
    mode: str = "standard",
) -> dict[str, Any]:
    """An incident as GET /v2/incidents lists it (the documented example's fields; an
    "Affected services" catalog multi-select custom field). timestamps: name -> value of
    incident_timestamp_values (None: the timestamp exists but is not set)."""
    ident = f"01HX{number:022d}"
    stamp = iter(range(1, 1000))
    return {
        "id": ident,
        "reference": f"INC-{number}",
        "name": name or f"Incident {number}",
        "summary": summary,
        "mode": mode,
        "visibility": "public",
        "created_at": created_at,
        "updated_at": created_at,
        "permalink": f"https://app.incident.io/incidents/{number}",
        "incident_status": {
            "id": f"01STATUS{STATUSES[status].upper()}",
            "name": status,
            "category": STATUSES[status],
            "description": "",
            "rank": 1,
        },
        "severity": (
            {"id": "01SEV", "name": severity, "description": "", "rank": 2} if severity else None
        ),
        "incident_type": {"id": "01TYPE", "name": "Production Outage"},
        "custom_field_entries": [
            {
                "custom_field": {
                    "id": "01FIELDSERVICES",
                    "name": services_field,
                    "description": "Which services were affected",
                    "field_type": "multi_select",
                    "options": [],
                },
                "values": [
                    {
                        "value_catalog_entry": {
                            "id": f"01CAT{zlib.crc32(s.encode()):010d}",
                            "name": s,
                            "aliases": [],
                        }
                    }
                    for s in services
                ],
            },
            {
                "custom_field": {
                    "id": "01FIELDTEAM",
                    "name": "Affected Team",
                    "field_type": "single_select",
                    "options": [],
                },
                "values": [{"value_option": {"id": "01OPT", "value": "Product"}}],
            },
        ],
        "incident_timestamp_values": [
            {
                "incident_timestamp": {"id": f"01TS{next(stamp):04d}", "name": key, "rank": 1},
                **({"value": {"value": value}} if value else {}),
            }
            for key, value in (timestamps or {}).items()
        ],
        "incident_role_assignments": [],
        "duration_metrics": [],
    }


class IncidentIoServer(_FakeApi):
    """GET /v2/incidents with incident.io's rules (module docstring). Incidents are listed
    newest first."""

    def __init__(
        self,
        incidents: list[dict[str, Any]] | None = None,
        token: str = IIO_TOKEN,
        retry_after_header: bool = True,
    ) -> None:
        super().__init__(token)
        self.incidents: list[dict[str, Any]] = list(incidents or [])
        self.retry_after_header = retry_after_header

    def _check_auth(self, header: str | None) -> None:
        if header != f"Bearer {self.token}":
            raise _Problem(401, self._error(401, "The API key provided is not valid"))

    def _error(self, status: int, message: str) -> Any:
        kind = {401: "authentication_error", 422: "validation_error", 429: "too_many_requests"}
        body: dict[str, Any] = {
            "type": kind.get(status, "internal_error"),
            "status": status,
            "request_id": str(uuid.uuid4()),
            "errors": [{"code": kind.get(status, "internal_error"), "message": message}],
        }
        if status == 429:
            body["rate_limit"] = {
                "name": "api_key_name",
                "limit": 1200,
                "remaining": 0,
                # Two seconds from now, as the documented example's HTTP date.
                "retry_after": email.utils.format_datetime(
                    datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2), usegmt=True
                ),
            }
            body["errors"][0]["message"] = "Too many requests. We recommend exponential backoff."
        return body

    def _fault_headers(self, fault: dict[str, Any]) -> dict[str, str]:
        headers = dict(fault["headers"])
        if fault["status"] == 429 and self.retry_after_header:
            headers.setdefault("Retry-After", "0")
        return headers

    def _invalid(self, message: str) -> _Problem:
        return _Problem(422, self._error(422, message))

    def _day(self, query: dict[str, list[str]], name: str) -> datetime | None:
        text = _one(query, name)
        if text is None:
            return None
        try:
            day = datetime.strptime(text, "%Y-%m-%d")
        except ValueError:
            raise self._invalid(f"{name}: {text!r} is not a date (YYYY-MM-DD)") from None
        return day.replace(tzinfo=UTC)

    def _route(self, path: str, query: dict[str, list[str]]) -> Any:
        if path.rstrip("/") != "/v2/incidents":
            raise _Problem(404, self._error(404, "Not found"))
        size = int(_one(query, "page_size") or 25)
        if not 1 <= size <= IIO_MAX_PAGE:
            raise self._invalid(f"page_size must be between 1 and {IIO_MAX_PAGE}")
        low, high = self._day(query, "created_at[gte]"), self._day(query, "created_at[lte]")
        modes = set(query.get("mode[one_of]") or ("standard", "retrospective"))
        with self._lock:
            listed = sorted(
                (
                    i
                    for i in self.incidents
                    if i["mode"] in modes
                    and (low is None or _instant(i["created_at"]) >= low)
                    and (high is None or _instant(i["created_at"]) <= high)
                ),
                key=lambda i: (_instant(i["created_at"]), i["id"]),
                reverse=True,
            )
        start = 0
        after = _one(query, "after")
        if after:
            ids = [i["id"] for i in listed]
            if after not in ids:
                raise self._invalid(f"after: no incident {after!r} in this listing")
            start = ids.index(after) + 1
        page = listed[start : start + size]
        meta: dict[str, Any] = {"page_size": size, "total_record_count": len(listed)}
        if start + size < len(listed):
            meta["after"] = page[-1]["id"]
        return {"incidents": page, "pagination_meta": meta}


@contextmanager
def incident_io_server(**options: Any) -> Iterator[IncidentIoServer]:
    server = IncidentIoServer(**options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
