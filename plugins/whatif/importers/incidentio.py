"""Incidents from incident.io's API v2 (`GET /v2/incidents`, cursor-paginated: `page_size` up
to 250, `after` = `pagination_meta.after` until the answer has none), read with JsonApi
(retries with backoff on 429 and 5xx, honouring `Retry-After`; one line on failure).

incident.io has no fixed "services" field: the affected services are a custom field, usually
a catalog multi-select named "Affected services" (`services_field`), and an incident becomes
one row per service it lists. An incident that lists none still becomes one row, with an
empty service: validation sets it aside as missing_service and says so, where a silent drop
here would hide it. The rest follows the CSV mapping `resources/mappings/incident-io.yaml`
(docs/sources.md gives it in full): incident_id is the `reference` (INC-123); started_at
is the "Impact started" timestamp when someone set it, else "Reported at", else created_at;
resolved_at is the "Resolved at" timestamp, else "Fixed at", else "Closed at".

Declined, merged and canceled incidents are not incidents (a page turned down in triage, a
duplicate folded into another, a mistake): they are left out, counted in one warning line,
unless include_not_incidents=True. The API filters creation by whole days, so the request
asks for the days around [since, until) and the incidents created outside it are left out
(counted). The token comes only from the argument (the CLI reads $INCIDENT_IO_API_KEY)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pandas as pd

from whatif.errors import UserError
from whatif.importers.api import ApiError, JsonApi
from whatif.importers.common import created_within, iso_instant, latest_copies, utc
from whatif.importers.fetch import TOKEN_VARIABLES
from whatif.llm import RetryPolicy, retry_after_seconds

log = logging.getLogger(__name__)

SOURCE = "incident.io"
TOKEN_VARIABLE = TOKEN_VARIABLES["incident-io"]
DEFAULT_URL = "https://api.incident.io"
PATH = "/v2/incidents"
PAGE_SIZE = 250  # the documented maximum
SERVICES_FIELD = "Affected services"
# Timestamp names (incident_timestamp_values[].incident_timestamp.name, compared ignoring
# case and spacing), first set wins. "Impact started" is the CSV mapping's; "Impact started
# at" is how some organisations name it (incident.io's own singer-tap test data).
STARTED = ("impact started", "impact started at", "reported at")
DETECTED = ("reported at",)
RESOLVED = ("resolved at", "fixed at", "closed at")
# incident_status.category -> a status word of the incidents contract (docs/data-contract.md:
# triage, active and open mean still open; resolved and closed mean over).
STATUS_WORDS = {
    "triage": "triage",
    "live": "active",  # "Active" in the app: Investigating, Fixing, Monitoring...
    "paused": "open",  # paused, not over
    "learning": "resolved",  # "Post-incident": the impact is over
    "closed": "closed",
}
NOT_INCIDENTS = ("declined", "merged", "canceled")
COLUMNS = (
    "incident_id",
    "service",
    "started_at",
    "resolved_at",
    "detected_at",
    "severity",
    "category",
    "title",
    "description",
    "status",
)


def import_incidents(
    *,
    token: str,
    since: datetime,
    until: datetime,
    base_url: str = DEFAULT_URL,
    timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
    services_field: str = SERVICES_FIELD,
    page_size: int = PAGE_SIZE,
    include_not_incidents: bool = False,
) -> pd.DataFrame:
    """The incidents created in [since, until) as rows of the incidents contract: one per
    affected service (one with an empty service when none is listed), sorted by start,
    incident and service. ApiError (one line) when the API refuses the key or a page cannot
    be read after retries: never a partial history."""
    since, until = utc(since), utc(until)
    if not token:
        raise ApiError(f"{SOURCE}: no API key", hint=f"set ${TOKEN_VARIABLE}")
    if until <= since:
        raise UserError(
            f"{SOURCE}: until {iso_instant(until)} is not after since {iso_instant(since)}"
        )
    if not 1 <= page_size <= PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {PAGE_SIZE}")
    api = _IncidentIoApi(
        SOURCE,
        base_url,
        token=token,
        token_variable=TOKEN_VARIABLE,
        timeout_s=timeout_s,
        retry=retry or RetryPolicy(),
        **({"sleep": sleep} if sleep else {}),
    )
    listed = latest_copies(
        _list(api, since, until, page_size, _fold(services_field)),
        ("id", "reference"),
        SOURCE,
        "listed twice",
    )
    incidents = created_within(listed, since, until, SOURCE, "the API filters by day")
    if not include_not_incidents:
        incidents = _real(incidents)
    _report_services(incidents, services_field)
    rows = [
        {**incident["row"], "service": service}
        for incident in incidents
        for service in incident["services"] or [None]
    ]
    rows.sort(key=lambda r: (r["started_at"] or "", r["incident_id"] or "", r["service"] or ""))
    return pd.DataFrame(rows, columns=list(COLUMNS))


# --------------------------------------------------------------------------- listing


class _IncidentIoApi(JsonApi):
    """JsonApi that reads incident.io's error document (`type`, `errors[].message`,
    `request_id`) for the one line."""

    def retry_after(self, response: Any) -> float | None:
        """The Retry-After header, else the error document's `rate_limit.retry_after` (an
        HTTP date: the documented 429 answer carries it in the body)."""
        header = super().retry_after(response)
        if header is not None:
            return header
        try:
            limit = response.json().get("rate_limit") or {}
        except (ValueError, AttributeError):
            return None
        return retry_after_seconds(str(limit.get("retry_after") or "")) if limit else None

    def error_detail(self, response: Any) -> tuple[str, str | None]:
        try:
            document = response.json()
            messages = [str(e.get("message")) for e in document.get("errors") or [] if e]
            detail = "; ".join(m for m in messages if m and m != "None")
            request = document.get("request_id")
        except (ValueError, AttributeError):
            return super().error_detail(response)
        if not detail:
            return super().error_detail(response)
        kind = document.get("type")
        text = f"{kind}: {detail}" if kind else detail
        hint = f"incident.io support can trace request_id {request}" if request else None
        return text[:200], hint


def _list(
    api: JsonApi, since: datetime, until: datetime, page_size: int, field: str
) -> list[dict[str, Any]]:
    """Every page of the listing, following `pagination_meta.after` until it is absent, each
    incident compacted as its page arrives (`_compact`: a two-year history of 300,000
    incidents held as raw JSON took 2.6 GB)."""
    base = [
        ("page_size", page_size),
        # Whole days, as documented ("created_at[lte]=2021-01-02": created on or before
        # 2021-01-02T00:00:00Z): the days that hold [since, until).
        ("created_at[gte]", since.date().isoformat()),
        ("created_at[lte]", _day_after(until).isoformat()),
    ]
    listed: list[dict[str, Any]] = []
    after: str | None = None
    cursors: set[str] = set()
    while True:
        params = base + ([("after", after)] if after else [])
        answer = api.get(PATH, params)
        page, after = _page(answer, api.describe("GET", PATH, params))
        listed.extend(_compact(incident, field) for incident in page)
        if not after:
            return listed
        if after in cursors:
            raise ApiError(
                f"{SOURCE}: {api.describe('GET', PATH, params)}: the next-page cursor "
                f"{after!r} was given before: the listing would never end",
                hint="nothing was written; try again later",
            )
        cursors.add(after)


def _day_after(until: datetime) -> Any:
    """The first day whose midnight is at or after `until`."""
    day = until.date()
    return day if until == datetime.combine(day, time(), UTC) else day + timedelta(days=1)


def _page(answer: Any, shown: str) -> tuple[list[dict[str, Any]], str | None]:
    """(the incidents, the next cursor) of one answer; ApiError for any other shape."""
    incidents = answer.get("incidents") if isinstance(answer, dict) else None
    meta = answer.get("pagination_meta") if isinstance(answer, dict) else None
    if not isinstance(incidents, list) or not isinstance(meta, dict):
        raise ApiError(
            f"{SOURCE}: {shown}: the answer has no `incidents` list and `pagination_meta`",
            hint=f"check the {SOURCE} base URL",
        )
    strange = [i for i in incidents if not isinstance(i, dict)]
    if strange:
        raise ApiError(f"{SOURCE}: {shown}: an incident that is not an object: {strange[0]!r}")
    after = meta.get("after")
    return incidents, str(after) if after else None


def _real(incidents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without the declined, merged and canceled ones, counted in one warning line."""
    left = Counter(i["category"] for i in incidents if i["category"] in NOT_INCIDENTS)
    if left:
        log.warning(
            "%s: %d incidents left out as not incidents: %s (declined in triage, merged into "
            "another incident, or canceled)",
            SOURCE,
            sum(left.values()),
            ", ".join(f"{count} {category}" for category, count in sorted(left.items())),
        )
    return [i for i in incidents if i["category"] not in NOT_INCIDENTS]


