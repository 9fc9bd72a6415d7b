"""Benchmark of the whatif commands a user runs, end to end and at fleet scale, each one a
child process of the installed CLI.

Not a test: it asserts nothing about time. For each fleet size of --sizes (500 and 5,000
services; --stretch adds 20,000) bench/generate.py writes, into a temporary folder, a user's
inputs (`generate.py fleet`: a layered DAG of services with ~3.5 drawn dependencies each plus
shared infrastructure hubs, about 4 edges per service in all, written as a contract
topology.csv with a quarter of the edges soft; and 15 incidents per service over two years as a
user's incidents.csv export: spelling variants, mixed timestamps and vocabularies, ~2 % bad
rows), then runs, each in its own process and with --as-of 2026-11-01 (common.AS_OF):

- run:      `whatif run --incidents incidents.csv --topology topology.csv --out run --as-of ...
            --narrator template`: the whole pipeline (default settings: 10,000 horizons). Its
            per-stage durations are read from what it records itself, run/_stage/timings/*.json
            ({"stage", "part", "seconds", "outcome"}, one file per stage or part, summed per
            stage): extract, validate, fit, simulate, narrate, report; the rest of the wall
            time ("outside the stages") is the interpreter's start, the imports and the CLI;
- validate: `whatif validate ... --out validation.json`;
- fit:      `whatif fit ... --out model.json`;
- simulate: `whatif simulate --model model.json --topology topology.csv --out scenarios.json
            --draws 100000` (7-day horizons, the default, and the template narrator: the
            command writes narrated scenarios);
- floor:    `python -c` importing pandas, reading the same incidents.csv with pd.read_csv and
            counting its rows per service (groupby("service").size()): the least any command
            reading that file must do, interpreter start included, for reference;
- baseline: this script as a child (`--child baseline --dir FOLDER`) loading model.json
            (whatif.pipeline.load_model) and the topology (load_topology_only), taking the
            posterior Gamma(shape, rate) of each service's root failures per day and each
            edge's propagation probability (whatif.simulate.model_arrays), then, horizon after
            horizon until --baseline-seconds have passed: each service's rate drawn from its
            posterior and its root failures in 7 days from Poisson(rate x 7) (numpy), and for
            each root failure a plain-Python breadth-first cascade (adjacency lists of
            (dependent, p), a set and a deque, random.random() < p per out-edge, as
            common.blast_radius_bfs). Its time per horizon is extrapolated to
            100,000 horizons; speed-up = that / the wall time of the `whatif simulate --draws
            100000` child. The baseline computes blast radii only (no durations, severities,
            impact, scenarios: it is favoured), while the command's wall time includes the
            interpreter's start, the imports, reading model.json and the topology, the
            per-trigger cascade bank, the selection, the narration and writing scenarios.json.

Then the fit point: a fleet of 5,000 services (or the largest of --sizes if smaller) with
--fit-rows (1,000,000) incidents, on which `whatif fit` and the floor run, each once; the
ratio fit / floor is the figure against the issue's target (<= 8x, aim 4x; peak <= 2 GB).

How it measures: each command is started with subprocess.Popen in its own process group and
reaped with os.wait4 (common.run_command): the wall seconds from the fork to its exit, its exit
status, and its own peak RSS (rusage.ru_maxrss of that child alone, the whole process:
interpreter and imports included; RUSAGE_CHILDREN would mix every child). Linux starts a
child's mark at its parent's, so this script imports nothing large while it measures (numpy,
pandas and matplotlib only in its children or after the last command); its own mark is
reported. stdout and stderr go to files in the scratch folder. A command still running after
--timeout seconds (900) is killed with its process group and shown as killed. Before the
measured commands an untimed warm-up `whatif run` on a 100-service fleet fills an empty
NUMBA_CACHE_DIR of the run (the simulate stage's compiled loop) and the file cache, so that
every measured command loads the compiled loop as a user's second run would (the warm-up's
own time, the first-run cost, is reported). The engine's source digest is taken before and
after (another engineer may change it meanwhile).

Results: bench/commands_results.md (--out) with the usual header (date, machine, versions,
engine commit, command, wall time, load average) and the tables below, the same figures as
JSON beside it (commands_results.json), and a log-log plot of `whatif run`'s seconds per stage
against the number of services, as deterministic SVG (docs/performance-scaling.svg; --plot).

    PYTHONPATH=plugins .venv/bin/python bench/bench_commands.py [--sizes 500,5000] [--stretch]
        [--fit-rows 1000000] [--fit-services 5000] [--baseline-seconds 15] [--timeout 900]
        [--keep] [--out bench/commands_results.md] [--plot docs/performance-scaling.svg]

Targets (from the issue): `whatif run` at 5,000 services in <= 45 s and growing <= 12x from
the smallest size to 5,000 services; `whatif fit` on 1,000,000 incidents <= 8x the floor (aim
4x) with a peak <= 2 GB; `whatif simulate --draws 100000` >= 50x faster than the baseline
(aim 100x).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import report
from report import cell, ratio, verdict

SIZES = "500,5000"
STRETCH = 20_000
ROWS_PER_SERVICE = 15  # incidents per service: two years of a busy fleet
DEPENDENCIES = 3.5  # drawn per service; with the hubs' edges about 4 edges per service
AS_OF_DATE = common.AS_OF.date().isoformat()
DRAWS = 100_000  # horizons of `whatif simulate`
HORIZON_DAYS = 7.0  # the CLI's default horizon
FIT_ROWS = 1_000_000
FIT_SERVICES = 5000
BASELINE_SECONDS = 15.0
TIMEOUT = 900.0
WARM_UP_SERVICES = 100
SEED = 42
REFERENCE = 5000  # services: where the targets apply
STAGES = ("extract", "validate", "fit", "simulate", "narrate", "report")
COMMANDS = ("validate", "fit", "simulate", "run", "floor")
TARGET_RUN_S = 45.0
TARGET_GROWTH = 12.0
TARGET_FIT_FLOOR = 8.0
AIM_FIT_FLOOR = 4.0
TARGET_FIT_MIB = 2048.0
TARGET_SPEEDUP = 50.0
AIM_SPEEDUP = 100.0
CHILDREN = ("baseline",)
# The floor: what any command reading incidents.csv must at least do.
FLOOR_CODE = (
    "import sys; import pandas as pd; "
    "print(len(pd.read_csv(sys.argv[1]).groupby('service').size()))"
)
FLOOR_TEXT = "`python -c`: import pandas, `pd.read_csv`, `groupby('service').size()`"
# Okabe-Ito: told apart with any colour vision (as plugins/whatif/plots.py).
# Yellow last: it is hard to see on white.
COLOURS = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7")
COLOURS += ("#999999", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")

# --------------------------------------------------------------------------- baseline child


def child_baseline(folder: Path, budget_s: float, draws: int) -> dict:
    """The plain-Python baseline on the fitted model.json: horizon after horizon (root
    failures drawn from the posterior predictive, a BFS cascade for each) until budget_s has
    passed; its time per horizon and that extrapolated to `draws` horizons."""
    import random

    import numpy as np
    from whatif import pipeline, simulate

    began = time.perf_counter()
    document = pipeline.load_model(folder / "model.json")
    topology = pipeline.load_topology_only(str(folder / "topology.csv"))
    arrays = simulate.model_arrays(document, topology)
    adjacency: list[list[tuple[int, float]]] = [[] for _ in range(topology.size)]
    for u, v, p in zip(
        topology.edge_dependency.tolist(),
        topology.edge_dependent.tolist(),
        arrays["edge_p"].tolist(),
        strict=True,
    ):
        adjacency[u].append((v, p))
    load_s = time.perf_counter() - began
    shape, scale = arrays["shape"], 1.0 / arrays["rate"]
    rng = np.random.default_rng(SEED)
    draw = random.Random(SEED).random
    horizons = roots = outages = largest = 0
    gc.collect()
    began = time.perf_counter()
    while True:
        rates = rng.gamma(shape, scale)  # root failures per day, from the posterior
        counts = rng.poisson(rates * HORIZON_DAYS)
        for service in np.flatnonzero(counts).tolist():
            for _ in range(int(counts[service])):
                radius = common.blast_radius_bfs(service, adjacency, draw)
                outages += radius
                largest = max(largest, radius)
                roots += 1
        horizons += 1
        if time.perf_counter() - began >= budget_s:
            break
    seconds = time.perf_counter() - began
    per_horizon = seconds / horizons
    return {
        "stage": "baseline",
        "services": topology.size,
        "edges": len(topology.edge_dependency),
        "load_s": load_s,
        "horizons": horizons,
        "seconds": seconds,
        "per_horizon_ms": per_horizon * 1e3,
        "draws": draws,
        "extrapolated_s": per_horizon * draws,
        "root_failures": roots,
        "roots_per_horizon": roots / horizons,
        "radius_mean": outages / roots if roots else None,
        "radius_max": largest,
        "edge_p_mean": float(arrays["edge_p"].mean()) if len(arrays["edge_p"]) else None,
        "peak_rss_mib": common.max_rss_mib(),
    }


# --------------------------------------------------------------------------- measuring


def whatif_cli() -> tuple[list[str], dict[str, str]]:
    """The installed CLI (the `whatif` script beside this interpreter), or `python -m whatif`
    with plugins/ on PYTHONPATH; and the environment its children run in."""
    env = dict(os.environ)
    script = Path(sys.executable).with_name("whatif")
    if script.exists():
        return [str(script)], env
    plugins = str(common.ROOT / "plugins")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (plugins, env.get("PYTHONPATH")) if p)
    return [sys.executable, "-m", "whatif"], env


def timed(label: str, name: str, argv: list[str], folder: Path, env, timeout: float) -> dict:
    """One command in a child process, in `folder` (its stdout and stderr in NAME.stdout and
    NAME.stderr there), with the 1-minute load average before it."""
    load = os.getloadavg()[0]
    common.progress(f"[{label}] {name} ...")
    result = common.run_command(argv, timeout, env, folder, log=folder / name, stage=name)
    result["load_before"] = load
    if result["status"] == 0:
        result.pop("stderr_tail")
    common.progress(report.stage_line(result))
    return result


def stage_timings(out: Path) -> dict[str, dict]:
    """A run's stage durations as it recorded them (OUT/_stage/timings/*.json, one file per
    stage or part), summed per stage, in the pipeline's order."""
    stages: dict[str, dict] = {}
    for file in sorted((out / "_stage" / "timings").glob("*.json")):
        record = json.loads(file.read_text())
        entry = stages.setdefault(record["stage"], {"seconds": 0.0, "parts": 0, "outcome": "done"})
        entry["seconds"] += float(record["seconds"])
        entry["parts"] += 1
        if record.get("outcome") != "done":
            entry["outcome"] = record.get("outcome")
    order = {name: k for k, name in enumerate(STAGES)}
    return dict(sorted(stages.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def fleet(folder: Path, services: int, rows: int, timeout: float) -> dict:
    """A fleet's inputs (topology.csv, incidents.csv) written into folder; their facts."""
    extra = ["--services", str(services), "--rows", str(rows)]
    return common.generate("fleet", folder, timeout, [*extra, "--dependencies", str(DEPENDENCIES)])


def inputs_of(facts: dict) -> dict:
    return {
        "services": facts["services"],
        "edges": facts["edges"],
        "incidents": facts["rows"],
        "csv_mib": facts["bytes"] / 2**20,
        "max_dependents": facts["max_dependents"],
        "generate_s": facts["generate_s"],
    }


def command_lines(cli: list[str]) -> dict[str, list[str]]:
    """Each command's argv, run in the fleet's folder (so its file names are relative)."""
    inputs = ["--incidents", "incidents.csv", "--topology", "topology.csv", "--as-of", AS_OF_DATE]
    return {
        "run": [*cli, "run", *inputs, "--out", "run", "--narrator", "template"],
        "validate": [*cli, "validate", *inputs, "--out", "validation.json"],
        "fit": [*cli, "fit", *inputs, "--out", "model.json"],
        "simulate": [
            *cli,
            *("simulate", "--model", "model.json", "--topology", "topology.csv"),
            *("--out", "scenarios.json", "--draws", str(DRAWS)),
        ],
        "floor": [sys.executable, "-c", FLOOR_CODE, "incidents.csv"],
    }


def measure_size(n: int, args, cli: list[str], env: dict[str, str]) -> dict:
    """A fleet of n services: its inputs generated, then run, validate, fit, simulate, the
    floor and the baseline, one after the other, each in its own process."""
    label = f"{n:,} services"
    with common.scratch_folder(f"whatif-bench-commands-{n}-", args.keep) as folder:
        facts = fleet(folder, n, ROWS_PER_SERVICE * n, args.timeout)
        row = {"requested": n, **inputs_of(facts), "digest": report.engine_digest()}
        argv = command_lines(cli)
        results: dict[str, dict] = {}
        for name in ("run", "validate", "fit", "simulate", "floor"):
            if name == "simulate" and not (folder / "model.json").exists():
                results[name] = {"stage": name, "failed": -1, "error": "no model.json (fit)"}
                continue
            results[name] = timed(label, name, argv[name], folder, env, args.timeout)
        results["run"]["stages"] = stage_timings(folder / "run")
        if (folder / "model.json").exists():
            common.progress(f"[{label}] baseline ({args.baseline_seconds:g} s) ...")
            extra = ["--baseline-seconds", str(args.baseline_seconds)]
            baseline = common.run_child(__file__, "baseline", folder, args.timeout, extra)
            common.progress(report.stage_line(baseline))
        else:
            baseline = {"stage": "baseline", "failed": -1, "error": "no model.json (fit)"}
        row["commands"] = results
        row["baseline"] = baseline
        extrapolated = baseline["extrapolated_s"] if _ok(baseline) else None
        row["speedup"] = ratio(extrapolated, _seconds(results["simulate"]))
        row["fit_floor"] = ratio(_seconds(results["fit"]), _seconds(results["floor"]))
        return row


def measure_fit_point(services: int, rows: int, args, cli, env) -> dict:
    """`whatif fit` and the floor on a fleet of `services` with `rows` incidents."""
    label = f"fit point, {services:,} services, {rows:,} incidents"
    with common.scratch_folder(f"whatif-bench-commands-fit-{rows}-", args.keep) as folder:
        facts = fleet(folder, services, rows, args.timeout)
        argv = command_lines(cli)
        fit = timed(label, "fit", argv["fit"], folder, env, args.timeout)
        floor = timed(label, "floor", argv["floor"], folder, env, args.timeout)
    return {
        **inputs_of(facts),
        "fit": fit,
        "floor": floor,
        "ratio": ratio(_seconds(fit), _seconds(floor)),
    }


def warm_up(folder: Path, cli: list[str], env: dict[str, str], timeout: float) -> dict:
    """An untimed `whatif run` on a small fleet: numba compiles the simulate stage's loop into
    the run's empty cache (and the imports reach the file cache), as a user's first run."""
    rows = ROWS_PER_SERVICE * WARM_UP_SERVICES
    facts = fleet(folder, WARM_UP_SERVICES, rows, timeout)
    result = timed("warm-up", "run", command_lines(cli)["run"], folder, env, timeout)
    return {**inputs_of(facts), "run": result}


def _ok(result: dict | None) -> bool:
    return bool(result) and not result.get("killed") and result.get("failed") is None


def _seconds(result: dict | None) -> float | None:
    return result["seconds"] if _ok(result) else None


# --------------------------------------------------------------------------- report


def _both(result: dict) -> str:
    """ "12.3 s, 456 MiB", or what went wrong."""
    if not _ok(result):
        return cell(result, "seconds", ".1f")
    return f"{result['seconds']:.1f} s, {result['peak_rss_mib']:,.0f} MiB"


def _times(value: float | None, fmt: str = ".1f") -> str:
    return "n/a" if value is None else f"{value:{fmt}}×"


def stage_names(rows: list[dict]) -> list[str]:
    """The pipeline's stages, then any other stage a run recorded."""
    extra = []
    for row in rows:
        extra += [s for s in row["commands"]["run"].get("stages", {}) if s not in STAGES]
    return [*STAGES, *dict.fromkeys(extra)]


def scaling_table(rows: list[dict], names: list[str]) -> list[str]:
    lines = [
        "| services | edges | incidents | `whatif run` s | "
        + " | ".join(names)
        + " | outside the stages | peak RSS MiB | load before |",
        "|" + "---:|" * (len(names) + 7),
    ]
    for row in rows:
        run = row["commands"]["run"]
        stages = run.get("stages", {})
        figures = []
        for name in names:
            stage = stages.get(name)
            text = "n/a" if stage is None else f"{stage['seconds']:.1f}"
            figures.append(text if not stage or stage["outcome"] == "done" else f"{text} (failed)")
        outside = (
            f"{run['seconds'] - sum(s['seconds'] for s in stages.values()):.1f}"
            if _ok(run)
            else "n/a"
        )
        lines.append(
            f"| {row['services']:,} | {row['edges']:,} | {row['incidents']:,} | "
            f"**{cell(run, 'seconds', '.1f')}** | " + " | ".join(figures) + f" | {outside} | "
            f"{cell(run, 'peak_rss_mib', ',.0f')} | {run.get('load_before', math.nan):.1f} |"
        )
    return lines


def commands_table(rows: list[dict]) -> list[str]:
    lines = [
        "| services | incidents (CSV MiB) | `whatif validate` | `whatif fit` | "
        f"`whatif simulate --draws {DRAWS:,}` | `whatif run` | floor: pandas reads the CSV |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        c = row["commands"]
        lines.append(
            f"| {row['services']:,} | {row['incidents']:,} ({row['csv_mib']:.0f}) | "
            + " | ".join(_both(c[name]) for name in ("validate", "fit", "simulate", "run", "floor"))
            + " |"
        )
    return lines


def growth_table(rows: list[dict], names: list[str]) -> list[str]:
    """Between consecutive sizes: how many times longer each stage took, and the exponent
    (the log-log slope: 1 = linear in the services)."""
    done = [r for r in rows if _ok(r["commands"]["run"])]
    pairs = list(itertools.pairwise(done))
    if not pairs:
        return ["(fewer than two sizes measured)"]
    lines = [
        "| | "
        + " | ".join(
            f"{a['services']:,} → {b['services']:,} (×{b['services'] / a['services']:.1f} services)"
            for a, b in pairs
        )
        + " |",
        "|---|" + "---:|" * len(pairs),
    ]
    for name in ["total", *names]:
        cells = []
        for a, b in pairs:
            ta, tb = _stage_seconds(a, name), _stage_seconds(b, name)
            grow = ratio(tb, ta)
            if grow is None:
                cells.append("n/a")
                continue
            slope = math.log(grow) / math.log(b["services"] / a["services"])
            cells.append(f"×{grow:.1f} (exponent {slope:.2f})")
        label = "`whatif run`" if name == "total" else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _stage_seconds(row: dict, name: str) -> float | None:
    run = row["commands"]["run"]
    if name == "total":
        return _seconds(run)
    stage = run.get("stages", {}).get(name)
    return stage["seconds"] if stage and stage["outcome"] == "done" else None


def baseline_table(rows: list[dict]) -> list[str]:
    lines = [
        "| services | edges | horizons timed (s) | root failures per horizon | mean blast "
        f"radius (largest) | ms per horizon | extrapolated to {DRAWS:,} horizons | "
        f"`whatif simulate --draws {DRAWS:,}` | speed-up |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        b, s = row["baseline"], row["commands"]["simulate"]
        if not _ok(b):
            lines.append(f"| {row['services']:,} | {row['edges']:,} |" + " n/a |" * 7)
            continue
        radius = "n/a" if b["radius_mean"] is None else f"{b['radius_mean']:.2f}"
        lines.append(
            f"| {row['services']:,} | {row['edges']:,} | {b['horizons']:,} ({b['seconds']:.1f}) "
            f"| {b['roots_per_horizon']:.1f} | {radius} ({b['radius_max']:,}) | "
            f"{b['per_horizon_ms']:.3f} | {b['extrapolated_s']:,.1f} s | "
            f"{cell(s, 'seconds', '.1f')} s | **{_times(row['speedup'])}** |"
        )
    return lines


def fit_floor_table(rows: list[dict], point: dict | None) -> list[str]:
    lines = [
        "| services | incidents | `whatif fit` | floor | fit / floor |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        c = row["commands"]
        lines.append(
            f"| {row['services']:,} | {row['incidents']:,} | {_both(c['fit'])} | "
            f"{_both(c['floor'])} | {_times(row['fit_floor'])} |"
        )
    if point:
        lines.append(
            f"| {point['services']:,} | **{point['incidents']:,}** | {_both(point['fit'])} | "
            f"{_both(point['floor'])} | **{_times(point['ratio'])}** |"
        )
    return lines


def reference_row(rows: list[dict]) -> dict | None:
    """The row of 5,000 services, if measured."""
    return next((r for r in rows if r["requested"] == REFERENCE), None)


def verdicts(rows: list[dict], point: dict | None) -> dict:
    """The figures against the issue's targets (None: not measured)."""
    ref = reference_row(rows)
    smallest = min(rows, key=lambda r: r["requested"]) if rows else None
    run_ref = _seconds(ref["commands"]["run"]) if ref else None
    growth = None
    if ref and smallest is not ref:
        growth = ratio(run_ref, _seconds(smallest["commands"]["run"]))
    fit = point["fit"] if point else None
    speedup = ref["speedup"] if ref else None
    return {
        "run_5000_s": run_ref,
        "run_5000_ok": None if run_ref is None else run_ref <= TARGET_RUN_S,
        "growth_from": smallest["services"] if smallest else None,
        "growth": growth,
        "growth_ok": None if growth is None else growth <= TARGET_GROWTH,
        "fit_floor": point["ratio"] if point else None,
        "fit_floor_ok": None
        if not point or point["ratio"] is None
        else point["ratio"] <= TARGET_FIT_FLOOR,
        "fit_mib_ok": fit["peak_rss_mib"] <= TARGET_FIT_MIB if _ok(fit) else None,
        "speedup": speedup,
        "speedup_ok": None if speedup is None else speedup >= TARGET_SPEEDUP,
    }


def headline(rows: list[dict], point: dict | None, v: dict) -> list[str]:
    ref = reference_row(rows)
    lines = []
    if ref is None:
        lines.append(
            f"- `whatif run` at {REFERENCE:,} services: not measured (no {REFERENCE:,} in "
            f"--sizes); target ≤ {TARGET_RUN_S:g} s: n/a"
        )
        lines.append(
            f"- growth of `whatif run` from the smallest size to {REFERENCE:,} services: not "
            f"measured; target ≤ {TARGET_GROWTH:g}×: n/a"
        )
        done = [r for r in rows if _ok(r["commands"]["run"])]
        if len(done) > 1:
            a, b = done[0], done[-1]
            lines.append(
                f"  (for reference: from {a['services']:,} to {b['services']:,} services, "
                f"×{b['services'] / a['services']:.1f} the services, it grew "
                f"{_times(ratio(_seconds(b['commands']['run']), _seconds(a['commands']['run'])))})"
            )
    else:
        run = ref["commands"]["run"]
        lines.append(
            f"- `whatif run` at {ref['services']:,} services ({ref['edges']:,} edges, "
            f"{ref['incidents']:,} incidents): **{cell(run, 'seconds', '.1f')} s**, peak "
            f"{cell(run, 'peak_rss_mib', ',.0f')} MiB; target ≤ {TARGET_RUN_S:g} s: "
            f"**{verdict(v['run_5000_ok'])}**"
        )
        lines.append(
            f"- growth of `whatif run` from {v['growth_from']:,} to {ref['services']:,} services "
            f"(×{ref['services'] / v['growth_from']:.0f} the services and incidents): "
            f"**{_times(v['growth'])}**; target ≤ {TARGET_GROWTH:g}×: "
            f"**{verdict(v['growth_ok'])}**"
        )
    if point:
        fit, floor = point["fit"], point["floor"]
        lines.append(
            f"- `whatif fit` on {point['incidents']:,} incidents over {point['services']:,} "
            f"services: **{_both(fit)}**; the floor ({FLOOR_TEXT} of the same CSV, "
            f"{point['csv_mib']:.0f} MiB): {_both(floor)}; fit / floor = "
            f"**{_times(point['ratio'])}**; target ≤ {TARGET_FIT_FLOOR:g}× (aim "
            f"{AIM_FIT_FLOOR:g}×): **{verdict(v['fit_floor_ok'])}**; peak ≤ 2 GB "
            f"({TARGET_FIT_MIB:,.0f} MiB): **{verdict(v['fit_mib_ok'])}**"
            + (
                ""
                if point["incidents"] >= FIT_ROWS * 0.9 and point["services"] == FIT_SERVICES
                else f" (the targets are for {FIT_ROWS:,} incidents over {FIT_SERVICES:,} "
                "services: these figures are not comparable)"
            )
        )
    else:
        lines.append("- `whatif fit` against the floor: not measured (--fit-rows 0)")
    if ref is not None:
        b = ref["baseline"]
        extrapolated = f"{b['extrapolated_s']:,.1f} s" if _ok(b) else cell(b, "seconds", ".0f")
        lines.append(
            f"- `whatif simulate --draws {DRAWS:,}` at {ref['services']:,} services: "
            f"{_both(ref['commands']['simulate'])}; the plain-Python BFS baseline extrapolated "
            f"to {DRAWS:,} horizons: {extrapolated}; speed-up **{_times(v['speedup'])}**; "
            f"target ≥ {TARGET_SPEEDUP:g}× (aim {AIM_SPEEDUP:g}×): "
            f"**{verdict(v['speedup_ok'])}**"
        )
    else:
        lines.append(
            f"- `whatif simulate --draws {DRAWS:,}` against the baseline at {REFERENCE:,} "
            f"services: not measured; target ≥ {TARGET_SPEEDUP:g}×: n/a (the other sizes: "
            "below)"
        )
    return lines


def plot(rows: list[dict], names: list[str], path: Path) -> bool:
    """`whatif run`'s seconds (total and per stage) against the services, log-log, as SVG
    that is the same file for the same figures (fixed hash salt, no date)."""
    done = [r for r in rows if _ok(r["commands"]["run"])]
    if not done:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plt.rcParams["svg.hashsalt"] = "whatif-bench-commands"
    plt.rcParams["svg.fonttype"] = "none"
    figure, axes = plt.subplots(figsize=(7, 4.6), dpi=100)
    services = [r["services"] for r in done]
    for k, name in enumerate(["total", *names]):
        points = [(s, _stage_seconds(r, name)) for s, r in zip(services, done, strict=True)]
        points = [(s, t) for s, t in points if t is not None and t > 0]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        axes.plot(
            xs,
            ys,
            color=COLOURS[k % len(COLOURS)],
            marker=MARKERS[k % len(MARKERS)],
            linewidth=2.4 if name == "total" else 1.4,
            label="whatif run (total)" if name == "total" else name,
        )
    first = _stage_seconds(done[0], "total")
    if len(done) > 1 and first:
        axes.plot(
            [services[0], services[-1]],
            [first, first * services[-1] / services[0]],
            color="#999999",
            linestyle=":",
            linewidth=1,
            label="linear in the services",
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(services)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes.set_xlabel(f"services (~4 edges and {ROWS_PER_SERVICE} incidents per service; log scale)")
    axes.set_ylabel("seconds (log scale)")
    axes.set_title("whatif run on a generated fleet: wall time per stage")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="svg", metadata={"Date": None})
    plt.close(figure)
    return True


def _display_argv(argv: list[str]) -> str:
    """A command as run in the fleet's folder, the interpreter and CLI paths shortened."""
    shown = []
    for a in argv:
        if a == sys.executable:
            shown.append("python")
        elif a.endswith(os.sep + "whatif"):
            shown.append("whatif")
        elif a == FLOOR_CODE:
            shown.append(json.dumps(a))  # readable, and as valid in a shell
        else:
            shown.append(shlex.quote(a))
    return " ".join(shown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=SIZES, help="services, comma separated")
    parser.add_argument(
        "--stretch", action="store_true", help=f"add {STRETCH:,} services to --sizes"
    )
    parser.add_argument(
        "--fit-rows",
        type=int,
        default=FIT_ROWS,
        help="incidents of the fit point (0: skip it)",
    )
    parser.add_argument(
        "--fit-services",
        type=int,
        help=f"services of the fit point (default {FIT_SERVICES:,}, or the largest of --sizes "
        "if smaller)",
    )
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=BASELINE_SECONDS,
        help="how long the plain-Python baseline runs per size (then extrapolated)",
    )
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per command")
    parser.add_argument(
        "--plot",
        default=str(common.ROOT / "docs" / "performance-scaling.svg"),
        help="the log-log plot (SVG)",
    )
    common.add_run_arguments(parser, Path(__file__).with_name("commands_results.md"), CHILDREN)
    args = parser.parse_args(argv)
    if args.child == "baseline":
        print(json.dumps(child_baseline(Path(args.dir), args.baseline_seconds, DRAWS)))
        return 0

    sizes = sorted(set(common.parse_sizes(args.sizes) + ([STRETCH] if args.stretch else [])))
    fit_services = args.fit_services or min(FIT_SERVICES, max(sizes))
    engine = report.engine()  # before the run, in case the tree moves meanwhile
    digests = {"start": report.engine_digest()}
    load_before = os.getloadavg()[0]
    cli, env = whatif_cli()
    began = time.perf_counter()
    with common.scratch_folder("whatif-bench-commands-", args.keep) as scratch:
        # An empty numba cache, filled by the warm-up: the measured commands load from it.
        env["NUMBA_CACHE_DIR"] = str(scratch / "numba-cache")
        warm = warm_up(scratch / "warm-up", cli, env, args.timeout)
        rows = [measure_size(n, args, cli, env) for n in sizes]
        point = (
            measure_fit_point(fit_services, args.fit_rows, args, cli, env)
            if args.fit_rows > 0
            else None
        )
    total = time.perf_counter() - began
    parent_mib = common.max_rss_mib()  # before matplotlib and the header's imports
    digests["end"] = report.engine_digest()
    moved = len(set(digests.values()) | {r["digest"] for r in rows}) > 1
    if moved:
        common.progress(f"WARNING: the engine's files changed during the run: {digests}")

    # report
    names = stage_names(rows)
    v = verdicts(rows, point)
    plotted = plot(rows, names, Path(args.plot))
    if plotted:
        common.progress(f"written: {args.plot}")
    commands = {name: _display_argv(a) for name, a in command_lines(cli).items()}
    parts = [
        *report.header(
            "whatif benchmark: the commands at fleet scale",
            engine,
            ("numpy", "pandas", "pyarrow", "scipy", "numba", "great_expectations", "pydantic"),
            total,
            included="input generation, a warm-up run, the floors and the baselines",
            load_before=load_before,
            load_note="; the tables give the load just before each `whatif run`, the JSON "
            "before every command",
        ),
        f"- inputs (bench/generate.py fleet, whatif.synthetic, seeded): per size a layered DAG "
        f"with ~{DEPENDENCIES:g} drawn dependencies per service plus shared infrastructure "
        f"hubs (about 4 edges per service), a quarter of the edges soft, as topology.csv; "
        f"{ROWS_PER_SERVICE} incidents per service over {common.HISTORY_DAYS} days up to "
        f"{AS_OF_DATE} as a user's incidents.csv (spelling variants, mixed timestamps and "
        "vocabularies, ~2 % bad rows)",
        "- each command a child process of the installed CLI (`"
        + _display_argv(cli)
        + "`), run in the fleet's folder; seconds = wall time from the fork to its exit "
        "(interpreter start and imports included); peak RSS = `ru_maxrss` of that child from "
        f"`os.wait4` (the whole process; each includes at least this script's own "
        f"{parent_mib:.0f} MiB, which Linux carries into a child's mark)",
        f"- before them, untimed for the tables, a warm-up `whatif run` on {warm['services']} "
        f"services filled an empty numba cache (NUMBA_CACHE_DIR) and the file cache: "
        f"{_both(warm['run'])} (a user's first run, compiling the simulate loop), so the "
        "measured commands load the compiled loop as a user's later runs do",
        f"- engine source digest (sha256 of plugins/whatif/**/*.py, first 12): {digests['start']}"
        + (
            " — **the engine's files changed during the run, so the commands measured "
            f"different versions; discard these figures and re-run** ({digests})"
            if moved
            else ", unchanged throughout the run"
        ),
        "",
        "Against the issue's targets:",
        "",
        *headline(rows, point, v),
        "",
        "`whatif run` per fleet size: its wall time and its stages' durations as the run "
        "records them (`run/_stage/timings/*.json`, summed per stage); outside the stages = "
        "interpreter start, imports and the CLI; default settings (10,000 horizons, template "
        "narrator):",
        "",
        *scaling_table(rows, names),
        "",
        "Growth between sizes (× the time; exponent = log-log slope, 1 = linear in the services):",
        "",
        *growth_table(rows, names),
        "",
        "Each command on its own (seconds, peak RSS of the process):",
        "",
        *commands_table(rows),
        "",
        f"`whatif fit` against the floor ({FLOOR_TEXT} on the same incidents.csv, a child "
        "process timed whole, interpreter start included): the least a command reading that "
        "file has to do. The last row is the fit point the target is judged on:",
        "",
        *fit_floor_table(rows, point),
        "",
        f"`whatif simulate --draws {DRAWS:,}` against a plain-Python baseline on the same "
        "model.json and topology (a child of this script): per horizon, each service's root "
        f"failures in {HORIZON_DAYS:g} days drawn from the fitted posterior predictive (rate "
        "~ Gamma(shape, 1/rate), count ~ Poisson(rate × 7), numpy), then for each root "
        "failure a breadth-first cascade in plain Python (adjacency lists of (dependent, p) "
        "with the model's posterior-mean edge probabilities, a `set` and a `deque`, "
        "`random.random() < p` per out-edge), horizon after horizon until "
        f"{args.baseline_seconds:g} s had passed, then extrapolated linearly to {DRAWS:,} "
        "horizons. The baseline computes blast radii only (no durations, severities, impact "
        "or scenarios), which favours it; the command's wall time includes the interpreter "
        "start, the imports, reading model.json and the topology, the per-trigger cascade "
        "bank, the selection, the narration and writing scenarios.json:",
        "",
        *baseline_table(rows),
        "",
        "The commands, as run in each fleet's folder:",
        "",
        *[f"- {name}: `{text}`" for name, text in commands.items()],
        "- baseline: `python bench/bench_commands.py --child baseline --dir FOLDER "
        f"--baseline-seconds {args.baseline_seconds:g}`",
        "",
        f"Plot: {_display_path(args.plot)}" if plotted else "Plot: none (no run finished)",
        "",
    ]
    failures = [
        (row["services"], name, result)
        for row in rows
        for name, result in [*row["commands"].items(), ("baseline", row["baseline"])]
        if not _ok(result)
    ]
    if not _ok(warm["run"]):
        failures.insert(0, (warm["services"], "run (warm-up)", warm["run"]))
    if point:
        failures += [
            (point["services"], f"{name} (fit point)", point[name])
            for name in ("fit", "floor")
            if not _ok(point[name])
        ]
    if failures:
        parts += ["Failures:", ""]
        for services, name, result in failures:
            parts.append(
                f"- {services:,} services, {name}: "
                + ("killed" if result.get("killed") else f"`{result.get('error')}`")
                + (f" — `{_display_argv(result['argv'])}`" if "argv" in result else "")
            )
            tail = result.get("stderr_tail")
            if tail:
                parts += ["", "  ```", *[f"  {line}" for line in tail[-10:]], "  ```"]
        parts.append("")
    text = "\n".join(parts)
    print(text)
    out = Path(args.out)
    report.write(out, text)
    raw = {
        "title": "whatif benchmark: the commands at fleet scale",
        "command": report.command_line(),
        "engine": engine,
        "digests": digests,
        "machine": report.machine(),
        "total_s": total,
        "load_before": load_before,
        "parent_peak_rss_mib": parent_mib,
        "settings": {
            "sizes": sizes,
            "rows_per_service": ROWS_PER_SERVICE,
            "dependencies": DEPENDENCIES,
            "as_of": AS_OF_DATE,
            "draws": DRAWS,
            "horizon_days": HORIZON_DAYS,
            "fit_rows": args.fit_rows,
            "fit_services": fit_services,
            "baseline_seconds": args.baseline_seconds,
            "timeout": args.timeout,
        },
        "targets": {
            "run_5000_s": TARGET_RUN_S,
            "growth": TARGET_GROWTH,
            "fit_floor": TARGET_FIT_FLOOR,
            "fit_floor_aim": AIM_FIT_FLOOR,
            "fit_mib": TARGET_FIT_MIB,
            "speedup": TARGET_SPEEDUP,
            "speedup_aim": AIM_SPEEDUP,
        },
        "stages": names,
        "commands": commands,
        "warm_up": warm,
        "sizes": rows,
        "fit_point": point,
        "verdicts": v,
        "plot": str(args.plot) if plotted else None,
    }
    report.write(out.with_suffix(".json"), json.dumps(raw, indent=1, default=str) + "\n")
    return 0


def _display_path(path: str) -> str:
    relative = os.path.relpath(path, common.ROOT)
    return path if relative.startswith("..") else relative


if __name__ == "__main__":
    sys.exit(main())
