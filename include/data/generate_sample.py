"""Generate the deterministic e-commerce sample used by the whatif pipeline.

The sample is synthetic but produced by an explicit causal process, so the
pipeline can be checked against a known ground truth: per-service root failure
rates, a hidden failure-propagation probability on every dependency edge, and
incidents that cascade along the topology (independent-cascade model).

Outputs (written to ``--out-dir``, by default this script's folder):

* ``topology.csv``: one row per service and the services it calls.
* ``incidents.csv``: one row per (incident_id, service).

The generator only uses a seeded ``numpy`` generator and integer-second
timestamps, so two runs with the same seed write byte-identical files.

Usage::

    python include/data/generate_sample.py [--seed 20261126] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

DEFAULT_SEED = 20261126
DEFAULT_OUT_DIR = Path(__file__).resolve().parent

PERIOD_START = datetime(2024, 10, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 11, 1, tzinfo=UTC)  # exclusive: last second is 2026-10-31T23:59:59Z
SECONDS_PER_HOUR = 3600
HOURS_PER_MONTH = 24 * 365.25 / 12

TOPOLOGY_COLUMNS = (
    "service",
    "depends_on",
    "soft_depends_on",
    "tier",
    "owner_team",
    "user_facing",
    "runbook_url",
    "oncall",
    "slo_target",
    "traffic_weight",
)
INCIDENT_COLUMNS = (
    "incident_id",
    "service",
    "started_at",
    "resolved_at",
    "severity",
    "category",
    "title",
    "description",
    "detected_at",
    "acknowledged_at",
    "caused_by",
    "team",
)
CATEGORIES = (
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
RUNBOOK_BASE = "https://runbooks.example.com/"
# The platform teams declare a dependency soft (the caller degrades gracefully without it)
# where its hidden propagation probability is at most this: what they know from design.
SOFT_AT_MOST = 0.15


# --------------------------------------------------------------------------- topology


@dataclass(frozen=True)
class Service:
    """One service of the platform and its hidden generation parameters.

    ``calls`` pairs each dependency with the hidden probability that a failure
    of that dependency propagates to this service. ``roots_per_month`` is the
    rate of failures that originate in the service itself.
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


TIER_KIND = {
    "edge": "edge",
    "frontend": "app",
    "core": "app",
    "supporting": "app",
    "data": "datastore",
    "infra": "infra",
    "external": "external",
}

