"""Benchmark of the whatif model-fitting stage on a large synthetic incident history.

Not a test: it asserts nothing about time. For each size bench/generate.py writes, into a
temporary folder, a synthetic 5,000-service topology (whatif.synthetic's layered DAG, as a
contract CSV with soft_depends_on on a quarter of the edges and created_at on a few services,
most of them launched inside the window) and an incident table in the clean, validated format that
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
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import report
from common import AS_OF, HISTORY_DAYS
from report import cell

TARGET_SECONDS = 20.0
TARGET_MIB = 2048.0
PROFILE_TOP = 25
CHILDREN = ("fit", "profile")

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
            f"| {row['rows']:,} | {row['roots']:,} | {row['cascaded']:,} "
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
        unlinked = row["cascaded"] - row["caused_by"]
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
            f"({row['cascaded'] - row['via_soft']:,} / {row['via_soft']:,}) | {launched} | "
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
    if args.child == "fit":
        print(json.dumps(child_fit(Path(args.dir)), default=str))
        return 0
    if args.child == "profile":
        print(json.dumps(child_profile(Path(args.dir))))
        return 0

    engine = report.engine()
    load_before = os.getloadavg()[0]
    sizes = common.parse_sizes(args.sizes)
    rows = []
    profile = None
    began = time.perf_counter()
    for n in sizes:
        with common.scratch_folder(f"whatif-bench-fit-{n}-", args.keep) as folder:
            extra = ["--rows", str(n), "--services", str(args.services)]
            row = common.generate("fit", folder, args.timeout, extra)
            row["load_before_fit"] = os.getloadavg()[0]
            row["fit"] = common.run_child(__file__, "fit", folder, args.timeout)
            common.progress(report.stage_line(row["fit"]))
            rows.append(row)
            if args.profile and n == max(sizes):
                common.progress("  profiling the fit (cProfile) ...")
                profile = common.run_child(__file__, "profile", folder, args.timeout)
    total = time.perf_counter() - began

    # report
    markdown = table(rows)
    process, shares = rows[0]["process"], rows[0]["shares"]
    parts = [
        *report.header(
            "whatif benchmark: model fit",
            engine,
            ("numpy", "scipy", "pandas", "pyarrow", "pydantic"),
            total,
            included="input generation" + (" and profiling" if args.profile else ""),
            load_before=load_before,
            load_note="; the table lists the load just before each fit",
        ),
        f"- inputs (bench/generate.py, whatif.synthetic, seeded): a {args.services:,}-service "
        "layered topology (`layered_topology`, ~2 dependencies per service) written as a "
        "contract CSV and read with whatif.ingest.load_topology + Topology.from_frame; "
        f"{shares['soft_edges']:.0%} of the edges also in soft_depends_on; created_at inside "
        f"the window on {shares['launched']:.0%} of the services, before it on "
        f"{shares['created_before']:.0%}; incidents (`fleet_history`) in the clean validated "
        f"format (what the validate stage writes as incidents.parquet) over {HISTORY_DAYS} days "
        f"up to {AS_OF.date()}: Gamma({process['rate_shape']:g}) root rates per service, none "
        f"before a service's created_at, ~{process['cascade_share']:.0%} cascades along "
        f"topology edges (hidden per-edge probabilities Beta{tuple(process['edge_beta'])}, "
        f"x{process['soft_factor']:g} on soft edges, up to {process['max_generations']} "
        f"generations, child 1-20 min after its parent, {process['caused_by_share']:.0%} with "
        f"caused_by), detected/acknowledged missing on {process['missing_response_share']:.0%} "
        f"of rows, load_factor (log-normal around 1) on {process['load_factor_share']:.0%}",
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
    print(markdown)
    if profile is not None:
        print()
        print(profile.get("text") or f"profile: {profile}")
    report.write(args.out, "\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
