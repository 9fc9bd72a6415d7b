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
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
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


def run_command(
    argv: Sequence[str],
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    *,
    log: str | Path | None = None,
    stage: str | None = None,
) -> dict:
    """Run a command (any program: the installed CLI, `python -c ...`) as a child process and
    measure it: its wall "seconds", its exit "status" and its own "peak_rss_mib".

    The child is reaped with os.wait4, whose rusage is that child's alone (RUSAGE_CHILDREN
    would mix every child this process has waited for): ru_maxrss (KiB on Linux) is the
    largest RSS of the child and of any process it waited for itself, the whole process
    (interpreter and imports included). Linux starts a child's mark at its parent's high-water
    mark (fork and exec carry it over), so the caller must stay small to measure small
    commands. The wall time runs from just before the fork to the child's exit (seen with
    waitid, before it is reaped), interpreter start included.

    stdout and stderr go to files, `log` + ".stdout" and ".stderr" (temporary ones without
    `log`), not pipes: a command that writes a lot cannot block on a full pipe. The child runs
    in a new session, its own process group; the group is killed (SIGKILL) after `timeout`
    seconds and the result says "killed" (status "killed", killed True), and whatever of the
    group is left when the child exits is killed too, so nothing of it outlives the
    measurement. A failed command comes back with "failed" (its exit status, negative: the
    signal that ended it) and "error" (its last stderr line), as run_child's results do; every
    result has "stage" (`stage`, or the program's name), "argv" and "stderr_tail" (the last 20
    lines of its stderr).
    """
    argv = [str(a) for a in argv]
    name = stage or Path(argv[0]).name
    with tempfile.TemporaryDirectory(prefix="whatif-bench-command-") as scratch:
        base = Path(log) if log is not None else Path(scratch) / "command"
        out_path, err_path = Path(f"{base}.stdout"), Path(f"{base}.stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            began = time.perf_counter()
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
            seconds, status, usage, killed = _measure(child, timeout, began)
        tail = err_path.read_bytes()[-8000:].decode("utf-8", errors="replace").splitlines()
    result = {
        "stage": name,
        "argv": argv,
        "seconds": seconds,
        "status": "killed" if killed else status,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "stderr_tail": tail[-20:],
    }
    if killed:
        result["killed"] = True
    elif status != 0:
        lines = [line for line in tail if line.strip()]
        result["failed"] = status
        result["error"] = lines[-1] if lines else f"exit status {status}"
    return result


def _measure(
    child: subprocess.Popen, timeout: float, began: float
) -> tuple[float, int, resource.struct_rusage, bool]:
    """Wait for the child (killing its group after `timeout` s): wall seconds, exit status,
    its rusage, whether it was killed. The child is left a zombie until its group is dealt
    with, so that its pid, and so its process group's id, cannot be taken by another process
    meanwhile: the kills reach its group and nothing else."""
    lock = threading.Lock()
    exited = False
    killed = False

    def kill() -> None:
        nonlocal killed
        with lock:
            if not exited:
                killed = True
                _kill_group(child.pid)

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        seconds = time.perf_counter() - began
        with lock:
            exited = True
        timer.cancel()
        _kill_group(child.pid)  # what of its group is left
        _, wait_status, usage = os.wait4(child.pid, 0)
    except BaseException:  # interrupted (Ctrl-C): take the command down with us
        timer.cancel()
        _kill_group(child.pid)
        child.wait()
        raise
    status = os.waitstatus_to_exitcode(wait_status)
    child.returncode = status  # reaped here: Popen must not wait for it again
    return seconds, status, usage, killed


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


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


def blast_radius_bfs(root: int, adjacency: list[list[tuple[int, float]]], random) -> int:
    """The plain-Python baselines' cascade (bench_simulate, bench_commands): breadth-first
    from the root, each failed service trying each of its dependents once with the edge's
    probability; how many services failed."""
    failed = {root}
    queue = deque([root])
    while queue:
        for dependent, p in adjacency[queue.popleft()]:
            if dependent not in failed and random() < p:
                failed.add(dependent)
                queue.append(dependent)
    return len(failed)


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
