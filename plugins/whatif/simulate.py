"""Simulate: how likely each what-if is within the horizon, and what it does when it happens.

- Probability of a root failure of service s in mode m within the horizon: the exact
  posterior predictive under the Gamma posterior of the rate, 1 - (b / (b + q_m f_m H))^a,
  H weighted by weekday, f_m the event's traffic factor.
- Impact: `cascade_draws` independent cascades conditioned on each trigger's root failure
  (whatif.cascade: all triggers' cascades advance together, wave by wave, touching only the
  out-edges of what fails), with a duration and a severity drawn for every affected service.
- Horizons: `draws` simulated horizons of the whole fleet, every root failure drawn from the
  posterior and cascaded; they give each scenario's simulated frequency (a check of the exact
  probability) and the fleet's totals per horizon.
- Selection: forced what-ifs, then only what the history gives evidence for and a probability
  that means something within the horizon: top risks spread over services and teams first,
  shared infrastructure, two roots at once in an event window, rare tails whose reach or
  severity justifies them. Without severities in the history, severity is "unknown" and
  impact counts services and users hit only.
The definitions of impact, risk and the selection are in docs/scenarios.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np

from whatif import cascade, model
from whatif.config import RunConfig, WhatIf
from whatif.errors import UserError
from whatif.schemas import FAILURE_MODES, SEVERITIES, GammaPosterior, ModelDoc, ServiceModel
from whatif.topology import Topology

SEVERITY_WEIGHT = {"SEV1": 4.0, "SEV2": 2.0, "SEV3": 1.0, "SEV4": 0.5}
INTERNAL_WEIGHT = 0.25  # weight of an internal service relative to a user-facing one
LISTED_THRESHOLD = 0.10  # a service is listed as affected when hit in >= 10 % of draws
BATCH_CASCADES = 1_000_000  # cascades simulated together (bounds the memory of a batch)
ERROR_BUDGET_DAYS = 30.0  # an SLO's error budget is counted over 30 days
# A ranked scenario happens within the horizon at least once in 100 horizons; below that it is
# listed only as a labelled tail, shared-infrastructure, compound or forced scenario.
MEANINGFUL_PROBABILITY = 0.01
# A tail scenario happens at least once in 1,000 horizons: rarer is no exercise's business.
TAIL_PROBABILITY = 0.001
UNKNOWN_SEVERITY = "unknown"  # a scenario's severity when the history records none

Progress = Callable[[int, int], None]  # (trigger services done, total)


@dataclasses.dataclass(frozen=True)
class CascadeStats:
    """What one trigger service's failure does, summarised over the draws."""

    services: np.ndarray  # the services it reached in some draw (topology indices)
    affected_probability: np.ndarray  # per service of `services`
    blast_radius: np.ndarray  # services affected per draw (the trigger included)
    duration_minutes: np.ndarray  # per draw: the longest outage among the affected
    severity_index: np.ndarray  # per draw, 0 = SEV1
    impact: np.ndarray  # per draw
    traffic_share: np.ndarray  # per draw: the largest traffic_weight among the affected
    budget_burn: np.ndarray  # per draw: the largest share of a 30-day error budget burnt


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