# Listed from the user-facing edge down to the datastores. ``calls`` holds the
# hidden propagation probability of each edge (dependency -> this service):
# high from datastores to their direct callers, low from a backend to the
# gateway (a broken backend usually only breaks its own routes).
SERVICES: tuple[Service, ...] = (
    Service("dns", "edge", "edge", True, (), 0.10, "0.9999", "1.0"),
    Service("cdn", "edge", "edge", True, (("object-storage", 0.30),), 0.10, "0.9995", "0.62"),
    Service(
        "web-frontend",
        "frontend",
        "web",
        True,
        (("cdn", 0.45), ("dns", 0.60), ("api-gateway", 0.35)),
        0.80,
        "0.999",
        "0.62",
    ),
    Service(
        "mobile-bff",
        "frontend",
        "web",
        True,
        (("dns", 0.55), ("api-gateway", 0.35)),
        0.50,
        "0.999",
        "0.38",
    ),
    Service(
        "api-gateway",
        "edge",
        "edge",
        True,
        (
            ("k8s-ingress", 0.60),
            ("service-discovery", 0.30),
            ("auth", 0.30),
            ("catalog", 0.10),
            ("search", 0.08),
            ("recommendations", 0.05),
            ("cart", 0.10),
            ("checkout", 0.10),
            ("orders", 0.06),
        ),
        0.55,
        "0.9995",
        "1.0",
    ),
    Service(
        "auth",
        "core",
        "identity",
        False,
        (("identity-provider", 0.40), ("redis-cache", 0.20), ("postgres-primary", 0.35)),
        0.50,
        "0.9995",
        "0.55",
    ),
    Service(
        "identity-provider",
        "supporting",
        "identity",
        False,
        (("postgres-replica", 0.25),),
        0.20,
        "0.999",
    ),
    Service(
        "catalog",
        "core",
        "catalog",
        False,
        (("postgres-replica", 0.40), ("redis-cache", 0.30), ("object-storage", 0.15)),
        0.65,
        "0.999",
        "0.85",
    ),
    Service(
        "search",
        "core",
        "catalog",
        False,
        (("elasticsearch", 0.60), ("redis-cache", 0.10)),
        0.80,
        "0.999",
        "0.35",
    ),
    Service(
        "recommendations",
        "supporting",
        "catalog",
        False,
        (("catalog", 0.25), ("redis-cache", 0.15)),
        0.50,
        "0.995",
        "0.40",
        has_runbook=False,
        has_oncall=False,
    ),
    Service(
        "cart",
        "core",
        "commerce",
        False,
        (("redis-cache", 0.40), ("catalog", 0.15)),
        0.50,
        "0.999",
        "0.18",
    ),
    Service(
        "checkout",
        "core",
        "commerce",
        False,
        (("cart", 0.30), ("payments", 0.30), ("inventory", 0.25), ("orders", 0.30)),
        0.90,
        "0.9995",
        "0.06",
    ),
    Service(
        "payments",
        "core",
        "payments",
        False,
        (("payment-provider", 0.50), ("postgres-primary", 0.50), ("fraud-detection", 0.15)),
        0.70,
        "0.9995",
        "0.05",
    ),
    Service("payment-provider", "external", "payments", False, (), 0.40, "0.9995", "0.05"),
    Service(
        "fraud-detection",
        "supporting",
        "payments",
        False,
        (("redis-cache", 0.10), ("postgres-replica", 0.20)),
        0.30,
        "0.995",
        has_runbook=False,
    ),
    Service(
        "inventory",
        "core",
        "commerce",
        False,
        (("postgres-primary", 0.40), ("redis-cache", 0.10), ("message-queue", 0.10)),
        0.55,
        "0.999",
        "0.12",
    ),
    Service(
        "orders",
        "core",
        "commerce",
        False,
        (("postgres-primary", 0.55), ("message-queue", 0.25)),
        0.65,
        "0.9995",
        "0.06",
    ),
    Service(
        "shipping",
        "supporting",
        "commerce",
        False,
        (("orders", 0.15), ("message-queue", 0.30)),
        0.45,
        "0.995",
    ),
    Service(
        "notifications",
        "supporting",
        "platform",
        False,
        (("message-queue", 0.35), ("email-provider", 0.35)),
        0.40,
        "0.995",
    ),
    Service(
        "email-provider",
        "external",
        "platform",
        False,
        (),
        0.30,
        "0.995",
        has_runbook=False,
        has_oncall=False,
    ),
    Service("postgres-primary", "data", "data-platform", False, (), 1.00, "0.9999"),
    Service(
        "postgres-replica",
        "data",
        "data-platform",
        False,
        (("postgres-primary", 0.35),),
        0.55,
    ),
    Service("redis-cache", "data", "data-platform", False, (), 0.90, "0.9995"),
    Service("message-queue", "data", "data-platform", False, (), 0.80, "0.9995"),
    Service("elasticsearch", "data", "data-platform", False, (), 0.85),
    Service("object-storage", "infra", "platform", False, (), 0.14, "0.9999"),
    Service("k8s-ingress", "infra", "platform", False, (), 0.22, "0.9995", "1.0"),
    Service("service-discovery", "infra", "platform", False, (), 0.03),
)
SERVICE_BY_NAME = {service.name: service for service in SERVICES}


def dependents_index(services: Sequence[Service]) -> dict[str, list[tuple[str, float]]]:
    """Invert ``calls`` so a cascade can walk from a failed service to its callers."""
    index: dict[str, list[tuple[str, float]]] = {service.name: [] for service in services}
    for service in services:
        for dependency, probability in service.calls:
            index[dependency].append((service.name, probability))
    return index


def calls_datastore(service: Service) -> bool:
    """Only services that own a database can have database-flavoured app failures."""
    return any(SERVICE_BY_NAME[dep].tier == "data" for dep, _ in service.calls)


def check_topology(services: Sequence[Service]) -> None:
    """Fail fast on unknown dependencies or cycles, which would break cascades."""
    names = {service.name for service in services}
    for service in services:
        unknown = [dep for dep, _ in service.calls if dep not in names]
        if unknown:
            raise ValueError(f"{service.name} calls unknown services: {unknown}")
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        state[name] = 1
        for dep, _ in SERVICE_BY_NAME[name].calls:
            if state.get(dep) == 1:
                raise ValueError(f"dependency cycle through {name} -> {dep}")
            if dep not in state:
                visit(dep)
        state[name] = 2

    for service in services:
        if service.name not in state:
            visit(service.name)


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

# Category mix of root failures per service family (normalised when used).
CATEGORY_MIX: dict[str, dict[str, float]] = {
    "app": {
        "capacity": 0.16,
        "database": 0.07,
        "deployment": 0.30,
        "config": 0.17,
        "network": 0.06,
        "dependency": 0.06,
        "hardware": 0.03,
        "security": 0.03,
        "data": 0.07,
        "other": 0.05,
    },
    "edge": {
        "capacity": 0.16,
        "deployment": 0.14,
        "config": 0.30,
        "network": 0.22,
        "dependency": 0.04,
        "security": 0.09,
        "other": 0.05,
    },
    "datastore": {
        "capacity": 0.26,
        "database": 0.34,
        "deployment": 0.04,
        "config": 0.07,
        "network": 0.06,
        "hardware": 0.14,
        "security": 0.02,
        "data": 0.05,
        "other": 0.02,
    },
    "infra": {
        "capacity": 0.16,
        "deployment": 0.10,
        "config": 0.26,
        "network": 0.20,
        "dependency": 0.04,
        "hardware": 0.16,
        "security": 0.03,
        "other": 0.05,
    },
    "external": {
        "capacity": 0.08,
        "deployment": 0.03,
        "config": 0.04,
        "network": 0.24,
        "dependency": 0.53,
        "security": 0.03,
        "data": 0.02,
        "other": 0.03,
    },
}

