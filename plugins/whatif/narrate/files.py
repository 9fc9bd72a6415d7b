"""The narration's files in a run folder (whatif.runfolder): the scenarios' facts and the
narration inputs the simulate stage wrote are read; each scenario is narrated into its own
file, so that a mapped Airflow task per scenario writes only its own; `assemble` makes
scenarios.json of them. The LLM circuit breaker's count is a file too, shared by the tasks.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from whatif import runfolder, runs
from whatif.config import RunConfig
from whatif.llm import ChatClient, CircuitBreaker
from whatif.narrate.llm_narrator import make_client
from whatif.narrate.scenarios import narrate, narrate_one, scenarios_document


def scenario_ids(workdir: Path) -> list[str]:
    """The ids of the selected scenarios, in report order (what the DAG maps over)."""
    return [scenario["id"] for scenario in _facts(workdir)["scenarios"]]


def reset(workdir: Path) -> None:
    """Before (re-)narrating a run: forget earlier narrated files and the breaker's count
    (written as zero, so that object storage gets it too), so that a re-run starts like the
    first run; the response cache still saves its calls."""
    folder = runfolder.stage_path(workdir, runfolder.NARRATED_FOLDER)
    if folder.exists():
        for path in folder.iterdir():
            path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    CircuitBreaker(state=str(runfolder.breaker_path(workdir))).success()


def narrate_scenario_file(
    workdir: Path,
    scenario_id: str,
    config: RunConfig,
    client: ChatClient | None = None,
) -> Path:
    """Narrate one scenario of the run into its own file (a mapped task's whole work)."""
    facts = {scenario["id"]: scenario for scenario in _facts(workdir)["scenarios"]}[scenario_id]
    inputs = _inputs(workdir)
    if client is None:
        client = make_client(config, breaker_state=str(runfolder.breaker_path(workdir)))
    return _write_narrated(workdir, narrate_one(facts, inputs, client))


def narrate_all(workdir: Path, config: RunConfig, client: ChatClient | None = None) -> Path:
    """Every scenario of the run, up to max_concurrency at once; then scenarios.json."""
    reset(workdir)
    if client is None:
        client = make_client(config, breaker_state=str(runfolder.breaker_path(workdir)))
    narrated = narrate(_facts(workdir)["scenarios"], _inputs(workdir), config, client)
    for scenario in narrated:
        _write_narrated(workdir, scenario)
    return assemble(workdir, config)


def assemble(workdir: Path, config: RunConfig) -> Path:
    """scenarios.json (the contract) from the narrated files, in report order, with the
    narration summed up and the run's identity as recorded when it started (so that
    re-narrating keeps it, and publishing lands in the same run folder)."""
    facts = _facts(workdir)
    inputs = _inputs(workdir)
    narrated = []
    for scenario in facts["scenarios"]:
        path = runfolder.narrated_path(workdir, scenario["id"])
        if not path.exists():
            raise FileNotFoundError(f"{path}: scenario {scenario['id']} was not narrated")
        narrated.append(json.loads(path.read_text(encoding="utf-8")))
    document = scenarios_document(
        narrated,
        facts["simulation"],
        inputs["model_inputs"],
        config,
        datetime.fromisoformat(inputs["as_of"]),
        runs.recorded(runfolder.stage_path(workdir, runfolder.RUN_FILE)),
    )
    from whatif.report import write_json

    return write_json(Path(workdir) / runfolder.SCENARIOS_FILE, document.model_dump())


def _facts(workdir: Path) -> dict[str, Any]:
    """The simulate stage's scenario facts (the scenarios and the simulation's settings)."""
    path = runfolder.stage_path(workdir, runfolder.FACTS_FILE)
    return json.loads(path.read_text(encoding="utf-8"))


def _inputs(workdir: Path) -> dict[str, Any]:
    path = runfolder.stage_path(workdir, runfolder.NARRATION_INPUTS_FILE)
    return json.loads(path.read_text(encoding="utf-8"))


def _write_narrated(workdir: Path, scenario: dict[str, Any]) -> Path:
    path = runfolder.narrated_path(workdir, scenario["id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scenario, indent=1, sort_keys=True), encoding="utf-8")
    return path
