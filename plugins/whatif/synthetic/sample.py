"""The project's sample (include/data): a fictional online shop's topology and two years of
incidents, drawn from an explicit causal process so that the pipeline can be checked against a
known truth: per-service root failure rates, a hidden propagation probability on every
dependency edge, incidents that cascade along the topology (independent cascade), five
common-mode incidents, weekly and seasonal patterns (include/data/README.md describes it).

The catalogue and the wording are data (resources/synthetic/*.yaml); this module is the
process. A seeded numpy generator is its only source of randomness and timestamps are whole
seconds, so a seed always writes the same bytes: the order of the random draws below is part
of the sample's definition (tests/unit/test_synthetic.py compares with include/data).
"""

from __future__ import annotations

import csv
import functools
import tempfile
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from whatif import ingest, resources
from whatif.schemas import (
    FAILURE_MODES,
    INCIDENT_OPTIONAL,
    INCIDENT_REQUIRED,
    TOPOLOGY_OPTIONAL,
    TOPOLOGY_REQUIRED,
)
from whatif.topology import Topology

DEFAULT_SEED = 20261126

PERIOD_START = datetime(2024, 10, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 11, 1, tzinfo=UTC)  # exclusive: last second is 2026-10-31T23:59:59Z
SECONDS_PER_HOUR = 3600
HOURS_PER_MONTH = 24 * 365.25 / 12

# The sample's columns: the contract's (whatif.schemas) in its order, up to traffic_weight and
# team (soft_depends_on after depends_on).
_ATTRIBUTES = TOPOLOGY_OPTIONAL[: TOPOLOGY_OPTIONAL.index("traffic_weight") + 1]
TOPOLOGY_COLUMNS = (*TOPOLOGY_REQUIRED, "soft_depends_on", *_ATTRIBUTES)
INCIDENT_COLUMNS = (*INCIDENT_REQUIRED, *INCIDENT_OPTIONAL[: INCIDENT_OPTIONAL.index("team") + 1])
CATEGORIES = FAILURE_MODES  # the order the category mixes are normalised in
RUNBOOK_BASE = "https://runbooks.example.com/"
# The platform teams declare a dependency soft (the caller degrades gracefully without it)
# where its hidden propagation probability is at most this: what they know from design.
SOFT_AT_MOST = 0.15
LINK_PROBABILITY = 0.75  # share of cascaded incidents whose caused_by is filled in

# --------------------------------------------------------------------------- catalogue

TIER_KIND = {
    "edge": "edge",
    "frontend": "app",
    "core": "app",
    "supporting": "app",
    "data": "datastore",
    "infra": "infra",
    "external": "external",
}


@dataclass(frozen=True)
class Service:
    """One service of the platform and its hidden generation parameters.

    ``calls`` pairs each dependency with the hidden probability that a failure of that
    dependency propagates to this service. ``roots_per_month`` is the rate of failures that
    originate in the service itself.
    """

    name: str
    tier: str
    owner_team: str
    user_facing: bool
    calls: tuple[tuple[str, float], ...]
    roots_per_month: float
    slo_target: str = ""
    traffic_weight: str = ""
    has_runbook: bool = True
    has_oncall: bool = True

    @property
    def kind(self) -> str:
        """Coarse family used to pick category mixes, durations and wording."""
        return TIER_KIND[self.tier]


@dataclass(frozen=True)
class Template:
    """An incident's wording: {svc} the failing service, {parent} the dependency that dragged
    it down (cascades only); `only` keeps it for the services it fits ("user_facing",
    "calls_datastore")."""

    title: str
    description: str
    only: str = ""


@dataclass(frozen=True)
class CommonModeSpec:
    """A shared-infrastructure failure that hits several services simultaneously."""

    day: date
    hour: int
    services: tuple[str, ...]
    category: str
    title: str
    description: str
    median_minutes: float


