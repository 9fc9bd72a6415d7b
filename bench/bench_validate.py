"""Benchmark of the whatif extract and validate stages on a large synthetic incident export.

Not a test: it asserts nothing about time. For each size bench/generate.py writes, into a
temporary folder, a synthetic 300-service topology (whatif.synthetic's layered DAG) and an
incident CSV in the data contract's format with a realistic mix of spellings, timestamp
formats and vocabularies and ~2 % bad rows of several kinds, then runs each stage in a fresh
Python process (so that each has its own memory high-water mark, as an Airflow task would):

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
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import report
from common import AS_OF, HISTORY_DAYS
from report import cell

TARGET_SECONDS = 60.0
TARGET_MIB = 2048.0
STAGES = ("load_incidents", "extract", "validate")
CHILDREN = STAGES

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
    if args.child:
        print(json.dumps(child(args.child, Path(args.dir), args.tracemalloc, args.sections)))
        return 0

    engine = report.engine()
    load_before = os.getloadavg()[0]
    sizes = common.parse_sizes(args.sizes)
    flags = ["--tracemalloc"] if args.tracemalloc else []
    flags += ["--sections"] if args.sections else []
    rows = []
    began = time.perf_counter()
    for n in sizes:
        with common.scratch_folder(f"whatif-bench-{n}-", args.keep) as folder:
            extra = ["--rows", str(n), "--named-zone-share", str(args.named_zone_share)]
            row = common.generate("validate", folder, args.timeout, extra)
            row["stages"] = []
            for stage in STAGES:
                if stage == "validate" and "summary" not in row["stages"][-1]:
                    row["stages"].append({"stage": stage, "failed": "no extract"})
                    continue
                result = common.run_child(__file__, stage, folder, args.timeout, flags)
                row["stages"].append(result)
                common.progress(report.stage_line(result))
            validation = folder / "work" / "validation.json"
            if validation.exists():
                doc = json.loads(validation.read_text())["inputs"]["incidents"]
                row["quarantined_by_reason"] = doc["quarantined_by_reason"]
                row["rows_used"] = doc["rows_used"]
            rows.append(row)
    total = time.perf_counter() - began

    # report
    markdown = table(rows, args.tracemalloc)
    parts = [
        *report.header(
            "whatif benchmark: extract and validate",
            engine,
            ("pandas", "pyarrow", "great_expectations"),
            total,
            included="input generation",
            load_before=load_before,
        ),
        f"- inputs (bench/generate.py, whatif.synthetic, seeded): a {rows[0]['services']}-service "
        f"layered topology (`layered_topology`); incidents (`fleet_history`) in the contract "
        f"format over {HISTORY_DAYS} days up to {AS_OF.date()} (--as-of), ~30 % cascades (70 % "
        f"of them with caused_by), 2.5 % service spelling variants, timestamps 85 % `Z` / 10 % "
        f"offset / 5 % naive"
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
    print(markdown)
    report.write(args.out, "\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
