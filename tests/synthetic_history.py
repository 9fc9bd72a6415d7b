"""Synthetic incident history drawn from a known truth, for parameter-recovery tests.

A layered random service graph (data stores at the bottom, then core, mid and frontend
services), a true root-failure rate per service and a true propagation probability per edge;
then a history of root failures (a Poisson process per service) and the cascades they start
(an independent cascade: each failed service's failure spreads to each of its dependents
independently with the edge's probability, every service fails at most once per cascade, a
child 1-10 minutes after its parent). Every failure is its own incident row; `caused_by` is
the incident of the parent that reached it first.

The same seed gives the same topology, truth and failures for every `days` and for both
variants of `with_caused_by` (the variant only blanks the links).

`sample_history` gives a second truth: the sample generator's (include/data/generate_sample.py),
whose fixed edge probabilities fall in two classes, hard and soft, that are not one Beta each.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
from whatif import ingest
from whatif.schemas import FAILURE_MODES, INCIDENT_OPTIONAL, INCIDENT_REQUIRED, SEVERITIES
from whatif.topology import Topology

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)

# (tier, how many services), bottom layer first: failure flows upwards, from a dependency to
# the services that call it.
LAYERS: tuple[tuple[str, int], ...] = (("data", 16), ("core", 30), ("mid", 38), ("frontend", 36))
MAX_DEPENDENCIES = 3
ADJACENT_LAYER_WEIGHT = 3.0  # a service calls mostly into the layer just below it

ROOT_RATE_SHAPE = 1.2  # Gamma shape: heavy right tail, a few busy services
ROOT_RATE_MEAN = 0.02  # root failures per service per day (about 7 a year)
PROPAGATION_BETA = (2.0, 5.0)  # Beta(2, 5): mean 0.29
CASCADE_DELAY_MINUTES = (1.0, 10.0)  # a child starts 1-10 minutes after its parent
DURATION_LOG_MINUTES = (np.log(45.0), 0.9)  # log-normal incident durations
SEVERITY_WEIGHTS = (0.05, 0.2, 0.45, 0.3)  # SEV1..SEV4
CASCADE_LABELLED_DEPENDENCY = 0.6  # share of cascaded incidents whose category is `dependency`

# The columns of the validated incidents table (pipeline.CLEAN_INCIDENTS).
INCIDENT_COLUMNS = (*INCIDENT_REQUIRED, *INCIDENT_OPTIONAL)


@dataclasses.dataclass(frozen=True)
class SyntheticHistory:
    topology: pd.DataFrame  # the shape Topology.from_frame expects
    incidents: pd.DataFrame  # typed as model.fit gets them in production (from the Parquet)
    root_rate: pd.Series  # true root failures per day, indexed by service
    propagation: pd.Series  # true probability, indexed by (depends_on, service)
    failures: pd.Series  # incidents per service in the history (roots and cascaded)
    days: int
    data_start: str  # the window start, for model.fit's `data_start`: exposure is `days`


def make_topology(rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A layered random DAG. Services are numbered bottom layer first, so that number order is
    a topological order (every dependency has a smaller number than its dependents).

    Returns (topology frame, edge dependency numbers, edge dependent numbers).
    """
    tiers = np.repeat([tier for tier, _ in LAYERS], [size for _, size in LAYERS])
    layer = np.repeat(np.arange(len(LAYERS)), [size for _, size in LAYERS])
    counters: dict[str, int] = {}
    names = []
    for tier in tiers:
        counters[tier] = counters.get(tier, 0) + 1
        names.append(f"{tier}-{counters[tier]:02d}")
    # Popularity: a heavy-tailed weight, so that some services are called by many others
    # (their edges are then well observed).
    popularity = rng.lognormal(0.0, 1.0, size=len(names))
    dependency, dependent = [], []
    for v in np.flatnonzero(layer > 0):
        candidates = np.flatnonzero(layer < layer[v])
        weights = popularity[candidates] * np.where(
            layer[candidates] == layer[v] - 1, ADJACENT_LAYER_WEIGHT, 1.0
        )
        k = min(int(rng.integers(1, MAX_DEPENDENCIES + 1)), len(candidates))
        chosen = np.sort(rng.choice(candidates, size=k, replace=False, p=weights / weights.sum()))
        dependency.extend(chosen.tolist())
        dependent.extend([int(v)] * k)
    dependency_array = np.array(dependency, dtype=np.int64)
    dependent_array = np.array(dependent, dtype=np.int64)
    depends_on = [
        [names[u] for u in dependency_array[dependent_array == v]] for v in range(len(names))
    ]
    frontend = tiers == LAYERS[-1][0]
    frame = pd.DataFrame(
        {
            "service": names,
            "depends_on": depends_on,
            "tier": tiers,
            "owner_team": [f"team-{t}-{i % 5}" for i, t in enumerate(tiers)],
            "user_facing": frontend.tolist(),
            "runbook_url": [f"https://runbooks.example.com/{n}" for n in names],
            "oncall": [f"{n}-primary" for n in names],
            "slo_target": np.where(frontend, 0.999, np.nan),
            "traffic_weight": np.where(frontend, rng.uniform(0.5, 2.0, len(names)), np.nan),
        }
    )
    return frame, dependency_array, dependent_array


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
    Services are in topological order, so one pass over them settles every cascade at once.

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


