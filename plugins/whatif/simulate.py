"""Simulate: how likely each what-if is within the horizon, and what it does when it happens.

- Probability of a root failure of service s in mode m within the horizon: the exact
  posterior predictive under the Gamma posterior of the rate, 1 - (b / (b + q_m c H))^a.
- Impact: Monte Carlo of the cascade given that root failure, on the subgraph the trigger can
  reach, vectorised over draws and edges: each edge is flipped once per draw with its posterior
  mean propagation probability (independent cascade) and the failure spreads breadth-first
  along live edges with sparse matrix products. Durations and severities are drawn for every
  affected service.
The definitions of impact and risk are in docs/scenarios.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order

from whatif import model
from whatif.config import RunConfig, WhatIf
from whatif.errors import UserError
from whatif.schemas import FAILURE_MODES, SEVERITIES, ModelDoc
from whatif.topology import Topology

SEVERITY_WEIGHT = {"SEV1": 4.0, "SEV2": 2.0, "SEV3": 1.0, "SEV4": 0.5}
INTERNAL_WEIGHT = 0.25  # weight of an internal service relative to a user-facing one
LISTED_THRESHOLD = 0.10  # a service is listed as affected when hit in >= 10 % of draws
MAX_CELLS = 8_000_000  # bound on draws x edges held in memory at once

Progress = Callable[[int, int], None]  # (trigger services done, total)


@dataclasses.dataclass(frozen=True)
class CascadeStats:
    """What one trigger service's failure does, summarised over the draws."""

    services: np.ndarray  # the services the failure can reach (topology indices; trigger first)
    affected_probability: np.ndarray  # per service of `services`
    blast_radius: np.ndarray  # services affected per draw (the trigger included)
    duration_minutes: np.ndarray  # per draw
    severity_index: np.ndarray  # per draw, 0 = SEV1
    impact: np.ndarray  # per draw


def trigger_probability(
    shape: np.ndarray, rate: np.ndarray, expected_multiplier: np.ndarray
) -> np.ndarray:
    """P(at least one root failure within the horizon), integrated over the rate posterior.

    expected_multiplier is share_of_mode x horizon_days x traffic factor; for Gamma(a, b)
    rates, E[exp(-lambda c)] = (b / (b + c))^a.
    """
    return -np.expm1(shape * (np.log(rate) - np.log(rate + expected_multiplier)))


def mode_multipliers(config: RunConfig, model_doc: ModelDoc) -> np.ndarray:
    """Traffic factor per failure mode for the horizon (1 outside an event window): the
    load-sensitive modes scale as traffic ** elasticity, averaged over the elasticity's
    posterior (model.json "load"; a model fitted before it existed: elasticity exactly 1)."""
    factor = np.ones(len(FAILURE_MODES))
    if config.event and config.event.traffic_multiplier != 1.0:
        load = model_doc.load
        elasticity = load.elasticity.model_dump() if load else {"mean": 1.0, "sd": 0.0}
        modes = load.modes if load else model.LOAD_SENSITIVE_MODES
        boost = model.traffic_factor(config.event.traffic_multiplier, elasticity)
        for i, mode in enumerate(FAILURE_MODES):
            if mode in modes:
                factor[i] = boost
    return factor


def horizon_exposure(config: RunConfig, model_doc: ModelDoc) -> float:
    """The horizon in days, each day weighted by its weekday multiplier: an event window
    from its first day, otherwise the days right after the history ends."""
    if config.event:
        start = datetime.combine(config.event.start, datetime.min.time(), UTC)
    else:
        start = datetime.fromisoformat(model_doc.window.end)
    weekdays = model_doc.time_multipliers.day_of_week if model_doc.time_multipliers else None
    return model.expected_exposure_days(start, config.effective_horizon_days, weekdays)


def _spread(live: np.ndarray, dependency: np.ndarray, dependent: np.ndarray, n: int) -> np.ndarray:
    """Affected services per draw (bool draws x n) from live edges, breadth-first from node 0
    (the trigger); one sparse product per step, so the cost is per step, not per edge."""
    n_draws, n_edges = live.shape
    to_dependent = sparse.csr_matrix(
        (np.ones(n_edges, dtype=np.int32), (np.arange(n_edges), dependent)), shape=(n_edges, n)
    )
    affected = np.zeros((n_draws, n), dtype=bool)
    affected[:, 0] = True
    frontier = affected.copy()
    while n_edges and frontier.any():
        fired = frontier[:, dependency] & live
        reached = (sparse.csr_matrix(fired.astype(np.int32)) @ to_dependent).toarray() > 0
        frontier = reached & ~affected
        affected |= frontier
    return affected