@dataclass(frozen=True)
class Catalogue:
    """The sample's data (resources/synthetic): services, category mixes, wording, scripted
    common-mode incidents."""

    services: tuple[Service, ...]
    category_mix: Mapping[str, Mapping[str, float]]  # by service kind
    managed_mix: Mapping[str, Mapping[str, float]]  # by managed service: only its own wording
    templates: Mapping[str, Mapping[str, tuple[Template, ...]]]  # family -> category
    service_templates: Mapping[tuple[str, str], tuple[Template, ...]]  # (service, category)
    cascade_linked: tuple[Template, ...]
    cascade_unlinked: tuple[Template, ...]
    common_mode: tuple[CommonModeSpec, ...]
    by_name: Mapping[str, Service] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {s.name: s for s in self.services})


def _data(name: str) -> dict:
    return yaml.safe_load(resources.read_text("synthetic", name))


def _templates(entries: Sequence[Mapping[str, str]]) -> tuple[Template, ...]:
    return tuple(Template(**entry) for entry in entries)


@functools.cache
def catalogue() -> Catalogue:
    """The catalogue read from the package's resources/synthetic files, checked."""
    services = tuple(
        Service(
            name=s["name"],
            tier=s["tier"],
            owner_team=s["owner_team"],
            user_facing=s["user_facing"],
            calls=tuple(s["calls"].items()),
            roots_per_month=s["roots_per_month"],
            slo_target=s.get("slo_target", ""),
            traffic_weight=s.get("traffic_weight", ""),
            has_runbook=s.get("runbook", True),
            has_oncall=s.get("oncall", True),
        )
        for s in _data("services.yaml")["services"]
    )
    categories = _data("categories.yaml")
    wording = _data("wording.yaml")
    result = Catalogue(
        services=services,
        category_mix=categories["families"],
        managed_mix=categories["managed"],
        templates={
            family: {category: _templates(texts) for category, texts in by_category.items()}
            for family, by_category in wording["families"].items()
        },
        service_templates={
            (name, category): _templates(texts)
            for name, by_category in wording["services"].items()
            for category, texts in by_category.items()
        },
        cascade_linked=_templates(wording["cascade_linked"]),
        cascade_unlinked=_templates(wording["cascade_unlinked"]),
        common_mode=tuple(
            CommonModeSpec(**{**spec, "services": tuple(spec["services"])})
            for spec in _data("common_mode.yaml")["incidents"]
        ),
    )
    check_topology(result)
    check_wording(result)
    return result


def check_topology(cat: Catalogue) -> None:
    """Fail fast on unknown dependencies or cycles, which would break cascades."""
    for service in cat.services:
        unknown = [dep for dep, _ in service.calls if dep not in cat.by_name]
        if unknown:
            raise ValueError(f"{service.name} calls unknown services: {unknown}")
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        state[name] = 1
        for dep, _ in cat.by_name[name].calls:
            if state.get(dep) == 1:
                raise ValueError(f"dependency cycle through {name} -> {dep}")
            if dep not in state:
                visit(dep)
        state[name] = 2

    for service in cat.services:
        if service.name not in state:
            visit(service.name)


def check_wording(cat: Catalogue) -> None:
    """Every category a service can draw must have at least one wording."""
    for service in cat.services:
        for category in category_mix(cat, service):
            if service.name in cat.managed_mix:
                ok = (service.name, category) in cat.service_templates
            else:
                family = cat.templates[template_family(service)]
                ok = bool(family.get(category) or cat.templates["app"].get(category))
            if not ok:
                raise ValueError(f"no wording for {service.name} / {category}")


def dependents_index(services: Sequence[Service]) -> dict[str, list[tuple[str, float]]]:
    """Invert ``calls`` so a cascade can walk from a failed service to its callers."""
    index: dict[str, list[tuple[str, float]]] = {service.name: [] for service in services}
    for service in services:
        for dependency, probability in service.calls:
            index[dependency].append((service.name, probability))
    return index


def calls_datastore(cat: Catalogue, service: Service) -> bool:
    """Only services that own a database can have database-flavoured app failures."""
    return any(cat.by_name[dep].tier == "data" for dep, _ in service.calls)


def truth(cat: Catalogue | None = None) -> dict[tuple[str, str], float]:
    """The hidden propagation probability of every edge, by (depends_on, service)."""
    cat = cat or catalogue()
    return {(dependency, s.name): p for s in cat.services for dependency, p in s.calls}