# Managed and shared-infrastructure services fail in few, specific ways; they
# use their own category mix and only their own wordings (SERVICE_TEMPLATES).
CATEGORY_MIX_OVERRIDE: dict[str, dict[str, float]] = {
    "dns": {"config": 0.45, "network": 0.35, "dependency": 0.20},
    "cdn": {"config": 0.35, "network": 0.30, "capacity": 0.15, "dependency": 0.20},
    "object-storage": {"capacity": 0.30, "network": 0.25, "dependency": 0.30, "config": 0.15},
    "k8s-ingress": {
        "capacity": 0.25,
        "config": 0.30,
        "network": 0.20,
        "deployment": 0.15,
        "hardware": 0.10,
    },
    "service-discovery": {"config": 0.35, "network": 0.40, "hardware": 0.25},
}


def category_mix(service: Service) -> dict[str, float]:
    """Normalised root-cause mix; apps without a datastore have no database failures."""
    mix = dict(CATEGORY_MIX_OVERRIDE.get(service.name) or CATEGORY_MIX[service.kind])
    if service.kind == "app" and not calls_datastore(service):
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

# Each template is "title | description"; {svc} is the failing service and
# {parent} the dependency that dragged it down (cascades only).
Template = tuple[str, str]

TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "app": {
        "capacity": (
            "{svc}: CPU saturation at peak traffic | Pods of {svc} hit their CPU limits at "
            "peak and latency climbed. Scaled out manually and raised the autoscaler ceiling.",
            "{svc}: memory pressure and OOM kills | {svc} containers were OOM-killed "
            "repeatedly after a traffic spike. Memory limits were raised.",
            "{svc}: thread pool exhausted | Slow calls tied up the request threads of {svc} "
            "and new requests queued. Timeouts were lowered and capacity added.",
            "{svc}: autoscaling lagged behind traffic | Traffic ramped faster than the "
            "autoscaler could add {svc} replicas. Pre-scaled and tuned the policy.",
        ),
        "database": (
            "{svc}: slow queries after data growth | A query in {svc} started scanning a "
            "large table and p99 latency rose. The missing index was added.",
            "{svc}: database connection leak | {svc} leaked database connections until its "
            "pool was empty. Pods were restarted and the leak patched.",
            "{svc}: lock contention on hot rows | Concurrent updates from {svc} contended on a "
            "few hot rows and requests timed out. Writes were batched.",
        ),
        "deployment": (
            "{svc}: elevated 5xx after deploy | A new release of {svc} returned 5xx on part of "
            "its endpoints. Rolled back to the previous version.",
            "{svc}: bad release rolled back | The latest {svc} release shipped a regression "
            "that tests missed. Rolled back and added a regression test.",
            "{svc}: canary promoted despite failing checks | A {svc} canary with failing "
            "health checks was promoted by the pipeline. Rolled back; the gate was fixed.",
            "{svc}: schema migration blocked requests | A migration shipped with {svc} held a "
            "long lock and requests piled up. It was killed and rerun off-peak.",
        ),
        "config": (
            "{svc}: feature flag enabled for everyone by mistake | An unfinished {svc} "
            "feature was switched on for all traffic. The flag was turned off.",
            "{svc}: wrong timeout pushed in config change | A config change set a too-short "
            "upstream timeout on {svc} and requests failed. The change was reverted.",
            "{svc}: rate limit set too low | A rate-limit change on {svc} rejected legitimate "
            "requests. Limits were restored.",
            "{svc}: expired TLS certificate | A certificate used by {svc} expired because "
            "renewal had silently failed. It was renewed by hand.",
        ),
        "network": (
            "{svc}: packet loss between availability zones | Cross-zone packet loss caused "
            "retries and timeouts in {svc}. Traffic was pinned to healthy zones.",
            "{svc}: intermittent DNS resolution failures | {svc} pods intermittently failed "
            "to resolve internal names. The cluster DNS was scaled up.",
            "{svc}: load balancer health checks flapping | Health checks for {svc} flapped "
            "and instances left and rejoined rotation. Thresholds were relaxed.",
        ),
        "dependency": (
            "{svc}: feature-flag SaaS unreachable | {svc} could not refresh flags from the "
            "feature-flag SaaS and served stale defaults until the vendor recovered.",
            "{svc}: geo-IP lookup vendor slow | The geo-IP vendor used by {svc} slowed down "
            "and held request threads. A circuit breaker was added.",
            "{svc}: bug in shared client library | A new version of the shared HTTP client "
            "broke retries in {svc}. The library was pinned to the previous version.",
        ),
        "hardware": (
            "{svc}: node failure took down replicas | A Kubernetes node hosting several {svc} "
            "replicas died and the rest were overloaded until pods were rescheduled.",
            "{svc}: degraded disk on host | A degraded local disk slowed {svc} pods on one "
            "host. The node was drained.",
        ),
        "security": (
            "{svc}: leaked API key rotated | An API key used by {svc} showed up in a log and "
            "was rotated, causing brief authentication failures.",
            "{svc}: service account token revoked | A token used by {svc} was revoked in a "
            "permissions cleanup and its calls were rejected until a new one was issued.",
            "{svc}: bot traffic surge | Aggressive scraping bots flooded {svc}. WAF rules "
            "were added to block them.",
            "{svc}: WAF rule blocked legitimate traffic | A new WAF rule in front of {svc} "
            "matched normal requests. The rule was relaxed.",
        ),
        "data": (
            "{svc}: stale data served from cache | {svc} served stale entries after a cache "
            "invalidation bug. Caches were flushed.",
            "{svc}: malformed records from nightly import | The nightly import fed malformed "
            "records to {svc} and some requests failed. Bad records were quarantined.",
            "{svc}: duplicate events processed | {svc} processed a batch of events twice "
            "after a consumer restart. Duplicates were reconciled.",
        ),
        "other": (
            "{svc}: latency spike, cause unknown | p99 latency of {svc} rose and recovered "
            "without intervention. No root cause was found.",
            "{svc}: overlapping cron jobs | Two runs of a {svc} cron job overlapped and "
            "competed for resources. A lock was added.",
            "{svc}: clock skew on hosts | NTP drift on some {svc} hosts broke token "
            "validation. Time sync was fixed.",
        ),
    },
    "platform": {
        "capacity": (
            "{svc}: connection limit reached | {svc} hit its maximum client connections and "
            "refused new ones. Idle connections were killed and the limit raised.",
            "{svc}: disk usage above 90% | Disk usage on {svc} crossed 90% and writes slowed "
            "down. Storage was expanded.",
            "{svc}: memory pressure | {svc} ran out of memory headroom and started swapping. "
            "Nodes were resized.",
            "{svc}: IOPS throttled by cloud provider | {svc} exceeded its provisioned IOPS "
            "and I/O latency spiked. Provisioned IOPS were increased.",
        ),
        "database": (
            "{svc}: replication lag growing | Replication on {svc} fell minutes behind under "
            "write load. A heavy batch job was paused.",
            "{svc}: long-running query blocked maintenance | A forgotten analytics query on "
            "{svc} blocked maintenance and bloat grew. The query was cancelled.",
            "{svc}: unplanned failover to standby | {svc} failed over to its standby after "
            "the active node became unresponsive. Clients reconnected within minutes.",
            "{svc}: deadlocks during batch job | A batch job on {svc} deadlocked with online "
            "traffic. The job was rescheduled.",
        ),
        "deployment": (
            "{svc}: version upgrade regression | A minor version upgrade of {svc} changed a "
            "default and clients saw errors. The setting was restored.",
            "{svc}: operator rollout restarted all nodes | An operator update restarted "
            "every {svc} node at once instead of one by one.",
        ),
        "config": (
            "{svc}: parameter change caused restarts | A parameter change on {svc} needed a "
            "restart that was applied during the day.",
            "{svc}: ACL change blocked clients | An access-control change on {svc} locked "
            "out several clients. It was reverted.",
            "{svc}: expired TLS certificate | The server certificate of {svc} expired and "
            "clients refused to connect. It was renewed by hand.",
        ),
        "network": (
            "{svc}: network partition between nodes | A network partition split the {svc} "
            "cluster and part of it stopped serving.",
            "{svc}: packet loss to clients | Packet loss on the {svc} subnet caused client "
            "timeouts. The cloud provider replaced a faulty switch.",
        ),
        "dependency": (
            "{svc}: cloud provider control plane degraded | The cloud provider API used to "
            "manage {svc} degraded and automated recovery actions failed.",
        ),
        "hardware": (
            "{svc}: disk failure on primary host | A disk failed on the host running the "
            "{svc} primary. Service moved to another host.",
            "{svc}: instance retired by cloud provider | The cloud provider retired an "
            "instance of {svc} on short notice.",
            "{svc}: storage volume degraded | A block storage volume of {svc} degraded and "
            "I/O latency rose for hours.",
        ),
        "security": (
            "{svc}: credentials rotated before clients were updated | Credentials of {svc} "
            "were rotated before all clients had the new secret.",
            "{svc}: emergency security patch | An emergency patch for a CVE was rolled onto "
            "{svc} with a short outage.",
        ),
        "data": (
            "{svc}: corrupted index | An index on {svc} was found corrupted and had to be rebuilt.",
            "{svc}: accidental bulk delete | A maintenance script deleted too much data from "
            "{svc}. It was restored from backup.",
        ),
        "other": (
            "{svc}: backup job saturated I/O | The {svc} backup job overran into business "
            "hours and saturated I/O.",
            "{svc}: unexplained latency spike | Latency of {svc} spiked and recovered on its "
            "own; no cause was found.",
        ),
    },
    "external": {
        "capacity": (
            "{svc}: rate-limited by provider | The provider behind {svc} rate-limited our "
            "account during a traffic peak.",
        ),
        "deployment": (
            "{svc}: provider API change broke requests | The provider behind {svc} changed "
            "an API response without notice.",
        ),
        "config": (
            "{svc}: API credentials expired | The API credentials for {svc} expired and "
            "requests were rejected until new ones were issued.",
        ),
        "network": (
            "{svc}: connectivity issues to provider endpoint | Requests to {svc} timed out "
            "on the path to the provider's endpoint.",
            "{svc}: TLS handshake failures to provider | TLS handshakes to {svc} failed after "
            "the provider rotated its certificate chain.",
        ),
        "dependency": (
            "{svc}: elevated error rate at provider | The provider behind {svc} returned "
            "errors for a share of requests. We waited for their fix.",
            "{svc}: provider API timeouts | {svc} API calls timed out intermittently; the "
            "provider confirmed an incident.",
            "{svc}: provider incident on status page | The provider declared an incident on "
            "its status page affecting {svc}.",
        ),
        "security": (
            "{svc}: provider forced key rotation | The provider behind {svc} forced a key "
            "rotation after a security review.",
        ),
        "data": (
            "{svc}: malformed webhook payloads | Webhooks from {svc} arrived with malformed "
            "payloads and were rejected.",
        ),
        "other": (
            "{svc}: intermittent failures without explanation | {svc} failed intermittently; "
            "the provider could not explain why.",
        ),
    },
}

