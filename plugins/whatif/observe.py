"""Observability: each stage's duration, a run summary, log lines that carry the run and
scenario ids, and the text of alerts. Plain Python: the DAG and the CLI call it.

Stage durations are kept as one small file per task under `_stage/timings/` (a mapped
narration task writes its own, so parallel tasks never write the same file; with an
object-storage work folder they travel like the other work files).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from whatif import runfolder

STAGES = (  # the pipeline's order, for the summary
    "extract", "validate", "fit", "simulate", "narrate", "assemble_narration", "report",
    "publish",
)  # fmt: skip


class RunLog(logging.LoggerAdapter):
    """Log lines ending in `[run_id=… stage=… scenario_id=…]`, the same fields also as
    record attributes, so that a line found in any log leads back to its run and scenario."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        fields = " ".join(f"{k}={v}" for k, v in self.extra.items() if v is not None)
        kwargs.setdefault("extra", {}).update(self.extra)
        return f"{msg} [{fields}]", kwargs


def run_log(run_id: str | None, stage: str, scenario_id: str | None = None) -> RunLog:
    return RunLog(
        logging.getLogger("whatif.run"),
        {"run_id": run_id, "stage": stage, "scenario_id": scenario_id},
    )


@contextlib.contextmanager
def stage(
    workdir: Path, name: str, run_id: str | None = None, part: str | None = None
) -> Iterator[RunLog]:
    """Time a stage (or one part of a mapped stage), log its start and end, and record its
    duration in the work folder, also when it fails."""
    log = run_log(run_id, name, part)
    log.info("%s started", name)
    began = time.perf_counter()
    outcome = "failed"
    try:
        yield log
        outcome = "done"
    finally:
        seconds = time.perf_counter() - began
        file = runfolder.timing_path(workdir, name, part)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps({"stage": name, "part": part, "seconds": round(seconds, 3),
                                    "outcome": outcome}))  # fmt: skip
        log.info("%s %s in %.1f s", name, outcome, seconds)


def run_summary(workdir: Path) -> dict[str, Any]:
    """What a run did, in numbers: inputs, quarantined rows, scenarios, the narration (LLM
    calls, fallbacks, tokens) and each stage's duration (a mapped stage: its tasks' total and
    longest)."""
    workdir = Path(workdir)
    summary: dict[str, Any] = {"inputs": {}, "scenarios": None, "narration": None, "stages": {}}
    validation = _json(workdir / runfolder.VALIDATION_FILE)
    if validation:
        for name, facts in validation["inputs"].items():
            summary["inputs"][name] = {
                key: facts.get(key) for key in ("rows_read", "rows_used", "rows_quarantined")
            }
    scenarios = _json(workdir / runfolder.SCENARIOS_FILE)
    if scenarios:
        summary["scenarios"] = len(scenarios["scenarios"])
        narration = scenarios.get("narration") or {}
        summary["narration"] = {
            key: narration.get(key)
            for key in ("narrator", "llm_scenarios", "fallbacks", "fallback_reasons", "calls",
                        "cached", "prompt_tokens", "completion_tokens", "latency_s")
        }  # fmt: skip
    timings = runfolder.stage_path(workdir, runfolder.TIMINGS_FOLDER)
    records = [json.loads(f.read_text()) for f in timings.glob("*.json")]
    order = {name: k for k, name in enumerate(STAGES)}
    for record in sorted(records, key=lambda r: (order.get(r["stage"], len(order)), r["stage"])):
        entry = summary["stages"].setdefault(
            record["stage"], {"seconds": 0.0, "tasks": 0, "longest": 0.0}
        )
        entry["seconds"] = round(entry["seconds"] + record["seconds"], 3)
        entry["tasks"] += 1
        entry["longest"] = max(entry["longest"], record["seconds"])
    return summary


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def inert_text(text: str) -> str:
    """Text with &, < and > as entities: inert in Markdown (which passes raw HTML through)
    and in chat posts (Slack's control characters)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_message(
    what: str, dag_id: str, run_id: str | None, detail: str | None, url: str | None
) -> dict[str, str]:
    """A chat post ({"text": ...}: Slack, Mattermost, Teams, Google Chat webhooks) about a run
    that failed or overran; <, > and & escaped (Slack's control characters)."""
    inert = inert_text
    lines = [f":rotating_light: {inert(dag_id)}: {inert(what)}"]
    if run_id:
        lines.append(f"run: {inert(run_id)}")
    if detail:
        lines.append(inert(detail[:500]))
    if url:
        lines.append(f"logs: {url}")
    return {"text": "\n".join(lines)}
