"""Incident histories drawn from a known truth: a root-failure rate per service, a propagation
probability per edge, and the cascades they start (an independent cascade: each failed
service's failure spreads to each of its dependents independently with the edge's probability,
every service fails at most once per cascade). `caused_by` names the parent incident on a share
of the cascaded ones; the rest are left for the model to infer by timing.

- `known_history`: the recovery tests' truth, on a `tiered_topology` fleet of 120 services:
  Gamma root rates, Beta(2, 5) edges, every failure its own row. The same seed gives the same
  topology, truth and failures for every `days` and both `with_caused_by` variants.
- `fleet_history`: the benchmarks' truth on any Topology, vectorised over the cascades'
  generations (a million incidents in seconds), in the clean format validation writes.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import yaml

from whatif import resources
from whatif.schemas import FAILURE_MODES, INCIDENT_OPTIONAL, INCIDENT_REQUIRED, SEVERITIES
from whatif.synthetic.fleets import tiered_topology
from whatif.topology import Topology

# The columns of the validated incidents table (pipeline.CLEAN_INCIDENTS).
CLEAN_COLUMNS = (*INCIDENT_REQUIRED, *INCIDENT_OPTIONAL)
SEVERITY_WEIGHTS = (0.05, 0.2, 0.45, 0.3)  # SEV1..SEV4

# --------------------------------------------------------------------------- known_history

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
ROOT_RATE_SHAPE = 1.2  # Gamma shape: heavy right tail, a few busy services
ROOT_RATE_MEAN = 0.02  # root failures per service per day (about 7 a year)
PROPAGATION_BETA = (2.0, 5.0)  # Beta(2, 5): mean 0.29
CASCADE_DELAY_MINUTES = (1.0, 10.0)  # a child starts 1-10 minutes after its parent
DURATION_LOG_MINUTES = (np.log(45.0), 0.9)  # log-normal incident durations
CASCADE_LABELLED_DEPENDENCY = 0.6  # share of cascaded incidents whose category is `dependency`


@dataclasses.dataclass(frozen=True)
class KnownHistory:
    topology: pd.DataFrame  # the shape Topology.from_frame expects
    incidents: pd.DataFrame  # typed as model.fit gets them in production (from the Parquet)
    root_rate: pd.Series  # true root failures per day, indexed by service
    propagation: pd.Series  # true probability, indexed by (depends_on, service)
    failures: pd.Series  # incidents per service in the history (roots and cascaded)
    days: int
    data_start: str  # the window start, for model.fit's `data_start`: exposure is `days`


def simulate_failures(
    rng: np.random.Generator,
    rates: np.ndarray,
    probability: np.ndarray,
    dependency: np.ndarray,
    dependent: np.ndarray,
    days: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Root failures and their cascades.

    The independent cascade is drawn as its live-edge equivalent: for each cascade, each edge
    is live with its probability and has a delay; a service fails at its shortest live-path
    time from the root, and its parent is the neighbour on that path (the first to reach it).
    Services are in topological order, so one pass over them settles every cascade at once
    (a cascades x services matrix: for small fleets; `spread` scales).

    Returns per failure: cascade number, service number, start (minutes after the window
    start) and the parent failure's index in these arrays (-1 for a root).
    """
    n_services = len(rates)
    roots = np.repeat(np.arange(n_services), rng.poisson(rates * days))
    n_cascades = len(roots)
    root_minute = rng.uniform(0.0, days * 1440.0, n_cascades)
    cascades = np.arange(n_cascades)
    live = rng.random((n_cascades, len(probability))) < probability
    delay = np.where(live, rng.uniform(*CASCADE_DELAY_MINUTES, live.shape), np.inf)

    minute = np.full((n_cascades, n_services), np.inf)  # after the cascade's start
    minute[cascades, roots] = 0.0
    parent = np.full((n_cascades, n_services), -1)
    for v in np.unique(dependent):  # ascending: topological order
        edges = np.flatnonzero(dependent == v)
        arrival = minute[:, dependency[edges]] + delay[:, edges]
        first = arrival.argmin(axis=1)
        when = arrival[cascades, first]
        reached = when < minute[:, v]  # a root stays a root
        minute[reached, v] = when[reached]
        parent[reached, v] = dependency[edges][first[reached]]

    cascade, service = np.nonzero(np.isfinite(minute))
    start = root_minute[cascade] + minute[cascade, service]
    keep = start < days * 1440.0  # a cascade running past the end is cut there
    cascade, service, start = cascade[keep], service[keep], start[keep]
    order = np.argsort(start, kind="stable")  # ids follow time
    cascade, service, start = cascade[order], service[order], start[order]
    row_of = np.full((n_cascades, n_services), -1)
    row_of[cascade, service] = np.arange(len(cascade))
    parent_service = parent[cascade, service]
    parent_row = np.where(parent_service >= 0, row_of[cascade, np.maximum(parent_service, 0)], -1)
    return cascade, service, start, parent_row