# Service-specific flavour mixed into the family templates.
SERVICE_TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("postgres-primary", "capacity"): (
        "postgres-primary: connection pool exhausted | PgBouncer pools in front of "
        "postgres-primary were exhausted and clients queued for connections.",
    ),
    ("postgres-primary", "database"): (
        "postgres-primary: autovacuum fell behind on orders table | Autovacuum could not "
        "keep up on the orders table and queries slowed down.",
    ),
    ("redis-cache", "capacity"): (
        "redis-cache: evictions spiking, hit rate dropped | redis-cache reached maxmemory "
        "and evicted hot keys; backends took the extra load.",
    ),
    ("message-queue", "capacity"): (
        "message-queue: consumer lag growing on order events | Kafka consumers fell behind "
        "on the order-events topic and downstream work was late.",
    ),
    ("message-queue", "database"): (
        "message-queue: under-replicated partitions | Several Kafka partitions became "
        "under-replicated after a broker stalled.",
    ),
    ("elasticsearch", "database"): (
        "elasticsearch: cluster status red | Unassigned primary shards turned the cluster red "
        "and some searches failed.",
    ),
    ("elasticsearch", "capacity"): (
        "elasticsearch: heap pressure and long GC pauses | Data nodes spent seconds in GC "
        "under heavy aggregations and queries timed out.",
    ),
    ("object-storage", "capacity"): (
        "object-storage: elevated 503 SlowDown responses | The request rate on a bucket "
        "exceeded the provider's per-prefix limit and 503s were returned.",
    ),
    ("payment-provider", "dependency"): (
        "payment-provider: card authorizations timing out | Card authorizations at the "
        "payment provider timed out for part of the traffic.",
        "payment-provider: 3-D Secure challenges failing | 3-D Secure challenges failed at "
        "the provider and card payments were declined.",
    ),
    ("email-provider", "dependency"): (
        "email-provider: delivery delayed by hours | Transactional e-mails were queued at "
        "the provider and delivered hours late.",
        "email-provider: bounces from a major mailbox provider | A large mailbox provider "
        "bounced our e-mails after a reputation drop at the vendor.",
    ),
    ("checkout", "deployment"): (
        "checkout: order submission failing after deploy | A checkout release broke order "
        "submission for saved addresses. Rolled back.",
    ),
    ("search", "config"): (
        "search: relevance config returned empty results | A ranking configuration change "
        "made many queries return no results.",
    ),
    # Services in CATEGORY_MIX_OVERRIDE use only their own wordings.
    ("dns", "config"): (
        "dns: bad record pushed | A wrong record was published for the shop domain and "
        "some resolvers cached it until the TTL expired.",
    ),
    ("dns", "network"): (
        "dns: provider anycast outage | The managed DNS provider lost part of its anycast "
        "network and lookups failed in some regions.",
    ),
    ("dns", "dependency"): (
        "dns: managed DNS provider degraded | The DNS provider answered slowly and some "
        "clients timed out resolving the shop domain.",
    ),
    ("cdn", "config"): (
        "cdn: cache purge overloaded origin | A full cache purge sent all traffic to the "
        "origin, which could not keep up.",
        "cdn: caching rule bypassed the cache | A new rule marked static assets as "
        "uncacheable and the origin took the full load.",
    ),
    ("cdn", "network"): (
        "cdn: edge PoP outage in Europe | A CDN point of presence failed and European users "
        "were routed to distant PoPs.",
    ),
    ("cdn", "capacity"): (
        "cdn: origin shield overloaded | The origin shield tier saturated during a traffic "
        "peak and cache misses timed out.",
    ),
    ("object-storage", "network"): (
        "object-storage: slow responses from storage endpoint | Reads from the storage "
        "endpoint took seconds instead of milliseconds and clients timed out.",
    ),
    ("object-storage", "dependency"): (
        "object-storage: cloud storage service degraded in region | The cloud provider "
        "reported elevated error rates for its object storage in our region.",
    ),
    ("object-storage", "config"): (
        "object-storage: bucket policy change denied reads | A bucket policy update denied "
        "reads to the service role. The policy was reverted.",
    ),
    ("k8s-ingress", "capacity"): (
        "k8s-ingress: ingress controller pods saturated | The ingress controller ran out of "
        "CPU at peak and started dropping connections. Replicas were added.",
    ),
    ("k8s-ingress", "config"): (
        "k8s-ingress: bad ingress annotation broke routing | An annotation change sent part "
        "of the traffic to the wrong backend. It was reverted.",
        "k8s-ingress: ingress TLS secret not renewed | The TLS secret served by the ingress "
        "was not renewed by cert-manager and clients rejected the certificate.",
    ),
    ("k8s-ingress", "network"): (
        "k8s-ingress: cloud load balancer dropped connections | The cloud load balancer in "
        "front of the ingress reset long-lived connections.",
    ),
    ("k8s-ingress", "deployment"): (
        "k8s-ingress: controller upgrade reloaded config in a loop | After an upgrade the "
        "ingress controller kept reloading its configuration. Rolled back.",
    ),
    ("k8s-ingress", "hardware"): (
        "k8s-ingress: node failure removed ingress replicas | Two nodes running ingress "
        "replicas failed and the rest were overloaded until rescheduled.",
    ),
    ("service-discovery", "config"): (
        "service-discovery: stale registrations after config change | A config change "
        "disabled deregistration and clients were sent to dead instances.",
    ),
    ("service-discovery", "network"): (
        "service-discovery: cluster lost quorum | A network split left the discovery "
        "cluster without quorum and lookups failed.",
    ),
    ("service-discovery", "hardware"): (
        "service-discovery: server node failure | A discovery server node failed and the "
        "cluster ran degraded until it was replaced.",
    ),
    ("cdn", "dependency"): (
        "cdn: CDN provider incident | The CDN provider declared an incident and served "
        "errors from several PoPs.",
    ),
}
MANAGED_SERVICES = frozenset(CATEGORY_MIX_OVERRIDE)
USER_FACING_ONLY = frozenset(
    {"{svc}: bot traffic surge", "{svc}: WAF rule blocked legitimate traffic"}
)
NEEDS_DATASTORE = frozenset({"{svc}: schema migration blocked requests"})