def synthetic_history(seed: int, days: int, with_caused_by: bool = True) -> SyntheticHistory:
    rng = np.random.default_rng(seed)
    topology, dependency, dependent = make_topology(rng)
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
        columns=list(INCIDENT_COLUMNS),
    )
    edges = pd.MultiIndex.from_arrays(
        [names[dependency], names[dependent]], names=["depends_on", "service"]
    )
    return SyntheticHistory(
        topology=topology,
        incidents=incidents,
        root_rate=pd.Series(rates, index=pd.Index(names, name="service")),
        propagation=pd.Series(probability, index=edges),
        failures=pd.Series(np.bincount(service, minlength=n_services), index=names),
        days=days,
        data_start=start_of_window.isoformat(),
    )


# --- the sample generator's truth -------------------------------------------------------------

SAMPLE_GENERATOR = Path(__file__).resolve().parents[1] / "include" / "data" / "generate_sample.py"
SAMPLE_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)  # the end of the generator's period


@dataclasses.dataclass(frozen=True)
class SampleHistory:
    topology: Topology
    incidents: pd.DataFrame  # as validation hands them to model.fit: inside the window
    propagation: pd.Series  # true probability, indexed by (depends_on, service)
    days: int
    data_start: str  # the earliest incident of the whole export, as validation reports it


@functools.cache
def sample_generator() -> ModuleType:
    """include/data/generate_sample.py as a module (registered first: its dataclasses look
    their module up while it loads)."""
    spec = importlib.util.spec_from_file_location("generate_sample", SAMPLE_GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def sample_history(seed: int, days: int) -> SampleHistory:
    """The sample generator's history for `seed`, read as the pipeline reads the sample's CSV
    files, with the `days` up to SAMPLE_AS_OF that a fit of that window uses.

    Its truth: the sample's 28 services and 47 edges with fixed probabilities, 32 hard (0.2 to
    0.6; the platform teams mark an edge soft when its probability is at most 0.15) and 15 soft
    (0.05 to 0.15); independent cascades, 75 % of them with caused_by; five common-mode
    incidents; weekly and seasonal patterns (include/data/README.md)."""
    generator = sample_generator()
    topology_rows, incident_rows, _ = generator.generate(seed)
    with tempfile.TemporaryDirectory() as folder:
        topology_path, incidents_path = Path(folder, "topology.csv"), Path(folder, "incidents.csv")
        generator.write_csv(topology_path, generator.TOPOLOGY_COLUMNS, topology_rows)
        generator.write_csv(incidents_path, generator.INCIDENT_COLUMNS, incident_rows)
        topology = Topology.from_frame(ingest.load_topology(topology_path).frame)
        incidents = ingest.load_incidents(incidents_path).frame
    started = incidents["started_at"]
    inside = (started > pd.Timestamp(SAMPLE_AS_OF - timedelta(days=days))) & (
        started <= pd.Timestamp(SAMPLE_AS_OF)
    )
    truth = {(dependency, s.name): p for s in generator.SERVICES for dependency, p in s.calls}
    edges = pd.MultiIndex.from_tuples(sorted(truth), names=["depends_on", "service"])
    return SampleHistory(
        topology=topology,
        incidents=incidents.loc[inside, [*INCIDENT_REQUIRED, *INCIDENT_OPTIONAL]].reset_index(
            drop=True
        ),
        propagation=pd.Series([truth[key] for key in edges], index=edges),
        days=days,
        data_start=started.min().isoformat(),
    )