def known_history(seed: int, days: int, with_caused_by: bool = True) -> KnownHistory:
    """`days` of history up to AS_OF on a 120-service `tiered_topology`, every failure its own
    incident row; `caused_by` is the incident of the parent that reached it first (blanked
    with `with_caused_by=False`, for the model to find by timing)."""
    rng = np.random.default_rng(seed)
    topology, dependency, dependent = tiered_topology(rng)
    names = topology["service"].to_numpy()
    n_services = len(names)
    rates = rng.gamma(ROOT_RATE_SHAPE, ROOT_RATE_MEAN / ROOT_RATE_SHAPE, n_services)
    probability = rng.beta(*PROPAGATION_BETA, len(dependency))
    usual_mode = rng.choice([m for m in FAILURE_MODES if m != "dependency"], n_services)
    duration_mu = rng.normal(DURATION_LOG_MINUTES[0], 0.4, n_services)

    # The history gets its own stream, so the truth above does not depend on `days`.
    history_rng = np.random.default_rng([seed, days])
    _, service, minute, parent_row = simulate_failures(
        history_rng, rates, probability, dependency, dependent, days
    )
    n = len(service)
    start_of_window = pd.Timestamp(AS_OF - timedelta(days=days))
    started = (start_of_window + pd.to_timedelta(minute, unit="min")).floor("s")
    minutes = np.exp(history_rng.normal(duration_mu[service], DURATION_LOG_MINUTES[1]))
    ids = np.array([f"INC-{k:06d}" for k in range(1, n + 1)], dtype=object)
    cascaded = parent_row >= 0
    root_mode = usual_mode[service]
    other_mode = history_rng.choice(list(FAILURE_MODES), n)
    category = np.where(
        cascaded,
        np.where(history_rng.random(n) < CASCADE_LABELLED_DEPENDENCY, "dependency", other_mode),
        np.where(history_rng.random(n) < 0.7, root_mode, other_mode),
    )
    caused_by = np.where(cascaded, ids[np.maximum(parent_row, 0)], None)
    if not with_caused_by:
        caused_by = np.full(n, None, dtype=object)
    teams = topology["owner_team"].to_numpy()
    not_known = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    incidents = pd.DataFrame(
        {
            "incident_id": ids,
            "service": names[service].astype(object),
            "started_at": pd.Series(started, dtype="datetime64[ns, UTC]"),
            "resolved_at": pd.Series(
                (started + pd.to_timedelta(minutes, unit="min")).floor("s"),
                dtype="datetime64[ns, UTC]",
            ),
            "severity": history_rng.choice(list(SEVERITIES), n, p=SEVERITY_WEIGHTS).astype(object),
            "category": category.astype(object),
            "title": [f"{names[s]}: {c}" for s, c in zip(service, category, strict=True)],
            "description": "",
            "detected_at": not_known,
            "acknowledged_at": not_known.copy(),
            # As the validated Parquet gives it back: pandas' string dtype, NaN when missing.
            "caused_by": pd.Series(caused_by, dtype="str"),
            "team": teams[service].astype(object),
            "load_factor": np.nan,
        },
        columns=list(CLEAN_COLUMNS),
    )
    edges = pd.MultiIndex.from_arrays(
        [names[dependency], names[dependent]], names=["depends_on", "service"]
    )
    return KnownHistory(
        topology=topology,
        incidents=incidents,
        root_rate=pd.Series(rates, index=pd.Index(names, name="service")),
        propagation=pd.Series(probability, index=edges),
        failures=pd.Series(np.bincount(service, minlength=n_services), index=names),
        days=days,
        data_start=start_of_window.isoformat(),
    )