CASCADE_LINKED = (
    "{svc}: errors calling {parent} | {svc} returned errors because calls to {parent} failed "
    "or timed out. It recovered once {parent} was restored.",
    "{svc}: degraded by {parent} incident | {svc} was degraded while {parent} was "
    "unavailable. No action was needed on {svc}.",
    "{svc}: timeouts to {parent} | Requests from {svc} to {parent} timed out and retries "
    "piled up until {parent} recovered.",
)
# Unlinked cascades do not name the culprit, as when on-call never linked them.
CASCADE_UNLINKED = (
    "{svc}: elevated error rate | Error rate on {svc} rose with timeouts to a downstream "
    "dependency. It recovered without a change to {svc}.",
    "{svc}: latency spike and timeouts | {svc} latency spiked and some requests timed out. "
    "The on-call suspected an upstream issue.",
    "{svc}: partial outage, recovered on its own | Part of the {svc} requests failed for a "
    "while, then recovered on their own.",
)


def template_family(service: Service) -> str:
    """Which wording family fits a service (apps vs platform vs vendors)."""
    if service.kind in ("app", "edge"):
        return "app"
    if service.kind == "external":
        return "external"
    return "platform"


def suits(service: Service, template: str) -> bool:
    """Drop wordings that would be odd for this service (bots on an internal API...)."""
    title = template.split(" | ")[0]
    if title in USER_FACING_ONLY and not service.user_facing:
        return False
    return title not in NEEDS_DATASTORE or calls_datastore(service)