def outcomes(
    which: np.ndarray,
    service: np.ndarray,
    roots: np.ndarray,
    arrays: dict[str, np.ndarray],
    rng: np.random.Generator,
    is_root: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per cascade (one per root): blast radius, duration, worst severity, impact, traffic
    share and error-budget burn, from the (cascade, service) pairs of `cascade.spread`.

    Each affected service draws its own outage duration (log-normal) and severity; the
    cascade lasts as long as its longest outage; its severity is the worst among the
    user-facing services and the root (`is_root` per pair, for outcomes with several)."""
    n = len(roots)
    starts = np.flatnonzero(np.r_[True, which[1:] != which[:-1]])  # every cascade >= 1
    minutes = np.exp(
        arrays["mu"][service] + arrays["sigma"][service] * rng.standard_normal(len(service))
    )
    severity = (rng.random(len(service))[:, None] > arrays["severity_cdf"][service, :-1]).sum(1)
    is_root = service == roots[which] if is_root is None else is_root
    counted = arrays["user_facing"][service] | is_root
    worst = np.minimum.reduceat(np.where(counted, severity, len(SEVERITIES) - 1), starts)
    weights = np.where(arrays["user_facing"][service], 1.0, INTERNAL_WEIGHT)
    breadth = np.bincount(which, weights=weights, minlength=n)
    duration = np.maximum.reduceat(minutes, starts)
    severity_weight = arrays["severity_weight"][worst]
    budget = arrays["budget_minutes"][service]
    burn = np.where(budget > 0, minutes / np.where(budget > 0, budget, 1.0), 0.0)
    return {
        "blast_radius": np.bincount(which, minlength=n).astype(np.int32),
        "duration_minutes": duration.astype(np.float32),
        "severity_index": worst.astype(np.int8),
        "impact": (duration / 60.0 * breadth * severity_weight).astype(np.float32),
        "traffic_share": np.maximum.reduceat(arrays["traffic"][service], starts).astype(np.float32),
        "budget_burn": np.maximum.reduceat(burn, starts).astype(np.float32),
    }


def simulate_cascades(
    model_doc: ModelDoc,
    topology: Topology,
    draws: int,
    rng: np.random.Generator,
    progress: Progress | None = None,
) -> list[CascadeStats]:
    """Cascade statistics for every service as the trigger, in topology order: `draws`
    cascades conditioned on each trigger's root failure, in batches of triggers (all of a
    batch's cascades advance together, see whatif.cascade)."""
    arrays = model_arrays(model_doc, topology)
    graph = cascade.Graph.from_topology(topology, arrays["edge_p"])
    per_batch = max(1, BATCH_CASCADES // draws)
    results: list[CascadeStats] = []
    for first in range(0, topology.size, per_batch):
        triggers = np.arange(first, min(first + per_batch, topology.size))
        roots = np.repeat(triggers, draws)
        which, service = cascade.spread(graph, roots, rng)
        facts = outcomes(which, service, roots, arrays, rng)
        results += _per_trigger(triggers, which // draws, service, facts, draws)
        if progress:
            progress(len(results), topology.size)
    return results


def _per_trigger(
    triggers: np.ndarray,
    batch_index: np.ndarray,
    service: np.ndarray,
    facts: dict[str, np.ndarray],
    draws: int,
) -> list[CascadeStats]:
    """Split a batch's cascade facts by trigger; the services each reached, most often first
    after the trigger itself."""
    n = np.int64(max(int(service.max(initial=0)) + 1, 1))
    keys, counts = cascade.sorted_counts(batch_index * n + service)
    owner, reached = keys // n, keys % n
    bounds = np.searchsorted(owner, np.arange(len(triggers) + 1))
    result = []
    for k, trigger in enumerate(triggers):
        nodes, hits = reached[bounds[k] : bounds[k + 1]], counts[bounds[k] : bounds[k + 1]]
        first = np.argsort(nodes != trigger, kind="stable")  # the trigger first
        part = slice(k * draws, (k + 1) * draws)
        result.append(
            CascadeStats(
                services=nodes[first],
                affected_probability=hits[first] / draws,
                **{name: values[part] for name, values in facts.items()},
            )
        )
    return result


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
    slo = topology.attributes["slo_target"].to_numpy(float)
    known = severity_known(model_doc)
    return {
        "shape": np.array([_rate_distribution(s).shape for s in services]),
        "rate": np.array([_rate_distribution(s).rate for s in services]),
        "modes": np.array([[s.failure_modes[m] for m in FAILURE_MODES] for s in services]),
        "mu": np.array([s.duration_minutes_lognormal.mu for s in services]),
        "sigma": np.array([s.duration_minutes_lognormal.sigma for s in services]),
        "severity_cdf": np.cumsum(severity / severity.sum(axis=1, keepdims=True), axis=1),
        # Impact weighs a severity only when the history records severities.
        "severity_weight": np.array([SEVERITY_WEIGHT[s] if known else 1.0 for s in SEVERITIES]),
        "severity_known": np.array(known),
        "user_facing": topology.attributes["user_facing"].to_numpy(bool),
        "traffic": np.nan_to_num(topology.attributes["traffic_weight"].to_numpy(float)),
        # Minutes of downtime a 30-day error budget allows (0: no SLO given).
        "budget_minutes": np.nan_to_num((1.0 - slo) * ERROR_BUDGET_DAYS * 24 * 60),
        "edge_p": np.array(
            [e.posterior.alpha / (e.posterior.alpha + e.posterior.beta) for e in edges]
        ),
    }


def severity_known(model_doc: ModelDoc) -> bool:
    """Whether any incident of the history has a severity (from its column or its text); a
    model without that record (older files) is taken to have them."""
    sources = getattr(model_doc, "evidence_sources", None) or {}
    counts = sources.get("severity")
    return counts is None or counts.get("column", 0) + counts.get("text", 0) > 0


def evidenced_modes(model_doc: ModelDoc) -> set[str] | None:
    """The failure modes some root incident of the history shows (None: a model from before
    the counts were kept, whose modes all count as evidenced)."""
    counts = [s.root_incidents_by_mode for s in model_doc.services]
    if any(c is None for c in counts):
        return None
    return {mode for c in counts for mode, n in c.items() if n > 0}  # type: ignore[union-attr]


def _rate_distribution(service: ServiceModel) -> GammaPosterior:
    """The Gamma the simulation integrates the root-failure rate over: the predictive (with
    the over-dispersion), or the posterior of a model.json written before it existed."""
    return service.root_rate_predictive or service.root_rate_posterior


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
    return [
        WhatIf(resolve_service(w.service, topology, "--what-if"), w.failure_mode) for w in what_ifs
    ]


def resolve_service(name: str, topology: Topology, flag: str) -> str:
    """The topology's spelling of a service a flag or param names, or a UserError with the
    closest names."""
    found = {s.lower(): s for s in topology.services}.get(name.lower())
    if found is None:
        close = difflib.get_close_matches(name, topology.services, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see the topology file"
        raise UserError(f"{flag} {name!r}: no such service", hint=hint)
    return found


def expected_failures(model_doc: ModelDoc, config: RunConfig, arrays: dict) -> np.ndarray:
    """Per (service, mode): share of the mode x traffic factor x weekday-weighted horizon, the
    multiplier of the root rate in the expected number of such failures within the horizon."""
    horizon = horizon_exposure(config, model_doc)
    return arrays["modes"] * mode_multipliers(config, model_doc)[None, :] * horizon


def candidate_scenarios(
    model_doc: ModelDoc,
    topology: Topology,
    config: RunConfig,
    progress: Progress | None = None,
    rng: np.random.Generator | None = None,
    cascades: list[CascadeStats] | None = None,
) -> list[dict[str, Any]]:
    """Every (trigger service, failure mode) pair with its probability and impact facts
    (`cascades`: simulate_cascades' result, simulated here when not given)."""
    rng = rng or np.random.default_rng(config.seed)
    arrays = model_arrays(model_doc, topology)
    multiplier = expected_failures(model_doc, config, arrays)
    probability = trigger_probability(arrays["shape"][:, None], arrays["rate"][:, None], multiplier)
    if cascades is None:
        cascades = simulate_cascades(model_doc, topology, config.cascade_draws, rng, progress)
    candidates = []
    known = bool(arrays["severity_known"])
    summary = cascade_summary(cascades)
    for i, name in enumerate(topology.services):
        facts = _impact_facts(cascades[i], topology, known, summary, i)
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


@dataclasses.dataclass(frozen=True)
class Horizons:
    """Simulated horizons, folded into what the summary needs: per horizon, its root failures,
    the services they hit and the worst severity; per (service, mode), the horizons in which
    it failed. `root_failures` keeps every root failure only when asked for (checks and the
    benchmark): horizon, service, mode and its row in the bank of cascades."""

    count: int
    roots: np.ndarray  # per horizon
    hit: np.ndarray  # per horizon: sum of the root failures' blast radii
    worst: np.ndarray  # per horizon: the worst severity index (kernels.NO_SEVERITY: none)
    frequency: np.ndarray  # per (service, mode), service-major: horizons with a failure
    repeated: int  # root failures that shared their service and horizon with another
    root_failures: dict[str, np.ndarray] | None = None


HORIZON_CHUNKS = 4  # fixed, so the result does not depend on the number of threads


def simulate_horizons(
    model_doc: ModelDoc,
    topology: Topology,
    config: RunConfig,
    cascades: list[CascadeStats],
    rng: np.random.Generator,
    record: bool = False,
) -> Horizons:
    """`config.draws` horizons of the whole fleet: every service's root failures drawn from
    its posterior (the Poisson count integrated over the Gamma rate), their modes from its mix,
    and each root failure's outcome drawn from its trigger's simulated cascades.

    Only what happens is generated, so the cost follows the failures, not services x
    horizons: per service, the horizons with a failure are a Bernoulli process over the
    horizons (geometric gaps), and each such horizon's count is the zero-truncated negative
    binomial. A root failure's outcome is one of the `cascade_draws` cascades simulated for
    its trigger (`cascades`), picked uniformly: cascades depend only on their trigger, so this
    is a draw from the same distribution, without spreading the same cascade again for each
    of the millions of root failures a large fleet has in 100,000 horizons. The loop is
    compiled (whatif.kernels) and runs on fixed chunks of services, each with its own spawned
    random stream, on up to as many threads as there are cores."""
    from whatif import kernels  # numba: only the simulate stage pays for it

    arrays = model_arrays(model_doc, topology)
    multiplier = expected_failures(model_doc, config, arrays)
    total = multiplier.sum(axis=1)
    shape, rate = arrays["shape"].astype(float), arrays["rate"].astype(float)
    p_any = np.asarray(trigger_probability(shape, rate, total), dtype=float)
    p_nb = rate / (rate + total)
    mode_cdf = np.ascontiguousarray(
        np.cumsum(multiplier / np.where(total > 0, total, 1.0)[:, None], axis=1)
    )
    blast = np.concatenate([c.blast_radius for c in cascades]).astype(np.int32)
    severity = np.concatenate([c.severity_index for c in cascades]).astype(np.int8)
    bounds = _balanced_bounds(p_any, HORIZON_CHUNKS)
    streams = rng.spawn(2 * HORIZON_CHUNKS)  # per chunk: the draws, and the record's shuffle

    kernel = kernels.horizons_chunk_recorded if record else kernels.horizons_chunk

    def chunk(k: int) -> tuple:
        return kernel(
            int(bounds[k]), int(bounds[k + 1]), p_any, shape, p_nb, mode_cdf, blast,
            severity, config.cascade_draws, config.draws, streams[k],
            streams[HORIZON_CHUNKS + k],
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=min(HORIZON_CHUNKS, os.cpu_count() or 1)) as pool:
        parts = list(pool.map(chunk, range(HORIZON_CHUNKS)))
    roots, hit, worst, frequency, repeated, log = zip(*parts, strict=True)
    recorded = None
    if record:
        log = np.concatenate(log)
        recorded = dict(zip(("horizon", "service", "mode", "row"), log.T, strict=True))
    return Horizons(
        config.draws,
        sum(roots),
        sum(hit),
        np.minimum.reduce(worst),
        sum(frequency),
        int(sum(repeated)),
        recorded,
    )


def _balanced_bounds(work: np.ndarray, chunks: int) -> np.ndarray:
    """Boundaries of `chunks` contiguous ranges of services with about equal total work."""
    cumulative = np.cumsum(work)
    goal = cumulative[-1] * np.arange(1, chunks) / chunks if len(work) else []
    inner = np.searchsorted(cumulative, goal) if len(work) else np.zeros(chunks - 1, int)
    return np.r_[0, inner, len(work)]


def horizon_summary(
    horizons: Horizons, candidates: list[dict[str, Any]], severity_known: bool = True
) -> dict[str, Any]:
    """What the simulated horizons say about the fleet as a whole, and each candidate's
    simulated frequency (set on the candidates as `probability_simulated`). Without
    severities in the history, no chance of a SEV is given."""
    n = horizons.count
    frequency = horizons.frequency / n
    for k, candidate in enumerate(candidates):
        candidate["probability_simulated"] = _round(float(frequency[k]))
    any_at_least = {  # horizons with an incident this bad or worse
        name: _round(float((horizons.worst <= k).mean())) for k, name in enumerate(SEVERITIES)
    }
    if not severity_known:
        any_at_least = {}
    return {
        "horizons": n,
        "root_failures": _percentiles(horizons.roots.astype(float))
        | {"mean": _round(horizons.roots.mean())},
        "service_outages": _percentiles(horizons.hit.astype(float))
        | {"mean": _round(horizons.hit.mean())},
        "probability_any": any_at_least,
        "severity_known": severity_known,
    }


def scenario_id(service: str, mode: str) -> str:
    return f"{service}--{mode}"


def cascade_summary(cascades: list[CascadeStats]) -> dict[str, np.ndarray]:
    """Per trigger, what its impact facts quote of its cascades: p50 and p90 of duration,
    blast radius, traffic share and budget burn (NaN where no cascade reaches a service with
    the attribute), the mean impact and the share of each severity. Computed for all
    triggers at once (one percentile call per measure, not one per service)."""
    n = len(cascades)

    def stacked(field: str, dtype: Any = None) -> np.ndarray:
        values = np.stack([getattr(c, field) for c in cascades]) if n else np.zeros((0, 1))
        return values if dtype is None else values.astype(dtype)

    def quantiles(values: np.ndarray) -> np.ndarray:
        return np.percentile(values, [50, 90], axis=1).T if n else np.zeros((0, 2))

    summary = {
        "duration": quantiles(stacked("duration_minutes")),
        "blast_radius": quantiles(stacked("blast_radius")),  # integers: no float copy
        "impact": stacked("impact").mean(axis=1, dtype=np.float64),
    }
    for name in ("traffic_share", "budget_burn"):
        values = stacked(name, float)
        given = (values > 0).any(axis=1)
        summary[name] = np.where(given[:, None], quantiles(values), np.nan)
    severity = stacked("severity_index", np.int64)
    rows = np.repeat(np.arange(n), severity.shape[1])
    counts = np.bincount(
        rows * len(SEVERITIES) + severity.ravel(), minlength=n * len(SEVERITIES)
    ).reshape(n, len(SEVERITIES))
    summary["severity_share"] = counts / counts.sum(axis=1, keepdims=True)
    return summary


def _impact_facts(
    outcome: CascadeStats,
    topology: Topology,
    severity_known: bool = True,
    summary: dict[str, np.ndarray] | None = None,
    k: int = 0,
) -> dict[str, Any]:
    """A trigger's impact facts: its cascades' affected services (the listed ones) and the
    figures of `summary` row k (cascade_summary; of `outcome` alone when not given)."""
    summary = summary if summary is not None else cascade_summary([outcome])
    order = np.argsort(-outcome.affected_probability, kind="stable")
    listed = [int(k) for k in order if outcome.affected_probability[k] >= LISTED_THRESHOLD]
    names = [topology.services[outcome.services[j]] for j in listed]
    teams = sorted(
        {
            str(topology.attribute(n, "owner_team"))
            for n in names
            if topology.attribute(n, "owner_team")
        }
    )
    severity_share = summary["severity_share"][k]
    return {
        "affected_services": names,
        "user_facing_affected": [n for n in names if topology.attribute(n, "user_facing")],
        "expected_duration_minutes": _pair(summary["duration"][k]),
        "severity": SEVERITIES[int(np.argmax(severity_share))]
        if severity_known
        else UNKNOWN_SEVERITY,
        "impact": {
            "blast_radius": _pair(summary["blast_radius"][k]),
            "affected_probability": {
                name: _round(float(outcome.affected_probability[j]))
                for name, j in zip(names, listed, strict=True)
            },
            "severity_probabilities": {
                s: _round(float(p)) for s, p in zip(SEVERITIES, severity_share, strict=True)
            }
            if severity_known
            else {},
            "teams_paged": teams,
            "impact_score": _round(float(summary["impact"][k])),
            "traffic_share": _given(summary["traffic_share"][k]),
            "error_budget_burn": _given(summary["budget_burn"][k]),
        },
    }


def _given(pair: np.ndarray) -> dict[str, float] | None:
    """Percentiles of a measure that needs a topology attribute (traffic_weight, slo_target),
    or None when no service this cascade reaches has it (NaN in the summary)."""
    return None if np.isnan(pair).any() else _pair(pair)


def _pair(pair: np.ndarray) -> dict[str, float]:
    return {"p50": _round(float(pair[0])), "p90": _round(float(pair[1]))}


def _percentiles(values: np.ndarray) -> dict[str, float]:
    p50, p90 = np.percentile(values, [50, 90])
    return {"p50": _round(float(p50)), "p90": _round(float(p90))}


def _round(value: float) -> float:
    return float(f"{value:.6g}") if math.isfinite(value) else 0.0


def select(
    candidates: list[dict[str, Any]],
    forced: list[WhatIf],
    k: int,
    model_doc: ModelDoc,
    topology: Topology,
    compound: dict[str, Any] | None = None,
    focus: set[str] | None = None,
    feedback: Callable[[str, str], tuple[float, str]] | None = None,
) -> list[dict[str, Any]]:
    """Pick the scenarios to report, each tagged with why (docs/scenarios.md, section 7).

    Forced what-ifs always. Everything else stands on evidence: a failure mode no root
    incident of the history shows is never listed on its prior alone, and a ranked scenario
    has a probability within the horizon of at least MEANINGFUL_PROBABILITY. Among those,
    the top risks spread out: one scenario per trigger service (at most a third of the report
    per owning team and per failure mode), then the teams still missing whatever their mode,
    so that coverage of distinct services and teams comes before a second mode of the same
    service; in an event window, two
    independent root failures under way at once; a common-mode failure of the shared
    infrastructure the most services depend on; rare tails (at least TAIL_PROBABILITY, below
    the bar or below the median) only when their reach or known severity justifies them, of
    services not listed yet; then a second mode of a listed service; then the next-ranked
    risks. When fewer scenarios clear the bar than were asked for, fewer are listed.

    With services in `focus` (an event's), every pick but the forced ones is made among the
    scenarios whose trigger or affected services include one of them; only when those run
    out do other scenarios fill the report, saying so.

    With `feedback` (the exercise log, whatif.readiness.selection_factor), the top risks are
    ranked by risk times its factor: a trigger that failed a recent exercise or was never
    exercised moves up, one that passed recently moves down; the reason says which."""
    by_id = {c["id"]: c for c in candidates}
    known_modes = evidenced_modes(model_doc)
    everything = [c for c in candidates if known_modes is None or _mode(c) in known_modes]
    pool = in_focus(everything, focus) if focus else everything
    modes = {s.service: s.failure_modes for s in model_doc.services}
    chosen: dict[str, dict[str, Any]] = {}
    for what_if in forced:
        mode = what_if.failure_mode or max(modes[what_if.service], key=modes[what_if.service].get)
        key = scenario_id(what_if.service, mode)
        chosen[key] = by_id[key] | {
            "forced": True,
            "selection_reason": "forced what-if (conditioned on this failure)",
        }
    weight = {c["id"]: feedback(_service(c), _mode(c)) if feedback else (1.0, "") for c in pool}
    ranked = sorted(
        (c for c in pool if c["probability"] >= MEANINGFUL_PROBABILITY),
        key=lambda c: (-c["risk_score"] * weight[c["id"]][0], c["id"]),
    )
    rank = {c["id"]: i for i, c in enumerate(ranked, start=1)}

    def top_reason(c: dict[str, Any]) -> str:
        note = f"; {weight[c['id']][1]}" if weight[c["id"]][1] else ""
        return f"top risk (rank {rank[c['id']]} of {len(ranked)}{note})"

    tail_slots = max(1, k // 4) if k >= 3 else 0
    shared_slots = 1 if k >= 4 else 0
    cap = max(2, -(-k // 3))
    # A third per mode, unless the history shows fewer than three modes to share the report.
    mode_cap = max(cap, -(-k // len(known_modes))) if known_modes else cap

    def team(c: dict[str, Any]) -> str:
        service = c["trigger"]["service"]
        return str(topology.attribute(service, "owner_team") or service)

    compound_slots = 1 if compound and k >= 5 else 0
    spread = k - tail_slots - shared_slots - compound_slots
    # Coverage before depth: one scenario per service (at most a third per team and per
    # mode), then the teams still missing, whatever their mode, before any second mode.
    coverage = {"service": (_service, 1), "team": (team, cap), "mode": (_mode, mode_cap)}
    _take(chosen, ranked, spread, coverage, top_reason)
    _take(chosen, ranked, spread, {"service": (_service, 1), "team": (team, 1)}, top_reason)
    if (
        compound_slots
        and len(chosen) < k
        and (known_modes is None or {_mode(compound), compound["co_trigger"]["failure_mode"]}
             <= known_modes)  # type: ignore[index]
    ):  # fmt: skip
        chosen[compound["id"]] = compound | {  # type: ignore[index]
            "forced": False,
            "selection_reason": "common mode: two independent root failures under way at "
            "once in the event window (the pair among the top risks with the highest "
            "probability x impact)",
        }
    shared, dependents = shared_infrastructure(pool, topology, chosen)
    _take(
        chosen,
        shared,
        k - tail_slots,
        {"service": (_service, 1)},
        lambda c: (
            f"common mode: shared infrastructure ({dependents[_service(c)]} services "
            "depend on it, directly or through others)"
        ),
    )
    severity_given = severity_known(model_doc)
    median_p = float(np.median([c["probability"] for c in pool])) if pool else 0.0
    tail = sorted(  # a service's modes share one impact: its likeliest rare mode first
        (
            c
            for c in pool
            if c["probability"] >= TAIL_PROBABILITY
            and (c["probability"] < MEANINGFUL_PROBABILITY or c["probability"] < median_p)
            and tail_justification(c, severity_given)
        ),
        key=lambda c: (-c["impact"]["impact_score"], -c["probability"], c["id"]),
    )
    _take(
        chosen,
        tail,
        k,
        {"service": (_service, 1)},
        lambda c: f"tail: rare but {tail_justification(c, severity_given)}",
    )
    # The slots the tails and common modes left: more coverage first, then second modes.
    _take(chosen, ranked, k, coverage, top_reason)
    _take(chosen, ranked, k, {"service": (_service, 1), "team": (team, 1)}, top_reason)

    def second_reason(c: dict[str, Any]) -> str:
        again = any(_service(picked) == _service(c) for picked in chosen.values())
        return f"{top_reason(c)}, a second mode of its service" if again else top_reason(c)

    second = {"service": (_service, 2), "team": (team, cap), "mode": (_mode, mode_cap)}
    _take(chosen, ranked, k, second, second_reason)
    _take(chosen, ranked, k, {}, lambda c: f"{top_reason(c)}, once the spread-out picks ran out")
    if focus:
        _take(
            chosen,
            sorted(
                (c for c in everything if c["probability"] >= MEANINGFUL_PROBABILITY),
                key=lambda c: (-c["risk_score"], c["id"]),
            ),
            k,
            {},
            lambda c: "top risk outside the services in focus, once those ran out",
        )
    return sorted(chosen.values(), key=lambda c: (not c["forced"], -c["risk_score"], c["id"]))


def tail_justification(candidate: dict[str, Any], severity_known: bool) -> str | None:
    """Why a rare scenario is worth an exercise: it reaches other services, or (when the
    history records severities) it is most likely a SEV1 or SEV2. None: it is not."""
    reach = candidate["impact"]["blast_radius"]["p90"]
    if reach >= 2:
        return f"wide (reaches {reach:.0f} services in 1 of 10 outcomes)"
    severe = sum(candidate["impact"]["severity_probabilities"].get(s, 0.0) for s in SEVERITIES[:2])
    if severity_known and severe >= 0.5:
        return f"severe (SEV1 or SEV2 in {severe:.0%} of outcomes)"
    return None


def selection_summary(
    candidates: list[dict[str, Any]], selected: list[dict[str, Any]], k: int, model: ModelDoc
) -> dict[str, Any]:
    """How many scenarios cleared the bar, for the report's note when fewer were listed."""
    known_modes = evidenced_modes(model)
    eligible = sum(
        c["probability"] >= MEANINGFUL_PROBABILITY
        and (known_modes is None or _mode(c) in known_modes)
        for c in candidates
    )
    return {
        "meaningful_probability": MEANINGFUL_PROBABILITY,
        "eligible": int(eligible),
        "requested": k,
        "listed": len(selected),
        "modes_with_evidence": sorted(known_modes) if known_modes is not None else None,
    }


def in_focus(candidates: list[dict[str, Any]], focus: set[str]) -> list[dict[str, Any]]:
    """The candidates whose trigger or affected services include a service in focus (all of
    them when nothing is in focus)."""
    if not focus:
        return candidates
    return [c for c in candidates if focus & {_service(c), *c["affected_services"]}]


SHARED_SHORTLIST = 50  # services with the most direct dependents, searched for the widest reach


def shared_infrastructure(
    candidates: list[dict[str, Any]], topology: Topology, chosen: dict[str, dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The most likely failure of each service that the most others depend on (transitively),
    widest reach first; services already in the report are left out. Returns the candidates
    and the number of dependents per service."""
    direct = np.bincount(topology.edge_dependency, minlength=topology.size)
    shortlist = np.argsort(-direct, kind="stable")[:SHARED_SHORTLIST]
    graph = cascade.Graph.from_topology(topology, np.ones(len(topology.edge_dependency)))
    present = {
        t["service"] for c in chosen.values() for t in (c["trigger"], c.get("co_trigger")) if t
    }
    dependents = {
        topology.services[i]: len(graph.descendants(int(i))) - 1
        for i in shortlist
        if direct[i] > 0 and topology.services[i] not in present
    }
    likeliest: dict[str, dict[str, Any]] = {}
    for candidate in candidates:
        service = _service(candidate)
        if dependents.get(service, 0) >= 2:
            best = likeliest.get(service)
            if best is None or candidate["probability"] > best["probability"]:
                likeliest[service] = candidate
    ordered = sorted(
        likeliest.values(), key=lambda c: (-dependents[_service(c)], -c["risk_score"], c["id"])
    )
    return ordered, dependents


def _service(candidate: dict[str, Any]) -> str:
    return candidate["trigger"]["service"]


def _mode(candidate: dict[str, Any]) -> str:
    return candidate["trigger"]["failure_mode"]


def _take(
    chosen: dict[str, dict[str, Any]],
    pool: list[dict[str, Any]],
    limit: int,
    limits: dict[str, tuple[Any, int]],
    reason: Any,
) -> None:
    """Add candidates from `pool` in order until `chosen` holds `limit`; `limits` caps the
    report's picks per group (name: (group of a candidate, how many at most)), counting what
    earlier passes chose (forced what-ifs excepted: they are the user's)."""
    taken: dict[tuple[str, str], int] = {}
    for picked in chosen.values():
        if not picked["forced"] and not picked.get("co_trigger"):
            for name, (group, _) in limits.items():
                key = (name, group(picked))
                taken[key] = taken.get(key, 0) + 1
    for candidate in pool:
        if len(chosen) >= limit:
            return
        groups = [(name, group(candidate), most) for name, (group, most) in limits.items()]
        if candidate["id"] in chosen or any(
            taken.get((name, value), 0) >= most for name, value, most in groups
        ):
            continue
        for name, value, _ in groups:
            taken[(name, value)] = taken.get((name, value), 0) + 1
        chosen[candidate["id"]] = candidate | {
            "forced": False,
            "selection_reason": reason(candidate),
        }


COMPOUND_POOL = 10  # the top risks among which the worst pair at once is sought


def compound_scenario(
    model_doc: ModelDoc,
    topology: Topology,
    config: RunConfig,
    candidates: list[dict[str, Any]],
    rng: np.random.Generator,
) -> dict[str, Any] | None:
    """Two independent root failures in the same event window: of the pairs of distinct
    trigger services among the top risks, the one with the highest P(both) x impact of both
    at once. Both cascades are simulated in the same draw and their affected sets merged, so
    the impact counts a service hit by both once."""
    pool: list[dict[str, Any]] = []
    for candidate in sorted(candidates, key=lambda c: (-c["risk_score"], c["id"])):
        if _service(candidate) not in {_service(c) for c in pool}:
            pool.append(candidate)
        if len(pool) == COMPOUND_POOL:
            break
    if len(pool) < 2:
        return None
    arrays = model_arrays(model_doc, topology)
    graph = cascade.Graph.from_topology(topology, arrays["edge_p"])
    index = topology.index
    best: dict[str, Any] | None = None
    draws = config.cascade_draws
    window = config.effective_horizon_days * 24 * 60
    for i, first in enumerate(pool):
        for second in pool[i + 1 :]:
            pair = np.array([index[_service(first)], index[_service(second)]])
            draw, reached = cascade.spread(  # one cascade per draw, from both roots at once
                graph, np.repeat(pair, draws), rng, cascade=np.tile(np.arange(draws), 2)
            )
            facts = outcomes(
                draw, reached, np.repeat(pair[0], draws), arrays, rng, np.isin(reached, pair)
            )
            stats = _per_trigger(pair[:1], draw // draws, reached, facts, draws)[0]
            overlap = _overlap_probability([_mean_minutes(arrays, int(s)) for s in pair], window)
            probability = first["probability"] * second["probability"] * overlap
            impact = _impact_facts(stats, topology, bool(arrays["severity_known"]))
            risk = probability * impact["impact"]["impact_score"]
            if best is None or risk > best["risk_score"]:
                best = {
                    "id": f"{first['id']}+{second['id']}",
                    "trigger": first["trigger"],
                    "co_trigger": second["trigger"],
                    "probability": _round(probability),
                    "risk_score": _round(risk),
                    **impact,
                }
    return best


def _mean_minutes(arrays: dict[str, np.ndarray], service: int) -> float:
    """Mean outage of a service: the log-normal's mean."""
    return float(np.exp(arrays["mu"][service] + arrays["sigma"][service] ** 2 / 2))


def _overlap_probability(minutes: list[float], window: float) -> float:
    """P(two outages of these mean lengths, starting independently and uniformly within the
    window, are under way at the same time): (d1 + d2) / W - (d1^2 + d2^2) / (2 W^2)."""
    d1, d2 = (min(m, window) for m in minutes)
    return float(min(1.0, (d1 + d2) / window - (d1**2 + d2**2) / (2 * window**2)))


def simulate(
    model_doc: ModelDoc,
    topology: Topology,
    config: RunConfig,
    progress: Progress | None = None,
    feedback: Callable[[str, str], tuple[float, str]] | None = None,
) -> dict[str, Any]:
    """The selected scenarios' facts (no prose yet), most important first, and the summary
    of the simulated horizons."""
    forced = resolve_what_ifs(config.what_if, topology)
    focus = {resolve_service(s, topology, "--focus-service") for s in config.focus_services}
    rng = np.random.default_rng(config.seed)
    cascades = simulate_cascades(model_doc, topology, config.cascade_draws, rng, progress)
    candidates = candidate_scenarios(model_doc, topology, config, progress, rng, cascades)
    horizons = simulate_horizons(model_doc, topology, config, cascades, rng)
    summary = horizon_summary(horizons, candidates, severity_known(model_doc))
    summary["cascade_draws"] = config.cascade_draws
    compound = None
    if config.event and config.scenarios >= 5:
        compound = compound_scenario(
            model_doc, topology, config, in_focus(candidates, focus) or candidates, rng
        )
    selected = select(
        candidates, forced, config.scenarios, model_doc, topology, compound, focus, feedback
    )
    summary["selection"] = selection_summary(candidates, selected, config.scenarios, model_doc)
    return {"scenarios": selected, "simulation": summary}
