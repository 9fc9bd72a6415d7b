"""Vocabularies and the versioned artifact contracts (scenarios.json, model.json).

The pydantic models are the single definition of what consumers may rely on: every artifact
is validated against them before it is written, and `docs/data-contract.md` documents them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1  # model.json
SCENARIOS_SCHEMA_VERSION = 2  # scenarios.json: 2 since the narrative's richer tabletop pack
NARRATIVE_SCHEMA_VERSION = 2  # what a narrator (LLM) answers; part of the LLM cache key

# Canonical severity scale, most severe first.
SEVERITIES: tuple[str, ...] = ("SEV1", "SEV2", "SEV3", "SEV4")

# Canonical failure modes; anything unrecognised becomes "other".
FAILURE_MODES: tuple[str, ...] = (
    "capacity",
    "database",
    "deployment",
    "config",
    "network",
    "dependency",
    "hardware",
    "security",
    "data",
    "other",
)

INCIDENT_REQUIRED = ("incident_id", "service", "started_at")
INCIDENT_OPTIONAL = (
    "resolved_at",  # optional: an open incident, or an export that gives a duration instead
    "severity",
    "category",
    "title",
    "description",
    "detected_at",
    "acknowledged_at",
    "caused_by",
    "team",
    "load_factor",
    "duration_minutes",
    "duration_s",
    "status",
)
# Other names read as a contract column when the file lacks the column itself.
INCIDENT_ALIASES = {"duration_s": ("duration_seconds",)}
# Added by validation to each row used: where its duration comes from (docs/data-contract.md).
DURATION_SOURCES = ("resolved_at", "duration_column", "open", "not_recorded")
TOPOLOGY_REQUIRED = ("service", "depends_on")
TOPOLOGY_OPTIONAL = (
    "tier",
    "owner_team",
    "user_facing",
    "runbook_url",
    "oncall",
    "slo_target",
    "traffic_weight",
    "created_at",
    "soft_depends_on",
)
# Written by `whatif topology import` / `merge` (docs/sources.md); optional in any topology.
# observed_calls / observed_errors: `dependency=count;...` from traces over the import's
# lookback; observed_requests: the requests the service received. Not in the SQL tables.
TOPOLOGY_OBSERVED = (
    "pagerduty_service_id",
    "observed_requests",
    "observed_calls",
    "observed_errors",
)
# Where a service runs, for the game-day exports (docs/gameday.md); optional, not in SQL.
TOPOLOGY_TARGETS = ("k8s_namespace", "k8s_selector", "health_url", "aws_target")

# The legacy What-If notebook format that users migrate from.
NOTEBOOK_INCIDENT_COLUMNS = ("date", "service", "type", "impact", "mitigation")
NOTEBOOK_TOPOLOGY_COLUMNS = ("service", "dependencies", "criticality")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Interval(_Strict):
    mean: float = Field(ge=0)
    p05: float = Field(ge=0)
    p95: float = Field(ge=0)


class Percentiles(_Strict):
    p50: float = Field(ge=0)
    p90: float = Field(ge=0)


class Evidence(_Strict):
    """Trials of an edge: failures of the dependency, less those `censored` (the dependent
    was failing anyway); hits: failures of the dependent they caused (`inferred_hits` of them
    from timing, not caused_by)."""

    exposures: int = Field(ge=0)
    hits: int = Field(ge=0)
    inferred_hits: int = Field(default=0, ge=0)
    censored: int = Field(default=0, ge=0)
    # Of exposures and hits, those from game-day journals (docs/gameday.md).
    gameday_trials: int = Field(default=0, ge=0)
    gameday_hits: int = Field(default=0, ge=0)


class GammaPosterior(_Strict):
    """Gamma(shape, rate) over a rate per day."""

    shape: float = Field(gt=0)
    rate: float = Field(gt=0)


class BetaPosterior(_Strict):
    alpha: float = Field(gt=0)
    beta: float = Field(gt=0)


class LogNormal(_Strict):
    """Durations in minutes: log(duration) ~ Normal(mu, sigma)."""

    mu: float
    sigma: float = Field(gt=0)


class ServiceModel(_Strict):
    service: str
    incidents: int = Field(ge=0)
    root_incidents: int = Field(ge=0)
    incident_rate_per_day: Interval
    root_rate_per_day: Interval
    root_rate_posterior: GammaPosterior
    mttr_minutes: Percentiles
    mttr_source: Literal["data", "pooled", "prior"]
    duration_minutes_lognormal: LogNormal
    severity_probabilities: dict[str, float]
    failure_modes: dict[str, float]
    # Added within schema version 1 (optional, so earlier files still read):
    exposure_days: float | None = Field(default=None, ge=0)
    root_rate_by_mode_per_day: dict[str, float] | None = None
    # The rate's distribution over the next horizon, with the over-dispersion folded in (same
    # mean as the posterior): what the simulation integrates over. None in older files.
    root_rate_predictive: GammaPosterior | None = None
    mttd_minutes: Percentiles | None = None  # None: the input has no detected_at
    mtta_minutes: Percentiles | None = None  # None: the input has no acknowledged_at
    # Root incidents per failure mode (modes without any left out); None in older files.
    root_incidents_by_mode: dict[str, int] | None = None


class ObservedTraffic(_Strict):
    """What traces saw on an edge over the import's lookback (docs/model.md, trace prior):
    calls from the dependent to the dependency, how many failed, and the coverage (calls per
    request the dependent served, at most 1) that scales the edge's prior."""

    calls: int = Field(ge=0)
    errors: int | None = Field(default=None, ge=0)
    coverage: float | None = Field(default=None, ge=0, le=1)


