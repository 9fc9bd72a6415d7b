"""Benchmark of the whatif engine's two numeric stages on synthetic fleets.

Not a test: it asserts nothing about time. For each fleet size it builds a random layered
service DAG (~2 dependencies per service) and a synthetic incident history with cascades, then
times

- fit:      whatif.model.fit (empirical-Bayes priors, posteriors, model.json validation), and
- simulate: whatif.simulate.candidate_scenarios (trigger probabilities, simulate_cascades for
            every service as the trigger, impact facts for every (service, failure mode)),

and reports seconds, the peak of traced memory (tracemalloc, which sees NumPy's array buffers),
and cascades per second (services x draws / simulate seconds).

    PYTHONPATH=plugins .venv/bin/python bench/bench_simulate.py [--sizes 30,300,3000]
        [--draws 2000] [--budget-seconds 480] [--out bench/results.md]

The run is kept within --budget-seconds: the draws of each size are capped so that its
simulation's estimated time fits in what is left of the budget. The estimate is deliberately
pessimistic: it extrapolates from the previous size as if every trigger were simulated on the
whole fleet (cost ~ services x draws x (edges + services), as the engine did before commit
2ff3c79); with the current engine, whose cost follows each trigger's reachable subgraph, the
default sizes run at full draws. Sizes run with reduced draws are marked in the table, with a
note. --no-cap runs all sizes with --draws whatever it costs.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order
from whatif import model, simulate
from whatif.config import RunConfig
from whatif.schemas import FAILURE_MODES, SEVERITIES
from whatif.topology import Topology

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import AS_OF, HISTORY_DAYS

MIN_DRAWS = 100  # RunConfig's lower bound
SEED = 42


# --------------------------------------------------------------------------- synthetic data


def synthetic_topology(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """A random layered DAG as the frame whatif.ingest.load_topology produces.

    Layer 0 holds the foundations (databases, queues) with no dependencies; a service in layer
    L > 0 depends on 1 + Poisson(lam) services drawn from the layers below it (about half from
    the layer just below), lam chosen so that the fleet averages ~2 dependencies per service.
    The top layer is user facing; a few services leave user_facing unset (None) so that the
    engine's inference runs too.
    """
    n_layers = max(3, round(math.log2(n)))
    layer = np.sort(rng.integers(0, n_layers, size=n))
    layer[: max(1, n // (2 * n_layers))] = 0  # enough foundations
    layer[-max(1, n // n_layers) :] = n_layers - 1  # and enough entry points
    layer = np.sort(layer)
    names = [f"svc-{i:05d}" for i in range(n)]
    by_layer = [np.flatnonzero(layer == k) for k in range(n_layers)]
    tiers = ["data", "platform", "core", "core", "edge"]
    lam = max(0.0, 2.0 * n / max(1, int((layer > 0).sum())) - 1.0)
    rows = []
    for i, name in enumerate(names):
        k = int(layer[i])
        depends_on: list[str] = []
        if k > 0:
            below = np.concatenate(by_layer[:k])
            just_below = by_layer[k - 1]
            wanted = min(1 + int(rng.poisson(lam)), len(below))
            picks: set[int] = set()
            while len(picks) < wanted:
                pool = just_below if rng.random() < 0.5 and len(just_below) else below
                picks.add(int(rng.choice(pool)))
            depends_on = [names[j] for j in sorted(picks)]
        user_facing: bool | None = bool(k == n_layers - 1)
        if rng.random() < 0.05:
            user_facing = None
        rows.append(
            {
                "service": name,
                "depends_on": depends_on,
                "tier": tiers[min(len(tiers) - 1, round(k * (len(tiers) - 1) / (n_layers - 1)))],
                "owner_team": f"team-{i % max(3, n // 10):03d}",
                "user_facing": user_facing,
                "runbook_url": f"https://runbooks.example.com/{name}",
                "oncall": f"oncall-{i % max(3, n // 10):03d}",
                "slo_target": float(rng.choice([0.99, 0.995, 0.999, 0.9995, 0.9999])),
                "traffic_weight": float(np.round(rng.uniform(0.05, 1.0), 3)),
            }
        )
    return pd.DataFrame(rows)


def synthetic_incidents(topology: Topology, rng: np.random.Generator) -> pd.DataFrame:
    """Root incidents from a Gamma-Poisson process plus one generation of cascades.

    Every root incident of a dependency spreads to each dependent with a hidden per-edge
    probability ~ Beta(1, 6); a cascaded incident starts a few minutes later, has category
    "dependency" and caused_by = the root's incident id (70 % of the time, the rest unlinked).
    """
    n = topology.size
    days = float(HISTORY_DAYS)
    start = AS_OF - timedelta(days=days)
    rates = rng.gamma(shape=0.8, scale=0.01 / 0.8, size=n)  # ~7 root incidents / service / 2 y
    counts = rng.poisson(rates * days)
    edge_p = rng.beta(1.0, 6.0, size=len(topology.edge_dependency))
    out_edges: list[list[int]] = [[] for _ in range(n)]
    for k, u in enumerate(topology.edge_dependency):
        out_edges[int(u)].append(k)
    mode_mix = rng.dirichlet(np.ones(len(FAILURE_MODES)), size=n)
    severity_p = np.array([0.05, 0.2, 0.45, 0.3])

    ids, services, started, minutes, severity, category, caused_by = [], [], [], [], [], [], []

    def add(service: int, at: float, mode: str, parent: str | None) -> str:
        incident_id = f"INC-{len(ids) + 1:07d}"
        ids.append(incident_id)
        services.append(topology.services[service])
        started.append(at)
        minutes.append(float(np.exp(rng.normal(math.log(60.0), 0.9))))
        severity.append(SEVERITIES[rng.choice(len(SEVERITIES), p=severity_p)])
        category.append(mode)
        caused_by.append(parent)
        return incident_id

    for s in range(n):
        for at in np.sort(rng.uniform(0.0, days, size=counts[s])):
            mode = FAILURE_MODES[rng.choice(len(FAILURE_MODES), p=mode_mix[s])]
            root = add(s, float(at), mode, None)
            for k in out_edges[s]:
                if rng.random() < edge_p[k]:
                    delay = float(rng.uniform(1.0, 20.0)) / 1440.0
                    parent = root if rng.random() < 0.7 else None
                    add(int(topology.edge_dependent[k]), float(at) + delay, "dependency", parent)

    started_at = pd.to_datetime(start) + pd.to_timedelta(np.array(started), unit="D")
    started_at = started_at.floor("s")
    resolved_at = started_at + pd.to_timedelta(np.array(minutes), unit="m").round("s")
    return pd.DataFrame(
        {
            "incident_id": ids,
            "service": services,
            "started_at": started_at,
            "resolved_at": resolved_at,
            "severity": severity,
            "category": category,
            "caused_by": pd.Series(caused_by, dtype=object),
        }
    )


def reachable_counts(topology: Topology) -> np.ndarray:
    """How many services a failure of each service can reach (itself included): the
    descendants along dependency -> dependent edges, whatever the edge probabilities."""
    n = topology.size
    graph = sparse.csr_matrix(
        (
            np.ones(len(topology.edge_dependency)),
            (topology.edge_dependency, topology.edge_dependent),
        ),
        shape=(n, n),
    )
    return np.array(
        [len(breadth_first_order(graph, i, return_predecessors=False)) for i in range(n)]
    )


# --------------------------------------------------------------------------- measurement


def measure(function, *args, trace_memory: bool):
    """(result, seconds, peak traced MiB or None)."""
    gc.collect()
    if trace_memory:
        tracemalloc.start()
        tracemalloc.reset_peak()
    began = time.perf_counter()
    result = function(*args)
    seconds = time.perf_counter() - began
    peak = None
    if trace_memory:
        _, peak_bytes = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peak = peak_bytes / 2**20
    return result, seconds, peak


def run_size(n: int, draws: int, requested: int, trace_memory: bool) -> dict:
    rng = np.random.default_rng(SEED + n)
    frame = synthetic_topology(n, rng)
    topology = Topology.from_frame(frame)
    incidents = synthetic_incidents(topology, rng)
    # fit is pandas/pydantic-heavy and tracemalloc triples its time: time it untraced, then
    # run it once more under tracemalloc for its memory peak.
    doc, fit_s, _ = measure(model.fit, incidents, topology, AS_OF, HISTORY_DAYS, trace_memory=False)
    fit_mib = None
    if trace_memory:
        _, _, fit_mib = measure(
            model.fit, incidents, topology, AS_OF, HISTORY_DAYS, trace_memory=True
        )
    # simulate is NumPy-bound (tracemalloc costs it ~3 %): one traced, timed pass.
    config = RunConfig(seed=SEED, draws=draws, as_of=AS_OF)
    candidates, sim_s, sim_mib = measure(
        simulate.candidate_scenarios, doc, topology, config, trace_memory=trace_memory
    )
    n_edges = len(topology.edge_dependency)
    reach = reachable_counts(topology)
    return {
        "services": n,
        "edges": n_edges,
        "incidents": int(incidents["incident_id"].nunique()),
        "linked": int(incidents["caused_by"].notna().sum()),
        "draws": draws,
        "requested_draws": requested,
        "fit_s": fit_s,
        "fit_mib": fit_mib,
        "sim_s": sim_s,
        "sim_mib": sim_mib,
        "cascades_per_s": n * draws / sim_s,
        "reach_mean": float(reach.mean()),
        "reach_p90": float(np.percentile(reach, 90)),
        "reach_max": int(reach.max()),
        "candidates": len(candidates),
        "mean_blast_radius": float(
            np.mean([c["impact"]["blast_radius"]["p50"] for c in candidates])
        ),
    }


def plan_draws(n: int, requested: int, previous: dict | None, left_s: float) -> int:
    """Draws for size n so its simulation is expected to fit in left_s seconds.

    Pessimistic cost model: seconds ~ c x services x draws x (edges + services), with c taken
    from the previous (smaller) size and the edges estimated as 2 per service. It is exact for
    an engine that simulates each trigger on the whole fleet and an upper bound for one that
    simulates only the trigger's reachable subgraph.
    """
    if previous is None:
        return requested
    work_prev = (
        previous["services"] * previous["draws"] * (previous["edges"] + previous["services"])
    )
    c = previous["sim_s"] / work_prev
    per_draw = c * n * (2 * n + n)
    affordable = int(0.85 * left_s / per_draw) if per_draw > 0 else requested  # 15 % margin
    if affordable >= requested:
        return requested
    return max(MIN_DRAWS, affordable // 10 * 10)


# --------------------------------------------------------------------------- report


def table(rows: list[dict], trace_memory: bool) -> str:
    mem = "peak MiB (tracemalloc)"
    lines = [
        f"| services | edges | incidents | draws | fit s | fit {mem} | simulate s | "
        f"simulate {mem} | cascades/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        draws = f"{r['draws']}" + (
            f" (reduced from {r['requested_draws']})" if r["draws"] != r["requested_draws"] else ""
        )
        fit_mib = f"{r['fit_mib']:.1f}" if trace_memory else "n/a"
        sim_mib = f"{r['sim_mib']:.0f}" if trace_memory else "n/a"
        lines.append(
            f"| {r['services']} | {r['edges']} | {r['incidents']} | {draws} | {r['fit_s']:.2f} | "
            f"{fit_mib} | {r['sim_s']:.2f} | {sim_mib} | {r['cascades_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="30,300,3000", help="fleet sizes, comma separated")
    parser.add_argument("--draws", type=int, default=2000, help="Monte Carlo draws per trigger")
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=480.0,
        help="time budget for all sizes; the largest sizes get fewer draws to fit in it",
    )
    parser.add_argument("--no-cap", action="store_true", help="never reduce the draws")
    parser.add_argument(
        "--no-tracemalloc",
        action="store_true",
        help="time only (tracemalloc slows the pandas/pydantic parts of fit a little)",
    )
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.md")))
    args = parser.parse_args(argv)
    sizes = common.parse_sizes(args.sizes)
    trace_memory = not args.no_tracemalloc
    if args.draws < MIN_DRAWS:
        parser.error(f"--draws must be at least {MIN_DRAWS}")

    engine = common.engine()  # before the run, in case the tree moves meanwhile
    run_size(30, MIN_DRAWS, MIN_DRAWS, trace_memory=False)  # warm-up: lazy imports, caches
    began = time.perf_counter()
    rows: list[dict] = []
    notes: list[str] = []
    for n in sorted(sizes):
        left = args.budget_seconds - (time.perf_counter() - began)
        draws = (
            args.draws
            if args.no_cap
            else plan_draws(n, args.draws, rows[-1] if rows else None, left)
        )
        common.progress(f"[{n} services, {draws} draws] ...")
        row = run_size(n, draws, args.draws, trace_memory)
        rows.append(row)
        if draws != args.draws:
            full = row["sim_s"] * args.draws / draws
            notes.append(
                f"{n} services: draws reduced from {args.draws} to {draws} so that the run stays "
                f"within --budget-seconds {args.budget_seconds:g} (cost extrapolated from the "
                f"previous size). Simulate time grows at least linearly with draws: at "
                f"{args.draws} draws expect {full:.0f} s (~{full / 60:.0f} min) or more "
                f"({row['sim_s']:.1f} s x {args.draws}/{draws}; with more draws fewer triggers "
                f"share a chunk, so the cost per cascade rises a little)."
            )
        common.progress(
            f"  fit {row['fit_s']:.2f} s, simulate {row['sim_s']:.2f} s, "
            f"{row['cascades_per_s']:,.0f} cascades/s"
        )
    total = time.perf_counter() - began

    markdown = table(rows, trace_memory)
    details = [
        f"| {r['services']} | {r['edges'] / r['services']:.2f} | {r['linked']} | "
        f"{r['reach_mean']:.0f} / {r['reach_p90']:.0f} / {r['reach_max']} | {r['candidates']} | "
        f"{r['mean_blast_radius']:.2f} |"
        for r in rows
    ]
    report = "\n".join(
        [
            *common.header(
                "whatif benchmark: fit and simulate", engine, ("numpy", "scipy", "pandas"), total
            ),
            "- simulate = `whatif.simulate.candidate_scenarios` (includes `simulate_cascades`); "
            "fit = `whatif.model.fit`; cascades/s = services x draws / simulate seconds",
            "- memory: "
            + (
                "peak traced memory of the stage (`tracemalloc` peak, reset before each "
                "stage; counts NumPy array buffers, not the interpreter's baseline RSS). fit is "
                "timed in an untraced pass and traced in a second one (tracemalloc triples its "
                "time); simulate is timed while traced (about 3 % overhead)"
                if trace_memory
                else "not measured (--no-tracemalloc)"
            ),
            "",
            markdown,
            "",
            *(["Notes:", "", *[f"- {note}" for note in notes], ""] if notes else []),
            "Synthetic inputs (seeded):",
            "",
            "| services | deps/service | caused_by links | reachable services per trigger "
            "(mean / p90 / max) "
            "| candidates | mean p50 blast radius |",
            "|---:|---:|---:|---:|---:|---:|",
            *details,
            "",
        ]
    )
    print(markdown)
    for note in notes:
        print(f"note: {note}")
    Path(args.out).write_text(report)
    common.progress(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