def pick(rng: np.random.Generator, options: Sequence[str], **values: str) -> Template:
    """Choose a template uniformly and fill it; the seeded generator stays the only source."""
    title, description = options[int(rng.integers(len(options)))].split(" | ")
    return title.format(**values), description.format(**values)


def root_wording(rng: np.random.Generator, service: Service, category: str) -> Template:
    """Title and description of a failure that starts in ``service``."""
    own = SERVICE_TEMPLATES.get((service.name, category), ())
    if service.name in MANAGED_SERVICES:
        return pick(rng, own, svc=service.name)
    family = TEMPLATES[template_family(service)]
    generic = family.get(category) or TEMPLATES["app"][category]
    options = [template for template in generic if suits(service, template)] + list(own)
    return pick(rng, options, svc=service.name)


# --------------------------------------------------------------------------- incidents


LINK_PROBABILITY = 0.75  # share of cascaded incidents whose caused_by is filled in


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


COMMON_MODE: tuple[CommonModeSpec, ...] = (
    CommonModeSpec(
        date(2025, 2, 12),
        10,
        ("redis-cache", "message-queue", "elasticsearch", "k8s-ingress"),
        "network",
        "lost connectivity in availability zone b",
        "The cloud provider lost network connectivity in one availability zone; "
        "every service with nodes there was affected at the same time.",
        70.0,
    ),
    CommonModeSpec(
        date(2025, 6, 3),
        14,
        ("payments", "notifications", "shipping"),
        "network",
        "NAT gateway failure broke egress to vendors",
        "A managed NAT gateway failed and outbound calls to third-party APIs "
        "timed out until traffic moved to a standby gateway.",
        40.0,
    ),
    CommonModeSpec(
        date(2025, 9, 17),
        9,
        ("catalog", "cart", "recommendations"),
        "hardware",
        "hypervisor host failure",
        "A hypervisor host carrying replicas of several services failed; "
        "pods were rescheduled onto other hosts.",
        35.0,
    ),
    CommonModeSpec(
        date(2026, 1, 20),
        11,
        ("auth", "api-gateway", "identity-provider", "mobile-bff"),
        "config",
        "internal CA intermediate certificate expired",
        "The intermediate certificate of the internal CA expired and mTLS "
        "between services failed until it was reissued.",
        55.0,
    ),
    CommonModeSpec(
        date(2026, 5, 6),
        15,
        ("search", "checkout", "fraud-detection", "inventory"),
        "network",
        "cluster DNS degradation",
        "The cluster DNS pods were overloaded after a node pool change and "
        "name resolution failed intermittently for several services.",
        30.0,
    ),
)


