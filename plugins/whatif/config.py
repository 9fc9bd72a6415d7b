"""Run settings shared by the CLI and the DAG, parsed once and validated early. Their
defaults and bounds are declared in whatif.params (one spec for the CLI options and the DAG
params); `run_config` builds a RunConfig from either's values."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from whatif.errors import UserError
from whatif.params import NARRATORS, check, default
from whatif.schemas import FAILURE_MODES

DEFAULT_HISTORY_DAYS: int = default("history_days")
MAX_EVENT_DAYS = 90  # an event window longer than a quarter is not an event


@dataclasses.dataclass(frozen=True)
class EventWindow:
    """A planned high-traffic event; the horizon becomes the event window."""

    name: str
    start: date
    end: date
    traffic_multiplier: float = 1.0

    @property
    def days(self) -> float:
        return float((self.end - self.start).days + 1)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "traffic_multiplier": self.traffic_multiplier,
        }


@dataclasses.dataclass(frozen=True)
class WhatIf:
    """A forced what-if: always reported, conditioned on this root failure."""

    service: str
    failure_mode: str | None = None

    @classmethod
    def parse(cls, text: str) -> WhatIf:
        service, _, mode = text.strip().partition(":")
        service, mode = service.strip(), mode.strip().lower()
        if not service:
            raise UserError(f"--what-if {text!r}: expected SERVICE or SERVICE:MODE")
        if mode and mode not in FAILURE_MODES:
            raise UserError(
                f"--what-if {text!r}: unknown failure mode {mode!r}",
                hint=f"use one of {', '.join(FAILURE_MODES)}",
            )
        return cls(service=service, failure_mode=mode or None)


@dataclasses.dataclass(frozen=True)
class LLMSettings:
    """How to reach the LLM (narrator ollama/openai). The API key comes only from the
    environment or the Airflow connection, and is never shown (repr) or written."""

    url: str | None = None
    model: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    timeout_s: float = default("llm_timeout")  # per call
    temperature: float = default("llm_temperature")
    max_concurrency: int = default("llm_max_concurrency")  # scenarios narrated at once
    retries: int = default("llm_retries")  # per call: timeouts, refused connections, 429, 5xx
    breaker_threshold: int = 3  # consecutive failed calls that stop the calling for the run
    cache: str | None = None  # folder or object-storage URL of the response cache; None: off

    def __post_init__(self) -> None:
        check("llm_timeout", self.timeout_s)
        check("llm_max_concurrency", self.max_concurrency)
        check("llm_temperature", self.temperature)
        check("llm_retries", self.retries)
        if self.breaker_threshold < 1:
            raise UserError("the LLM breaker threshold must be at least 1")


HALF_LIFE_AUTO = "auto"  # chosen from the data (docs/model.md section 3)
HALF_LIFE_OFF = "off"  # no discounting: the window's average rate


def parse_half_life(value: object) -> float | str:
    """--half-life-days / the DAG param: "auto", "off" (also 0, "none") or a positive number
    of days."""
    text = str(value).strip().lower() if value is not None else HALF_LIFE_AUTO
    if text in ("", HALF_LIFE_AUTO):
        return HALF_LIFE_AUTO
    if text in (HALF_LIFE_OFF, "none", "0", "0.0"):
        return HALF_LIFE_OFF
    try:
        days = float(text)
    except ValueError:
        raise UserError(
            f"--half-life-days {value}: not a number", hint="use auto, off or a number of days"
        ) from None
    if not math.isfinite(days) or days <= 0:
        raise UserError(
            f"--half-life-days {value}: must be positive", hint="use auto, off or a number of days"
        )
    return days


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """How the failure models are fitted (docs/model.md)."""

    # infer a cascade from an incident of a dependency this recent
    cascade_window_minutes: float = default("cascade_window_minutes")
    # How fast old history fades from the rates: "auto" (chosen by the rolling-origin log
    # score), "off" (the window's average) or a half-life in days.
    half_life_days: float | str = default("half_life_days")
    backtest_horizon_days: float = default("backtest_horizon_days")
    backtest_folds: int = default("backtest_folds")  # 0: no backtest

    def __post_init__(self) -> None:
        check("cascade_window_minutes", self.cascade_window_minutes)
        object.__setattr__(self, "half_life_days", parse_half_life(self.half_life_days))
        check("backtest_horizon_days", self.backtest_horizon_days)
        check("backtest_folds", self.backtest_folds)

    @property
    def fixed_half_life(self) -> float | None:
        """The half-life the user fixed (math.inf for "off"), or None when it is chosen."""
        if self.half_life_days == HALF_LIFE_AUTO:
            return None
        return math.inf if self.half_life_days == HALF_LIFE_OFF else float(self.half_life_days)

    def as_dict(self) -> dict[str, float | int | str | None]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    seed: int = default("seed")
    scenarios: int = default("scenarios")
    horizon_days: float = default("horizon_days")
    draws: int = default("draws")
    cascade_draws: int = default("cascade_draws")
    history_days: int = DEFAULT_HISTORY_DAYS
    as_of: datetime | None = None
    event: EventWindow | None = None
    what_if: tuple[WhatIf, ...] = ()
    focus_services: tuple[str, ...] = ()  # an event's services in focus (selection)
    exercises: str | None = None  # the exercise log (path or URL): readiness and selection
    export_formats: tuple[str, ...] = ()  # chaos experiment formats (whatif.gameday)
    # depends_on names without a row of their own become external leaf services (a warning)
    allow_external_dependencies: bool = default("allow_external_dependencies")
    narrator: str = "template"
    llm: LLMSettings = dataclasses.field(default_factory=LLMSettings)
    model: ModelSettings = dataclasses.field(default_factory=ModelSettings)

    def __post_init__(self) -> None:
        for name in ("scenarios", "horizon_days", "draws", "cascade_draws", "history_days"):
            check(name, getattr(self, name))
        if self.narrator not in NARRATORS:
            raise UserError(
                f"--narrator {self.narrator!r}: unknown narrator",
                hint=f"use one of {', '.join(NARRATORS)}",
            )

    @property
    def effective_as_of(self) -> datetime:
        return self.as_of or datetime.now(UTC).replace(microsecond=0)

    @property
    def effective_horizon_days(self) -> float:
        return self.event.days if self.event else self.horizon_days


def parse_timestamp(text: str, what: str) -> datetime:
    """An ISO-8601 date or timestamp as an aware UTC datetime; naive means UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{what} {text!r}: not an ISO-8601 date or timestamp") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_date(text: str, what: str) -> date:
    return parse_timestamp(text, what).date()