def topology_rows(services: Sequence[Service]) -> list[list[str]]:
    """Render the public part of the topology (hidden parameters stay out)."""
    rows = []
    for service in services:
        rows.append(
            [
                service.name,
                ";".join(dep for dep, _ in service.calls),
                ";".join(dep for dep, p in service.calls if p <= SOFT_AT_MOST),
                service.tier,
                service.owner_team,
                "true" if service.user_facing else "false",
                RUNBOOK_BASE + service.name if service.has_runbook else "",
                f"{service.owner_team}-primary" if service.has_oncall else "",
                service.slo_target,
                service.traffic_weight,
            ]
        )
    return rows


# --------------------------------------------------------------------------- root process


def category_mix(cat: Catalogue, service: Service) -> dict[str, float]:
    """Normalised root-cause mix; apps without a datastore have no database failures."""
    mix = dict(cat.managed_mix.get(service.name) or cat.category_mix[service.kind])
    if service.kind == "app" and not calls_datastore(cat, service):
        mix.pop("database", None)
    total = sum(mix.values())
    return {category: mix[category] / total for category in CATEGORIES if category in mix}


# Tue-Thu carry most change and traffic; weekends are quiet (Mon=0 ... Sun=6).
WEEKDAY_FACTOR = np.array([0.90, 1.40, 1.45, 1.35, 0.80, 0.40, 0.35])
# Hour of day (UTC): business hours dominate, nights are calm.
HOUR_FACTOR = np.array(
    [
        *(0.45, 0.40, 0.40, 0.40, 0.45, 0.55, 0.70, 0.95),  # 00-07
        *(1.45, 1.65, 1.70, 1.70, 1.55, 1.65, 1.70, 1.65, 1.55, 1.35),  # 08-17
        *(1.05, 0.95, 0.90, 0.80, 0.65, 0.55),  # 18-23
    ]
)
# Black Friday / Cyber Monday windows (inclusive dates).
SURGE_WINDOWS = (
    (date(2024, 11, 25), date(2024, 12, 3)),
    (date(2025, 11, 25), date(2025, 12, 3)),
)
SURGE_CATEGORIES = frozenset({"capacity", "database", "dependency"})
SURGE_FACTOR = 3.0
# Change freeze during the surge: fewer deploy/config failures.
FREEZE_CATEGORIES = frozenset({"deployment", "config"})
FREEZE_FACTOR = 0.5


@dataclass
class Incident:
    """One incident; several services only for common-mode incidents."""

    key: int
    services: tuple[str, ...]
    start: int  # seconds since PERIOD_START
    detected: int
    acknowledged: int
    resolved: int
    category: str
    titles: dict[str, str]
    description: str
    parent_key: int | None = None
    link_parent: bool = False
    severity: str = ""
    incident_id: str = ""