class IncidentFactory:
    """Creates incidents with consistent timings and unique internal keys."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.next_key = 0

    def _key(self) -> int:
        self.next_key += 1
        return self.next_key

    def root(self, service: Service, start: int, category: str) -> Incident:
        """A failure that originates in ``service`` itself."""
        detected, acknowledged = response_times(self.rng, start)
        minutes = root_duration_minutes(self.rng, service, category)
        resolved = max(start + round(minutes * 60), acknowledged + self._settle())
        title, description = root_wording(self.rng, service, category)
        return Incident(
            key=self._key(),
            services=(service.name,),
            start=start,
            detected=detected,
            acknowledged=acknowledged,
            resolved=resolved,
            category=category,
            titles={service.name: title},
            description=description,
        )

    def cascade_child(self, parent: Incident, via: str, service: Service) -> Incident:
        """A dependent failing because ``via`` (one of the parent's services) failed."""
        parent_minutes = (parent.resolved - parent.start) / 60
        delay = min(float(self.rng.uniform(1, 20)), max(1.0, 0.7 * parent_minutes))
        start = parent.start + round(delay * 60)
        detected, acknowledged = response_times(self.rng, start)
        lag = max(1.0, lognormal_minutes(self.rng, 5.0, 0.6))
        resolved = max(parent.resolved + round(lag * 60), acknowledged + self._settle())
        link = bool(self.rng.random() < LINK_PROBABILITY)
        title, description = pick(
            self.rng,
            CASCADE_LINKED if link else CASCADE_UNLINKED,
            svc=service.name,
            parent=via,
        )
        return Incident(
            key=self._key(),
            services=(service.name,),
            start=start,
            detected=detected,
            acknowledged=acknowledged,
            resolved=resolved,
            category="dependency",
            titles={service.name: title},
            description=description,
            parent_key=parent.key,
            link_parent=link,
        )

    def common_mode(self, spec: CommonModeSpec, start: int) -> Incident:
        """One shared cause hitting several services at once (one id, many rows)."""
        detected, acknowledged = response_times(self.rng, start)
        minutes = truncated_lognormal_minutes(self.rng, spec.median_minutes, 0.4)
        resolved = max(start + round(minutes * 60), acknowledged + self._settle())
        titles = {name: f"{name}: {spec.title}" for name in spec.services}
        return Incident(
            key=self._key(),
            services=tuple(sorted(spec.services)),
            start=start,
            detected=detected,
            acknowledged=acknowledged,
            resolved=resolved,
            category=spec.category,
            titles=titles,
            description=spec.description,
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
                child = factory.cascade_child(parent, name, SERVICE_BY_NAME[dependent])
                failed.add(dependent)
                children.append(child)
                queue.append((child, dependent))
    return children


def generate_roots(
    factory: IncidentFactory, calendar: Calendar, services: Sequence[Service]
) -> list[Incident]:
    """Draw every root failure, service by service and category by category."""
    roots = []
    for service in services:
        for category, share in category_mix(service).items():
            rate = service.roots_per_month * share / HOURS_PER_MONTH
            for start in sample_root_times(factory.rng, calendar, rate, category):
                roots.append(factory.root(service, start, category))
    return roots


def generate_common_mode(factory: IncidentFactory) -> list[Incident]:
    """Place the scripted common-mode incidents at a random minute of their hour."""
    incidents = []
    for spec in COMMON_MODE:
        base = datetime(spec.day.year, spec.day.month, spec.day.day, spec.hour, tzinfo=UTC)
        start = int((base - PERIOD_START).total_seconds()) + int(factory.rng.integers(0, 3600))
        incidents.append(factory.common_mode(spec, start))
    return incidents


# --------------------------------------------------------------------------- severity

SEVERITY_CUTS = ((1.645, "SEV1"), (0.674, "SEV2"), (-0.524, "SEV3"))  # N(0,1): 5/20/45/30 %
COMMON_MODE_MIN_SEVERITY = "SEV2"  # "SEV1" < "SEV2" < ... as strings


def severity_score(rng: np.random.Generator, incident: Incident) -> float:
    """Latent severity: longer, user-facing, datastore and wide incidents score higher."""
    services = [SERVICE_BY_NAME[name] for name in incident.services]
    minutes = max(1.0, (incident.resolved - incident.start) / 60)
    score = np.log(minutes / 45.0) / 0.85
    score += 0.9 * max(service.user_facing for service in services)
    score += 0.6 * max(service.tier == "data" for service in services)
    score += 0.4 * max(service.tier in ("core", "external") for service in services)
    score += 0.5 * (len(services) - 1)
    return float(score + rng.standard_normal())


def assign_severities(rng: np.random.Generator, incidents: Sequence[Incident]) -> None:
    """Standardise the latent score and cut it at normal quantiles (~5/20/45/30 %)."""
    scores = np.array([severity_score(rng, incident) for incident in incidents])
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


def incident_rows(incidents: Sequence[Incident]) -> list[list[str]]:
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
                    SERVICE_BY_NAME[name].owner_team,
                ]
            )
    rows.sort(key=lambda row: (row[2], row[0], row[1]))
    return rows


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write with fixed newline and quoting so reruns are byte-identical."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def generate(seed: int) -> tuple[list[list[str]], list[list[str]], list[Incident]]:
    """Run the whole causal process and return topology rows, incident rows, incidents."""
    check_topology(SERVICES)
    check_wording(SERVICES)
    rng = np.random.default_rng(seed)
    factory = IncidentFactory(rng)
    calendar = Calendar.build()
    dependents = dependents_index(SERVICES)
    origins = generate_roots(factory, calendar, SERVICES) + generate_common_mode(factory)
    origins.sort(key=lambda incident: (incident.start, incident.key))
    incidents: list[Incident] = []
    horizon = int((PERIOD_END - PERIOD_START).total_seconds())
    for origin in origins:
        incidents.append(origin)
        children = run_cascade(factory, origin, dependents)
        incidents.extend(child for child in children if child.start < horizon)
    assign_ids(incidents)
    assign_severities(rng, incidents)
    return topology_rows(SERVICES), incident_rows(incidents), incidents


