"""What the three benchmarks (bench_simulate, bench_validate, bench_fit) share.

One copy of the machinery around the measurements: running a stage in a fresh Python process
and reading back its result, formatting result cells, and the header lines every results
file opens with (date, machine, versions, engine commit, command, wall time, load average).
Kept in one place so that the three results files describe a run the same way and a fix to
how a stage is run or reported reaches every benchmark at once.

Only the standard library is imported at module level: the child processes measure their memory
high-water mark after their imports, and this module must not add to it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The window of the synthetic histories: HISTORY_DAYS days up to AS_OF (the engine's --as-of),
# one definition for the three benchmarks, whose results files quote it.
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
HISTORY_DAYS = 730

# Texts of the synthetic incidents (bench_validate and bench_fit add a few of their own).
TITLES = (
    "CPU saturation at peak traffic",
    "replication lag growing",
    "elevated 5xx after release",
    "connection pool exhausted",
    "DNS resolution failures",
    "certificate expired on internal endpoint",
    "disk full on primary node",
    "latency regression after config change",
    "queue backlog growing",
    "memory leak in worker pods",
)
DESCRIPTIONS = (
    "Pods hit their CPU limits at peak and latency climbed. Scaled out manually and raised "
    "the autoscaler ceiling.",
    "A heavy batch job caused write amplification; replication fell minutes behind. The job "
    "was paused and rescheduled off-peak.",
    "A release changed the retry policy; error rates rose until the rollout was rolled back.",
    "Connections were not returned to the pool under a slow dependency; requests queued and "
    "timed out.",
    "Resolver timeouts in one zone; traffic was shifted to the other zones while the resolver "
    "was restarted.",
)


# --------------------------------------------------------------------------- command line


def parse_sizes(text: str) -> list[int]:
    """`--sizes` as integers: comma separated, `_` allowed as a digit separator (1_000_000)."""
    return [int(s.replace("_", "")) for s in text.split(",") if s.strip()]


def add_run_arguments(parser: argparse.ArgumentParser, out: Path, children: Sequence[str]) -> None:
    """--keep, --out and the hidden options by which a script runs itself as a child process
    (`--child KIND --dir FOLDER [--rows N]`): each stage gets its own process, see run_child."""
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--out", default=str(out))
    parser.add_argument("--child", choices=children, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)


def progress(text: str) -> None:
    """A progress line on stderr, flushed at once: stdout carries the table (and, in a child,
    the JSON result the parent reads)."""
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- child processes


def max_rss_mib() -> float:
    """This process's RSS high-water mark in MiB (ru_maxrss, KiB on Linux): the whole process,
    interpreter and imports included, as a task's memory limit would see it."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def vm_hwm_mib() -> float | None:
    """The kernel's RSS high-water mark of this process's memory map (Linux; a cross-check
    of ru_maxrss, which also counts the memory map a forked process started from)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_child(
    script: str, kind: str, folder: Path, timeout: float, extra: Sequence[str] = ()
) -> dict:
    """Run `script --child kind --dir folder [extra]` in a fresh process and return the JSON
    object it prints last.

    A fresh process gives each stage its own memory high-water mark, as an Airflow task has
    (and a fork of this small parent: Linux carries the parent's ru_maxrss into the child's,
    so the parent holds no data). A stage still running after `timeout` seconds is killed and
    comes back as {"killed": True}; one that fails comes back as {"failed": exit status,
    "error": its last stderr line} after the tail of its stderr is echoed. Both carry "stage"
    and the wall "seconds", so that the report can say what happened instead of crashing.
    """
    command = [sys.executable, script, "--child", kind, "--dir", str(folder), *extra]
    began = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"stage": kind, "killed": True, "seconds": time.perf_counter() - began}
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        lines = done.stderr.strip().splitlines()
        return {
            "stage": kind,
            "failed": done.returncode,
            "error": lines[-1] if lines else f"exit status {done.returncode}",
            "seconds": time.perf_counter() - began,
        }
    return json.loads(done.stdout.strip().splitlines()[-1])


def generate(script: str, folder: Path, n: int, timeout: float, extra: Sequence[str]) -> dict:
    """Write the inputs for n incidents into folder (`script --child generate`, in a child
    process too, so that the parent's RSS stays small) and return what the child reports;
    stops the run if it fails, as nothing can be measured without inputs."""
    progress(f"[{n:,} incidents] writing inputs to {folder} ...")
    began = time.perf_counter()
    row = run_child(script, "generate", folder, timeout, ["--rows", str(n), *extra])
    if "rows" not in row:
        raise SystemExit(f"generating {n:,} incidents: {row}")
    progress(
        f"  {row['rows']:,} rows, {row['bytes'] / 2**20:.0f} MiB in "
        f"{time.perf_counter() - began:.1f} s"
    )
    return row


@contextmanager
def scratch_folder(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary folder for one size's inputs and work files, removed afterwards (they can
    be gigabytes) unless `keep` (--keep, to look at them)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if keep:
            progress(f"  kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- report cells


def cell(result: dict, key: str, fmt: str) -> str:
    """One figure of a child's result for a table, or why there is none: a killed stage shows
    how long it ran before it was killed, a failed one "failed", a missing figure "n/a"."""
    if result.get("killed"):
        return f"> {result['seconds']:.0f} s, killed" if key == "seconds" else "n/a"
    if result.get("failed") is not None:
        return "failed"
    value = result.get(key)
    return "n/a" if value is None else format(value, fmt)


def stage_line(result: dict) -> str:
    """The progress line of a finished stage: its time and peak RSS, or what went wrong."""
    stage = result["stage"]
    if result.get("killed"):
        return f"  {stage}: killed after {result['seconds']:.0f} s"
    if "error" in result:
        return f"  {stage}: failed ({result['error']})"
    return (
        f"  {stage}: {cell(result, 'seconds', '.1f')} s, "
        f"peak RSS {cell(result, 'peak_rss_mib', '.0f')} MiB"
    )


# --------------------------------------------------------------------------- report header


def machine() -> dict[str, str]:
    """What the times depend on: cores, CPU model, platform and RAM."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "platform": platform.platform(),
        "ram": f"{ram:.0f} GiB RAM",
    }


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout


def engine() -> str:
    """Which whatif the stages import (PYTHONPATH decides): this repository's plugins/whatif at
    its commit, with the files that have uncommitted changes named, or another copy's path.
    Call it before the run, in case the tree moves meanwhile."""
    import whatif

    here = Path(whatif.__file__).resolve().parent
    if here != ROOT / "plugins" / "whatif":
        return f"whatif imported from {here} (not this repository's plugins/whatif)"
    try:
        commit = _git("log", "-1", "--format=%h %s").strip()
        changed = _git("status", "--porcelain", "--", "plugins/whatif").splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    names = [line[3:].removeprefix("plugins/whatif/") for line in changed if line.strip()]
    return f"commit {commit}" + (f" + uncommitted changes to {', '.join(names)}" if names else "")


def _display_path(path: str) -> str:
    """A path as a user would type it: relative when under the working directory."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def command_line() -> str:
    """The command that ran this benchmark, PYTHONPATH included, as it could be pasted again."""
    pythonpath = os.environ.get("PYTHONPATH", "plugins")
    return " ".join(
        shlex.quote(a)
        for a in [
            "PYTHONPATH=" + os.pathsep.join(map(_display_path, pythonpath.split(os.pathsep))),
            _display_path(sys.executable),
            *sys.argv,
        ]
    )


def header(
    title: str,
    engine: str,
    packages: Sequence[str],
    total: float,
    *,
    included: str = "",
    load_before: float | None = None,
    load_note: str = "",
) -> list[str]:
    """The lines a results file opens with: what was measured, when, where, with which
    versions, engine and command, and how long it took, so that a result can be reproduced
    and compared with another. `packages` are the modules whose versions matter (after
    Python's); `included` says what the wall time includes besides the stages; with
    `load_before` (the 1-minute load average at the start) the load before and after is
    given, as the cores may be shared with other work; `load_note` adds to its explanation."""
    info = machine()
    versions = ", ".join(f"{name} {importlib.import_module(name).__version__}" for name in packages)
    wall = f"- total wall time: {total:.0f} s" + (f" ({included} included)" if included else "")
    if load_before is not None:
        wall += (
            f"; 1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
            f"(the {info['nproc']} cores are shared: the benchmark's own process adds ~1 while "
            f"it runs, so a load well above 1 means other processes competed for them"
            f"{load_note})"
        )
    return [
        f"# {title}",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: nproc {info['nproc']}, {info['cpu']}, {info['platform']}, {info['ram']}",
        f"- python {platform.python_version()}, {versions}",
        f"- engine: {engine}",
        f"- command: `{command_line()}`",
        wall,
    ]