def build_event(
    name: str | None,
    start: str | None,
    end: str | None,
    traffic_multiplier: float | None,
) -> EventWindow | None:
    """An event window from the flags/params, or None when no event is given."""
    given = {"--event-name": name, "--event-start": start, "--event-end": end}
    if not any(given.values()):
        if traffic_multiplier not in (None, 1.0):
            raise UserError("--traffic-multiplier needs an event window (--event-name/start/end)")
        return None
    missing = [flag for flag, value in given.items() if not value]
    if missing:
        raise UserError(f"an event needs {', '.join(missing)} as well")
    event_start, event_end = parse_date(start, "--event-start"), parse_date(end, "--event-end")
    if event_end < event_start:
        raise UserError(f"--event-end {end} is before --event-start {start}")
    if event_end - event_start > timedelta(days=MAX_EVENT_DAYS):
        raise UserError(f"an event window may last at most {MAX_EVENT_DAYS} days")
    multiplier = check(
        "traffic_multiplier", 1.0 if traffic_multiplier is None else float(traffic_multiplier)
    )
    return EventWindow(str(name), event_start, event_end, multiplier)


def _names(value: object) -> list[str]:
    """A list param given as a list or as comma-separated text."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [str(item).strip() for item in items if str(item).strip()]  # type: ignore[union-attr]


def _export_formats(value: object) -> tuple[str, ...]:
    """The export formats, each known (a UserError naming the others otherwise)."""
    from whatif.params import EXPORT_FORMATS as FORMATS

    names = tuple(dict.fromkeys(n.lower() for n in _names(value)))
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise UserError(f"export format {', '.join(unknown)}: choose among {', '.join(FORMATS)}")
    return names


def run_config(
    values: Mapping[str, Any], as_of: datetime | None, api_key: str | None = None
) -> RunConfig:
    """A RunConfig from the CLI's options or the DAG's params (whatif.params names both);
    a setting missing from `values` takes its default."""

    def text(name: str) -> str | None:
        value = values.get(name)
        return None if value is None else (str(value).strip() or None)

    def number(name: str) -> Any:
        value = values.get(name)
        return default(name) if value in (None, "") else value

    multiplier = values.get("traffic_multiplier")
    return RunConfig(
        seed=int(number("seed")),
        scenarios=int(number("scenarios")),
        horizon_days=float(number("horizon_days")),
        draws=int(number("draws")),
        cascade_draws=int(number("cascade_draws")),
        history_days=int(number("history_days")),
        as_of=as_of,
        event=build_event(
            text("event_name"),
            text("event_start"),
            text("event_end"),
            None if multiplier in (None, "") else float(multiplier),
        ),
        what_if=tuple(WhatIf.parse(item) for item in _names(values.get("what_if"))),
        focus_services=tuple(_names(values.get("focus_services"))),
        exercises=text("exercises"),
        export_formats=_export_formats(values.get("export_formats")),
        allow_external_dependencies=bool(values.get("allow_external_dependencies")),
        narrator=text("narrator") or default("narrator"),
        llm=llm_settings(values, api_key),
        model=ModelSettings(
            cascade_window_minutes=float(number("cascade_window_minutes")),
            half_life_days=parse_half_life(values.get("half_life_days")),
            backtest_horizon_days=float(number("backtest_horizon_days")),
            backtest_folds=int(number("backtest_folds")),
        ),
    )


def llm_settings(values: Mapping[str, Any], api_key: str | None = None) -> LLMSettings:
    """The LLM settings among `values` (the CLI's --llm-* options; the DAG's llm_url and
    llm_model, the rest from its connection); missing ones take their defaults. No cache
    unless `values` names one."""

    def number(name: str) -> Any:
        value = values.get(name)
        return default(name) if value in (None, "") else value

    return LLMSettings(
        url=(values.get("llm_url") or None),
        model=(values.get("llm_model") or None),
        api_key=api_key or None,
        timeout_s=float(number("llm_timeout")),
        temperature=float(number("llm_temperature")),
        max_concurrency=int(number("llm_max_concurrency")),
        retries=int(number("llm_retries")),
        cache=values.get("llm_cache") or None,
    )