def _report_services(incidents: list[dict[str, Any]], field: str) -> None:
    """One warning when incidents list no affected service: all of them (probably another
    field name: the custom fields seen are named) or some."""
    empty = [i for i in incidents if not i["services"]]
    if not empty:
        return
    if len(empty) == len(incidents) and not any(i["has_field"] for i in incidents):
        seen = sorted({name for i in incidents for name in i["field_names"]})
        log.warning(
            "%s: no incident has a custom field named %r: every row has an empty service "
            "(validation sets them aside as missing_service); custom fields seen: %s",
            SOURCE,
            field,
            ", ".join(seen) or "none",
        )
        return
    log.warning(
        "%s: %d incidents list no affected service in %r: one row each with an empty service "
        "(validation sets them aside as missing_service): %s",
        SOURCE,
        len(empty),
        field,
        ", ".join(str(i.get("reference") or i.get("id")) for i in empty[:8])
        + (f" and {len(empty) - 8} more" if len(empty) > 8 else ""),
    )


# --------------------------------------------------------------------------- rows


def _compact(incident: dict[str, Any], field: str) -> dict[str, Any]:
    """What the import keeps of an incident: its keys (id, reference, created_at, updated_at),
    status category, affected services (the custom field named `field`, folded), the custom
    fields' names (for the warning when none is `field`), and its row of the incidents
    contract without the service (mapping in the module docstring)."""
    stamps = _timestamps(incident)
    created = incident.get("created_at")
    reported = incident.get("reported_at")
    category = _category(incident)
    name = incident.get("name") or None
    entries = [e for e in incident.get("custom_field_entries") or [] if isinstance(e, dict)]
    names = [(e.get("custom_field") or {}).get("name") for e in entries]
    chosen = [e for e, n in zip(entries, names, strict=True) if _fold(n) == field]
    return {
        "id": incident.get("id"),
        "reference": incident.get("reference"),
        "created_at": created,
        "updated_at": incident.get("updated_at"),
        "category": category,
        "services": _services(chosen),
        "has_field": bool(chosen),
        "field_names": tuple(str(n) for n in names),
        "row": {
            "incident_id": incident.get("reference") or incident.get("id"),
            "started_at": iso_instant(_first(stamps, STARTED) or reported or created),
            "resolved_at": iso_instant(_first(stamps, RESOLVED)),
            "detected_at": iso_instant(_first(stamps, DETECTED) or reported or created),
            "severity": (incident.get("severity") or {}).get("name") or None,
            "category": name,
            "title": name,
            "description": incident.get("summary") or None,
            "status": STATUS_WORDS.get(category, category) if category else None,
        },
    }


