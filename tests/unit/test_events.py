"""The event calendar: parsing with clear errors, which events are due, once per event."""

from __future__ import annotations

from datetime import date

import pytest
from shared import PROJECT, write
from whatif.errors import UserError
from whatif.events import Calendar, Event, due_events, load_calendar

CALENDAR = """\
events:
  - name: Black Friday
    start: 2026-11-27
    end: 2026-11-30
    traffic_multiplier: 3
    focus_services: [checkout, payments]
    lead_days: 14
  - name: Spring launch
    start: 2027-03-15
    end: 2027-03-15
"""


def test_the_shipped_calendar_reads():
    calendar = load_calendar(PROJECT / "include" / "events.yaml")
    assert calendar.events and all(e.lead_days >= 0 for e in calendar.events)


def test_an_event_is_due_from_its_lead_days_before_the_start_until_it_ends(tmp_path):
    calendar = load_calendar(write(tmp_path, "events.yaml", CALENDAR))
    friday, spring = calendar.events
    assert spring.lead_days == 14  # the default
    assert due_events(calendar, date(2026, 11, 12)) == []
    assert due_events(calendar, date(2026, 11, 13)) == [friday]  # 14 days before
    assert due_events(calendar, date(2026, 11, 30)) == [friday]  # still during the event
    assert due_events(calendar, date(2026, 12, 1)) == []
    assert due_events(calendar, date(2027, 3, 1)) == [spring]


def test_the_run_id_and_params_of_a_pre_event_run(tmp_path):
    friday = load_calendar(write(tmp_path, "events.yaml", CALENDAR)).events[0]
    assert friday.run_id == "event__black-friday__2026-11-27"  # the same every day: run once
    assert friday.params() == {
        "event_name": "Black Friday",
        "event_start": "2026-11-27",
        "event_end": "2026-11-30",
        "traffic_multiplier": 3.0,
        "focus_services": ["checkout", "payments"],
        "what_if": [],
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CALENDAR.replace("end: 2026-11-30", "end: 2026-11-20"), "event 1 (Black Friday)"),
        (CALENDAR.replace("traffic_multiplier: 3", "traffic_multiplier: -1"), "traffic_multiplier"),
        (
            CALENDAR.replace("start: 2027-03-15", "start: soon"),
            "event 2 (Spring launch), field start",
        ),
        (CALENDAR.replace("lead_days: 14", "lead_dayz: 14"), "lead_dayz"),
        (
            CALENDAR + "  - name: Black Friday\n    start: 2026-11-27\n    end: 2026-11-28\n",
            "same name",
        ),
        ("events: [\n", "line"),
        (CALENDAR.replace("lead_days: 14", "lead_days: 14\n    what_if: ['db:melted']"), "melted"),
    ],
)
def test_a_bad_calendar_is_one_clear_line_naming_the_file_and_event(tmp_path, text, message):
    path = write(tmp_path, "events.yaml", text)
    with pytest.raises(UserError) as caught:
        load_calendar(path)
    assert message in str(caught.value) and "events.yaml" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_empty_calendar_has_no_events(tmp_path):
    assert load_calendar(write(tmp_path, "events.yaml", "")).events == []
    assert due_events(Calendar(), date(2026, 1, 1)) == []
    assert Event(name="x", start=date(2026, 1, 2), end=date(2026, 1, 2)).is_due(date(2026, 1, 2))