def _live_edges(p: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Which edges carry the failure in each draw: one coin flip per edge and draw
    (independent cascade), in blocks of draws so that the arrays stay within MAX_CELLS.

    Each edge is tried at most once per outcome, so drawing its probability from the Beta
    posterior and then flipping is exactly a flip with the posterior mean: the mean is used.
    """
    block = max(1, MAX_CELLS // max(len(p), 1))
    parts = [rng.random((n, len(p))) < p for n in np.diff(np.r_[0:draws:block, draws])]
    return np.concatenate(parts) if parts else np.zeros((draws, 0), dtype=bool)


def _cascade_stats(
    affected: np.ndarray, nodes: np.ndarray, arrays: dict[str, np.ndarray], rng: np.random.Generator
) -> CascadeStats:
    """Durations, severities and impact per draw for the services `nodes` (trigger first)."""
    n_draws, n = affected.shape
    z = rng.standard_normal((n_draws, n))
    minutes = np.exp(arrays["mu"][nodes] + arrays["sigma"][nodes] * z)
    duration = np.where(affected, minutes, 0.0).max(axis=1)
    u = rng.random((n_draws, n))
    severity = (u[:, :, None] > arrays["severity_cdf"][nodes][None, :, :-1]).sum(axis=2)
    user_facing = arrays["user_facing"][nodes]
    counted = affected & (user_facing | (np.arange(n) == 0))[None, :]
    worst = np.where(counted, severity, len(SEVERITIES) - 1).min(axis=1)
    weights = np.where(user_facing, 1.0, INTERNAL_WEIGHT)
    breadth = (affected * weights[None, :]).sum(axis=1)
    severity_weight = np.array([SEVERITY_WEIGHT[s] for s in SEVERITIES])[worst]
    return CascadeStats(  # compact dtypes: these are kept for every trigger until selection
        services=nodes,
        affected_probability=affected.mean(axis=0),
        blast_radius=affected.sum(axis=1).astype(np.int32),
        duration_minutes=duration.astype(np.float32),
        severity_index=worst.astype(np.int8),
        impact=(duration / 60.0 * breadth * severity_weight).astype(np.float32),
    )


def simulate_cascades(
    model_doc: ModelDoc,
    topology: Topology,
    draws: int,
    rng: np.random.Generator,
    progress: Progress | None = None,
) -> list[CascadeStats]:
    """Cascade statistics for every service as the trigger, in topology order.

    A failure can only reach the trigger's descendants in the dependency graph, so each
    trigger is simulated on that subgraph alone: the cost follows the blast radius, not the
    size of the whole topology. `progress(done, total)` is told as triggers complete."""
    arrays = model_arrays(model_doc, topology)
    dependency, dependent = topology.edge_dependency, topology.edge_dependent
    graph = sparse.csr_matrix(
        (np.ones(len(dependency)), (dependency, dependent)), shape=(topology.size,) * 2
    )
    position = np.full(topology.size, -1)
    stats: list[CascadeStats] = []
    step = max(1, topology.size // 100)
    for trigger in range(topology.size):
        nodes = breadth_first_order(graph, trigger, directed=True, return_predecessors=False)
        position[nodes] = np.arange(len(nodes))
        edges = np.flatnonzero(position[dependency] >= 0)  # its dependent is reachable too
        live = _live_edges(arrays["edge_p"][edges], draws, rng)
        affected = _spread(
            live, position[dependency[edges]], position[dependent[edges]], len(nodes)
        )
        position[nodes] = -1
        stats.append(_cascade_stats(affected, nodes, arrays, rng))
        if progress and (len(stats) % step == 0 or len(stats) == topology.size):
            progress(len(stats), topology.size)
    return stats


def model_arrays(model_doc: ModelDoc, topology: Topology) -> dict[str, np.ndarray]:
    """The model as arrays aligned with the topology's service and edge order."""
    by_service = {s.service: s for s in model_doc.services}
    by_edge = {(e.depends_on, e.service): e for e in model_doc.edges}
    services = [by_service[name] for name in topology.services]
    edges = [
        by_edge[(topology.services[u], topology.services[v])]
        for u, v in zip(topology.edge_dependency, topology.edge_dependent, strict=True)
    ]
    severity = np.array([[s.severity_probabilities[k] for k in SEVERITIES] for s in services])
    return {
        "shape": np.array([s.root_rate_posterior.shape for s in services]),
        "rate": np.array([s.root_rate_posterior.rate for s in services]),
        "modes": np.array([[s.failure_modes[m] for m in FAILURE_MODES] for s in services]),
        "mu": np.array([s.duration_minutes_lognormal.mu for s in services]),
        "sigma": np.array([s.duration_minutes_lognormal.sigma for s in services]),
        "severity_cdf": np.cumsum(severity / severity.sum(axis=1, keepdims=True), axis=1),
        "user_facing": topology.attributes["user_facing"].to_numpy(bool),
        "edge_p": np.array(
            [e.posterior.alpha / (e.posterior.alpha + e.posterior.beta) for e in edges]
        ),
    }


def check_model_matches(model_doc: ModelDoc, topology: Topology, model_path: str) -> None:
    """The model must cover the topology it is simulated on (same services and edges)."""
    modelled = {s.service for s in model_doc.services}
    missing = [s for s in topology.services if s not in modelled]
    if missing:
        raise UserError(
            f"the model has no entry for service {missing[0]!r} of the topology",
            file=model_path,
            hint="fit the model on this topology first (whatif fit)",
        )
    edges = {(e.depends_on, e.service) for e in model_doc.edges}
    for u, v in zip(topology.edge_dependency, topology.edge_dependent, strict=True):
        if (topology.services[u], topology.services[v]) not in edges:
            raise UserError(
                f"the model has no edge {topology.services[v]} -> {topology.services[u]}",
                file=model_path,
                hint="fit the model on this topology first (whatif fit)",
            )


def resolve_what_ifs(what_ifs: tuple[WhatIf, ...], topology: Topology) -> list[WhatIf]:
    """Check that forced what-ifs name real services (the topology's spelling)."""
    by_key = {s.lower(): s for s in topology.services}
    resolved = []
    for what_if in what_ifs:
        name = by_key.get(what_if.service.lower())
        if name is None:
            close = difflib.get_close_matches(what_if.service, topology.services, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "see the topology file"
            raise UserError(f"--what-if {what_if.service!r}: no such service", hint=hint)
        resolved.append(WhatIf(name, what_if.failure_mode))
    return resolved


def candidate_scenarios(
    model_doc: ModelDoc, topology: Topology, config: RunConfig, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """Every (trigger service, failure mode) pair with its probability and impact facts."""
    rng = np.random.default_rng(config.seed)
    arrays = model_arrays(model_doc, topology)
    horizon = horizon_exposure(config, model_doc)
    multiplier = arrays["modes"] * mode_multipliers(config, model_doc)[None, :] * horizon
    probability = trigger_probability(arrays["shape"][:, None], arrays["rate"][:, None], multiplier)
    cascades = simulate_cascades(model_doc, topology, config.draws, rng, progress)
    candidates = []
    for i, name in enumerate(topology.services):
        facts = _impact_facts(cascades[i], topology)
        for j, mode in enumerate(FAILURE_MODES):
            p = float(probability[i, j])
            candidates.append(
                {
                    "id": scenario_id(name, mode),
                    "trigger": {"service": name, "failure_mode": mode},
                    "probability": _round(p),
                    "risk_score": _round(p * facts["impact"]["impact_score"]),
                    **facts,
                }
            )
    return candidates


def scenario_id(service: str, mode: str) -> str:
    return f"{service}--{mode}"


def _impact_facts(stats: CascadeStats, topology: Topology) -> dict[str, Any]:
    order = np.argsort(-stats.affected_probability, kind="stable")
    listed = [int(k) for k in order if stats.affected_probability[k] >= LISTED_THRESHOLD]
    names = [topology.services[stats.services[k]] for k in listed]
    user_facing = topology.attributes["user_facing"]
    teams = sorted(
        {
            str(topology.attribute(n, "owner_team"))
            for n in names
            if topology.attribute(n, "owner_team")
        }
    )
    severity_share = np.bincount(stats.severity_index, minlength=len(SEVERITIES))
    severity_share = severity_share / severity_share.sum()
    return {
        "affected_services": names,
        "user_facing_affected": [n for n in names if bool(user_facing[n])],
        "expected_duration_minutes": _percentiles(stats.duration_minutes),
        "severity": SEVERITIES[int(np.argmax(severity_share))],
        "impact": {
            "blast_radius": _percentiles(stats.blast_radius.astype(float)),
            "affected_probability": {
                name: _round(float(stats.affected_probability[k]))
                for name, k in zip(names, listed, strict=True)
            },
            "severity_probabilities": {
                s: _round(float(p)) for s, p in zip(SEVERITIES, severity_share, strict=True)
            },
            "teams_paged": teams,
            "impact_score": _round(float(stats.impact.mean(dtype=np.float64))),
        },
    }


def _percentiles(values: np.ndarray) -> dict[str, float]:
    p50, p90 = np.percentile(values, [50, 90])
    return {"p50": _round(float(p50)), "p90": _round(float(p90))}


def _round(value: float) -> float:
    return float(f"{value:.6g}") if math.isfinite(value) else 0.0


def select(
    candidates: list[dict[str, Any]], forced: list[WhatIf], k: int, model_doc: ModelDoc
) -> list[dict[str, Any]]:
    """Pick the scenarios to report, each tagged with why:
    forced what-ifs; the top risks, at most two per trigger service so one fragile service
    cannot fill the report; then rare-but-severe tail scenarios (probability at or below the
    median, highest impact, one per service); any slot left goes to the next-ranked risk."""
    by_id = {c["id"]: c for c in candidates}
    modes = {s.service: s.failure_modes for s in model_doc.services}
    chosen: dict[str, dict[str, Any]] = {}
    for what_if in forced:
        mode = what_if.failure_mode or max(modes[what_if.service], key=modes[what_if.service].get)
        key = scenario_id(what_if.service, mode)
        chosen[key] = by_id[key] | {
            "forced": True,
            "selection_reason": "forced what-if (conditioned on this failure)",
        }
    ranked = sorted(candidates, key=lambda c: (-c["risk_score"], c["id"]))
    rank = {c["id"]: i for i, c in enumerate(ranked, start=1)}
    top_reason = lambda c: f"top risk (rank {rank[c['id']]} of {len(ranked)})"  # noqa: E731
    tail_slots = max(1, k // 4) if k >= 3 else 0
    _take(chosen, ranked, k - tail_slots, per_service=2, reason=top_reason)
    median_p = float(np.median([c["probability"] for c in candidates]))
    tail = sorted(
        (c for c in candidates if c["probability"] <= median_p),
        key=lambda c: (-c["impact"]["impact_score"], c["id"]),
    )
    _take(
        chosen,
        tail,
        k,
        per_service=1,
        reason=lambda c: (
            "tail: rare but severe (probability at or below the median, highest impact)"
        ),
    )
    _take(chosen, ranked, k, per_service=None, reason=top_reason)
    return sorted(chosen.values(), key=lambda c: (not c["forced"], -c["risk_score"], c["id"]))


def _take(
    chosen: dict[str, dict[str, Any]],
    pool: list[dict[str, Any]],
    limit: int,
    per_service: int | None,
    reason: Any,
) -> None:
    """Add candidates from `pool` in order until `chosen` holds `limit`, at most `per_service`
    of this pool's picks per trigger service."""
    taken: dict[str, int] = {}
    for candidate in pool:
        if len(chosen) >= limit:
            return
        service = candidate["trigger"]["service"]
        if candidate["id"] in chosen or (per_service and taken.get(service, 0) >= per_service):
            continue
        taken[service] = taken.get(service, 0) + 1
        chosen[candidate["id"]] = candidate | {
            "forced": False,
            "selection_reason": reason(candidate),
        }


def simulate(
    model_doc: ModelDoc, topology: Topology, config: RunConfig, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """The selected scenarios' facts (no prose yet), most important first."""
    forced = resolve_what_ifs(config.what_if, topology)
    candidates = candidate_scenarios(model_doc, topology, config, progress)
    return select(candidates, forced, config.scenarios, model_doc)