class EdgeModel(_Strict):
    service: str
    depends_on: str
    propagation_probability: Interval
    posterior: BetaPosterior
    evidence: Evidence
    criticality: Literal["hard", "soft", "unknown"] = "unknown"
    observed: ObservedTraffic | None = None  # only for an edge the traces saw


class Attribution(_Strict):
    """How incident rows were attributed: roots, cascades by caused_by, cascades inferred."""

    window_minutes: float = Field(ge=0)
    inference: str = "on"  # or "off: <why>"
    rows: int = Field(ge=0)
    roots: int = Field(ge=0)
    caused_by: int = Field(ge=0)
    inferred: int = Field(ge=0)


class TimeMultipliers(_Strict):
    timezone: str
    root_incidents: int = Field(ge=0)
    day_of_week: dict[str, float]
    hour_of_day: dict[str, float]
    concentration: dict[str, float]


class Elasticity(_Strict):
    mean: float
    sd: float = Field(ge=0)
    p05: float
    p95: float


class LoadModel(_Strict):
    """Rates of `modes` scale as traffic ** elasticity during an event window."""

    modes: list[str]
    incidents_with_load: int = Field(ge=0)
    elasticity: Elasticity
    source: Literal["data", "default"]


# The backtest's models (keys of model.json backtest.scores): the rate model and its baselines.
BACKTEST_MODELS: tuple[str, ...] = ("hierarchical", "global_rate", "per_service_ml", "recent_rate")
BACKTEST_LABELS = {
    "hierarchical": "dynamic hierarchical Gamma-Poisson (this model)",
    "global_rate": "one global rate",
    "per_service_ml": "per-service maximum likelihood",
    "recent_rate": "each service's rate over the last 90 days",  # whatif.rates.RECENT_DAYS
}


def backtest_label(name: str) -> str:
    """A backtest model's name in tables and legends: the baselines say so (a name this
    version does not know is shown as it is)."""
    if name not in BACKTEST_LABELS or name == BACKTEST_MODELS[0]:
        return BACKTEST_LABELS.get(name, name)
    return f"baseline: {BACKTEST_LABELS[name]}"


class BacktestScore(_Strict):
    log_score: float
    coverage_90: float = Field(ge=0, le=1)
    predicted_total: float = Field(ge=0)
    observed_total: int = Field(ge=0)
    zero_probability_outcomes: int = Field(ge=0)
    # Added within schema version 1: the randomised-PIT share inside the central 90 % interval
    # (not inflated by the discreteness of small counts, unlike coverage_90).
    pit_coverage_90: float | None = Field(default=None, ge=0, le=1)


class BacktestComparison(_Strict):
    log_score_difference: float
    standard_error: float = Field(ge=0)


class CalibrationPoint(_Strict):
    """Coverage of a model's central predictive intervals of one nominal level."""

    nominal: float = Field(gt=0, lt=1)
    observed: float = Field(ge=0, le=1)