def summarize(incidents: Sequence[Incident], rows: Sequence[Sequence[str]]) -> str:
    """Human-readable counts, printed so the README numbers are easy to refresh."""
    cascaded = [incident for incident in incidents if incident.parent_key is not None]
    linked = sum(incident.link_parent for incident in cascaded)
    common = [incident for incident in incidents if len(incident.services) > 1]
    per_service = Counter(row[1] for row in rows)
    severities = Counter(incident.severity for incident in incidents)
    lines = [
        f"incidents: {len(incidents)}  rows: {len(rows)}  services: {len(SERVICES)}",
        f"root: {len(incidents) - len(cascaded)} (common-mode: {len(common)})  "
        f"cascaded: {len(cascaded)}  caused_by filled: {linked}  empty: {len(cascaded) - linked}",
        f"first start: {rows[0][2]}  last start: {rows[-1][2]}",
        "severity: " + ", ".join(f"{k}={severities[k]}" for k in sorted(severities)),
        "rows per service: "
        + ", ".join(f"{s.name}={per_service.get(s.name, 0)}" for s in SERVICES),
    ]
    return "\n".join(lines)


def check_wording(services: Sequence[Service]) -> None:
    """Every category a service can draw must have at least one wording."""
    for service in services:
        for category in category_mix(service):
            if service.name in MANAGED_SERVICES:
                ok = (service.name, category) in SERVICE_TEMPLATES
            else:
                family = TEMPLATES[template_family(service)]
                ok = bool(family.get(category) or TEMPLATES["app"].get(category))
            if not ok:
                raise ValueError(f"no wording for {service.name} / {category}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options: the seed and where to write the CSV files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Generate the sample and write ``topology.csv`` and ``incidents.csv``."""
    args = parse_args(argv)
    topology, rows, incidents = generate(args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(args.out_dir / "topology.csv", TOPOLOGY_COLUMNS, topology)
    write_csv(args.out_dir / "incidents.csv", INCIDENT_COLUMNS, rows)
    print(summarize(incidents, rows))


if __name__ == "__main__":
    main()