# --------------------------------------------------------------------------- fleet_history


@dataclasses.dataclass(frozen=True)
class FleetProcess:
    """How `fleet_history` draws a history. Roots come either as Poisson processes at the true
    rates (`incidents` None: the known-rate truth) or, with `incidents`, as about that many
    incidents in all, `cascade_share` of them cascaded (roots spread over the services in
    proportion to rate x days in service, edge probabilities scaled to give the share)."""

    days: int = 730
    as_of: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    incidents: int | None = None
    cascade_share: float = 0.3
    mean_rate: float = 0.01  # root failures per service-day, with Poisson roots
    rate_shape: float = 0.7  # Gamma shape of the root rates: a few services fail far more
    edge_beta: tuple[float, float] = (2.0, 8.0)  # hidden propagation probability per edge
    soft_factor: float = 1.0  # a soft edge's probability relative to a hard one's
    max_generations: int | None = None  # edges down from the root; None: until none spreads
    delay_seconds: tuple[int, int] = (60, 1200)  # a child starts 1-20 minutes after its parent
    caused_by_share: float = 0.7  # of the cascaded incidents
    dependency_share: float = 1.0  # of the cascaded incidents, category `dependency`
    mode_concentration: float = 1.0  # Dirichlet of each service's failure-mode mix
    missing_severity_share: float = 0.0
    missing_response_share: float = 0.0  # rows without detected_at / acknowledged_at
    load_factor_share: float = 0.0  # rows with a load_factor (log-normal around 1)


@dataclasses.dataclass(frozen=True)
class Spread:
    """Failures of a set of cascades, roots first, then generation by generation."""

    service: np.ndarray
    second: np.ndarray  # after the window start
    parent: np.ndarray  # index of the parent failure in these arrays, -1 for a root
    via: np.ndarray  # the edge it came along, -1 for a root
    generations: list[int]  # failures per generation, the roots' first


@dataclasses.dataclass(frozen=True)
class FleetHistory:
    incidents: pd.DataFrame  # the clean validated format, in start order
    root_rate: np.ndarray  # true root failures per day of service, per service
    propagation: np.ndarray  # true probability per edge of the topology
    facts: dict  # counts: incidents, roots, cascaded, caused_by, generations, ...


@functools.cache
def fleet_wording() -> dict[str, tuple[str, ...]]:
    """Titles and descriptions of fleet-scale incidents (resources/synthetic)."""
    data = yaml.safe_load(resources.read_text("synthetic", "fleet_wording.yaml"))
    return {key: tuple(values) for key, values in data.items()}


def spread(
    rng: np.random.Generator,
    root_service: np.ndarray,
    root_second: np.ndarray,
    probability: np.ndarray,
    dependency: np.ndarray,
    dependent: np.ndarray,
    *,
    launch: np.ndarray,
    max_generations: int | None = None,
    delay_seconds: tuple[int, int] = (60, 1200),
) -> Spread:
    """Independent cascades from the roots, one generation at a time over all cascades at
    once: each failure tries each out-edge of its service once (`dependency` sorted, as
    Topology's edge arrays are), a service fails at most once per cascade and never before its
    `launch` (seconds after the window start)."""
    n_services = len(launch)
    first = np.searchsorted(dependency, np.arange(n_services))  # out-edges: a contiguous run
    degree = np.bincount(dependency, minlength=n_services)
    n_roots = len(root_service)
    service, second, parent = [root_service], [root_second], [np.full(n_roots, -1)]
    via, tree = [np.full(n_roots, -1)], [np.arange(n_roots)]  # tree: the root's cascade
    seen = np.arange(n_roots, dtype=np.int64) * n_services + root_service  # (tree, service)
    frontier, offset = np.arange(n_roots), n_roots
    while len(frontier) and (max_generations is None or len(service) <= max_generations):
        all_service, all_second, all_tree = map(np.concatenate, (service, second, tree))
        count = degree[all_service[frontier]]
        source = np.repeat(frontier, count)
        within = np.arange(len(source)) - np.repeat(np.cumsum(count) - count, count)
        edge = np.repeat(first[all_service[frontier]], count) + within
        live = rng.random(len(edge)) < probability[edge]
        source, edge = source[live], edge[live]
        child_second = all_second[source] + rng.integers(
            *delay_seconds, endpoint=True, size=len(source)
        )
        ok = child_second >= launch[dependent[edge]]  # no incident before a launch
        source, edge, child_second = source[ok], edge[ok], child_second[ok]
        key = all_tree[source].astype(np.int64) * n_services + dependent[edge]
        _, keep = np.unique(key, return_index=True)  # once per service and cascade
        keep = np.sort(keep[~np.isin(key[keep], seen)])
        if len(keep) == 0:
            break
        source, edge, child_second, key = source[keep], edge[keep], child_second[keep], key[keep]
        seen = np.concatenate([seen, key])
        service.append(dependent[edge])
        second.append(child_second)
        parent.append(source)
        via.append(edge)
        tree.append(all_tree[source])
        frontier = np.arange(offset, offset + len(source))
        offset += len(source)
    return Spread(*map(np.concatenate, (service, second, parent, via)), [len(s) for s in service])