class Backtest(_Strict):
    status: Literal["done", "skipped"]
    reason: str | None = None
    target: str | None = None
    horizon_days: float | None = None
    folds: int | None = None
    origins: list[str] = []
    services: int | None = None
    evaluations: int | None = None
    scores: dict[str, BacktestScore] = {}
    winner: str | None = None
    comparison: dict[str, BacktestComparison] = {}
    verdict: str | None = None
    # Added within schema version 1 (optional, so earlier files still read):
    calibration: dict[str, list[CalibrationPoint]] | None = None  # model -> coverage by level
    # Per fold, the half-life and dispersion the model chose from the history before it.
    choices: list[dict[str, float | None]] | None = None


class RateChange(_Strict):
    service: str
    current_rate_per_day: float = Field(ge=0)
    window_rate_per_day: float = Field(ge=0)
    ratio: float = Field(ge=0)


class Drift(_Strict):
    """The fleet's recent root-failure rate against the window's."""

    recent_days: float = Field(gt=0)
    detected: bool
    statement: str
    recent_rate_per_day: float | None = Field(default=None, ge=0)
    window_rate_per_day: float | None = Field(default=None, ge=0)
    ratio: float | None = Field(default=None, ge=0)
    ratio_p05: float | None = Field(default=None, ge=0)
    ratio_p95: float | None = Field(default=None, ge=0)
    largest_changes: list[RateChange] = []


class Gap(_Strict):
    """A silence of the whole fleet too long to be chance: not counted as exposure."""

    start: str
    end: str
    days: float = Field(ge=0)


class RateModel(_Strict):
    """How the rate model's half-life and dispersion were chosen (docs/model.md section 3)."""

    model: str
    half_life_days: float | None  # None: no discounting (the window's average)
    dispersion: float | None  # None: no extra-Poisson variation
    chosen_by: Literal["log score", "fixed", "default"]
    reason: str
    evaluations: int = Field(ge=0)
    horizon_days: float | None = Field(default=None, gt=0)  # of the forecasts scored
    gaps: list[Gap] = []
    drift: Drift | None = None


class Window(_Strict):
    start: str
    end: str
    days: float = Field(gt=0)


