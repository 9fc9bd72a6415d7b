"""Benchmark of the whatif extract and validate stages on a large synthetic incident export.

Not a test: it asserts nothing about time. For each size it writes, into a temporary folder,
a synthetic 300-service topology (the layered DAG of bench_simulate.py) and an incident CSV
in the data contract's format with a realistic mix of spellings, timestamp formats and
vocabularies and ~2 % bad rows of several kinds, then runs each stage in a fresh Python
process (so that each has its own memory high-water mark, as an Airflow task would):

- load_incidents: whatif.ingest.load_incidents (read the CSV + normalise), alone;
- extract:        whatif.pipeline.extract (read both inputs, check their format, stage them
                  as Parquet in the work folder);
- validate:       whatif.pipeline.run_validation (read the staged Parquet, normalise it,
                  run the Great Expectations suites, write validation.json, gx_results.json,
                  quarantine.csv and the clean tables).

Per stage it reports wall seconds and the process's peak RSS (resource.getrusage ru_maxrss:
the whole process, interpreter and imports included), and the baseline RSS before the stage
(after the imports). tracemalloc is off by default (--tracemalloc turns it on: it slows the
per-cell Python code several fold, so times are then not comparable, and it does not see
the Arrow buffers that hold most of the data). --sections adds inclusive timings of the
engine's main functions and the RSS high-water rise during each (wrapped from the outside;
plugins/whatif is not modified).

    PYTHONPATH=plugins .venv/bin/python bench/bench_validate.py [--sizes 100000,1000000]
        [--named-zone-share 0] [--timeout 1800] [--sections] [--out bench/validate_results.md]

Each stage is killed after --timeout seconds (reported as "> N s, killed").
"""

from __future__ import annotations

import argparse
import functools
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

SEED = 7
SERVICES = 300
TARGET_SECONDS = 60.0
TARGET_MIB = 2048.0
STAGES = ("load_incidents", "extract", "validate")
CHILDREN = ("generate", *STAGES)

# Shares of the rows (of the size asked for) turned bad, by kind. ~2 % in all.
BAD = {
    "unknown_service": 0.005,  # a service name the topology does not have
    "bad_timestamp": 0.005,  # started_at or resolved_at not a timestamp (or impossible)
    "resolved_before_started": 0.005,  # end before start
    "duplicate": 0.005,  # the same (incident_id, service) twice
}

# --------------------------------------------------------------------------- synthetic data

SEVERITY_SPELLINGS = (
    ["SEV1"] * 4
    + ["SEV2"] * 15
    + ["SEV3"] * 35
    + ["SEV4"] * 25
    + ["sev2", "Sev3", "P2", "P3", "p4", "S3", "critical", "major", "minor", "low", "High"]
    + ["Degraded performance", "informational", "SEV-3", "sev 2"]
)
UNKNOWN_SEVERITIES = ("urgent-ish", "tbd", "see ticket", "??")
CATEGORY_SPELLINGS = (
    ["capacity", "database", "deployment", "config", "network", "hardware", "security", "data"] * 4
    + ["other", "Capacity", "DB", "Bad deploy", "Config change", "Network / DNS", "disk full"]
    + ["Database deadlock", "certificate expired", "traffic spike", "", "misc"]
)
TITLES = common.TITLES
DESCRIPTIONS = (
    *common.DESCRIPTIONS,
    "An internal certificate expired and mutual TLS handshakes failed. The certificate was "
    "renewed and the rotation job fixed.",
    "",
)
BAD_TIMESTAMPS = (
    "31/02/2025 10:00",
    "2025-02-30T10:00:00Z",
    "yesterday",
    "N/A",
    "2025-13-01T00:00:00Z",
    "TBD",
    "",
)
NAMED_ZONES = ("Europe/Paris", "America/New_York", "PDT", "[Asia/Tokyo]", "CET", "Europe/Berlin")


