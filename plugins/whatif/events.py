"""The event calendar: planned high-traffic events (include/events.yaml) and which of them are
due a pre-event what-if run on a given day.

An event is due from `lead_days` before its start until it ends, and is run once: its run id
is derived from its name and start, so the calendar DAG can check it every day and a run that
already exists is skipped. Plain Python (no Airflow): the DAG only wires it.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from whatif.config import MAX_EVENT_DAYS, WhatIf
from whatif.errors import UserError
from whatif.params import SETTINGS

DEFAULT_LEAD_DAYS = 14


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    start: date
    end: date
    traffic_multiplier: float = Field(
        default=SETTINGS["traffic_multiplier"].default,
        gt=0,
        le=SETTINGS["traffic_multiplier"].maximum,
    )
    focus_services: list[str] = []
    lead_days: int = Field(default=DEFAULT_LEAD_DAYS, ge=0, le=365)
    what_if: list[str] = []

    @field_validator("what_if")
    @classmethod
    def _what_ifs_parse(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                WhatIf.parse(text)
            except UserError as error:
                raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _window(self) -> Event:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if (self.end - self.start).days > MAX_EVENT_DAYS:
            raise ValueError(f"an event window may last at most {MAX_EVENT_DAYS} days")
        return self

    @property
    def run_id(self) -> str:
        """The pre-event run's id: the same every day, so the event is run once."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "event"
        return f"event__{slug}__{self.start.isoformat()}"

    def is_due(self, today: date) -> bool:
        return self.start - timedelta(days=self.lead_days) <= today <= self.end

    def params(self) -> dict[str, Any]:
        """The params of the pre-event run of what_if_scenarios."""
        return {
            "event_name": self.name,
            "event_start": self.start.isoformat(),
            "event_end": self.end.isoformat(),
            "traffic_multiplier": self.traffic_multiplier,
            "focus_services": self.focus_services,
            "what_if": self.what_if,
        }


class Calendar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Event] = []

    @model_validator(mode="after")
    def _unique(self) -> Calendar:
        seen: dict[str, str] = {}
        for event in self.events:
            if event.run_id in seen:
                raise ValueError(
                    f"events {seen[event.run_id]!r} and {event.name!r} start the same day with "
                    "the same name: give them different names"
                )
            seen[event.run_id] = event.name
        return self


def load_calendar(path: str | Path) -> Calendar:
    """The events of a YAML calendar; a bad entry is a UserError naming the file, the event
    (by position and name) and the field."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError("file not found", file=str(path)) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise UserError(
            f"{where}not valid YAML ({getattr(error, 'problem', error)})", file=str(path)
        ) from None
    try:
        return Calendar.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        location = list(first["loc"])
        where = ""
        if len(location) >= 2 and location[0] == "events" and isinstance(location[1], int):
            entries = raw.get("events") or []
            number = location[1]
            name = entries[number].get("name") if isinstance(entries[number], dict) else None
            where = f"event {number + 1}" + (f" ({name})" if name else "")
            location = location[2:]
        field = ".".join(str(part) for part in location)
        message = first["msg"].removeprefix("Value error, ")
        detail = ", ".join(filter(None, (where, f"field {field}" if field else "")))
        raise UserError(f"{detail}: {message}" if detail else message, file=str(path)) from None


def due_events(calendar: Calendar, today: date) -> list[Event]:
    """The events that should have their pre-event run by `today`, earliest first."""
    return sorted((e for e in calendar.events if e.is_due(today)), key=lambda e: e.start)
