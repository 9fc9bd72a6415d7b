"""Synthetic service graphs: layered DAGs, with failure flowing up from a dependency to the
services that call it.

Two families, because their users need different things: `tiered_topology` is the recovery
tests' small fleet (four named tiers, popular services called by many, so that their edges are
well observed), `layered_topology` the benchmarks' fleet of any size (log2(n) layers,
vectorised: 5,000 services in well under a second). Both return the frame
`whatif.ingest.load_topology` produces; `contract_topology` writes one as a user's CSV.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd

# tiered_topology: (tier, how many services), bottom layer first.
LAYERS: tuple[tuple[str, int], ...] = (("data", 16), ("core", 30), ("mid", 38), ("frontend", 36))
MAX_DEPENDENCIES = 3
ADJACENT_LAYER_WEIGHT = 3.0  # a service calls mostly into the layer just below it


def tiered_topology(rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A layered random DAG of LAYERS. Services are numbered bottom layer first, so that number
    order is a topological order (every dependency has a smaller number than its dependents).

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


def layered_topology(
    n: int,
    dependencies: float,
    rng: np.random.Generator,
    hubs: int = 0,
    hub_share: float = 0.0,
) -> pd.DataFrame:
    """A layered DAG of n services (svc-00000, ...) with `dependencies` per service on average:
    log2(n) layers, the foundations (layer 0) depend on nothing, a service in layer L > 0 on
    1 + Poisson(lam) distinct services below it, each drawn from the layer just below with
    probability 1/2 and from all the layers below otherwise; the top layer is user facing (5 %
    of the services leave user_facing unset, for the engine's inference).

    With `hubs`, the first `hubs` foundations are shared infrastructure (DNS, identity, a
    database proxy, as real platforms have): every service above layer 0 also depends on each
    with probability `hub_share` (on top of `dependencies`). Without them no draw is added, so
    the graphs of a seed stay as they were."""
    n_layers = max(3, round(math.log2(n)))
    layer = np.sort(rng.integers(0, n_layers, size=n))
    layer[: max(1, n // (2 * n_layers))] = 0  # enough foundations
    layer[-max(1, n // n_layers) :] = n_layers - 1  # and enough entry points
    layer = np.sort(layer)
    first = np.searchsorted(layer, np.arange(n_layers))  # services are ordered by layer
    below = first[layer]  # service i may depend on [0, below[i])
    just_below = first[np.maximum(layer - 1, 0)]  # the layer just below: [just_below, below)
    upper = layer > 0
    lam = max(0.0, dependencies * n / max(1, int(upper.sum())) - 1.0)
    wanted = np.where(upper, np.minimum(1 + rng.poisson(lam, n), below), 0)
    keys = np.zeros(0, dtype=np.int64)  # dependent * n + dependency, unique
    for _ in range(50):  # draw the missing picks again until none collide
        missing = wanted - np.bincount(keys // n, minlength=n)
        if not missing.any():
            break
        service = np.repeat(np.arange(n), missing)
        low = np.where(rng.random(len(service)) < 0.5, just_below[service], 0)
        pick = low + (rng.random(len(service)) * (below[service] - low)).astype(np.int64)
        keys = np.union1d(keys, service * n + pick)  # sorted by dependent, then dependency
    if hubs:
        hub = np.tile(np.arange(min(hubs, int((layer == 0).sum()))), (n, 1))
        service = np.broadcast_to(np.arange(n)[:, None], hub.shape)
        picked = upper[:, None] & (rng.random(hub.shape) < hub_share)
        keys = np.union1d(keys, service[picked] * n + hub[picked])
    names = np.array([f"svc-{i:05d}" for i in range(n)], dtype=object)
    dependent, dependency = keys // n, keys % n
    depends_on = np.split(names[dependency], np.searchsorted(dependent, np.arange(1, n)))
    tiers = np.array(["data", "platform", "core", "core", "edge"], dtype=object)
    teams = np.array([f"{i % max(3, n // 10):03d}" for i in range(n)], dtype=object)
    user_facing = (layer == n_layers - 1).astype(object)
    user_facing[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "service": names,
            "depends_on": [list(d) for d in depends_on],
            "tier": tiers[np.rint(layer * (len(tiers) - 1) / (n_layers - 1)).astype(int)],
            "owner_team": "team-" + teams,
            "user_facing": user_facing,
            "runbook_url": "https://runbooks.example.com/" + names,
            "oncall": "oncall-" + teams,
            "slo_target": rng.choice([0.99, 0.995, 0.999, 0.9995, 0.9999], size=n),
            "traffic_weight": np.round(rng.uniform(0.05, 1.0, size=n), 3),
        }
    )


def contract_topology(
    frame: pd.DataFrame,
    rng: np.random.Generator | None = None,
    *,
    soft_share: float = 0.0,
    launched_share: float = 0.0,
    created_before_share: float = 0.0,
    window_start: datetime | None = None,
    window_days: float = 0.0,
) -> pd.DataFrame:
    """A topology frame as a user's CSV holds it (docs/data-contract.md): `;`-joined
    depends_on, user_facing as true / false / empty. With `soft_share`, that share of the edges
    is also named in soft_depends_on (the model gives soft edges their own prior); with
    `launched_share`, that share of the services has a created_at inside the window (between 30
    days after `window_start` and 60 days before its end: exposure starts there), and
    `created_before_share` one before it (no effect on exposure)."""
    frame = frame.copy()
    if soft_share > 0:
        degree = frame["depends_on"].map(len).to_numpy()
        flat = np.concatenate([np.asarray(d, dtype=object) for d in frame["depends_on"]])
        soft = rng.random(len(flat)) < soft_share
        row = np.repeat(np.arange(len(frame)), degree)
        lists = pd.Series(flat[soft]).groupby(row[soft]).agg(";".join)
        frame["soft_depends_on"] = lists.reindex(range(len(frame)), fill_value="").to_numpy()
    frame["depends_on"] = frame["depends_on"].map(";".join)
    frame["user_facing"] = frame["user_facing"].map({True: "true", False: "false", None: ""})
    if launched_share > 0 or created_before_share > 0:
        pick = rng.random(len(frame))
        launched = pick < launched_share
        old = (pick >= launched_share) & (pick < launched_share + created_before_share)
        day = np.where(
            launched,
            rng.uniform(30.0, window_days - 60.0, len(frame)),
            -rng.uniform(1.0, 1000.0, len(frame)),
        )
        start = pd.Timestamp(window_start)
        created = pd.Series(start + pd.to_timedelta(np.round(day * 86400), unit="s"))
        frame["created_at"] = created.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(launched | old, "")
    return frame