def _expected_cascades(
    root_counts: np.ndarray,
    probability: np.ndarray,
    dependency: np.ndarray,
    dependent: np.ndarray,
    generations: int,
) -> float:
    """Expected cascaded incidents over `generations`, ignoring that a service fails at most
    once per cascade (an upper bound)."""
    level = root_counts.astype(float)
    total = 0.0
    for _ in range(generations):
        level = np.bincount(
            dependent, weights=level[dependency] * probability, minlength=len(level)
        )
        total += level.sum()
    return float(total)


def _scaled(base: np.ndarray, wanted: float, expected) -> np.ndarray:
    """`base` probabilities scaled (capped at 0.9) so that expected(p) is about `wanted`:
    a bisection, as the expectation grows with the scale."""
    low, high = 0.0, 50.0
    for _ in range(40):
        scale = (low + high) / 2
        if expected(np.minimum(base * scale, 0.9)) < wanted:
            low = scale
        else:
            high = scale
    return np.minimum(base * (low + high) / 2, 0.9)


def fleet_history(
    topology: Topology, process: FleetProcess, rng: np.random.Generator
) -> FleetHistory:
    """A history of `process` on `topology` up to process.as_of, in the clean format (typed
    columns, UTC timestamps, canonical severities and failure modes). A service with a
    created_at inside the window has no incident before it. Ids follow start time."""
    n = topology.size
    dependency, dependent = topology.edge_dependency, topology.edge_dependent
    start = pd.Timestamp(process.as_of - timedelta(days=process.days))
    window = process.days * 86400
    created = topology.attributes.get("created_at")
    launch = np.zeros(n)
    if created is not None:
        since = (pd.to_datetime(created, utc=True) - start) / pd.Timedelta(seconds=1)
        launch = np.clip(since.fillna(0.0).to_numpy(float), 0.0, window)
    soft = topology.criticality == "soft"

    rates = rng.gamma(process.rate_shape, process.mean_rate / process.rate_shape, size=n)
    base_p = rng.beta(*process.edge_beta, size=len(dependency))
    base_p = base_p * np.where(soft, process.soft_factor, 1.0)
    exposure = (window - launch) / 86400  # days in service
    if process.incidents is None:
        root_service = np.repeat(np.arange(n), rng.poisson(rates * exposure))
        probability = base_p
    else:
        n_roots = round(process.incidents * (1.0 - process.cascade_share))
        weight = rates * exposure
        root_service = np.repeat(np.arange(n), rng.multinomial(n_roots, weight / weight.sum()))
        rates = n_roots * rates / weight.sum()  # the truth: expected roots per day of service
        counts = np.bincount(root_service, minlength=n)
        generations = process.max_generations or 10
        probability = _scaled(
            base_p,
            process.incidents - n_roots,
            lambda p: _expected_cascades(counts, p, dependency, dependent, generations),
        )
    begin = launch[root_service]
    # Inside (start, end]: a root at the window's first second would fall outside a fit's.
    root_second = np.ceil(begin + rng.random(len(root_service)) * (window - begin))
    failures = spread(
        rng,
        root_service,
        root_second.astype(np.int64),
        probability,
        dependency,
        dependent,
        launch=launch,
        max_generations=process.max_generations,
        delay_seconds=process.delay_seconds,
    )
    frame, facts = _incident_frame(topology, process, failures, start, window, rng)
    facts |= {
        "via_soft": int(soft[failures.via[failures.via >= 0]].sum()),
        "at_launched": int((launch > 0)[failures.service].sum()),
        "hidden_p_mean": float(probability.mean()) if len(probability) else 0.0,
    }
    return FleetHistory(frame, rates, probability, facts)


