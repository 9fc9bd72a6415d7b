"""The reporting part of the benchmarks: the cells of their results tables and the header
lines every results file opens with (date, machine, versions, engine commit, command, wall time
and load average), so that the results files describe a run the same way and a result can be
reproduced and compared with another.

Only the standard library at module level, as in common.py.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from common import ROOT, progress


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


def verdict(ok: bool | None) -> str:
    """A target's verdict: "meets", "misses", or "n/a" (None: not measured)."""
    return "n/a" if ok is None else ("meets" if ok else "misses")


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is not
    positive (a failed or killed measurement has no figure)."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


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


def engine_digest() -> str:
    """A digest of the engine's source files (sha256 of plugins/whatif/**/*.py, first 12): the
    engine may be edited while a benchmark runs (its stages run in separate processes, each
    importing what is there then); compare the digests taken before and after."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "plugins" / "whatif").rglob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


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


def write(out: str | Path, text: str) -> None:
    """The results file, and where it went (on stderr)."""
    Path(out).write_text(text)
    progress(f"written: {out}")
