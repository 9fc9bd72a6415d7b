"""Benchmark of the whatif simulate stage on a 5,000-service fleet, against a plain-Python
baseline.

Not a test: it asserts nothing about time. Into a temporary folder bench/generate.py writes
(with whatif.synthetic, seeded, vectorised) a layered service DAG of 5,000 services with ~4
dependencies each (~20,000 edges), a two-year incident history on it (Gamma root rates,
cascades along the edges with hidden per-edge probabilities, `caused_by` on most of them),
and the model fitted with `whatif.model.fit`; then it measures, each stage in a fresh Python
process (its own memory high-water mark, as an Airflow task has):

- bank:     `whatif.simulate.simulate_cascades`: the per-trigger bank of conditional
            cascades (cascade_draws, 2,000 by default, for each of the 5,000 services as the
            trigger), which the stage simulates once for the scenarios' impact and the
            horizons draw their root failures' outcomes from;
- horizons: given the bank, `simulate_horizons` with 100,000 draws (7-day horizons: every
            root failure of the fleet, its outcome drawn from its trigger's bank) and
            `horizon_summary` on them (the candidates it needs are built from the bank by
            `candidate_scenarios` first, timed apart, not counted);
- baseline: a straightforward per-draw traversal in plain Python on the SAME root failures
            the engine drew: for each horizon, for each of its root failures, a breadth-first
            search over adjacency lists flipping each out-edge with random.random() < p. It
            runs on a seeded random subset of the horizons for about --baseline-seconds and
            its time is extrapolated linearly to all of them; its blast radii are compared with
            the engine's on the same root failures (same distribution, within the Monte Carlo
            error of both, the bank's included) so that the speed-up compares equal work;
            speed-ups are given against the horizons alone and against bank + horizons;
- stage:    the whole stage `whatif.simulate.simulate` (the bank, the candidates, the
            horizons, their summary, the selection);
- profile:  with --profile, cProfile of simulate_cascades, candidate_scenarios,
            simulate_horizons and horizon_summary (top 20 by own time and by cumulative time,
            and the engine functions the hottest are called from), in another process after
            the measured runs.

Peak memory is the process's RSS high-water mark (resource.getrusage ru_maxrss: interpreter,
imports and inputs included), not tracemalloc.

    PYTHONPATH=plugins .venv/bin/python bench/bench_simulate.py [--draws 100000]
        [--services 5000] [--dependencies 4] [--baseline-seconds 15] [--profile]
        [--timeout 1800] [--out bench/results.md]

Targets (from the issue): 100,000 horizons in <= 10 s, and >= 50x faster than the baseline.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import report
from common import AS_OF, HISTORY_DAYS, quantiles
from report import cell

SEED = 42
SERVICES = 5000
DEPENDENCIES = 4.0  # mean dependencies per service (the foundations have none)
DRAWS = 100_000  # simulated horizons
HORIZON_DAYS = 7.0
BASELINE_SECONDS = 15.0
SUBSET_HORIZONS = 60_000  # at most this many horizons are handed to the baseline
TARGET_SECONDS = 10.0
TARGET_SPEEDUP = 50.0
PROFILE_TOP = 20
CHILDREN = ("horizons", "baseline", "stage", "profile")
TAIL = 10  # the cross-check's tail: blast radius >= TAIL services
# Engine functions timed from the outside (those the engine does not have are skipped).
HORIZON_PARTS = (
    "simulate_cascades",
    "outcomes",
    "_per_trigger",
    "candidate_scenarios",
    "_impact_facts",
    "simulate_horizons",
    "model_arrays",
    "horizon_summary",
)
STAGE_PARTS = (
    "simulate_cascades",
    "candidate_scenarios",
    "simulate_horizons",
    "horizon_summary",
    "compound_scenario",
    "select",
)

# --------------------------------------------------------------------------- child processes


def _read_inputs(folder: Path):
    from whatif.schemas import ModelDoc
    from whatif.topology import Topology

    topology = Topology.from_frame(pd.read_pickle(folder / "topology.pkl"))
    document = ModelDoc.model_validate_json((folder / "model.json").read_text())
    return topology, document


def _config(draws: int, **overrides):
    from whatif.config import RunConfig

    return RunConfig(seed=SEED, draws=draws, horizon_days=HORIZON_DAYS, as_of=AS_OF, **overrides)


class Sections:
    """Inclusive wall seconds and calls of some engine functions, wrapped from the outside
    (nothing in plugins/whatif changes; a module-level name is looked up at call time, so the
    engine's own calls go through the wrapper), kept apart by the wrapped function they run
    inside, if any. A function missing from the engine is skipped."""

    def __init__(self, targets: list[tuple[object, str, str]]):
        self.figures: dict[tuple[str, str | None], list[float]] = {}  # -> [seconds, calls]
        self._active: list[str] = []
        for module, name, label in targets:
            if hasattr(module, name):
                setattr(module, name, self._wrap(getattr(module, name), label))

    def _wrap(self, function, label: str):
        @functools.wraps(function)  # keeps its name and signature
        def wrapper(*args, **kwargs):
            key = (label, self._active[-1] if self._active else None)
            self._active.append(label)
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._active.pop()
                figures = self.figures.setdefault(key, [0.0, 0])
                figures[0] += time.perf_counter() - began
                figures[1] += 1

        return wrapper

    def as_list(self) -> list[dict]:
        return [
            {"name": name, "inside": inside, "seconds": seconds, "calls": calls}
            for (name, inside), (seconds, calls) in self.figures.items()
        ]


def _timed(call):
    """(what call() returns, its wall seconds)."""
    began = time.perf_counter()
    value = call()
    return value, time.perf_counter() - began


def _engine_run(simulate, document, topology, config, rng) -> dict:
    """What simulate.simulate runs before the selection, in its order and with one rng (so
    the same draws as the stage): the bank (simulate_cascades), the candidates built from it,
    simulate_horizons given the bank and horizon_summary; each result and its seconds."""
    bank, bank_s = _timed(
        lambda: simulate.simulate_cascades(document, topology, config.cascade_draws, rng)
    )
    candidates, candidates_s = _timed(
        lambda: simulate.candidate_scenarios(document, topology, config, rng=rng, cascades=bank)
    )
    before_horizons = copy.deepcopy(rng)  # to draw the same horizons again, recorded
    horizons, simulate_s = _timed(
        lambda: simulate.simulate_horizons(document, topology, config, bank, rng)
    )
    summary, summary_s = _timed(lambda: simulate.horizon_summary(horizons, candidates))
    return {
        "rng_before_horizons": before_horizons,
        "bank": bank,
        "horizons": horizons,
        "summary": summary,
        "bank_s": bank_s,
        "candidates_s": candidates_s,
        "simulate_horizons_s": simulate_s,
        "horizon_summary_s": summary_s,
    }


def _warm_up(simulate, document, topology) -> float:
    """Lazy imports and first-call costs, on 100 horizons and a bank of 100 cascades per
    trigger; the seconds of its simulate_horizons call (numba's compile of the horizons loop,
    or loading it from numba's cache, plus 100 horizons)."""
    config = _config(100, cascade_draws=100)
    run = _engine_run(simulate, document, topology, config, np.random.default_rng(0))
    return run["simulate_horizons_s"]


def child_horizons(folder: Path, draws: int) -> dict:
    """The bank timed, then (given it) simulate_horizons + horizon_summary timed, after a
    warm-up; the workload they did; per trigger, the bank's blast-radius statistics (for the
    cross-check's standard errors); and a seeded random subset of the horizons with their root
    failures and blast radii for the baseline (baseline_roots.npz, in the order the baseline
    takes them)."""
    from whatif import cascade, simulate

    topology, document = _read_inputs(folder)
    first_call_s = _warm_up(simulate, document, topology)
    sections = Sections(
        [(simulate, name, name) for name in HORIZON_PARTS] + [(cascade, "spread", "cascade.spread")]
    )
    rng = np.random.default_rng(SEED)
    config = _config(draws)
    gc.collect()
    before = common.max_rss_mib()
    run = _engine_run(simulate, document, topology, config, rng)
    peak = common.max_rss_mib()
    vm_hwm = common.vm_hwm_mib()
    horizons_s = run["simulate_horizons_s"] + run["horizon_summary_s"]
    horizons, bank = run["horizons"], run["bank"]
    # The same horizons again (same random streams), every root failure kept this time: what
    # the baseline and the workload figures need, and a check that the totals are the same.
    again, record_s = _timed(
        lambda: simulate.simulate_horizons(
            document, topology, config, bank, run["rng_before_horizons"], record=True
        )
    )
    failures = again.root_failures
    # And once more on one thread (the baseline's one core), timed apart.
    cores = os.cpu_count
    os.cpu_count = lambda: 1
    try:
        _, one_thread_s = _timed(
            lambda: simulate.simulate_horizons(
                document, topology, config, bank, copy.deepcopy(run["rng_before_horizons"])
            )
        )
    finally:
        os.cpu_count = cores
    for name in ("roots", "hit", "worst", "frequency"):
        if not np.array_equal(getattr(again, name), getattr(horizons, name)):
            raise RuntimeError(f"the recorded horizons differ from the timed ones ({name})")
    radius = np.concatenate([c.blast_radius for c in bank]).astype(np.int64)[failures["row"]]
    per_horizon, outages = horizons.roots, horizons.hit
    bank_radius = [c.blast_radius.astype(np.float64) for c in bank]
    # The baseline's horizons: a seeded random permutation, its first SUBSET_HORIZONS.
    order = np.random.default_rng(SEED + 1).permutation(draws)[:SUBSET_HORIZONS]
    rank = np.full(draws, -1)
    rank[order] = np.arange(len(order))
    position = rank[failures["horizon"]]
    chosen = np.flatnonzero(position >= 0)
    chosen = chosen[np.argsort(position[chosen], kind="stable")]
    np.savez(
        folder / "baseline_roots.npz",
        service=failures["service"][chosen].astype(np.int32),
        radius=radius[chosen].astype(np.int32),
        bounds=np.searchsorted(position[chosen], np.arange(len(order) + 1)),
        # per trigger: the bank's mean and variance of the blast radius and of (radius >= TAIL)
        bank_mean=np.array([r.mean() for r in bank_radius]),
        bank_var=np.array([r.var() for r in bank_radius]),
        bank_tail=np.array([(r >= TAIL).mean() for r in bank_radius]),
        bank_draws=config.cascade_draws,
    )
    all_bank = np.concatenate(bank_radius)
    return {
        "stage": "horizons",
        "draws": draws,
        "cascade_draws": config.cascade_draws,
        "bank_cascades": len(all_bank),
        "bank_radius_mean": float(all_bank.mean()),
        "bank_radius_max": int(all_bank.max()),
        "seconds": horizons_s,
        "simulate_horizons_s": run["simulate_horizons_s"],
        "horizon_summary_s": run["horizon_summary_s"],
        "record_s": record_s,
        "first_call_s": first_call_s,
        "one_thread_s": one_thread_s,
        "chunks": simulate.HORIZON_CHUNKS,
        "bank_s": run["bank_s"],
        "candidates_s": run["candidates_s"],
        "bank_plus_horizons_s": run["bank_s"] + horizons_s,
        "measured_s": run["bank_s"] + run["candidates_s"] + horizons_s,
        "peak_rss_mib": peak,
        "vm_hwm_mib": vm_hwm,
        "baseline_rss_mib": before,
        "sections": sections.as_list(),
        "root_failures": len(radius),
        "roots_per_horizon_mean": float(per_horizon.mean()),
        "roots_per_horizon": quantiles(per_horizon, (1, 50, 99)) | {"max": int(per_horizon.max())},
        "together_share": horizons.repeated / max(1, len(radius)),
        "radius_mean": float(radius.mean()),
        "radius": quantiles(radius) | {"max": int(radius.max())},
        "cascading_share": float((radius > 1).mean()),
        "outages": int(radius.sum()),
        "outages_per_horizon_mean": float(outages.mean()),
        "outages_per_horizon": quantiles(outages, (50, 99)) | {"max": int(outages.max())},
    }


def child_baseline(folder: Path, draws: int, budget_s: float) -> dict:
    """The plain-Python baseline on the horizons the engine run saved, in their (random)
    order, horizon after horizon until budget_s has passed; per-horizon time extrapolated to
    `draws` horizons, and its blast radii against the engine's on the same root failures."""
    import random

    from whatif import simulate

    topology, document = _read_inputs(folder)
    edge_p = simulate.model_arrays(document, topology)["edge_p"]  # what the engine flips with
    adjacency: list[list[tuple[int, float]]] = [[] for _ in range(topology.size)]
    for u, v, p in zip(
        topology.edge_dependency.tolist(),
        topology.edge_dependent.tolist(),
        edge_p.tolist(),
        strict=True,
    ):
        adjacency[u].append((v, p))
    saved = np.load(folder / "baseline_roots.npz")
    service, engine_radius, bounds = saved["service"], saved["radius"], saved["bounds"]
    draw = random.Random(SEED).random
    radii: list[int] = []
    done = 0
    gc.collect()
    began = time.perf_counter()
    for k in range(len(bounds) - 1):
        for root in service[bounds[k] : bounds[k + 1]].tolist():
            radii.append(common.blast_radius_bfs(root, adjacency, draw))
        done += 1
        if time.perf_counter() - began >= budget_s:
            break
    seconds = time.perf_counter() - began
    ours = np.array(radii, dtype=float)
    n = len(ours)
    theirs = engine_radius[:n].astype(float)
    roots = np.bincount(service[:n], minlength=topology.size).astype(float)  # per trigger
    bank_draws = int(saved["bank_draws"])
    tail_share = saved["bank_tail"]
    checks = {}
    for name, baseline_values, engine_values, bank_var in (
        ("mean", ours, theirs, saved["bank_var"]),
        ("tail", ours >= TAIL, theirs >= TAIL, tail_share * (1.0 - tail_share)),
    ):
        b, e = float(baseline_values.mean()), float(engine_values.mean())
        # Standard errors given the root failures (the same for both): the baseline's n
        # independent cascades; the engine's n uniform picks from its triggers' banks, plus
        # the error of the banks themselves (a trigger's root failures share its bank of
        # bank_draws cascades): Var = sum_t n_t s_t^2 (1 + n_t / (D - 1)) / n^2, s_t^2 the
        # bank's variance, D its size; the baseline's, sum_t n_t s_t^2 D / (D - 1) / n^2.
        se_b = math.sqrt((roots * bank_var).sum() * bank_draws / (bank_draws - 1)) / n
        se_e = math.sqrt((roots * bank_var * (1 + roots / (bank_draws - 1))).sum()) / n
        # what the engine's error would be with an infinite bank (independent cascades)
        se_e_naive = math.sqrt((roots * bank_var).sum()) / n
        checks |= {
            f"baseline_{name}": b,
            f"engine_{name}": e,
            f"se_{name}": math.hypot(se_b, se_e),
            f"z_{name}": (b - e) / math.hypot(se_b, se_e),
            f"z_{name}_naive": (b - e) / math.hypot(se_b, se_e_naive),
        }
    return {
        "stage": "baseline",
        "horizons": done,
        "available": len(bounds) - 1,
        "root_failures": n,
        "triggers": int((roots > 0).sum()),
        "seconds": seconds,
        "per_horizon_ms": seconds / done * 1e3,
        "extrapolated_s": seconds / done * draws,
        "peak_rss_mib": common.max_rss_mib(),
        "baseline_sd": float(ours.std()),
        "baseline_max": int(ours.max()),
        "engine_sd": float(theirs.std()),
        "engine_max": int(theirs.max()),
        "tail": TAIL,
        "bank_draws": bank_draws,
        **checks,
    }


def child_stage(folder: Path, draws: int) -> dict:
    """The whole stage, simulate.simulate, with its main parts timed from the outside."""
    from whatif import simulate

    topology, document = _read_inputs(folder)
    first_call_s = _warm_up(simulate, document, topology)
    sections = Sections([(simulate, name, name) for name in STAGE_PARTS])
    config = _config(draws)
    gc.collect()
    before = common.max_rss_mib()
    began = time.perf_counter()
    result = simulate.simulate(document, topology, config)
    seconds = time.perf_counter() - began
    return {
        "stage": "stage",
        "draws": draws,
        "cascade_draws": config.cascade_draws,
        "seconds": seconds,
        "peak_rss_mib": common.max_rss_mib(),
        "vm_hwm_mib": common.vm_hwm_mib(),
        "baseline_rss_mib": before,
        "sections": sections.as_list(),
        "scenarios": len(result["scenarios"]),
        "first_call_s": first_call_s,
    }


def child_profile(folder: Path, draws: int) -> dict:
    """cProfile of the stage's costs, one by one in the order simulate.simulate runs them:
    simulate_cascades (the bank), candidate_scenarios, simulate_horizons and horizon_summary;
    top PROFILE_TOP entries of each by own time, the engine functions the top 3 spend their
    time for, and top entries by cumulative time."""
    import cProfile
    import io
    import pstats

    from whatif import simulate

    topology, document = _read_inputs(folder)
    config = _config(draws)
    _warm_up(simulate, document, topology)
    rng = np.random.default_rng(SEED)
    texts, seconds, done, hot = {}, {}, {}, {}
    steps = [
        (
            "simulate_cascades",
            lambda: simulate.simulate_cascades(document, topology, config.cascade_draws, rng),
        ),
        (
            "candidate_scenarios",
            lambda: simulate.candidate_scenarios(
                document, topology, config, rng=rng, cascades=done["simulate_cascades"]
            ),
        ),
        (
            "simulate_horizons",
            lambda: simulate.simulate_horizons(
                document, topology, config, done["simulate_cascades"], rng
            ),
        ),
        (
            "horizon_summary",
            lambda: simulate.horizon_summary(
                done["simulate_horizons"], done["candidate_scenarios"]
            ),
        ),
    ]
    for name, call in steps:
        gc.collect()
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        done[name] = call()
        profiler.disable()
        seconds[name] = time.perf_counter() - began
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
        stats.print_stats(PROFILE_TOP)
        texts[name] = _trim_profile(out.getvalue())
        hot[name] = _engine_callers(stats, 3)
        texts[name] += "\n\nthe top 3's own time by the engine function it is spent for:\n"
        texts[name] += hot[name]
        out = io.StringIO()
        stats.stream = out
        stats.sort_stats("cumulative").print_stats(PROFILE_TOP)
        texts[name] += "\n\nby cumulative time:\n" + _trim_profile(out.getvalue())
    return {
        "stage": "profile",
        "draws": draws,
        "seconds": sum(seconds.values()),
        "profiled_s": seconds,
        "peak_rss_mib": common.max_rss_mib(),
        "text": texts,
        "hot": hot,
    }


def _engine_callers(stats, top: int) -> str:
    """For the `top` entries by own time: the plugins/whatif functions whose calls lead to
    each (walking up through library frames), with the share of its own time that goes
    through each: at every step up, a caller gets the part of the callee's time that its
    calls account for (cProfile keeps caller -> callee pairs only, so it is apportioned)."""
    engine = str(common.ROOT / "plugins" / "whatif")
    table = stats.stats  # func -> (cc, nc, tt, ct, callers {func: (cc, nc, tt, ct)})
    hottest = sorted(table, key=lambda f: -table[f][2])[:top]
    lines = []
    for func in hottest:
        found: dict[tuple, float] = {}
        stack = [(func, table[func][2], (func,))]  # (frame, its seconds on this path, path)
        while stack:
            callee, seconds, path = stack.pop()
            callers = table[callee][4] if callee in table else {}
            total = sum(figures[3] for figures in callers.values())
            for caller, figures in callers.items():
                share = seconds * (figures[3] / total if total > 0 else 1 / len(callers))
                if caller[0].startswith(engine):
                    found[caller] = found.get(caller, 0.0) + share
                elif caller not in path and len(path) < 20:
                    stack.append((caller, share, (*path, caller)))
        where = ", ".join(
            f"{Path(f[0]).name}:{f[1]}({f[2]}) {t:.2f} s"
            for f, t in sorted(found.items(), key=lambda item: -item[1])[:4]
        )
        label = func[2] if func[0] == "~" else f"{Path(func[0]).name}:{func[1]}({func[2]})"
        lines.append(f"{label} ({table[func][2]:.2f} s own) <- {where or '(its own code)'}")
    return "\n".join(lines)


def _trim_profile(text: str) -> str:
    """pstats output from its column header on, with the repository's path shortened."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    root = str(common.ROOT) + os.sep
    venv = str(Path(sys.prefix)) + os.sep
    return "\n".join(
        line.replace(root, "").replace(venv, ".venv/") for line in lines[start:] if line.strip()
    )


# --------------------------------------------------------------------------- report


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**meets**" if ok else "**misses**")


def _ok(result: dict) -> bool:
    return not result.get("killed") and result.get("failed") is None


def headline(horizons: dict, baseline: dict, stage: dict, draws: int) -> list[str]:
    """The targets' rows. The horizons (simulate_horizons + horizon_summary) are timed given
    the bank, which the stage simulates anyway for the scenarios' impact; the bank is timed
    apart, and the speed-up is given against both the horizons alone and bank + horizons (the
    baseline spreads every cascade itself, like the latter)."""
    ran = _ok(horizons) and _ok(baseline)
    what = f"{draws:,} horizons of {HORIZON_DAYS:g} days"
    bank = (
        f"{horizons.get('bank_cascades', 0) // max(1, horizons.get('cascade_draws', 1)):,} "
        f"trigger services × {horizons.get('cascade_draws', 0):,} cascades"
    )

    def speedup_row(label: str, key: str, target: bool = True) -> str:
        value = baseline["extrapolated_s"] / horizons[key] if ran else None
        verdict = _verdict(None if value is None else value >= TARGET_SPEEDUP)
        aim = (
            f"≥ {TARGET_SPEEDUP:g}x: {verdict}"
            if target
            else "for reference: the bank costs per trigger, not per horizon"
        )
        return f"| {label} | **{'n/a' if value is None else f'{value:,.1f}x'}** | {aim} |"

    seconds = horizons.get("seconds") if _ok(horizons) else None
    rate = f" ({draws / seconds:,.0f} horizons/s)" if seconds else ""
    return [
        "| measurement | figure | target |",
        "|---|---|---|",
        f"| engine, horizons: `simulate_horizons` + `horizon_summary`, {what}, given the bank "
        f"| **{cell(horizons, 'seconds', '.2f')} s**{rate} = "
        f"{cell(horizons, 'simulate_horizons_s', '.2f')} s + "
        f"{cell(horizons, 'horizon_summary_s', '.2f')} s | ≤ {TARGET_SECONDS:g} s: "
        f"{_verdict(None if seconds is None else seconds <= TARGET_SECONDS)} |",
        f"| engine, bank: `simulate_cascades` ({bank}) | "
        f"**{cell(horizons, 'bank_s', '.1f')} s** | |",
        f"| engine, bank + horizons | **{cell(horizons, 'bank_plus_horizons_s', '.1f')} s** | |",
        f"| peak RSS of the engine process (bank, candidates and horizons) | "
        f"{cell(horizons, 'peak_rss_mib', ',.0f')} MiB | |",
        f"| baseline: per-draw BFS in plain Python, measured | "
        f"{cell(baseline, 'horizons', ',')} horizons ({cell(baseline, 'root_failures', ',')} "
        f"root failures) in {cell(baseline, 'seconds', '.1f')} s = "
        f"{cell(baseline, 'per_horizon_ms', '.3f')} ms per horizon | |",
        f"| baseline extrapolated to {draws:,} horizons | "
        f"{cell(baseline, 'extrapolated_s', ',.0f')} s | |",
        speedup_row("speed-up: baseline / horizons (given the bank)", "seconds"),
        f"| the same, `simulate_horizons` on one thread (the loop runs its "
        f"{horizons.get('chunks', '?')} chunks of services on up to that many threads, one per "
        f"core; the baseline uses one) | "
        f"{cell(horizons, 'one_thread_s', '.2f')} s + "
        f"{cell(horizons, 'horizon_summary_s', '.2f')} s: "
        f"**{_one_thread_speedup(horizons, baseline)}** | |",
        speedup_row("speed-up: baseline / (bank + horizons)", "bank_plus_horizons_s", False),
        f"| first call of `simulate_horizons` in a process (100 horizons, warm-up, not counted "
        f"above): numba compiles the loop (empty cache) / loads it from its cache | "
        f"{cell(horizons, 'first_call_s', '.2f')} s / {cell(stage, 'first_call_s', '.2f')} s | |",
        f"| the same horizons drawn again keeping every root failure (`record=True`, for the "
        f"baseline and the workload below; not counted) | {cell(horizons, 'record_s', '.1f')} s "
        f"| |",
        f"| whole stage: `simulate.simulate` ({draws:,} horizons, cascade_draws "
        f"{stage.get('cascade_draws', 'default')}) | **{cell(stage, 'seconds', '.1f')} s**; "
        f"peak RSS {cell(stage, 'peak_rss_mib', ',.0f')} MiB | |",
    ]


def _one_thread_speedup(horizons: dict, baseline: dict) -> str:
    if not (_ok(horizons) and _ok(baseline)):
        return "n/a"
    seconds = horizons["one_thread_s"] + horizons["horizon_summary_s"]
    return f"{baseline['extrapolated_s'] / seconds:,.1f}x"


def missed(horizons: dict, baseline: dict, profile: dict | None) -> list[str]:
    """A note under the headline naming the targets missed and, with --profile, the hot spots
    of the parts the horizons figure is made of (and of the bank): the top 3 entries by own
    time of each, with the engine functions they are spent for."""
    if not (_ok(horizons) and _ok(baseline)):
        return []
    misses = []
    if horizons["seconds"] > TARGET_SECONDS:
        misses.append(
            f"the horizons take {horizons['seconds']:.1f} s, not ≤ {TARGET_SECONDS:g} s "
            f"({horizons['seconds'] / TARGET_SECONDS:.1f}x over)"
        )
    speedup = baseline["extrapolated_s"] / horizons["seconds"]
    if speedup < TARGET_SPEEDUP:
        misses.append(
            f"the speed-up over the baseline is {speedup:.1f}x for the horizons, not ≥ "
            f"{TARGET_SPEEDUP:g}x (that needs ≤ "
            f"{baseline['extrapolated_s'] / TARGET_SPEEDUP:.2f} s)"
        )
    if not misses:
        return ["All targets met.", ""]
    lines = ["**Targets missed**: " + "; ".join(misses) + "."]
    if profile is not None and _ok(profile) and profile.get("hot"):
        lines += [
            "",
            "Hot spots (cProfile, separate run; per part, its top 3 entries by own time and "
            "the engine functions that time is spent for; full profiles at the end):",
            "",
        ]
        for name in ("simulate_horizons", "horizon_summary", "simulate_cascades"):
            if name in profile["hot"]:
                lines.append(f"- `{name}` ({profile['profiled_s'][name]:.1f} s profiled):")
                lines += [f"  - {line}" for line in profile["hot"][name].splitlines()]
    return [*lines, ""]


def workload(gen: dict, horizons: dict) -> list[str]:
    if not _ok(horizons):
        return ["(the engine run did not finish: no workload figures)"]
    h = horizons
    return [
        "| figure | value |",
        "|---|---:|",
        f"| services / edges (dependencies per service) | {gen['services']:,} / "
        f"{gen['edges']:,} ({gen['edges'] / gen['services']:.2f}) |",
        f"| root failures simulated ({h['draws']:,} horizons) | {h['root_failures']:,} |",
        f"| root failures per horizon: mean (p1 / p50 / p99 / max) | "
        f"{h['roots_per_horizon_mean']:.1f} ({h['roots_per_horizon']['p1']:.0f} / "
        f"{h['roots_per_horizon']['p50']:.0f} / {h['roots_per_horizon']['p99']:.0f} / "
        f"{h['roots_per_horizon']['max']}) |",
        f"| blast radius per root failure (services, root included): mean (p50 / p90 / p99 / "
        f"max) | {h['radius_mean']:.2f} ({h['radius']['p50']:.0f} / {h['radius']['p90']:.0f} "
        f"/ {h['radius']['p99']:.0f} / {h['radius']['max']}) |",
        f"| root failures whose service failed more than once in the same horizon | "
        f"{h['together_share']:.2%} |",
        f"| root failures that spread to at least one dependent | {h['cascading_share']:.1%} |",
        f"| service outages (cascade, service) pairs in all | {h['outages']:,} |",
        f"| service outages per horizon: mean (p50 / p99 / max) | "
        f"{h['outages_per_horizon_mean']:.0f} ({h['outages_per_horizon']['p50']:.0f} / "
        f"{h['outages_per_horizon']['p99']:.0f} / {h['outages_per_horizon']['max']:.0f}) |",
        f"| bank: cascades simulated (trigger services × cascade_draws) / mean blast radius / "
        f"max | {h['bank_cascades']:,} / {h['bank_radius_mean']:.2f} / {h['bank_radius_max']} |",
        f"| root failures per bank cascade (how often a cascade of the bank is reused, on "
        f"average) | {h['root_failures'] / h['bank_cascades']:.1f} |",
    ]


def sections_table(result: dict, total_key: str = "seconds") -> list[str]:
    """The wrapped functions' inclusive seconds, each under the one it ran inside, with the
    rest of each (its own code and what is not wrapped) and of the whole."""
    if not _ok(result):
        return [f"({result['stage']} did not finish)"]
    total = result[total_key]
    sections = result["sections"]
    lines = ["| part | calls | seconds | share |", "|---|---:|---:|---:|"]

    def add(inside: str | None, depth: int) -> float:
        """Rows of the sections run inside `inside` (None: at the top); their seconds."""
        done = 0.0
        for s in sections:
            if s["inside"] != inside:
                continue
            indent = "↳ " * depth
            lines.append(
                f"| {indent}`{s['name']}` | {s['calls']} | {s['seconds']:.1f} | "
                f"{s['seconds'] / total:.0%} |"
            )
            done += s["seconds"]
            inner = add(s["name"], depth + 1)
            if inner:
                left = s["seconds"] - inner
                lines.append(
                    f"| {'↳ ' * (depth + 1)}rest of `{s['name']}` | | {left:.1f} | "
                    f"{left / total:.0%} |"
                )
        return done

    left = total - add(None, 0)
    return [
        *lines,
        f"| outside these | | {left:.1f} | {left / total:.0%} |",
        f"| total | | {total:.1f} | 100% |",
    ]


def crosscheck(baseline: dict) -> list[str]:
    if not _ok(baseline):
        return ["(the baseline did not finish)"]
    b = baseline
    return [
        "| on the subset's root failures | baseline (BFS) | engine (bank) | standard error of "
        "the difference | z | z if the bank's own error were ignored |",
        "|---|---:|---:|---:|---:|---:|",
        f"| mean blast radius (sd) | {b['baseline_mean']:.4f} ({b['baseline_sd']:.2f}) | "
        f"{b['engine_mean']:.4f} ({b['engine_sd']:.2f}) | {b['se_mean']:.4f} | "
        f"{b['z_mean']:+.2f} | {b['z_mean_naive']:+.2f} |",
        f"| share with blast radius ≥ {b['tail']} | {b['baseline_tail']:.4%} | "
        f"{b['engine_tail']:.4%} | {b['se_tail']:.4%} | {b['z_tail']:+.2f} | "
        f"{b['z_tail_naive']:+.2f} |",
        f"| largest blast radius | {b['baseline_max']} | {b['engine_max']} | | | |",
    ]


def inputs_lines(gen: dict) -> list[str]:
    g = gen
    days = g["days_between"]
    return [
        "| figure | value |",
        "|---|---:|",
        f"| services / edges / foundations (no dependency) / most dependents of one service | "
        f"{g['services']:,} / {g['edges']:,} / {g['foundations']} / {g['max_dependents']} |",
        f"| services a failure can reach at all (descendants, itself included): mean / p90 / "
        f"max | {g['reach_mean']:.0f} / {g['reach']['p90']:.0f} / {g['reach']['max']:,} |",
        f"| history: incidents / roots / cascaded (with caused_by) / cascade generations | "
        f"{g['incidents']:,} / {g['roots']:,} / {g['cascaded']:,} ({g['caused_by']:,}) / "
        f"{len(g['generations']) - 1} |",
        f"| generated in / fitted in (model.fit) | {g['generate_s']:.1f} s / {g['fit_s']:.1f} s |",
        f"| fitted root rate (posterior mean): fleet mean per service | "
        f"{g['rate_mean']:.4f} / day (one per {1 / g['rate_mean']:.0f} days) |",
        f"| days between root failures per service: p10 / p50 / p90 | {days['p10']:.0f} / "
        f"{days['p50']:.0f} / {days['p90']:.0f} |",
        f"| edge propagation probability (posterior mean): mean, p10 / p50 / p90 "
        f"(hidden: Beta{tuple(g['process']['edge_beta'])}, mean {g['hidden_p_mean']:.2f}) | "
        f"{g['edge_p_mean']:.3f}, "
        f"{g['edge_p']['p10']:.3f} / {g['edge_p']['p50']:.3f} / {g['edge_p']['p90']:.3f} |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=SERVICES)
    parser.add_argument("--dependencies", type=float, default=DEPENDENCIES, help="mean per service")
    parser.add_argument("--draws", type=int, default=DRAWS, help="simulated horizons")
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=BASELINE_SECONDS,
        help="how long the plain-Python baseline runs (then extrapolated)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per stage")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the stage's parts (separate run, top 20)",
    )
    parser.add_argument("--profile-draws", type=int, help="horizons when profiling (--draws)")
    common.add_run_arguments(parser, Path(__file__).with_name("results.md"), CHILDREN)
    args = parser.parse_args(argv)
    if args.child:
        folder = Path(args.dir)
        result = {
            "horizons": lambda: child_horizons(folder, args.draws),
            "baseline": lambda: child_baseline(folder, args.draws, args.baseline_seconds),
            "stage": lambda: child_stage(folder, args.draws),
            "profile": lambda: child_profile(folder, args.profile_draws or args.draws),
        }[args.child]()
        print(json.dumps(result))
        return 0

    engine = report.engine()  # before the run, in case the tree moves meanwhile
    digests = {"start": report.engine_digest()}
    load_before = os.getloadavg()[0]
    passed = [
        *("--draws", str(args.draws), "--baseline-seconds", str(args.baseline_seconds)),
        *(["--profile-draws", str(args.profile_draws)] if args.profile_draws else []),
    ]
    began = time.perf_counter()
    results: dict[str, dict] = {}
    loads: dict[str, float] = {}
    with common.scratch_folder("whatif-bench-simulate-", args.keep) as folder:
        # An empty numba cache: the horizons child's first call compiles the horizons loop
        # as on a fresh install; the later children load it from this cache.
        os.environ["NUMBA_CACHE_DIR"] = str(folder / "numba-cache")
        # generate: the fleet, its history and the model fitted from it
        fleet = ["--services", str(args.services), "--dependencies", str(args.dependencies)]
        gen = common.generate("simulate", folder, args.timeout, fleet)
        # measure: each stage in a fresh process
        kinds = ["horizons", "baseline", "stage", *(["profile"] if args.profile else [])]
        for kind in kinds:
            if kind == "baseline" and not _ok(results["horizons"]):
                results[kind] = {"stage": kind, "failed": -1, "error": "no engine run"}
                continue
            common.progress(f"[{kind}] ...")
            loads[kind] = os.getloadavg()[0]
            digests[kind] = report.engine_digest()
            results[kind] = common.run_child(__file__, kind, folder, args.timeout, passed)
            common.progress(report.stage_line(results[kind]))
    total = time.perf_counter() - began
    digests["end"] = report.engine_digest()
    moved = len(set(digests.values())) > 1
    if moved:
        common.progress(f"WARNING: the engine's files changed during the run: {digests}")

    # report
    horizons, baseline, stage = results["horizons"], results["baseline"], results["stage"]
    process = gen["process"]
    parts = [
        *report.header(
            "whatif benchmark: simulate",
            engine,
            ("numpy", "scipy", "pandas", "pydantic"),
            total,
            included="input generation, fit, baseline" + (" and profiling" if args.profile else ""),
            load_before=load_before,
            load_note="; the load just before each stage: "
            + ", ".join(f"{k} {v:.1f}" for k, v in loads.items()),
        ),
        f"- inputs (seeded, vectorised; details below): a layered DAG of {gen['services']:,} "
        f"services and {gen['edges']:,} edges (~{args.dependencies:g} dependencies per "
        f"service), {HISTORY_DAYS} days of incidents on it, model fitted with `whatif.model.fit`",
        "- each stage runs in a fresh process after a warm-up (100 horizons, a bank of 100 "
        "cascades per trigger); peak RSS = "
        "`resource.getrusage(RUSAGE_SELF).ru_maxrss` at its end (the whole process: "
        "interpreter, imports, inputs; not tracemalloc)",
        f"- targets (issue): {args.draws:,} horizons in ≤ {TARGET_SECONDS:g} s, and ≥ "
        f"{TARGET_SPEEDUP:g}x faster than a per-draw BFS in plain Python",
        f"- engine source digest (sha256 of plugins/whatif/**/*.py, first 12): {digests['start']}"
        + (
            " — **the engine's files changed during the run, so the stages measured different "
            f"versions; discard these figures and re-run** ({digests})"
            if moved
            else ", unchanged throughout the run"
        ),
        "",
        *headline(horizons, baseline, stage, args.draws),
        "",
        *missed(horizons, baseline, results.get("profile")),
        "How the baseline is measured: adjacency lists of (dependent, p) tuples with the "
        "engine's own edge probabilities (`simulate.model_arrays(...)['edge_p']`, the posterior "
        "means it flips edges with); for each horizon, for each root failure the engine drew in "
        "it, a breadth-first search (`collections.deque`, a `set` of failed services) that flips "
        "each out-edge to a not-yet-failed dependent with `random.random() < p`. It runs on the "
        "engine's horizons in a seeded random order (numpy default_rng(43).permutation) until "
        f"{args.baseline_seconds:g} s have passed, and its time per horizon is extrapolated "
        "linearly. It only computes blast radii: no root-failure draws, no durations, "
        "severities or impact, all of which the engine's time includes (the bank computes them "
        "for each of its cascades). The two speed-ups answer different questions: the horizons "
        "alone reuse the bank the stage simulates anyway for the scenarios' impact, so they do "
        "not spread a cascade per root failure as the baseline does; bank + horizons is the "
        "engine's whole cost of the same figures from scratch. The bank's cost does not grow "
        "with the number of horizons (it is trigger services × cascade_draws), so the second "
        "speed-up grows with --draws.",
        "",
        f"Not counted in the horizons: `candidate_scenarios` given the bank (the impact facts of "
        f"every (service, failure mode), which `horizon_summary` sets the simulated frequency "
        f"of) took {cell(horizons, 'candidates_s', '.1f')} s in the same process, between the "
        "bank and the horizons (as in the stage).",
        "",
        "Cross-check on the baseline's subset (the same root failures, "
        f"{cell(baseline, 'triggers', ',')} distinct trigger services): the baseline spreads an "
        "independent cascade for each; the engine draws each one's outcome uniformly from its "
        f"trigger's bank of {cell(baseline, 'bank_draws', ',')} cascades. Both are Monte Carlo "
        "draws of the same distribution, so they should agree within a few standard errors, "
        "|z| ≲ 3. The standard errors are conditional on the root failures (shared by both) and "
        "use each trigger's variance in the bank; the engine's includes the bank's own error "
        "(a trigger's many root failures share its bank: Var = Σ_t n_t s_t² (1 + n_t / (D − 1)) "
        "/ n², n_t root failures of trigger t, s_t² its bank's variance, D the bank's size), "
        "which dominates when root failures outnumber the bank's cascades; the last column "
        "leaves it out, for comparison:",
        "",
        *crosscheck(baseline),
        "",
        f"Workload of the engine run (what {args.draws:,} horizons mean on this fleet):",
        "",
        *workload(gen, horizons),
        "",
        "Where the engine's time goes (functions wrapped from the outside, inclusive seconds):",
        "",
        "The engine run (bank, candidates, horizons, summary, as in the stage; each function's "
        "rows below it are what it called; `rest of` = its own code and what is not wrapped):",
        "",
        *sections_table(horizons, "measured_s"),
        "",
        "`simulate.simulate` (the whole stage):",
        "",
        *sections_table(stage),
        "",
        "Inputs:",
        "",
        *inputs_lines(gen),
        "",
        f"History generation (`whatif.synthetic.fleet_history`, bench/generate.py): root rates "
        f"Gamma(shape {process['rate_shape']:g}, mean {process['mean_rate']:g} per day) per "
        f"service; cascades along every edge with a hidden probability "
        f"Beta{tuple(process['edge_beta'])}, all generations, a service at most once per "
        f"cascade, {process['caused_by_share']:.0%} with caused_by (the rest inferred by "
        "timing).",
        "",
        "The fleet-size table of the earlier version (fit and `candidate_scenarios` at 30, 300 "
        "and 3,000 services, ~2 dependencies each) is gone: the whole-stage row above times "
        "`candidate_scenarios` on the larger fleet the issue asks for, and "
        "`bench_fit.py` times the fit at 5,000 services.",
        "",
    ]
    failures = [r for r in results.values() if "error" in r or r.get("killed")]
    if failures:
        parts += [
            "Failures:",
            "",
            *[f"- {r['stage']}: {r.get('error') or 'killed'}" for r in failures],
            "",
        ]
    profile = results.get("profile")
    if profile is not None and _ok(profile):
        for name, text in profile["text"].items():
            parts += [
                f"cProfile of `{name}` ("
                + {
                    "simulate_cascades": "the bank: every service as the trigger, default "
                    "cascade_draws",
                    "simulate_horizons": f"{profile['draws']:,} horizons, given the bank",
                    "candidate_scenarios": "every (service, failure mode), given the bank",
                    "horizon_summary": f"{profile['draws']:,} horizons, every candidate",
                }.get(name, "")
                + f"; {profile['profiled_s'][name]:.1f} s under the profiler, a separate run), "
                f"top {PROFILE_TOP} by own time, then by cumulative time:",
                "",
                "```",
                text,
                "```",
                "",
            ]
    text = "\n".join(parts)
    print(text)
    report.write(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