def _incident_frame(
    topology: Topology,
    process: FleetProcess,
    failures: Spread,
    start: pd.Timestamp,
    window: int,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, dict]:
    """The failures as incident rows: ids in start order, caused_by on a share of the
    cascaded, failure modes from a per-service mix, severities, durations, response times and
    load factors; the failures after the window's end are cut."""
    order = np.argsort(failures.second, kind="stable")
    order = order[failures.second[order] < window]  # a cascade running past the end is cut
    m = len(order)
    rank = np.full(len(failures.second), -1)
    rank[order] = np.arange(m)
    service, seconds = failures.service[order], failures.second[order]
    parent = np.where(failures.parent[order] >= 0, rank[failures.parent[order]], -1)
    cascaded = parent >= 0
    ids = ("INC-" + pd.Series(np.arange(1, m + 1)).astype(str).str.zfill(7)).to_numpy(object)
    linked = cascaded & (rng.random(m) < process.caused_by_share)
    caused_by = np.full(m, None, dtype=object)
    caused_by[linked] = ids[parent[linked]]

    k = len(FAILURE_MODES)
    mix = rng.dirichlet(np.full(k, process.mode_concentration), size=topology.size).cumsum(axis=1)
    mode = np.minimum((rng.random(m)[:, None] > mix[service]).sum(axis=1), k - 1)
    mode[cascaded & (rng.random(m) < process.dependency_share)] = FAILURE_MODES.index("dependency")
    category = np.array(FAILURE_MODES, dtype=object)[mode]
    severity = rng.choice(np.array(SEVERITIES, dtype=object), size=m, p=SEVERITY_WEIGHTS)
    severity[rng.random(m) < process.missing_severity_share] = None
    minutes = np.exp(rng.normal(np.log(60.0), 0.9, size=m))
    detected = seconds + rng.integers(30, 900, size=m)
    acknowledged = detected + rng.integers(30, 600, size=m)
    responded = rng.random(m) >= process.missing_response_share
    load = np.exp(rng.normal(0.0, 0.3, size=m) + 0.4 * (category == "capacity"))
    load[rng.random(m) >= process.load_factor_share] = np.nan
    wording = fleet_wording()
    titles = np.array(wording["titles"], dtype=object)
    names = pd.Series(np.array(topology.services, dtype=object)[service])
    teams = topology.attributes["owner_team"].to_numpy(dtype=object)

    def text(values) -> pd.Series:  # as the clean Parquet holds text: str dtype, NA missing
        return pd.Series(values, dtype="str")

    def utc(offsets: np.ndarray) -> pd.Series:
        return pd.Series(start + pd.to_timedelta(offsets, unit="s")).astype("datetime64[ns, UTC]")

    frame = pd.DataFrame(
        {
            "incident_id": text(ids),
            "service": text(names),
            "started_at": utc(seconds),
            "resolved_at": utc(seconds + np.round(minutes * 60).astype(np.int64)),
            "severity": text(severity),
            "category": text(category),
            "title": text(names + ": " + titles[rng.integers(0, len(titles), m)]),
            "description": text(rng.choice(np.array(wording["descriptions"], dtype=object), m)),
            "detected_at": utc(detected).where(responded),
            "acknowledged_at": utc(acknowledged).where(responded),
            "caused_by": text(caused_by),
            "team": text(teams[service]),
            "load_factor": load,
        }
    )
    generations = np.bincount(
        _generation(failures)[order], minlength=len(failures.generations)
    ).tolist()
    return frame, {
        "incidents": m,
        "roots": int((~cascaded).sum()),
        "cascaded": int(cascaded.sum()),
        "caused_by": int(linked.sum()),
        "generations": generations,
        "load_factor": int(np.isfinite(load).sum()),
    }


def _generation(failures: Spread) -> np.ndarray:
    """Each failure's generation (0 for a root), from the generations' sizes."""
    return np.repeat(np.arange(len(failures.generations)), failures.generations)