class ModelDoc(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    window: Window
    inputs: dict[str, int]
    priors: dict[str, dict[str, float | str]]
    services: list[ServiceModel]
    edges: list[EdgeModel]
    # Added within schema version 1 (optional, so earlier files still read):
    settings: dict[str, float | int | str | None] | None = None
    attribution: Attribution | None = None
    time_multipliers: TimeMultipliers | None = None
    load: LoadModel | None = None
    rates: RateModel | None = None
    backtest: Backtest | None = None
    # Where the labels behind the mixes came from: {"failure_mode": {...}, "severity": {...}},
    # each counting rows by source "column" / "text" / "none" (whatif.classify.SOURCES) over
    # the rows its mix is fitted on (failure modes: root rows; severities: all rows).
    evidence_sources: dict[str, dict[str, int]] | None = None


class Trigger(_Strict):
    service: str
    failure_mode: str


class ChecklistItem(_Strict):
    role: str
    action: str


class Inject(_Strict):
    """One step of the tabletop timeline, `minute` after the root failure."""

    minute: int = Field(ge=0, le=10_080)
    event: str = Field(min_length=1)  # what happens
    observed: str = Field(min_length=1)  # what responders see (alerts, dashboards, reports)


class Mitigations(_Strict):
    immediate: list[str] = Field(min_length=1)  # during the incident
    short_term: list[str] = []  # the following days
    long_term: list[str] = []  # engineering work that removes the risk


class Narrative(_Strict):
    """What a narrator writes for one scenario (schema NARRATIVE_SCHEMA_VERSION); the
    statistics are never its to change."""

    title: str = Field(min_length=10, max_length=300)
    narrative: str = Field(min_length=1)
    injects: list[Inject] = Field(min_length=1, max_length=20)
    predicted_impact: str = Field(min_length=1)
    detection_signals: list[str] = Field(min_length=1)
    mitigations: Mitigations
    checklist: list[ChecklistItem] = Field(min_length=1)
    facilitator_questions: list[str] = Field(min_length=1)

    @field_validator("title")
    @classmethod
    def _title_is_a_question(cls, value: str) -> str:
        if not value.startswith("What if"):
            raise ValueError("title must begin with 'What if'")
        return value

    @field_validator("injects")
    @classmethod
    def _injects_in_time_order(cls, value: list[Inject]) -> list[Inject]:
        minutes = [inject.minute for inject in value]
        if minutes != sorted(minutes):
            raise ValueError("injects must be in time order (minute ascending)")
        return value


class Impact(_Strict):
    blast_radius: Percentiles
    affected_probability: dict[str, float]
    severity_probabilities: dict[str, float]
    teams_paged: list[str]
    impact_score: float = Field(ge=0)
    # Added within schema version 1 (optional, so earlier files still read):
    traffic_share: Percentiles | None = None  # largest traffic_weight hit; None: none given
    error_budget_burn: Percentiles | None = None  # of a 30-day SLO budget; None: no SLO given


class NarrationStats(_Strict):
    """How one scenario's prose was obtained (LLM narrators; the template needs no call)."""

    narrator: str  # provider:model, or template
    calls: int = Field(ge=0)  # HTTP calls made (retries included; 0 when all came from cache)
    cached: int = Field(ge=0)  # answers taken from the cache
    attempts: int = Field(ge=0)  # answers checked (1 + corrective retries)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    latency_s: float = Field(ge=0)  # wall time of the calls made
    fallback: str | None = None  # why the template wrote it, when it did


class NarrationSummary(_Strict):
    """The run's narration, summed over the scenarios."""

    narrator: str
    scenarios: int = Field(ge=0)
    llm_scenarios: int = Field(ge=0)  # written by the LLM
    fallbacks: int = Field(ge=0)
    fallback_reasons: dict[str, int] = {}
    calls: int = Field(ge=0)
    cached: int = Field(ge=0)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    latency_s: float = Field(ge=0)
    circuit_opened: bool = False


class Scenario(Narrative):
    id: str
    trigger: Trigger
    co_trigger: Trigger | None = None  # a second, independent root failure at the same time
    forced: bool
    selection_reason: str
    affected_services: list[str]
    user_facing_affected: list[str]
    probability: float = Field(ge=0, le=1)
    expected_duration_minutes: Percentiles
    severity: str
    risk_score: float = Field(ge=0)
    impact: Impact
    narrator: str
    probability_simulated: float | None = Field(default=None, ge=0, le=1)
    narration: NarrationStats | None = None  # added in schema version 2

    @model_validator(mode="before")
    @classmethod
    def _read_version_1(cls, data: Any) -> Any:
        """A scenarios.json of schema version 1 had mitigations as one list and no injects,
        detection signals or facilitator questions: read it as such."""
        if isinstance(data, dict) and isinstance(data.get("mitigations"), list):
            data = data | {
                "mitigations": {"immediate": data["mitigations"] or ["(none given)"]},
                "injects": data.get("injects")
                or [{"minute": 0, "event": "(version 1 file)", "observed": "(not recorded)"}],
                "detection_signals": data.get("detection_signals") or ["(not recorded)"],
                "facilitator_questions": data.get("facilitator_questions") or ["(not recorded)"],
            }
        return data


class EventInfo(_Strict):
    name: str
    start: str
    end: str
    traffic_multiplier: float


class Simulation(_Strict):
    """What `draws` simulated horizons of the whole fleet show."""

    horizons: int = Field(ge=1)
    cascade_draws: int = Field(ge=1)
    root_failures: dict[str, float]  # per horizon: p50, p90, mean
    service_outages: dict[str, float]  # per horizon: services hit, summed over cascades
    probability_any: dict[str, float]  # P(at least one incident this severe or worse)
    # Added within schema version 2 (optional, so earlier files still read):
    severity_known: bool = True  # False: the history records no severity ({} above)
    selection: dict[str, Any] | None = None  # the bar and how many cleared it (simulate)


class RunInfo(_Strict):
    """A run's identity, fixed when the run is made: publishing reads it from scenarios.json
    (never from the clock), so that the same run always lands in <date>/<id>/."""

    id: str = Field(min_length=1, max_length=250)
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")  # the history's end (DAG: interval end)


class ScenariosDoc(_Strict):
    schema_version: Literal[1, 2] = SCENARIOS_SCHEMA_VERSION
    generated_at: str
    seed: int
    horizon_days: float
    draws: int
    as_of: str
    simulation: Simulation | None = None  # added within schema version 1
    event: EventInfo | None
    inputs: dict[str, int]
    scenarios: list[Scenario]
    narration: NarrationSummary | None = None  # added in schema version 2
    # What changed since the previous run (whatif.changes); None on a first run.
    changes: dict[str, Any] | None = None
    focus_services: list[str] = []  # an event's services in focus (added in version 2)
    run: RunInfo | None = None  # added in version 2; None in older files and `whatif simulate`
