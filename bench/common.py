"""The measuring part of the benchmarks: each one generates its inputs (generate.py, with
whatif.synthetic), measures commands here, and writes a results file (report.py).

Running a stage in a fresh Python process with a timeout and reading back its result (killed
and failed stages included), the generator run the same way, temporary input folders, and the
command-line options they share. Kept in one place so that a fix to how a stage is run reaches
every benchmark at once.

Only the standard library is imported at module level: the child processes measure their memory
high-water mark after their imports, and this module must not add to it.
"""

from __future__ import annotations

import argparse
import json
import resource
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
GENERATE = Path(__file__).resolve().with_name("generate.py")

# The window of the synthetic histories: HISTORY_DAYS days up to AS_OF (the engine's --as-of),
# one definition for the benchmarks (generate.py draws them), whose results files quote it.
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
HISTORY_DAYS = 730

# --------------------------------------------------------------------------- command line


def parse_sizes(text: str) -> list[int]:
    """`--sizes` as integers: comma separated, `_` allowed as a digit separator (1_000_000)."""
    return [int(s.replace("_", "")) for s in text.split(",") if s.strip()]


def add_run_arguments(parser: argparse.ArgumentParser, out: Path, children: Sequence[str]) -> None:
    """--keep, --out and the hidden options by which a script runs itself as a child process
    (`--child KIND --dir FOLDER`): each stage gets its own process, see run_child."""
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--out", default=str(out))
    parser.add_argument("--child", choices=children, help=argparse.SUPPRESS)
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
    return _run(command, kind, timeout)


def _run(command: list[str], stage: str, timeout: float) -> dict:
    began = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"stage": stage, "killed": True, "seconds": time.perf_counter() - began}
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        lines = done.stderr.strip().splitlines()
        return {
            "stage": stage,
            "failed": done.returncode,
            "error": lines[-1] if lines else f"exit status {done.returncode}",
            "seconds": time.perf_counter() - began,
        }
    return json.loads(done.stdout.strip().splitlines()[-1])


def generate(kind: str, folder: Path, timeout: float, extra: Sequence[str] = ()) -> dict:
    """Write a benchmark's inputs into folder (`generate.py kind --dir folder [extra]`, in a
    child process too, so that the parent's RSS stays small) and return what it reports; stops
    the run if it fails, as nothing can be measured without inputs."""
    progress(f"[{kind}] writing inputs to {folder} ...")
    began = time.perf_counter()
    command = [sys.executable, str(GENERATE), kind, "--dir", str(folder), *extra]
    facts = _run(command, "generate", timeout)
    if "error" in facts or facts.get("killed"):
        raise SystemExit(f"generating the inputs ({kind} {' '.join(extra)}): {facts}")
    progress(f"  {facts.get('summary', '')} in {time.perf_counter() - began:.1f} s")
    return facts


def quantiles(values, qs=(50, 90, 99)) -> dict[str, float]:
    """{"p50": ..., "p90": ...} of values (numpy is imported here only when called)."""
    import numpy as np

    return {f"p{q}": float(v) for q, v in zip(qs, np.percentile(values, qs), strict=True)}


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
