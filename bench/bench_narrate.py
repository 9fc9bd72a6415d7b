"""Benchmark of the narrate stage through the CLI against a slow LLM server.

Not a test: it asserts nothing about time. It writes the facts of 40 scenarios with
`whatif run --scenarios 40` on the sample data (template narrator, not timed), starts the
loopback LLM server of the tests (tests/llm_servers.py: the real OpenAI chat-completions API,
a grounded answer after --latency seconds per request, counting the requests in flight), and
times, as a user would see them (wall clock of the whole command, interpreter start included):

- cold:   `whatif narrate DIR --narrator openai ... --llm-max-concurrency 8` with an empty
          response cache: 40 calls, at most 8 at once; the ideal is ceil(40 / 8) x latency;
- rerun:  the same command again: every answer from the cache, no call.

    PYTHONPATH=plugins .venv/bin/python bench/bench_narrate.py [--scenarios 40]
        [--concurrency 8] [--latency 1.0] [--out bench/narrate_results.md]

Targets (from the issue): the cold run within 1.3x the ideal (6.5 s for 40 scenarios at 1 s
and concurrency 8) and 0 calls on the rerun.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import report

ROOT = common.ROOT
sys.path.insert(0, str(ROOT / "tests"))
from fakes.llm_servers import llm_server  # noqa: E402

TARGET_FACTOR = 1.3


def run(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "narrate_results.md")
    args = parser.parse_args()
    engine = report.engine()
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    env.pop("WHATIF_LLM_API_KEY", None)
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="whatif-bench-narrate-") as scratch:
        folder, cache = Path(scratch) / "run", Path(scratch) / "cache"
        common.progress(f"[facts] whatif run --scenarios {args.scenarios} (template, not timed)")
        run(
            [python, "-m", "whatif", "run", "--incidents", "include/data/incidents.csv",
             "--topology", "include/data/topology.csv", "--out", str(folder),
             "--scenarios", str(args.scenarios), "--draws", "1000"],
            env,
        )  # fmt: skip
        with llm_server(latency=args.latency) as server:
            command = [
                python, "-m", "whatif", "narrate", str(folder), "--narrator", "openai",
                "--llm-url", f"{server.url}/v1", "--llm-model", "bench",
                "--llm-max-concurrency", str(args.concurrency), "--llm-cache", str(cache),
            ]  # fmt: skip
            common.progress("[cold] whatif narrate, empty cache ...")
            cold_s, cold = run(command, env)
            cold_calls, most = len(server.chat_requests()), server.most_in_flight
            summary = json.loads((folder / "scenarios.json").read_text())["narration"]
            common.progress("[rerun] whatif narrate again ...")
            rerun_s, rerun = run(command, env)
            rerun_calls = len(server.chat_requests()) - cold_calls
            rerun_summary = json.loads((folder / "scenarios.json").read_text())["narration"]
        common.progress("[startup] whatif --version (interpreter and CLI import) ...")
        startup_s, _ = run([python, "-m", "whatif", "--version"], env)
    ideal = math.ceil(args.scenarios / args.concurrency) * args.latency
    lines = report.header(
        "whatif benchmark: narrate",
        engine,
        ["pydantic", "requests"],
        time.perf_counter() - began,
        included="the untimed run that writes the facts",
        load_before=load_before,
    )
    verdict = "**meets**" if cold_s <= TARGET_FACTOR * ideal else "**misses**"
    lines += [
        f"- workload: {args.scenarios} scenarios of the sample data (`whatif run --scenarios "
        f"{args.scenarios}`), narrated through the CLI by the OpenAI-compatible loopback server "
        f"of the tests (tests/llm_servers.py), {args.latency:g} s per answer, "
        f"`--llm-max-concurrency {args.concurrency}`",
        f"- targets (issue): within {TARGET_FACTOR:g}x the ideal {ideal:g} s "
        f"(ceil({args.scenarios} / {args.concurrency}) x {args.latency:g} s), and 0 calls when "
        "run again",
        "",
        "| measurement | figure | target |",
        "|---|---|---|",
        f"| cold: `whatif narrate` with an empty cache, wall clock of the command | "
        f"**{cold_s:.2f} s** ({cold_s / ideal:.2f}x the ideal) | ≤ {TARGET_FACTOR * ideal:.1f} s: "
        f"{verdict} |",
        f"| calls made / most in flight at once | {cold_calls} / {most} | |",
        f"| scenarios written by the LLM / fallbacks | {summary['llm_scenarios']} / "
        f"{summary['fallbacks']} | |",
        f"| tokens (the server's usage) | {summary['prompt_tokens']:,} prompt + "
        f"{summary['completion_tokens']:,} completion | |",
        f"| rerun: the same command again | **{rerun_s:.2f} s**, **{rerun_calls} calls**, "
        f"{rerun_summary['cached']} answers from the cache | 0 calls: "
        f"{'**meets**' if rerun_calls == 0 else '**misses**'} |",
        f"| of which the interpreter start and CLI import (`whatif --version`) | "
        f"{startup_s:.2f} s | |",
        "",
        "The cold run's time over the ideal is the interpreter start and CLI import (above), "
        "reading the run's facts, building 40 prompts, checking 40 answers against the schema "
        "and the facts (grounding) and writing scenarios.json.",
        "",
        f"cold run's output: `{cold.stdout.strip()}`",
        "",
        f"rerun's output: `{rerun.stdout.strip()}`",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines[-16:]))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