def topology_csv(rng: np.random.Generator) -> pd.DataFrame:
    frame = synthetic_topology(SERVICES, rng)
    frame["depends_on"] = frame["depends_on"].map(";".join)
    frame["user_facing"] = frame["user_facing"].map({True: "true", False: "false", None: ""})
    return frame


def _iso(
    stamps: pd.DatetimeIndex,
    offset_share: float,
    naive_share: float,
    named_share: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """ISO text: mostly `...Z`, a share with a `+02:00` or `-05:00` offset, a share naive (in
    UTC), and an optional share with a trailing zone name (`2025-01-02 10:00:00 Europe/Paris`)."""
    n = len(stamps)
    out = np.asarray(stamps.strftime("%Y-%m-%dT%H:%M:%SZ"), dtype=object)
    kind = rng.random(n)
    offset = kind < offset_share
    east = rng.random(n) < 0.5
    for pick, hours, suffix in ((offset & east, 2, "+02:00"), (offset & ~east, -5, "-05:00")):
        local = (stamps[pick] + pd.Timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S")
        out[pick] = [text + suffix for text in local]
    naive = (kind >= offset_share) & (kind < offset_share + naive_share)
    out[naive] = list(stamps[naive].strftime("%Y-%m-%d %H:%M:%S"))
    if named_share > 0:
        from whatif.ingest import ZONE_ABBREVIATIONS

        named = kind >= 1 - named_share
        zones = rng.choice(len(NAMED_ZONES), size=int(named.sum()))
        texts = []
        for stamp, z in zip(stamps[named], zones, strict=True):
            zone = NAMED_ZONES[z]
            name = zone.strip("[]")
            if name in ZONE_ABBREVIATIONS:
                sign = -1 if ZONE_ABBREVIATIONS[name].startswith("-") else 1
                hh, mm = ZONE_ABBREVIATIONS[name][1:].split(":")
                local = stamp + sign * pd.Timedelta(hours=int(hh), minutes=int(mm))
            else:
                local = stamp.tz_convert(name)
            texts.append(
                local.strftime("%Y-%m-%d %H:%M:%S") + ("" if zone[0] == "[" else " ") + zone
            )
        out[named] = texts
    return out


def incidents_csv(
    n: int, topology: pd.DataFrame, rng: np.random.Generator, named_share: float
) -> tuple[pd.DataFrame, dict[str, int]]:
    """n incident rows (bad ones included) and how many bad rows of each kind were injected."""
    services = topology["service"].to_numpy()
    teams = topology["owner_team"].to_numpy()
    index = {s: i for i, s in enumerate(services)}
    dependents: list[list[int]] = [[] for _ in services]
    for i, deps in enumerate(topology["depends_on"]):
        for dep in filter(None, deps.split(";")):
            dependents[index[dep]].append(i)
    n_dup = int(n * BAD["duplicate"])
    m = n - n_dup  # distinct rows; the duplicates are copies of some of them
    # ~70 % root incidents, ~30 % cascades onto a dependent a few minutes later.
    weights = rng.gamma(0.8, 1.0, size=len(services))
    weights /= weights.sum()
    service = rng.choice(len(services), size=m, p=weights)
    start = AS_OF - timedelta(days=HISTORY_DAYS - 1)
    seconds = np.sort(rng.uniform(0, (HISTORY_DAYS - 2) * 86400.0, size=m)).astype(np.int64)
    caused_by = np.full(m, -1)
    cascade = rng.random(m) < 0.3
    cascade[0] = False
    for i in np.flatnonzero(cascade):  # a root a little earlier whose service has dependents
        j = i - 1 - int(rng.integers(0, 50))
        while j > 0 and (cascade[j] or not dependents[service[j]]):
            j -= 1
        if j < 0 or cascade[j] or not dependents[service[j]]:
            cascade[i] = False
            continue
        options = dependents[service[j]]
        service[i] = options[int(rng.integers(0, len(options)))]
        caused_by[i] = j
    started = pd.DatetimeIndex(start + pd.to_timedelta(seconds, unit="s"))
    minutes = np.exp(rng.normal(np.log(60.0), 0.9, size=m))
    resolved = started + pd.to_timedelta(np.round(minutes * 60), unit="s")
    detected = started + pd.to_timedelta(rng.integers(30, 900, size=m), unit="s")
    acknowledged = detected + pd.to_timedelta(rng.integers(30, 600, size=m), unit="s")
    ids = np.char.add("INC-", np.char.zfill(np.arange(1, m + 1).astype(str), 7)).astype(object)
    names = services[service].astype(object)
    # Spelling variants that _match_service_names resolves: case, '_' for '-', spaces.
    variant = rng.random(m)
    names[variant < 0.01] = np.char.upper(names[variant < 0.01].astype(str))
    sel = (variant >= 0.01) & (variant < 0.02)
    names[sel] = np.char.replace(names[sel].astype(str), "-", "_")
    sel = (variant >= 0.02) & (variant < 0.025)
    names[sel] = np.char.add(names[sel].astype(str), " ")
    title_pick = rng.integers(0, len(TITLES), size=m)
    frame = pd.DataFrame(
        {
            "incident_id": ids,
            "service": names,
            "started_at": _iso(started, 0.10, 0.05, named_share, rng),
            "resolved_at": _iso(resolved, 0.10, 0.05, named_share, rng),
            "severity": rng.choice(np.array(SEVERITY_SPELLINGS, dtype=object), size=m),
            "category": rng.choice(np.array(CATEGORY_SPELLINGS, dtype=object), size=m),
            "title": np.char.add(
                np.char.add(services[service].astype(str), ": "),
                np.array(TITLES)[title_pick],
            ).astype(object),
            "description": rng.choice(np.array(DESCRIPTIONS, dtype=object), size=m),
            "detected_at": _iso(detected, 0.0, 0.0, 0.0, rng),
            "acknowledged_at": _iso(acknowledged, 0.0, 0.0, 0.0, rng),
            "caused_by": np.where(
                (caused_by >= 0) & (rng.random(m) < 0.7), ids[np.maximum(caused_by, 0)], ""
            ),
            "team": teams[service],
        }
    )
    frame.loc[cascade, "category"] = "dependency"
    frame.loc[rng.random(m) < 0.1, ["detected_at", "acknowledged_at"]] = ""
    frame.loc[rng.random(m) < 0.002, "severity"] = rng.choice(UNKNOWN_SEVERITIES)
    frame.loc[rng.random(m) < 0.001, "caused_by"] = "INC-9999999"  # names no incident
    # Bad rows: distinct random rows for each kind.
    order = rng.permutation(m)
    counts = {k: int(n * share) for k, share in BAD.items()}
    at = 0
    picks = {}
    for kind in ("unknown_service", "bad_timestamp", "resolved_before_started"):
        picks[kind] = order[at : at + counts[kind]]
        at += counts[kind]
    frame.loc[picks["unknown_service"], "service"] = rng.choice(
        np.array(["legacy-billing", "svc-99999", "unknown", "payments-v0"], dtype=object),
        size=counts["unknown_service"],
    )
    bad = picks["bad_timestamp"]
    column = np.where(rng.random(len(bad)) < 0.5, "started_at", "resolved_at")
    for name in ("started_at", "resolved_at"):
        rows = bad[column == name]
        frame.loc[rows, name] = rng.choice(np.array(BAD_TIMESTAMPS, dtype=object), len(rows))
    rows = picks["resolved_before_started"]
    frame.loc[rows, "resolved_at"] = (
        started[rows] - pd.to_timedelta(rng.integers(60, 7200, len(rows)), unit="s")
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Duplicates: a copy of a good row, inserted further down the file.
    good = order[at:]
    copies = frame.iloc[rng.choice(good, size=n_dup, replace=False)]
    frame = pd.concat([frame, copies], ignore_index=True)
    frame = frame.iloc[
        np.argsort(np.concatenate([np.arange(m), rng.integers(0, m, n_dup) + 0.5]), kind="stable")
    ].reset_index(drop=True)
    counts["duplicate"] = n_dup
    return frame, counts


def write_inputs(folder: Path, n: int, named_share: float) -> dict:
    rng = np.random.default_rng(SEED)
    topology = topology_csv(rng)
    topology.to_csv(folder / "topology.csv", index=False)
    incidents, injected = incidents_csv(n, topology, rng, named_share)
    incidents.to_csv(folder / "incidents.csv", index=False)
    return {
        "rows": len(incidents),
        "bytes": (folder / "incidents.csv").stat().st_size,
        "injected": injected,
        "caused_by": int((incidents["caused_by"] != "").sum()),
    }


# --------------------------------------------------------------------------- child process

SECTIONS = (
    ("whatif.sources", "read_table"),
    ("whatif.sources", "_read_csv"),
    ("whatif.sources", "with_rows"),
    ("whatif.ingest", "incidents_table"),
    ("whatif.ingest", "_clean_text_columns"),  # not a function of the engine: skipped if absent
    ("whatif.ingest", "parse_timestamps"),
    ("whatif.validate", "validate_topology"),
    ("whatif.validate", "validate_incidents"),
    ("whatif.validate", "_match_service_names"),
    ("whatif.validate", "incident_checks"),
    ("whatif.validate", "run_suite"),
    ("whatif.validate", "_trimmed"),
    ("whatif.validate", "_quarantine_rows"),
    ("whatif.pipeline", "_load_sources"),
    ("whatif.pipeline", "_write_clean"),
    ("whatif.report", "write_json"),
)


def _wrap_sections(totals: dict[str, list[float]]) -> None:
    """Time the engine's main functions from the outside: inclusive seconds, calls, and how
    far the process's RSS high-water mark rose while they ran (MiB, inclusive)."""
    import importlib

    active: set[str] = set()
    for module_name, name in SECTIONS:
        module = importlib.import_module(module_name)
        function = getattr(module, name, None)
        if function is None:
            continue
        key = f"{module_name.removeprefix('whatif.')}.{name}"

        def timed(*args, __f=function, __key=key, **kwargs):
            if __key in active:  # a recursive call: the outermost one counts
                return __f(*args, **kwargs)
            active.add(__key)
            high = common.max_rss_mib()
            began = time.perf_counter()
            try:
                return __f(*args, **kwargs)
            finally:
                active.discard(__key)
                entry = totals.setdefault(__key, [0.0, 0, 0.0])
                entry[0] += time.perf_counter() - began
                entry[1] += 1
                entry[2] += common.max_rss_mib() - high

        functools.update_wrapper(timed, function)
        for other in ("whatif.sources", "whatif.ingest", "whatif.validate", "whatif.pipeline"):
            mod = importlib.import_module(other)
            if getattr(mod, name, None) is function:
                setattr(mod, name, timed)
    # to_parquet is pandas': time the staging writes too.
    original = pd.DataFrame.to_parquet

    def to_parquet(self, *args, **kwargs):
        high = common.max_rss_mib()
        began = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            entry = totals.setdefault("pandas.DataFrame.to_parquet", [0.0, 0, 0.0])
            entry[0] += time.perf_counter() - began
            entry[1] += 1
            entry[2] += common.max_rss_mib() - high

    pd.DataFrame.to_parquet = to_parquet


def child(stage: str, folder: Path, trace: bool, sections: bool) -> dict:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations  # noqa: F401  (import cost is not the stage's)
    from whatif import ingest, pipeline

    totals: dict[str, list[float]] = {}
    if sections:
        _wrap_sections(totals)
    work = folder / "work"
    inputs = pipeline.Inputs(
        incidents=str(folder / "incidents.csv"), topology=str(folder / "topology.csv")
    )
    gc.collect()
    baseline = common.max_rss_mib()
    if trace:
        import tracemalloc

        tracemalloc.start()
    began = time.perf_counter()
    summary = None
    if stage == "load_incidents":
        table = ingest.load_incidents(inputs.incidents)
        summary = {"rows": len(table.frame), "format": table.format}
    elif stage == "extract":
        summary = pipeline.extract(inputs, work, AS_OF, HISTORY_DAYS)
    elif stage == "validate":
        summary = pipeline.run_validation(work, AS_OF, HISTORY_DAYS)
    else:
        raise SystemExit(f"unknown stage {stage}")
    seconds = time.perf_counter() - began
    traced = None
    if trace:
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return {
        "stage": stage,
        "seconds": seconds,
        "vm_hwm_mib": common.vm_hwm_mib(),
        "peak_rss_mib": common.max_rss_mib(),
        "baseline_rss_mib": baseline,
        "tracemalloc_mib": traced,
        "summary": summary,
        "sections": totals,
    }


# --------------------------------------------------------------------------- report


def table(rows: list[dict], trace: bool) -> str:
    head = "| incidents | CSV MiB | stage | seconds | peak RSS MiB | RSS before stage MiB |"
    rule = "|---:|---:|---|---:|---:|---:|"
    if trace:
        head += " tracemalloc peak MiB |"
        rule += "---:|"
    lines = [head, rule]
    for row in rows:
        for result in row["stages"]:
            line = (
                f"| {row['rows']:,} | {row['bytes'] / 2**20:.0f} | {result['stage']} | "
                f"{cell(result, 'seconds', '.1f')} | {cell(result, 'peak_rss_mib', '.0f')} | "
                f"{cell(result, 'baseline_rss_mib', '.0f')} |"
            )
            if trace:
                line += f" {cell(result, 'tracemalloc_mib', '.0f')} |"
            lines.append(line)
        ext = next(r for r in row["stages"] if r["stage"] == "extract")
        val = next(r for r in row["stages"] if r["stage"] == "validate")
        if "peak_rss_mib" in ext and "peak_rss_mib" in val:
            total = ext["seconds"] + val["seconds"]
            peak = max(ext["peak_rss_mib"], val["peak_rss_mib"])
            ok = "meets" if total <= TARGET_SECONDS and peak <= TARGET_MIB else "misses"
            lines.append(
                f"| {row['rows']:,} | | **extract + validate** | **{total:.1f}** | **{peak:.0f}** "
                f"| ({ok} the target: ≤ {TARGET_SECONDS:.0f} s, ≤ {TARGET_MIB:.0f} MiB) |"
                + (" |" if trace else "")
            )
    return "\n".join(lines)


def checks_table(rows: list[dict]) -> str:
    """What validation made of the injected bad rows (from validation.json)."""
    lines = [
        "| incidents | injected (unknown service / bad timestamp / end before start / duplicate) "
        "| quarantined by reason (validation.json) | rows used |",
        "|---:|---|---|---:|",
    ]
    for row in rows:
        inj = row["injected"]
        got = row.get("quarantined_by_reason")
        got_text = ", ".join(f"{k} {v:,}" for k, v in got.items()) if got else "n/a"
        lines.append(
            f"| {row['rows']:,} | {inj['unknown_service']:,} / {inj['bad_timestamp']:,} / "
            f"{inj['resolved_before_started']:,} / {inj['duplicate']:,} | {got_text} | "
            f"{row.get('rows_used', 'n/a'):,} |"
            if got
            else f"| {row['rows']:,} | {inj} | n/a | n/a |"
        )
    return "\n".join(lines)


def sections_table(rows: list[dict]) -> str:
    lines = [
        "| incidents | stage | function | calls | seconds (inclusive) "
        "| RSS high-water rise MiB (inclusive) |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for row in rows:
        for result in row["stages"]:
            for key, (seconds, calls, rise) in sorted(
                result.get("sections", {}).items(), key=lambda kv: -kv[1][0]
            ):
                lines.append(
                    f"| {row['rows']:,} | {result['stage']} | `{key}` | {calls} | {seconds:.1f} "
                    f"| {rise:.0f} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="incident rows, comma separated")
    parser.add_argument(
        "--named-zone-share",
        type=float,
        default=0.0,
        help="share of started_at/resolved_at written with a trailing zone name (default 0)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per stage")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace (slows stages)")
    parser.add_argument("--sections", action="store_true", help="time the main functions too")
    common.add_run_arguments(parser, Path(__file__).with_name("validate_results.md"), CHILDREN)
    args = parser.parse_args(argv)
    if args.child == "generate":
        print(json.dumps(write_inputs(Path(args.dir), args.rows, args.named_zone_share)))
        return 0
    if args.child:
        print(json.dumps(child(args.child, Path(args.dir), args.tracemalloc, args.sections)))
        return 0

    engine = common.engine()
    load_before = os.getloadavg()[0]
    sizes = common.parse_sizes(args.sizes)
    flags = ["--tracemalloc"] if args.tracemalloc else []
    flags += ["--sections"] if args.sections else []
    rows = []
    began = time.perf_counter()
    for n in sizes:
        with common.scratch_folder(f"whatif-bench-{n}-", args.keep) as folder:
            extra = ["--named-zone-share", str(args.named_zone_share)]
            row = common.generate(__file__, folder, n, args.timeout, extra)
            row["stages"] = []
            for stage in STAGES:
                if stage == "validate" and "summary" not in row["stages"][-1]:
                    row["stages"].append({"stage": stage, "failed": "no extract"})
                    continue
                result = common.run_child(__file__, stage, folder, args.timeout, flags)
                row["stages"].append(result)
                common.progress(common.stage_line(result))
            validation = folder / "work" / "validation.json"
            if validation.exists():
                doc = json.loads(validation.read_text())["inputs"]["incidents"]
                row["quarantined_by_reason"] = doc["quarantined_by_reason"]
                row["rows_used"] = doc["rows_used"]
            rows.append(row)
    total = time.perf_counter() - began

    markdown = table(rows, args.tracemalloc)
    parts = [
        *common.header(
            "whatif benchmark: extract and validate",
            engine,
            ("pandas", "pyarrow", "great_expectations"),
            total,
            included="input generation",
            load_before=load_before,
        ),
        f"- inputs: synthetic {SERVICES}-service topology (bench_simulate.synthetic_topology, "
        f"seeded); incidents in the contract format over {HISTORY_DAYS} days up to "
        f"{AS_OF.date()} (--as-of), ~30 % cascades (70 % of them with caused_by), 2.5 % service "
        f"spelling variants, timestamps 85 % `Z` / 10 % offset / 5 % naive"
        + (
            f" with {args.named_zone_share:.1%} zone-named"
            if args.named_zone_share
            else ", no zone names"
        )
        + ", ~2 % bad rows (below)",
        "- each stage runs in a fresh process; seconds = wall time of the stage's function; peak "
        "RSS = `resource.getrusage(RUSAGE_SELF).ru_maxrss` at its end (whole process: "
        "interpreter, pandas and GX imports included); RSS before stage = the same high-water "
        "mark after the imports",
        "- memory: "
        + (
            "tracemalloc on (its peak is listed; it slows the stages, so the seconds are not "
            "comparable with an untraced run)"
            if args.tracemalloc
            else "tracemalloc off (it does not see the Arrow buffers that hold most of the "
            "data, and slows the per-cell Python code several fold); ru_maxrss only"
        ),
        f"- target (issue): extract + validate of 1,000,000 incidents in ≤ {TARGET_SECONDS:.0f} s "
        f"with peak memory ≤ 2 GB",
        "",
        markdown,
        "",
        "Injected bad rows and what validation made of them:",
        "",
        checks_table(rows),
        "",
    ]
    if args.sections:
        parts += [
            "Inclusive time of the main functions (wrapped from the outside):",
            "",
            sections_table(rows),
            "",
        ]
    report = "\n".join(parts)
    print(markdown)
    Path(args.out).write_text(report)
    common.progress(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