@dataclass
class Calendar:
    """Hourly grid of the period with the time-of-week and surge masks."""

    weekday_hour: np.ndarray
    surge: np.ndarray

    @classmethod
    def build(cls) -> Calendar:
        """Precompute per-hour weights once; every service reuses them."""
        n_hours = int((PERIOD_END - PERIOD_START).total_seconds() // SECONDS_PER_HOUR)
        stamps = [PERIOD_START + timedelta(hours=h) for h in range(n_hours)]
        weekday = np.array([stamp.weekday() for stamp in stamps])
        hour = np.array([stamp.hour for stamp in stamps])
        weights = WEEKDAY_FACTOR[weekday] * HOUR_FACTOR[hour]
        weights = weights / weights.mean()
        days = [stamp.date() for stamp in stamps]
        surge = np.array([any(lo <= day <= hi for lo, hi in SURGE_WINDOWS) for day in days])
        return cls(weekday_hour=weights, surge=surge)

    def weights_for(self, category: str) -> np.ndarray:
        """Hourly intensity (mean ~1) of root failures of one category."""
        weights = self.weekday_hour.copy()
        if category in SURGE_CATEGORIES:
            weights[self.surge] *= SURGE_FACTOR
        elif category in FREEZE_CATEGORIES:
            weights[self.surge] *= FREEZE_FACTOR
        return weights


def lognormal_minutes(rng: np.random.Generator, median: float, sigma: float) -> float:
    """Draw a right-skewed delay/duration in minutes, as real response times are."""
    return float(median * np.exp(sigma * rng.standard_normal()))


def is_business_hours(offset: int) -> bool:
    """Pages are acknowledged faster when people are at their desks."""
    stamp = PERIOD_START + timedelta(seconds=offset)
    return stamp.weekday() < 5 and 8 <= stamp.hour < 18


def response_times(rng: np.random.Generator, start: int) -> tuple[int, int]:
    """Detection (median ~4 min) and acknowledgement (median ~3 min) offsets."""
    detect = max(0.5, lognormal_minutes(rng, 4.0, 0.75))
    ack_median = 2.5 if is_business_hours(start) else 4.5
    ack = max(0.5, lognormal_minutes(rng, ack_median, 0.7))
    detected = start + round(detect * 60)
    return detected, detected + round(ack * 60)


DURATION_KIND = {"app": 1.0, "edge": 0.9, "datastore": 1.5, "infra": 1.3, "external": 1.6}
DURATION_CATEGORY = {
    "deployment": 0.75,
    "config": 0.8,
    "hardware": 1.4,
    "data": 1.4,
    "database": 1.2,
    "security": 1.2,
}
MAX_DURATION_MIN = 12 * 60.0


def root_duration_minutes(rng: np.random.Generator, service: Service, category: str) -> float:
    """Outage length: median ~45 min, long tail; datastores and vendors run longer."""
    median = 45.0 * DURATION_KIND[service.kind] * DURATION_CATEGORY.get(category, 1.0)
    return truncated_lognormal_minutes(rng, median, 0.85)


def truncated_lognormal_minutes(rng: np.random.Generator, median: float, sigma: float) -> float:
    """Redraw the rare extreme tail instead of clipping it, so no pile-up at the cap."""
    for _ in range(100):
        minutes = lognormal_minutes(rng, median, sigma)
        if minutes <= MAX_DURATION_MIN:
            return minutes
    return MAX_DURATION_MIN


def sample_root_times(
    rng: np.random.Generator, calendar: Calendar, rate_per_hour: float, category: str
) -> list[int]:
    """Non-homogeneous Poisson arrivals on the hourly grid, uniform within the hour."""
    weights = calendar.weights_for(category)
    count = rng.poisson(rate_per_hour * weights.sum())
    if count == 0:
        return []
    hours = rng.choice(weights.size, size=count, p=weights / weights.sum())
    seconds = rng.integers(0, SECONDS_PER_HOUR, size=count)
    return sorted(int(h) * SECONDS_PER_HOUR + int(s) for h, s in zip(hours, seconds, strict=True))


# --------------------------------------------------------------------------- wording


def template_family(service: Service) -> str:
    """Which wording family fits a service (apps vs platform vs vendors)."""
    if service.kind in ("app", "edge"):
        return "app"
    if service.kind == "external":
        return "external"
    return "platform"


def suits(cat: Catalogue, service: Service, template: Template) -> bool:
    """Drop wordings that would be odd for this service (bots on an internal API...)."""
    if template.only == "user_facing":
        return service.user_facing
    return template.only != "calls_datastore" or calls_datastore(cat, service)


def pick(rng: np.random.Generator, options: Sequence[Template], **values: str) -> Template:
    """Choose a template uniformly and fill it; the seeded generator stays the only source."""
    chosen = options[int(rng.integers(len(options)))]
    return Template(chosen.title.format(**values), chosen.description.format(**values))


def root_wording(
    rng: np.random.Generator, cat: Catalogue, service: Service, category: str
) -> Template:
    """Title and description of a failure that starts in ``service``."""
    own = cat.service_templates.get((service.name, category), ())
    if service.name in cat.managed_mix:
        return pick(rng, own, svc=service.name)
    family = cat.templates[template_family(service)]
    generic = family.get(category) or cat.templates["app"][category]
    options = [template for template in generic if suits(cat, service, template)] + list(own)
    return pick(rng, options, svc=service.name)


# --------------------------------------------------------------------------- incidents


class IncidentFactory:
    """Creates incidents with consistent timings and unique internal keys."""

    def __init__(self, rng: np.random.Generator, cat: Catalogue) -> None:
        self.rng = rng
        self.catalogue = cat
        self.next_key = 0

    def _key(self) -> int:
        self.next_key += 1
        return self.next_key

    def root(self, service: Service, start: int, category: str) -> Incident:
        """A failure that originates in ``service`` itself."""
        times = response_times(self.rng, start)
        minutes = root_duration_minutes(self.rng, service, category)
        resolved = max(start + round(minutes * 60), times[1] + self._settle())
        wording = root_wording(self.rng, self.catalogue, service, category)
        return self._incident(start, times, resolved, category, {service.name: wording})

    def cascade_child(self, parent: Incident, via: str, service: Service) -> Incident:
        """A dependent failing because ``via`` (one of the parent's services) failed."""
        parent_minutes = (parent.resolved - parent.start) / 60
        delay = min(float(self.rng.uniform(1, 20)), max(1.0, 0.7 * parent_minutes))
        start = parent.start + round(delay * 60)
        times = response_times(self.rng, start)
        lag = max(1.0, lognormal_minutes(self.rng, 5.0, 0.6))
        resolved = max(parent.resolved + round(lag * 60), times[1] + self._settle())
        link = bool(self.rng.random() < LINK_PROBABILITY)
        wording = pick(
            self.rng,
            self.catalogue.cascade_linked if link else self.catalogue.cascade_unlinked,
            svc=service.name,
            parent=via,
        )
        child = self._incident(start, times, resolved, "dependency", {service.name: wording})
        child.parent_key, child.link_parent = parent.key, link
        return child

    def common_mode(self, spec: CommonModeSpec, start: int) -> Incident:
        """One shared cause hitting several services at once (one id, many rows)."""
        times = response_times(self.rng, start)
        minutes = truncated_lognormal_minutes(self.rng, spec.median_minutes, 0.4)
        resolved = max(start + round(minutes * 60), times[1] + self._settle())
        wordings = {
            name: Template(f"{name}: {spec.title}", spec.description)
            for name in sorted(spec.services)
        }
        return self._incident(start, times, resolved, spec.category, wordings)

    def _incident(
        self,
        start: int,
        times: tuple[int, int],
        resolved: int,
        category: str,
        wordings: dict[str, Template],
    ) -> Incident:
        """The incident of the services `wordings` names (its description: the first's)."""
        return Incident(
            key=self._key(),
            services=tuple(wordings),
            start=start,
            detected=times[0],
            acknowledged=times[1],
            resolved=resolved,
            category=category,
            titles={name: wording.title for name, wording in wordings.items()},
            description=next(iter(wordings.values())).description,
        )

    def _settle(self) -> int:
        """Minimum time between acknowledgement and resolution (2-10 minutes)."""
        return int(self.rng.integers(120, 600))


def run_cascade(
    factory: IncidentFactory,
    root: Incident,
    dependents: dict[str, list[tuple[str, float]]],
) -> list[Incident]:
    """Independent cascade: each failed service gets one try on each caller."""
    failed = set(root.services)
    queue = deque((root, name) for name in root.services)
    children: list[Incident] = []
    while queue:
        parent, name = queue.popleft()
        for dependent, probability in dependents[name]:
            if dependent in failed:
                continue
            if factory.rng.random() < probability:
                service = factory.catalogue.by_name[dependent]
                child = factory.cascade_child(parent, name, service)
                failed.add(dependent)
                children.append(child)
                queue.append((child, dependent))
    return children


def generate_roots(factory: IncidentFactory, calendar: Calendar) -> list[Incident]:
    """Draw every root failure, service by service and category by category."""
    roots = []
    for service in factory.catalogue.services:
        for category, share in category_mix(factory.catalogue, service).items():
            rate = service.roots_per_month * share / HOURS_PER_MONTH
            for start in sample_root_times(factory.rng, calendar, rate, category):
                roots.append(factory.root(service, start, category))
    return roots


def generate_common_mode(factory: IncidentFactory) -> list[Incident]:
    """Place the scripted common-mode incidents at a random minute of their hour."""
    incidents = []
    for spec in factory.catalogue.common_mode:
        base = datetime(spec.day.year, spec.day.month, spec.day.day, spec.hour, tzinfo=UTC)
        start = int((base - PERIOD_START).total_seconds()) + int(factory.rng.integers(0, 3600))
        incidents.append(factory.common_mode(spec, start))
    return incidents


# --------------------------------------------------------------------------- severity

SEVERITY_CUTS = ((1.645, "SEV1"), (0.674, "SEV2"), (-0.524, "SEV3"))  # N(0,1): 5/20/45/30 %
COMMON_MODE_MIN_SEVERITY = "SEV2"  # "SEV1" < "SEV2" < ... as strings


def severity_score(rng: np.random.Generator, cat: Catalogue, incident: Incident) -> float:
    """Latent severity: longer, user-facing, datastore and wide incidents score higher."""
    services = [cat.by_name[name] for name in incident.services]
    minutes = max(1.0, (incident.resolved - incident.start) / 60)
    score = np.log(minutes / 45.0) / 0.85
    score += 0.9 * max(service.user_facing for service in services)
    score += 0.6 * max(service.tier == "data" for service in services)
    score += 0.4 * max(service.tier in ("core", "external") for service in services)
    score += 0.5 * (len(services) - 1)
    return float(score + rng.standard_normal())


def assign_severities(
    rng: np.random.Generator, cat: Catalogue, incidents: Sequence[Incident]
) -> None:
    """Standardise the latent score and cut it at normal quantiles (~5/20/45/30 %)."""
    scores = np.array([severity_score(rng, cat, incident) for incident in incidents])
    z = (scores - scores.mean()) / scores.std()
    for incident, value in zip(incidents, z, strict=True):
        severity = next((sev for cut, sev in SEVERITY_CUTS if value >= cut), "SEV4")
        if len(incident.services) > 1:
            # Several teams paged at once: declared a major incident, so SEV2 at least.
            severity = min(severity, COMMON_MODE_MIN_SEVERITY)
        incident.severity = severity


# --------------------------------------------------------------------------- output


def iso(offset: int) -> str:
    """Second-precision UTC timestamp with a ``Z`` suffix."""
    return (PERIOD_START + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def assign_ids(incidents: list[Incident]) -> None:
    """Number incidents in start order so ids read chronologically."""
    incidents.sort(key=lambda incident: (incident.start, incident.key))
    for number, incident in enumerate(incidents, start=1):
        incident.incident_id = f"INC-{number:05d}"


def incident_rows(cat: Catalogue, incidents: Sequence[Incident]) -> list[list[str]]:
    """One row per (incident, service), sorted by start, id, then service."""
    by_key = {incident.key: incident for incident in incidents}
    rows = []
    for incident in incidents:
        parent = by_key.get(incident.parent_key) if incident.link_parent else None
        for name in incident.services:
            rows.append(
                [
                    incident.incident_id,
                    name,
                    iso(incident.start),
                    iso(incident.resolved),
                    incident.severity,
                    incident.category,
                    incident.titles[name],
                    incident.description,
                    iso(incident.detected),
                    iso(incident.acknowledged),
                    parent.incident_id if parent else "",
                    cat.by_name[name].owner_team,
                ]
            )
    rows.sort(key=lambda row: (row[2], row[0], row[1]))
    return rows


@dataclass(frozen=True)
class Sample:
    """The generated sample: the rows of topology.csv and incidents.csv, and the incidents."""

    topology: list[list[str]]
    rows: list[list[str]]
    incidents: list[Incident]


def generate(seed: int = DEFAULT_SEED) -> Sample:
    """Run the whole causal process."""
    cat = catalogue()
    rng = np.random.default_rng(seed)
    factory = IncidentFactory(rng, cat)
    calendar = Calendar.build()
    dependents = dependents_index(cat.services)
    origins = generate_roots(factory, calendar) + generate_common_mode(factory)
    origins.sort(key=lambda incident: (incident.start, incident.key))
    incidents: list[Incident] = []
    horizon = int((PERIOD_END - PERIOD_START).total_seconds())
    for origin in origins:
        incidents.append(origin)
        children = run_cascade(factory, origin, dependents)
        incidents.extend(child for child in children if child.start < horizon)
    assign_ids(incidents)
    assign_severities(rng, cat, incidents)
    return Sample(topology_rows(cat.services), incident_rows(cat, incidents), incidents)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write with fixed newline and quoting so reruns are byte-identical."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write(folder: Path, sample: Sample) -> tuple[Path, Path]:
    """topology.csv and incidents.csv in `folder`; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    topology, incidents = folder / "topology.csv", folder / "incidents.csv"
    write_csv(topology, TOPOLOGY_COLUMNS, sample.topology)
    write_csv(incidents, INCIDENT_COLUMNS, sample.rows)
    return topology, incidents


def summarize(sample: Sample) -> str:
    """Human-readable counts, printed so the README numbers are easy to refresh."""
    incidents, rows, services = sample.incidents, sample.rows, catalogue().services
    cascaded = [incident for incident in incidents if incident.parent_key is not None]
    linked = sum(incident.link_parent for incident in cascaded)
    common = [incident for incident in incidents if len(incident.services) > 1]
    per_service = Counter(row[1] for row in rows)
    severities = Counter(incident.severity for incident in incidents)
    lines = [
        f"incidents: {len(incidents)}  rows: {len(rows)}  services: {len(services)}",
        f"root: {len(incidents) - len(cascaded)} (common-mode: {len(common)})  "
        f"cascaded: {len(cascaded)}  caused_by filled: {linked}  empty: {len(cascaded) - linked}",
        f"first start: {rows[0][2]}  last start: {rows[-1][2]}",
        "severity: " + ", ".join(f"{k}={severities[k]}" for k in sorted(severities)),
        "rows per service: "
        + ", ".join(f"{s.name}={per_service.get(s.name, 0)}" for s in services),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- as a truth

SAMPLE_AS_OF = PERIOD_END  # the end of the generator's period


@dataclass(frozen=True)
class SampleHistory:
    topology: Topology
    incidents: pd.DataFrame  # as validation hands them to model.fit: inside the window
    propagation: pd.Series  # true probability, indexed by (depends_on, service)
    days: int
    data_start: str  # the earliest incident of the whole export, as validation reports it


def sample_history(seed: int, days: int) -> SampleHistory:
    """The sample generator's history for `seed`, read as the pipeline reads the sample's CSV
    files, with the `days` up to SAMPLE_AS_OF that a fit of that window uses.

    A truth the model's priors do not match: the sample's 28 services and 47 edges with fixed
    probabilities, 32 hard (0.2 to 0.6) and 15 soft (0.05 to 0.15, at most SOFT_AT_MOST);
    independent cascades, 75 % of them with caused_by; five common-mode incidents; weekly and
    seasonal patterns."""
    with tempfile.TemporaryDirectory() as folder:
        topology_path, incidents_path = write(Path(folder), generate(seed))
        topology = Topology.from_frame(ingest.load_topology(topology_path).frame)
        incidents = ingest.load_incidents(incidents_path).frame
    started = incidents["started_at"]
    inside = (started > pd.Timestamp(SAMPLE_AS_OF - timedelta(days=days))) & (
        started <= pd.Timestamp(SAMPLE_AS_OF)
    )
    probability = truth()
    edges = pd.MultiIndex.from_tuples(sorted(probability), names=["depends_on", "service"])
    return SampleHistory(
        topology=topology,
        incidents=incidents.loc[inside, [*INCIDENT_REQUIRED, *INCIDENT_OPTIONAL]].reset_index(
            drop=True
        ),
        propagation=pd.Series([probability[key] for key in edges], index=edges),
        days=days,
        data_start=started.min().isoformat(),
    )