def _category(incident: dict[str, Any]) -> str | None:
    status = incident.get("incident_status")
    category = status.get("category") if isinstance(status, dict) else None
    return str(category).strip().lower() if category else None


def _services(entries: list[dict[str, Any]]) -> list[str]:
    """The names the services field's entries list (catalog entries by name, options by
    value, a text field split at commas), each once, in order."""
    names: list[str] = []
    for entry in entries:
        for value in entry.get("values") or []:
            if isinstance(value, dict):
                names.extend(_value_names(value))
    return list(dict.fromkeys(n for n in names if n))


def _value_names(value: dict[str, Any]) -> list[str]:
    catalog = value.get("value_catalog_entry") or {}
    if catalog.get("name"):
        return [str(catalog["name"]).strip()]
    option = value.get("value_option") or {}
    if option.get("value"):
        return [str(option["value"]).strip()]
    text = value.get("value_text")
    return [part.strip() for part in str(text).split(",")] if text else []


def _timestamps(incident: dict[str, Any]) -> dict[str, str]:
    """Timestamp name (folded) -> its value, for those set."""
    stamps: dict[str, str] = {}
    for item in incident.get("incident_timestamp_values") or []:
        if not isinstance(item, dict):
            continue
        name = _fold((item.get("incident_timestamp") or {}).get("name"))
        value = (item.get("value") or {}).get("value")
        if name and value and name not in stamps:
            stamps[name] = str(value)
    return stamps


def _first(stamps: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((stamps[n] for n in names if stamps.get(n)), None)


# --------------------------------------------------------------------------- helpers


def _fold(text: Any) -> str:
    return " ".join(str(text or "").split()).casefold()
