"""Benchmark of the whatif model-fitting stage on a large synthetic incident history.

Not a test: it asserts nothing about time. For each size it writes, into a temporary folder,
a synthetic 5,000-service topology (the layered DAG of bench_simulate.py, as a contract CSV
with soft_depends_on on a quarter of the edges and created_at on a few services, most of them
launched inside the window) and an incident table in the clean, validated format that
`whatif.model.fit` receives (what whatif.pipeline writes as incidents.parquet: typed columns,
UTC timestamps, canonical severities and failure modes, plus `load_factor`), then runs the
fit in a fresh Python process (its own memory high-water mark, as an Airflow task would have):

- read: the topology (whatif.ingest.load_topology + Topology.from_frame) and the Parquet
        incidents (pandas.read_parquet), timed apart from the fit;
- fit:  whatif.model.fit(incidents, topology, as_of, history_days), the four positional
        arguments only, so that the script runs whatever keyword settings fit grows.

Per size it reports wall seconds of the read and of the fit, the process's peak RSS
(resource.getrusage ru_maxrss: the whole process, interpreter, imports and the input frame
included), the same mark before the fit (after the imports and the read) and after the
imports alone, and a few figures of the fitted model.json as a sanity check (root incidents,
cascade attribution, backtest status, hard and soft propagation priors and evidence, the
exposure of the services launched inside the window).

    PYTHONPATH=plugins .venv/bin/python bench/bench_fit.py [--sizes 100000,1000000]
        [--services 5000] [--timeout 900] [--profile] [--out bench/fit_results.md]

Each stage is killed after --timeout seconds (reported as "> N s, killed"). --profile also
runs the largest size's fit once more under cProfile (in its own process, after the measured
run) and prints the top 25 entries by cumulative time.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from bench_simulate import synthetic_topology
from common import AS_OF, HISTORY_DAYS, cell

SEED = 11
TARGET_SECONDS = 20.0
TARGET_MIB = 2048.0
CASCADE_SHARE = 0.30  # of all incidents
CAUSED_BY_SHARE = 0.50  # of the cascaded incidents, linked to their parent by caused_by
CASCADE_DEPENDENCY_LABEL = 0.6  # share of cascaded incidents whose category is `dependency`
MAX_GENERATIONS = 3  # a root's cascade reaches at most 3 edges down
LOAD_FACTOR_SHARE = 0.40
MISSING_RESPONSE_SHARE = 0.30  # rows without detected_at / acknowledged_at
MISSING_SEVERITY_SHARE = 0.02
LAUNCHED_SHARE = 0.03  # of services: created_at inside the window, no incidents before it
OLD_CREATED_SHARE = 0.02  # of services: created_at before the window (no effect on exposure)
SOFT_EDGE_SHARE = 0.25  # of edges: named in soft_depends_on too
SOFT_PROPAGATION = 0.25  # a soft edge's hidden propagation probability, relative to a hard one
PROFILE_TOP = 25
CHILDREN = ("generate", "fit", "profile")

TITLES = (*common.TITLES, "errors from a dependency")
DESCRIPTIONS = (*common.DESCRIPTIONS, "")

# --------------------------------------------------------------------------- synthetic data


def topology_csv(services: int, rng: np.random.Generator) -> pd.DataFrame:
    """bench_simulate's layered DAG in the contract's CSV form (depends_on `;`-joined), with
    `soft_depends_on` (SOFT_EDGE_SHARE of the edges, a `;`-joined subset of depends_on) and
    `created_at` on a few services: LAUNCHED_SHARE launched inside the window (between 30
    days after its start and 60 days before its end), OLD_CREATED_SHARE before it."""
    frame = synthetic_topology(services, rng)
    degree = frame["depends_on"].map(len).to_numpy()
    flat = np.concatenate([np.asarray(d, dtype=object) for d in frame["depends_on"]])
    soft = rng.random(len(flat)) < SOFT_EDGE_SHARE
    row = np.repeat(np.arange(len(frame)), degree)
    soft_lists = pd.Series(flat[soft]).groupby(row[soft]).agg(";".join)
    frame["soft_depends_on"] = soft_lists.reindex(range(len(frame)), fill_value="").to_numpy()
    frame["depends_on"] = frame["depends_on"].map(";".join)
    frame["user_facing"] = frame["user_facing"].map({True: "true", False: "false", None: ""})
    start = pd.Timestamp(AS_OF - timedelta(days=HISTORY_DAYS))
    pick = rng.random(len(frame))
    launched = pick < LAUNCHED_SHARE
    old = (pick >= LAUNCHED_SHARE) & (pick < LAUNCHED_SHARE + OLD_CREATED_SHARE)
    day = np.where(
        launched,
        rng.uniform(30.0, HISTORY_DAYS - 60.0, len(frame)),
        -rng.uniform(1.0, 1000.0, len(frame)),
    )
    created = pd.Series(start + pd.to_timedelta(np.round(day * 86400), unit="s"))
    frame["created_at"] = created.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(launched | old, "")
    return frame


def _text(values: np.ndarray | pd.Series) -> pd.Series:
    """A text column as the clean Parquet holds it (pandas' str dtype, missing = NA)."""
    return pd.Series(values, dtype="str")


def _utc(seconds: np.ndarray, start: pd.Timestamp) -> pd.Series:
    return pd.Series(start + pd.to_timedelta(seconds, unit="s")).astype("datetime64[ns, UTC]")


def _expected_cascades(
    root_counts: np.ndarray,
    probability: np.ndarray,
    dependency: np.ndarray,
    dependent: np.ndarray,
) -> float:
    """Expected cascaded incidents (all generations up to MAX_GENERATIONS, ignoring that a
    service fails at most once per cascade: an upper bound)."""
    n = len(root_counts)
    level = root_counts.astype(float)
    total = 0.0
    for _ in range(MAX_GENERATIONS):
        level = np.bincount(dependent, weights=level[dependency] * probability, minlength=n)
        total += level.sum()
    return float(total)


def synthetic_incidents(
    n: int,
    services: np.ndarray,
    teams: np.ndarray,
    dependency: np.ndarray,
    dependent: np.ndarray,
    soft: np.ndarray,
    launch: np.ndarray,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """About n incidents, ~30 % of them cascades, in the clean validated format.

    Roots: each service has a heavy-tailed Gamma(0.8) rate; the root incidents are spread
    over the services in proportion to rate x days in service (a multinomial draw) and
    uniformly over those days: from `launch` (seconds after the window start; 0 for services
    that existed before it) to the end. Cascades: each failure spreads to each dependent of
    its service with a hidden per-edge probability (Beta(1, 6), x SOFT_PROPAGATION on `soft`
    edges, scaled so that cascades make ~30 % of the total), up to MAX_GENERATIONS edges down
    from the root and at most once per service and cascade, never to a service not yet
    launched; a child starts 1-20 minutes after its parent. Half the cascaded incidents carry
    caused_by. `dependency` must be sorted (Topology's edge arrays are).
    """
    n_services = len(services)
    window = float(HISTORY_DAYS - 1) * 86400.0
    launch = np.clip(launch, 0.0, window)
    rates = rng.gamma(0.8, 1.0, size=n_services)
    base_p = rng.beta(1.0, 6.0, size=len(dependency)) * np.where(soft, SOFT_PROPAGATION, 1.0)
    # Scale the edge probabilities so that the cascades make ~CASCADE_SHARE of the total.
    n_roots = round(n * (1.0 - CASCADE_SHARE))
    weight = rates * (window - launch)
    root_service = np.repeat(np.arange(n_services), rng.multinomial(n_roots, weight / weight.sum()))
    root_counts = np.bincount(root_service, minlength=n_services)
    wanted = n - n_roots
    low, high = 0.0, 50.0
    for _ in range(40):  # bisection: E(cascades) grows with the scale
        scale = (low + high) / 2
        p = np.minimum(base_p * scale, 0.9)
        if _expected_cascades(root_counts, p, dependency, dependent) < wanted:
            low = scale
        else:
            high = scale
    probability = np.minimum(base_p * (low + high) / 2, 0.9)

    # Out-edges of each service: a contiguous run of the sorted edge arrays.
    first = np.searchsorted(dependency, np.arange(n_services))
    degree = np.bincount(dependency, minlength=n_services)

    begin = launch[root_service]
    service = [root_service]
    second = [np.floor(begin + rng.random(n_roots) * (window - begin)).astype(np.int64)]
    parent = [np.full(n_roots, -1)]
    tree = [np.arange(n_roots)]  # which root's cascade each failure belongs to
    via: list[np.ndarray] = []  # the edge each cascaded failure came along
    seen = root_service.astype(np.int64)  # (tree, service) keys already failed
    offset = n_roots
    frontier = np.arange(n_roots)
    for _ in range(MAX_GENERATIONS):
        svc_all = np.concatenate(service)
        sec_all = np.concatenate(second)
        tree_all = np.concatenate(tree)
        f_service = svc_all[frontier]
        count = degree[f_service]
        source = np.repeat(frontier, count)
        within = np.arange(len(source)) - np.repeat(np.cumsum(count) - count, count)
        edge = np.repeat(first[f_service], count) + within
        live = rng.random(len(edge)) < probability[edge]
        source, edge = source[live], edge[live]
        child_service = dependent[edge]
        child_second = sec_all[source] + rng.integers(60, 1201, size=len(source))
        launched = child_second >= launch[child_service]  # no incident before a launch
        source, edge, child_service, child_second = (
            source[launched],
            edge[launched],
            child_service[launched],
            child_second[launched],
        )
        child_tree = tree_all[source]
        key = child_tree.astype(np.int64) * n_services + child_service
        _, keep = np.unique(key, return_index=True)  # once per service and cascade
        keep = keep[~np.isin(key[keep], seen)]
        keep.sort()
        if len(keep) == 0:
            break
        source, edge, child_service, child_second, child_tree, key = (
            source[keep],
            edge[keep],
            child_service[keep],
            child_second[keep],
            child_tree[keep],
            key[keep],
        )
        seen = np.concatenate([seen, key])
        service.append(child_service)
        second.append(child_second)
        via.append(edge)
        parent.append(source)
        tree.append(child_tree)
        frontier = np.arange(offset, offset + len(source))
        offset += len(source)
    service_i = np.concatenate(service)
    seconds = np.concatenate(second)
    parent_i = np.concatenate(parent)
    m = len(service_i)
    cascade = parent_i >= 0

    # Incident ids in start order.
    order = np.argsort(seconds, kind="stable")
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m)
    ids = "INC-" + pd.Series(rank + 1).astype(str).str.zfill(7)
    ids = ids.to_numpy(dtype=object)
    linked = cascade & (rng.random(m) < CAUSED_BY_SHARE)
    caused_by = np.full(m, None, dtype=object)
    caused_by[linked] = ids[parent_i[linked]]

    # Failure modes: a per-service mix for roots; cascades mostly `dependency`.
    from whatif.schemas import FAILURE_MODES, SEVERITIES

    mix = rng.dirichlet(np.full(len(FAILURE_MODES), 0.7), size=n_services).cumsum(axis=1)
    mode = (rng.random(m)[:, None] > mix[service_i]).sum(axis=1)
    mode = np.minimum(mode, len(FAILURE_MODES) - 1)
    mode[cascade & (rng.random(m) < CASCADE_DEPENDENCY_LABEL)] = FAILURE_MODES.index("dependency")
    category = np.array(FAILURE_MODES, dtype=object)[mode]
    severity = rng.choice(np.array(SEVERITIES, dtype=object), size=m, p=[0.05, 0.2, 0.45, 0.3])
    severity[rng.random(m) < MISSING_SEVERITY_SHARE] = None

    start = pd.Timestamp(AS_OF - timedelta(days=HISTORY_DAYS))
    minutes = np.exp(rng.normal(np.log(60.0), 0.9, size=m))
    detected = seconds + rng.integers(30, 900, size=m)
    acknowledged = detected + rng.integers(30, 600, size=m)
    responded = rng.random(m) >= MISSING_RESPONSE_SHARE
    load = np.exp(rng.normal(0.0, 0.3, size=m) + 0.4 * (category == "capacity"))
    load[rng.random(m) >= LOAD_FACTOR_SHARE] = np.nan
    names = pd.Series(services[service_i])
    frame = pd.DataFrame(
        {
            "incident_id": _text(ids),
            "service": _text(names),
            "started_at": _utc(seconds, start),
            "resolved_at": _utc(seconds + np.round(minutes * 60).astype(np.int64), start),
            "severity": _text(severity),
            "category": _text(category),
            "title": _text(
                names + ": " + pd.Series(np.array(TITLES, dtype=object)[rng.integers(0, 11, m)])
            ),
            "description": _text(rng.choice(np.array(DESCRIPTIONS, dtype=object), size=m)),
            "detected_at": _utc(detected, start).where(responded),
            "acknowledged_at": _utc(acknowledged, start).where(responded),
            "caused_by": _text(caused_by),
            "team": _text(teams[service_i]),
            "load_factor": load,
        }
    )
    frame = frame.iloc[order].reset_index(drop=True)
    generations = [len(s) for s in service]
    in_window = (launch > 0)[service_i]
    via_soft = int(sum(soft[e].sum() for e in via))
    return frame, {
        "roots": n_roots,
        "at_launched": int(in_window.sum()),
        "via_soft": via_soft,
        "cascades": int(cascade.sum()),
        "caused_by": int(linked.sum()),
        "generations": generations,
        "load_factor": int(np.isfinite(load).sum()),
    }


def write_inputs(folder: Path, n: int, n_services: int) -> dict:
    from whatif import ingest
    from whatif.topology import Topology

    began = time.perf_counter()
    rng = np.random.default_rng(SEED)
    topology_path = folder / "topology.csv"
    topology_csv(n_services, rng).to_csv(topology_path, index=False)
    topology = Topology.from_frame(ingest.load_topology(topology_path).frame)
    teams = topology.attributes["owner_team"].to_numpy(dtype=object)
    soft = topology.criticality == "soft"
    start = pd.Timestamp(AS_OF - timedelta(days=HISTORY_DAYS))
    created = topology.attributes["created_at"]
    launch = ((created - start) / pd.Timedelta(seconds=1)).fillna(0.0).to_numpy(float)
    incidents, counts = synthetic_incidents(
        n,
        np.array(topology.services, dtype=object),
        teams,
        topology.edge_dependency,
        topology.edge_dependent,
        soft,
        launch,
        np.random.default_rng(SEED + n),
    )
    incidents.to_parquet(folder / "incidents.parquet", index=False)
    return {
        "rows": len(incidents),
        "services": topology.size,
        "edges": len(topology.edge_dependency),
        "soft_edges": int(soft.sum()),
        "launched": int((launch > 0).sum()),
        "created_before": int((launch < 0).sum()),
        "bytes": (folder / "incidents.parquet").stat().st_size,
        "generate_s": time.perf_counter() - began,
        **counts,
    }


# --------------------------------------------------------------------------- child process


def _model_figures(document: dict, topology) -> dict:
    """A few model.json figures as a sanity check, read defensively (fields the model does not
    have come out as None)."""
    inputs = document.get("inputs") or {}
    attribution = document.get("attribution") or {}
    backtest = document.get("backtest") or {}
    priors = document.get("priors") or {}
    edges = document.get("edges") or []
    hits: dict[str, int] = {}
    for edge in edges:
        name = str(edge.get("criticality"))
        hits[name] = hits.get(name, 0) + int((edge.get("evidence") or {}).get("hits", 0) or 0)
    # Services launched inside the window: their exposure should run from created_at.
    end = pd.Timestamp((document.get("window") or {}).get("end", AS_OF))
    start = pd.Timestamp((document.get("window") or {}).get("start", AS_OF))
    created = topology.attributes["created_at"]
    launched = created.notna() & (created > start)
    expected = ((end - created[launched]) / pd.Timedelta(days=1)).to_dict()
    fitted = {
        row["service"]: row.get("exposure_days")
        for row in document.get("services") or []
        if row.get("service") in expected
    }
    gaps = [abs(fitted[k] - v) for k, v in expected.items() if fitted.get(k) is not None]
    return {
        "incidents": inputs.get("incidents"),
        "root_incidents": inputs.get("root_incidents"),
        "attribution": {
            k: attribution.get(k) for k in ("roots", "caused_by", "inferred", "window_minutes")
        },
        "backtest": {
            k: backtest.get(k) for k in ("status", "reason", "folds", "evaluations", "winner")
        }
        if backtest
        else None,
        "propagation": {
            name.removeprefix("propagation_"): prior
            for name, prior in priors.items()
            if name.startswith("propagation_")
        },
        "edges": len(edges),
        "edge_hits": hits,
        "launched": int(launched.sum()),
        "launched_exposure_gap_days": max(gaps) if gaps else None,
        "launched_exposure_days": sum(fitted.values()) / len(fitted) if fitted else None,
    }


def _read_inputs(folder: Path):
    from whatif import ingest
    from whatif.topology import Topology

    began = time.perf_counter()
    topology = Topology.from_frame(ingest.load_topology(folder / "topology.csv").frame)
    topology_s = time.perf_counter() - began
    began = time.perf_counter()
    incidents = pd.read_parquet(folder / "incidents.parquet")
    read_s = time.perf_counter() - began
    return topology, incidents, topology_s, read_s


def child_fit(folder: Path) -> dict:
    import pyarrow  # noqa: F401  (import cost is not the stage's)
    from whatif import model

    gc.collect()
    after_imports = common.max_rss_mib()
    topology, incidents, topology_s, read_s = _read_inputs(folder)
    gc.collect()
    before = common.max_rss_mib()
    began = time.perf_counter()
    document = model.fit(incidents, topology, AS_OF, HISTORY_DAYS)
    seconds = time.perf_counter() - began
    peak = common.max_rss_mib()
    vm_hwm = common.vm_hwm_mib()
    began = time.perf_counter()
    dumped = document.model_dump() if hasattr(document, "model_dump") else dict(document)
    text = json.dumps(dumped, default=str)
    dump_s = time.perf_counter() - began
    return {
        "stage": "fit",
        "topology_s": topology_s,
        "read_s": read_s,
        "seconds": seconds,
        "peak_rss_mib": peak,
        "vm_hwm_mib": vm_hwm,
        "baseline_rss_mib": before,
        "imports_rss_mib": after_imports,
        "dump_s": dump_s,
        "json_mib": len(text) / 2**20,
        "model": _model_figures(dumped, topology),
    }


def child_profile(folder: Path) -> dict:
    import cProfile
    import io
    import pstats

    import pyarrow  # noqa: F401
    from whatif import model

    topology, incidents, _, _ = _read_inputs(folder)
    gc.collect()
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    model.fit(incidents, topology, AS_OF, HISTORY_DAYS)
    profiler.disable()
    seconds = time.perf_counter() - began
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(PROFILE_TOP)
    return {"stage": "profile", "seconds": seconds, "text": out.getvalue()}


# --------------------------------------------------------------------------- report


def table(rows: list[dict]) -> str:
    lines = [
        "| incidents | services | edges | Parquet MiB | read s (topology + Parquet) | fit s "
        "| peak RSS MiB | RSS before fit MiB | RSS after imports MiB | target "
        "| load before fit |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        fit = row["fit"]
        if "peak_rss_mib" in fit:
            read = f"{fit['topology_s']:.1f} + {fit['read_s']:.1f}"
            ok = fit["seconds"] <= TARGET_SECONDS and fit["peak_rss_mib"] <= TARGET_MIB
            verdict = "meets" if ok else "misses"
        else:
            read, verdict = "n/a", "n/a"
        lines.append(
            f"| {row['rows']:,} | {row['services']:,} | {row['edges']:,} | "
            f"{row['bytes'] / 2**20:.0f} | {read} | **{cell(fit, 'seconds', '.1f')}** | "
            f"**{cell(fit, 'peak_rss_mib', '.0f')}** | {cell(fit, 'baseline_rss_mib', '.0f')} "
            f"| {cell(fit, 'imports_rss_mib', '.0f')} | {verdict} | "
            f"{row.get('load_before_fit', float('nan')):.1f} |"
        )
    return "\n".join(lines)


def inputs_table(rows: list[dict]) -> str:
    lines = [
        "| incidents | roots | cascades (by generation) | with caused_by | with load_factor "
        "| soft edges | services launched in the window (their incidents) "
        "| services created before it | generated in s |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        gens = row["generations"]
        lines.append(
            f"| {row['rows']:,} | {row['roots']:,} | {row['cascades']:,} "
            f"({' / '.join(f'{g:,}' for g in gens[1:])}) | {row['caused_by']:,} | "
            f"{row['load_factor']:,} | {row['soft_edges']:,} of {row['edges']:,} | "
            f"{row['launched']:,} ({row['at_launched']:,}) | {row['created_before']:,} | "
            f"{row['generate_s']:.1f} |"
        )
    return "\n".join(lines)


def _prior(prior: dict | None) -> str:
    if not prior:
        return "absent"
    a, b = float(prior["alpha"]), float(prior["beta"])
    return f"{a / (a + b):.3f} ({prior.get('source', '?')})"


def model_table(rows: list[dict]) -> str:
    lines = [
        "| incidents | root_incidents (generated roots) | attribution roots / caused_by / "
        "inferred (generated cascades: with caused_by / without) | backtest "
        "| propagation prior mean hard / soft | edge hits hard / soft (generated cascades) "
        "| launched services: mean exposure days, max gap to created_at "
        "| model.json MiB (dump s) |",
        "|---:|---:|---|---|---|---|---|---:|",
    ]
    for row in rows:
        fit = row["fit"]
        figures = fit.get("model")
        if not figures:
            lines.append(f"| {row['rows']:,} |" + " n/a |" * 7)
            continue
        how = figures["attribution"]
        attribution = " / ".join(
            "absent" if how.get(k) is None else f"{how[k]:,}"
            for k in ("roots", "caused_by", "inferred")
        )
        unlinked = row["cascades"] - row["caused_by"]
        backtest = figures["backtest"] or {}
        backtest_text = backtest.get("status") or "absent"
        if backtest.get("status") == "done":
            backtest_text += (
                f", {backtest.get('folds')} folds, {backtest.get('evaluations') or 0:,} "
                f"evaluations, winner {backtest.get('winner')}"
            )
        elif backtest.get("reason"):
            backtest_text += f" ({backtest['reason']})"
        priors = figures["propagation"]
        hits = figures["edge_hits"]
        gap = figures["launched_exposure_gap_days"]
        mean_days = figures["launched_exposure_days"]
        launched = (
            f"{figures['launched']:,}: {mean_days:.1f}, {gap:.4f}"
            if gap is not None and mean_days is not None
            else f"{figures['launched']:,}: n/a"
        )
        lines.append(
            f"| {row['rows']:,} | {figures['root_incidents'] or 0:,} ({row['roots']:,}) | "
            f"{attribution} ({row['caused_by']:,} / {unlinked:,}) | {backtest_text} | "
            f"{_prior(priors.get('hard'))} / {_prior(priors.get('soft'))} | "
            f"{hits.get('hard', 0):,} / {hits.get('soft', 0):,} "
            f"({row['cascades'] - row['via_soft']:,} / {row['via_soft']:,}) | {launched} | "
            f"{fit['json_mib']:.1f} ({fit['dump_s']:.1f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="incidents, comma separated")
    parser.add_argument("--services", type=int, default=5000, help="services in the topology")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per stage")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the largest size's fit (cProfile, separate run) and print the top entries",
    )
    common.add_run_arguments(parser, Path(__file__).with_name("fit_results.md"), CHILDREN)
    args = parser.parse_args(argv)
    if args.child == "generate":
        print(json.dumps(write_inputs(Path(args.dir), args.rows, args.services)))
        return 0
    if args.child == "fit":
        print(json.dumps(child_fit(Path(args.dir)), default=str))
        return 0
    if args.child == "profile":
        print(json.dumps(child_profile(Path(args.dir))))
        return 0

    engine = common.engine()
    load_before = os.getloadavg()[0]
    sizes = common.parse_sizes(args.sizes)
    rows = []
    profile = None
    began = time.perf_counter()
    for n in sizes:
        with common.scratch_folder(f"whatif-bench-fit-{n}-", args.keep) as folder:
            extra = ["--services", str(args.services)]
            row = common.generate(__file__, folder, n, args.timeout, extra)
            row["load_before_fit"] = os.getloadavg()[0]
            row["fit"] = common.run_child(__file__, "fit", folder, args.timeout)
            common.progress(common.stage_line(row["fit"]))
            rows.append(row)
            if args.profile and n == max(sizes):
                common.progress("  profiling the fit (cProfile) ...")
                profile = common.run_child(__file__, "profile", folder, args.timeout)
    total = time.perf_counter() - began

    markdown = table(rows)
    parts = [
        *common.header(
            "whatif benchmark: model fit",
            engine,
            ("numpy", "scipy", "pandas", "pyarrow", "pydantic"),
            total,
            included="input generation" + (" and profiling" if args.profile else ""),
            load_before=load_before,
            load_note="; the table lists the load just before each fit",
        ),
        f"- inputs: synthetic {args.services:,}-service topology "
        "(bench_simulate.synthetic_topology, seeded, written as a contract CSV and read with "
        f"whatif.ingest.load_topology + Topology.from_frame; {SOFT_EDGE_SHARE:.0%} of the edges "
        f"also in soft_depends_on; created_at inside the window on {LAUNCHED_SHARE:.0%} of the "
        f"services, before it on {OLD_CREATED_SHARE:.0%}); incidents in the clean validated "
        f"format (what the validate stage writes as incidents.parquet) over {HISTORY_DAYS} days "
        f"up to {AS_OF.date()}: Gamma(0.8) root rates per service, none before a service's "
        f"created_at, ~{CASCADE_SHARE:.0%} cascades along topology edges (hidden per-edge "
        f"probabilities, x{SOFT_PROPAGATION:g} on soft edges, up to {MAX_GENERATIONS} "
        f"generations, child 1-20 min after its parent, {CAUSED_BY_SHARE:.0%} with caused_by), "
        f"detected/acknowledged missing on {MISSING_RESPONSE_SHARE:.0%} of rows, load_factor "
        f"(log-normal around 1) on {LOAD_FACTOR_SHARE:.0%}",
        "- the fit runs in a fresh process per size: it reads the topology and the Parquet "
        "(timed apart), then calls `model.fit(incidents, topology, as_of, 730)` (positional "
        "arguments only, default settings); fit s = wall time of that call; peak RSS = "
        "`resource.getrusage(RUSAGE_SELF).ru_maxrss` at its end (whole process: interpreter, "
        "imports and the input frame included); RSS before fit = the same mark after the "
        "imports and the read; the model.json serialisation (model_dump + json.dumps) is timed "
        "after the peak is taken and listed below",
        f"- target (issue): fit of 1,000,000 incidents over 5,000 services in ≤ "
        f"{TARGET_SECONDS:.0f} s with peak memory ≤ 2 GB ({TARGET_MIB:.0f} MiB)",
        "",
        markdown,
        "",
        "Generated inputs:",
        "",
        inputs_table(rows),
        "",
        "Sanity check: figures of the fitted model.json (read defensively; fields the model "
        "does not have are shown as absent):",
        "",
        model_table(rows),
        "",
    ]
    failures = [row for row in rows if "error" in row["fit"]]
    if failures:
        parts += [
            "Failures:",
            "",
            *[f"- {row['rows']:,} incidents: `{row['fit']['error']}`" for row in failures],
            "",
        ]
    if profile is not None:
        parts += [
            f"cProfile of the {max(sizes):,}-incident fit (a separate run; "
            f"{cell(profile, 'seconds', '.1f')} s under the profiler), top {PROFILE_TOP} "
            "by cumulative time:",
            "",
            "```",
            profile.get("text", "n/a").strip(),
            "```",
            "",
        ]
    Path(args.out).write_text("\n".join(parts))
    print(markdown)
    if profile is not None:
        print()
        print(profile.get("text") or f"profile: {profile}")
    common.progress(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
