"""Incidents from PagerDuty (REST API v2 through PagerDuty's own client) and incident.io (API
v2 through JsonApi), against loopback servers that speak each API as documented
(tests/fakes/incident_servers.py): the mapping of every column, PagerDuty's 6-month range and
10,000-record cap (the cap made small, the same code path), incident.io's cursor pages and
affected services, and every failure as one line with nothing returned. Offline and fast."""

from __future__ import annotations

import dataclasses
import logging
import socket
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from fakes.incident_servers import (
    IIO_TOKEN,
    PD_TOKEN,
    add_months,
    iio_incident,
    incident_io_server,
    pagerduty_server,
    pd_incident,
)
from whatif.errors import UserError
from whatif.importers import incidentio, pagerduty
from whatif.importers.api import ApiError
from whatif.importers.common import incidents_csv
from whatif.llm import RetryPolicy
from whatif.schemas import INCIDENT_OPTIONAL, INCIDENT_REQUIRED

FAST = RetryPolicy(retries=2, base_s=0.001, cap_s=0.002, max_retry_after_s=1.0)
JAN = datetime(2024, 1, 1, tzinfo=UTC)


def at(days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> str:
    when = JAN + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def pd_import(server, since=JAN, until=None, token=PD_TOKEN, **options) -> pd.DataFrame:
    settings = {"retry": FAST, "verify": server.client_tls, "base_url": server.url, **options}
    return pagerduty.import_incidents(
        token=token, since=since, until=until or JAN + timedelta(days=60), **settings
    )


def iio_import(server, since=JAN, until=None, token=IIO_TOKEN, **options) -> pd.DataFrame:
    settings = {"retry": FAST, "base_url": server.url, **options}
    return incidentio.import_incidents(
        token=token, since=since, until=until or JAN + timedelta(days=60), **settings
    )


def by_id(frame: pd.DataFrame) -> dict[str, dict]:
    return {row["incident_id"]: row for row in frame.to_dict("records")}


def blank(value) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA


# --------------------------------------------------------------------------- PagerDuty


def test_pagerduty_maps_every_column():
    incidents = [
        pd_incident(
            101,
            at(1, 10),
            service_id="PCHK",
            service="Checkout (prod)",
            title="Checkout database connection pool exhausted",
            priority="P1",
            teams=("Payments", "DBA"),
        ),
        pd_incident(
            102,
            at(2, 8),
            service_id="PSRCH",
            service="Search",
            status="acknowledged",
            priority=None,
            urgency="low",
            teams=(),
            escalation_policy="Search on-call",
            acknowledged_at=(at(2, 8, 20), at(2, 8, 5)),
        ),
        pd_incident(103, at(3), service_id="PSRCH", service="Search", status="triggered"),
    ]
    resolved_without_field = pd_incident(104, at(4), service_id="PNEW", service="New thing")
    resolved_without_field.pop("resolved_at")
    resolved_without_field["last_status_change_at"] = at(4, 2)
    incidents.append(resolved_without_field)
    with pagerduty_server(incidents=incidents) as server:
        frame = pd_import(server, service_names={"PCHK": "checkout-api", "PSRCH": "search"})
    rows = by_id(frame)
    assert list(rows) == ["101", "102", "103", "104"]  # sorted by start
    first = dict(rows["101"])
    assert blank(first.pop("acknowledged_at"))  # resolved: PagerDuty lists none
    assert first == {
        "incident_id": "101",
        "service": "checkout-api",  # the topology's name for service.id
        "started_at": "2024-01-02T10:00:00Z",
        "resolved_at": "2024-01-02T10:45:00Z",
        "severity": "P1",  # priority.summary
        "category": "Checkout database connection pool exhausted",
        "title": "Checkout database connection pool exhausted",
        "team": "Payments",  # the first team
        "status": "resolved",
    }
    assert rows["102"]["severity"] == "low"  # no priority: the urgency
    assert rows["102"]["team"] == "Search on-call"  # no team: the escalation policy
    assert rows["102"]["acknowledged_at"] == "2024-01-03T08:05:00Z"  # the earliest
    assert rows["102"]["status"] == "acknowledged"
    assert blank(rows["102"]["resolved_at"])
    assert rows["103"]["status"] == "triggered" and blank(rows["103"]["resolved_at"])
    assert rows["104"]["service"] == "New thing"  # not in the topology: PagerDuty's name
    assert rows["104"]["resolved_at"] == "2024-01-05T02:00:00Z"  # last_status_change_at
    assert set(frame.columns) <= set(INCIDENT_REQUIRED) | set(INCIDENT_OPTIONAL)


def test_pagerduty_request_as_documented():
    with pagerduty_server(incidents=[pd_incident(1, at(1))]) as server:
        pd_import(server)
    (call,) = server.calls("/incidents")
    assert call["headers"]["Authorization"] == f"Token token={PD_TOKEN}"
    assert call["headers"]["Accept"] == "application/vnd.pagerduty+json;version=2"
    query = call["query"]
    assert query["statuses[]"] == ["triggered", "acknowledged", "resolved"]
    assert query["time_zone"] == ["UTC"] and query["total"] == ["true"]
    assert query["limit"] == ["100"] and query["offset"] == ["0"]
    assert query["since"] == ["2024-01-01T00:00:00Z"]
    assert query["until"] == ["2024-03-01T00:00:00Z"]


def test_pagerduty_reads_fourteen_months_in_windows_of_at_most_six():
    incidents = [pd_incident(n, at(days=7 * n)) for n in range(1, 61)]  # one a week
    until = JAN + timedelta(days=7 * 61)
    with pagerduty_server(incidents=incidents) as server:
        frame = pd_import(server, until=until)  # 14 months: the fake refuses > 6 in one
        windows = server.windows()
    assert len(windows) >= 3
    assert all(add_months(start, 6) >= end for start, end in windows)
    assert windows[0][0] == JAN and windows[-1][1] == until
    assert sorted(frame["incident_id"].astype(int)) == list(range(1, 61))


def test_pagerduty_range_over_six_months_is_what_the_fake_refuses():
    """The window rule is needed: one request for 14 months is answered 400."""
    with pagerduty_server() as server, pytest.raises(ApiError, match="Invalid Input Provided"):
        pd_import(server, until=JAN + timedelta(days=430), window=timedelta(days=430))


def test_pagerduty_window_over_the_cap_is_split_until_every_incident_is_read():
    incidents = [pd_incident(n, at(hours=3 * n)) for n in range(1, 61)]  # 60 in 7.5 days
    with pagerduty_server(incidents=incidents, cap=25) as server:
        frame = pd_import(server, cap=25, page_size=5)
        calls = server.calls("/incidents")
    assert sorted(frame["incident_id"].astype(int)) == list(range(1, 61))
    assert len(frame) == 60  # halves overlap by a second: nothing twice
    assert all(int(c["query"]["offset"][0]) + int(c["query"]["limit"][0]) <= 25 for c in calls)
    assert not any(c.get("fault") for c in calls)
    assert len({(c["query"]["since"][0], c["query"]["until"][0]) for c in calls}) >= 4


def test_pagerduty_cap_without_splitting_loses_incidents():
    """What the split prevents: one listing stops at the cap (HTTP 400 past it)."""
    incidents = [pd_incident(n, at(hours=3 * n)) for n in range(1, 61)]
    refused = "Offset\\+limit exceeds maximum allowed value of 25"
    with (
        pagerduty_server(incidents=incidents, cap=25) as server,
        pytest.raises(ApiError, match=refused),
    ):
        pd_import(server, cap=10_000, page_size=5)
    assert server.calls()[-1]["query"]["offset"] == ["25"]


def test_pagerduty_incident_on_a_window_boundary_is_kept_once(caplog):
    boundary = JAN + timedelta(days=10)
    incidents = [
        pd_incident(1, at(5)),
        pd_incident(2, boundary.strftime("%Y-%m-%dT%H:%M:%SZ")),
        pd_incident(3, at(15)),
    ]
    caplog.set_level(logging.INFO, logger="whatif")
    with pagerduty_server(incidents=incidents) as server:
        frame = pd_import(server, until=JAN + timedelta(days=20), window=timedelta(days=10))
        windows = server.windows()
    assert len(windows) == 2 and windows[0][1] > boundary >= windows[1][0]
    assert list(frame["incident_id"]) == ["1", "2", "3"]
    assert any(
        "listed by two overlapping windows, kept once" in r.getMessage() for r in caplog.records
    )


def test_pagerduty_more_than_the_cap_within_two_seconds_is_an_error():
    incidents = [pd_incident(n, at(3)) for n in range(1, 31)]  # 30 in the same second
    with (
        pagerduty_server(incidents=incidents, cap=25) as server,
        pytest.raises(ApiError, match="30 incidents created within") as caught,
    ):
        pd_import(server, cap=25, page_size=5)
    assert "\n" not in str(caught.value)


def test_pagerduty_refused_token_is_one_line_naming_the_variable():
    with pagerduty_server(token="the-right-one") as server, pytest.raises(ApiError) as caught:
        pd_import(server, token="wrong-token-ab12")
    text = str(caught.value)
    assert "HTTP 401" in text and "$PAGERDUTY_TOKEN" in text and "\n" not in text
    assert "wrong-token" not in text and "ab12" not in text
    assert len(server.calls("/incidents")) == 1  # 401 is not retried


def test_pagerduty_no_token_asks_for_the_variable_without_a_request():
    with pagerduty_server() as server, pytest.raises(ApiError, match="PAGERDUTY_TOKEN"):
        pd_import(server, token="")
    assert not server.requests


@pytest.mark.parametrize("headers", [{}, {"Retry-After": "0"}])
def test_pagerduty_429_is_retried(headers):
    with pagerduty_server(incidents=[pd_incident(1, at(1)), pd_incident(2, at(2))]) as server:
        server.fail(429, times=2, headers=headers)
        frame = pd_import(server)
    assert list(frame["incident_id"]) == ["1", "2"]
    assert [c.get("fault") for c in server.calls("/incidents")] == [429, 429, None]


def test_pagerduty_persistent_500_is_an_error_and_nothing_returned():
    with pagerduty_server(incidents=[pd_incident(1, at(1))]) as server:
        server.fail(500, times=99)
        with pytest.raises(ApiError, match="HTTP 500 after 3 tries") as caught:
            pd_import(server)
    assert len(server.calls("/incidents")) == 3  # the first try and FAST's 2 retries
    assert "\n" not in str(caught.value)


def test_pagerduty_later_page_failing_returns_nothing():
    incidents = [pd_incident(n, at(hours=n)) for n in range(1, 13)]
    with pagerduty_server(incidents=incidents) as server:
        server.fail(503, times=99, start=2)  # page 1 answers, page 2 never does
        with pytest.raises(ApiError, match="offset=5") as caught:
            pd_import(server, page_size=5)
    assert "HTTP 503 after 3 tries" in str(caught.value)


def test_pagerduty_truncated_json_is_an_error():
    with pagerduty_server(incidents=[pd_incident(1, at(1))]) as server:
        server.fail(truncate=True)
        with pytest.raises(ApiError, match="not complete JSON") as caught:
            pd_import(server)
    assert "\n" not in str(caught.value)


def test_pagerduty_unreachable_is_one_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(ApiError, match=r"cannot connect to https://127\.0\.0\.1") as caught:
        pagerduty.import_incidents(
            token=PD_TOKEN,
            since=JAN,
            until=JAN + timedelta(days=1),
            base_url=f"https://127.0.0.1:{port}",
            retry=FAST,
        )
    assert "after 3 tries" in str(caught.value) and "\n" not in str(caught.value)


def test_pagerduty_token_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    with pagerduty_server(incidents=[pd_incident(1, at(1))]) as server:
        server.fail(429)
        server.fail(500, start=2)
        pd_import(server)
        with pytest.raises(ApiError):
            pd_import(server, token="another-SECRET-beef")
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request" in logged or "retrying" in logged  # the client's lines are there
    for secret in (PD_TOKEN, PD_TOKEN[-4:], "another-SECRET-beef", "beef"):
        assert secret not in logged


def test_pagerduty_plain_http_and_empty_range_are_user_errors():
    with pytest.raises(UserError, match="not https://"):
        pagerduty.import_incidents(
            token=PD_TOKEN, since=JAN, until=JAN + timedelta(days=1), base_url="http://127.0.0.1:9"
        )
    with pytest.raises(UserError, match="not after"):
        pagerduty.import_incidents(token=PD_TOKEN, since=JAN, until=JAN)


def test_pagerduty_rows_write_as_the_incidents_csv():
    with pagerduty_server(incidents=[pd_incident(7, at(1))]) as server:
        text = incidents_csv(pd_import(server))
    header, row = text.splitlines()
    assert header.startswith("incident_id,service,started_at,resolved_at,")
    assert row.startswith("7,Checkout API,2024-01-02T00:00:00Z,2024-01-02T00:45:00Z,")


# --------------------------------------------------------------------------- incident.io


def test_incidentio_maps_every_column():
    incidents = [
        iio_incident(
            12,
            at(1, 10),
            services=("checkout-api", "payments-db"),
            severity="Critical",
            name="Payments database failover",
            summary="The primary went away.",
            timestamps={
                "Reported at": at(1, 10),
                "Impact started": at(1, 9, 40),
                "Fixed at": at(1, 11),
                "Resolved at": at(1, 11, 30),
                "Closed at": at(2),
            },
        ),
        iio_incident(
            13,
            at(2, 12),
            status="Fixing",
            severity=None,
            timestamps={"Impact started": None, "Resolved at": None, "Fixed at": at(2, 13)},
        ),
        iio_incident(14, at(3), status="Triage", timestamps={"Impact started at": at(2, 23)}),
        iio_incident(15, at(4), status="Documenting", timestamps={"Closed at": at(4, 5)}),
        iio_incident(16, at(5), status="Paused"),
    ]
    with incident_io_server(incidents=incidents) as server:
        frame = iio_import(server)
    first = frame[frame["incident_id"] == "INC-12"].to_dict("records")
    assert [r["service"] for r in first] == ["checkout-api", "payments-db"]
    assert first[0] == {
        "incident_id": "INC-12",
        "service": "checkout-api",
        "started_at": "2024-01-02T09:40:00Z",  # Impact started
        "resolved_at": "2024-01-02T11:30:00Z",  # Resolved at before Fixed at, Closed at
        "detected_at": "2024-01-02T10:00:00Z",  # Reported at
        "severity": "Critical",
        "category": "Payments database failover",
        "title": "Payments database failover",
        "description": "The primary went away.",
        "status": "closed",
    }
    rows = by_id(frame)
    assert rows["INC-13"]["started_at"] == "2024-01-03T12:00:00Z"  # unset: created_at
    assert rows["INC-13"]["resolved_at"] == "2024-01-03T13:00:00Z"  # Fixed at
    assert blank(rows["INC-13"]["severity"]) and rows["INC-13"]["status"] == "active"
    assert rows["INC-14"]["started_at"] == "2024-01-03T23:00:00Z"  # Impact started at
    assert rows["INC-14"]["status"] == "triage"
    assert rows["INC-15"]["resolved_at"] == "2024-01-05T05:00:00Z"  # Closed at
    assert rows["INC-15"]["status"] == "resolved"  # post-incident: over
    assert rows["INC-16"]["status"] == "open" and blank(rows["INC-16"]["resolved_at"])
    assert set(frame.columns) <= set(INCIDENT_REQUIRED) | set(INCIDENT_OPTIONAL)


def test_incidentio_pages_through_the_cursor():
    incidents = [iio_incident(n, at(n)) for n in range(1, 8)]
    with incident_io_server(incidents=incidents) as server:
        frame = iio_import(server, page_size=2)
    calls = server.calls("/v2/incidents")
    assert len(calls) == 4  # 2 + 2 + 2 + 1
    assert "after" not in calls[0]["query"]
    assert all(len(c["query"]["after"]) == 1 for c in calls[1:])
    assert all(c["headers"]["Authorization"] == f"Bearer {IIO_TOKEN}" for c in calls)
    assert calls[0]["query"]["page_size"] == ["2"]
    assert calls[0]["query"]["created_at[gte]"] == ["2024-01-01"]
    assert calls[0]["query"]["created_at[lte]"] == ["2024-03-01"]
    assert list(frame["incident_id"]) == [f"INC-{n}" for n in range(1, 8)]  # by start


def test_incidentio_affected_services_one_row_each_and_none_one_empty_row(caplog):
    incidents = [
        iio_incident(1, at(1), services=("api", "db", "cache")),
        iio_incident(2, at(2), services=()),
    ]
    caplog.set_level(logging.WARNING, logger="whatif")
    with incident_io_server(incidents=incidents) as server:
        frame = iio_import(server)
    assert frame[frame["incident_id"] == "INC-1"]["service"].tolist() == ["api", "cache", "db"]
    lone = frame[frame["incident_id"] == "INC-2"]
    assert len(lone) == 1 and blank(lone["service"].iloc[0])
    messages = [r.getMessage() for r in caplog.records]
    assert any("1 incidents list no affected service" in m and "INC-2" in m for m in messages)


def test_incidentio_services_field_is_configurable(caplog):
    incidents = [iio_incident(1, at(1), services=("api",), services_field="Impacted systems")]
    caplog.set_level(logging.WARNING, logger="whatif")
    with incident_io_server(incidents=incidents) as server:
        default = iio_import(server)
        named = iio_import(server, services_field="impacted  SYSTEMS")
    assert default["service"].isna().all()
    assert any("no incident has a custom field named" in r.getMessage() for r in caplog.records)
    assert named["service"].tolist() == ["api"]


def test_incidentio_option_and_text_fields_name_services_too():
    incident = iio_incident(1, at(1), services=())
    entry = incident["custom_field_entries"][0]
    entry["values"] = [
        {"value_option": {"id": "01A", "value": "search"}},
        {"value_text": "billing, ledger"},
        {"value_catalog_entry": {"id": "01B", "name": "search"}},
    ]
    with incident_io_server(incidents=[incident]) as server:
        frame = iio_import(server)
    assert frame["service"].tolist() == ["billing", "ledger", "search"]


def test_incidentio_not_incidents_and_outside_the_range_are_left_out_and_counted(caplog):
    incidents = [
        iio_incident(1, at(10)),
        iio_incident(2, at(11), status="Declined"),
        iio_incident(3, at(12), status="Merged"),
        iio_incident(4, at(13), status="Canceled"),
        iio_incident(5, at(0, 6)),  # on since's day, before since
        iio_incident(6, at(20, 18)),  # on until's day, after until
        iio_incident(7, at(14), mode="test"),  # the API's default leaves tests out
    ]
    since, until = JAN + timedelta(hours=12), JAN + timedelta(days=20, hours=12)
    caplog.set_level(logging.INFO, logger="whatif")
    with incident_io_server(incidents=incidents) as server:
        frame = iio_import(server, since=since, until=until)
        everything = iio_import(server, since=since, until=until, include_not_incidents=True)
    assert server.calls()[0]["query"]["created_at[lte]"] == ["2024-01-22"]
    assert frame["incident_id"].tolist() == ["INC-1"]
    assert everything["incident_id"].tolist() == ["INC-1", "INC-2", "INC-3", "INC-4"]
    assert everything["status"].tolist()[1:] == ["declined", "merged", "canceled"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("3 incidents left out as not incidents" in m for m in messages)
    assert any("2 incidents created outside" in m for m in messages)


@pytest.mark.parametrize("header", [True, False])
def test_incidentio_429_is_retried(header):
    waits: list[float] = []
    with incident_io_server(incidents=[iio_incident(1, at(1))], retry_after_header=header) as s:
        s.fail(429, times=2, headers={"Retry-After": "0.25"} if header else {})
        patient = dataclasses.replace(FAST, max_retry_after_s=5.0)
        frame = iio_import(s, sleep=waits.append, retry=patient)
    assert frame["incident_id"].tolist() == ["INC-1"]
    assert [c.get("fault") for c in s.calls()] == [429, 429, None]
    assert len(waits) == 2
    if header:
        assert waits == [0.25, 0.25]  # the server's Retry-After
    else:  # the error document's rate_limit.retry_after, two seconds on (whole seconds)
        assert all(0.9 < wait <= 2.0 for wait in waits), waits


def test_incidentio_persistent_500_and_a_failing_later_page_return_nothing():
    incidents = [iio_incident(n, at(n)) for n in range(1, 6)]
    with incident_io_server(incidents=incidents) as server:
        server.fail(500, times=99)
        with pytest.raises(ApiError, match="HTTP 500 after 3 tries") as caught:
            iio_import(server, sleep=lambda s: None)
        assert "\n" not in str(caught.value)
    with incident_io_server(incidents=incidents) as server:
        server.fail(502, times=99, start=3)
        with pytest.raises(ApiError, match="after=") as caught:
            iio_import(server, page_size=2, sleep=lambda s: None)
    assert "HTTP 502" in str(caught.value)


def test_incidentio_truncated_json_is_an_error():
    with incident_io_server(incidents=[iio_incident(1, at(1))]) as server:
        server.fail(truncate=True)
        with pytest.raises(ApiError, match="not complete JSON"):
            iio_import(server)


def test_incidentio_error_document_is_read_into_the_line():
    with incident_io_server(incidents=[iio_incident(1, at(1))]) as server:
        server.fail(422)
        with pytest.raises(ApiError) as caught:
            iio_import(server)
    text = str(caught.value)
    assert "HTTP 422: validation_error: injected HTTP 422" in text
    assert "request_id" in text and "\n" not in text
    assert len(server.calls()) == 1  # a 4xx is not retried


def test_incidentio_refused_key_is_one_line_naming_the_variable():
    with incident_io_server(token="right") as server, pytest.raises(ApiError) as caught:
        iio_import(server, token="wrong-key-77aa")
    text = str(caught.value)
    assert "HTTP 401" in text and "$INCIDENT_IO_API_KEY" in text and "\n" not in text
    assert "77aa" not in text


def test_incidentio_cursor_that_repeats_is_an_error(monkeypatch):
    pages = iter(
        [
            {
                "incidents": [iio_incident(1, at(1))],
                "pagination_meta": {"after": "X", "page_size": 1},
            },
            {
                "incidents": [iio_incident(2, at(2))],
                "pagination_meta": {"after": "X", "page_size": 1},
            },
        ]
    )
    monkeypatch.setattr(incidentio.JsonApi, "get", lambda self, path, params=None: next(pages))
    with pytest.raises(ApiError, match="would never end"):
        incidentio.import_incidents(token="k", since=JAN, until=JAN + timedelta(days=9))


def test_incidentio_answer_without_pagination_meta_is_an_error(monkeypatch):
    monkeypatch.setattr(
        incidentio.JsonApi, "get", lambda self, path, params=None: {"incidents": []}
    )
    with pytest.raises(ApiError, match="pagination_meta"):
        incidentio.import_incidents(token="k", since=JAN, until=JAN + timedelta(days=9))
