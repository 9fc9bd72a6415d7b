"""The map of a run folder: every file and folder a run stages or writes, named once.

Stages exchange files in the run's work folder (a local folder, or a copy of object storage:
whatif.workspace); what the stages after them need but nobody reads goes under `_stage/`,
what people read and what is published beside it. Every module asks here for a name, and the
Airflow tasks for the files they copy (`NARRATE_INPUTS`, `ASSEMBLE_INPUTS`).

| path | constant | written by | what it holds |
|---|---|---|---|
| `_stage/` | STAGE_FOLDER | | the work files between stages |
| `_stage/sources.json` | SOURCES_FILE | extract | where the inputs came from, their format |
| `_stage/<table>.raw.parquet` | RAW_FILES | extract | incidents and topology as fetched |
| `_stage/mapping.yaml` | MAPPING_FILE | extract | the column mapping, staged with the data |
| `_stage/run.json` | RUN_FILE | extract | the run's id and date (whatif.runs) |
| `_stage/incidents.parquet` | CLEAN_INCIDENTS_FILE | validate | the validated incidents |
| `_stage/topology.csv` | CLEAN_TOPOLOGY_FILE | validate | the validated topology |
| `_stage/exercises.json` | EXERCISES_FILE | simulate | the exercise log as validated |
| `_stage/scenario_facts.json` | FACTS_FILE | simulate | the selected scenarios' facts |
| `_stage/narration_inputs.json` | NARRATION_INPUTS_FILE | simulate | what narrators use besides |
| `_stage/llm-breaker.json` | BREAKER_FILE | narrate | the circuit breaker's shared count |
| `_stage/narrated/<scenario id>.json` | NARRATED_FOLDER | narrate | one scenario's pack |
| `_stage/previous_readiness.json` | PREVIOUS_READINESS_FILE | report | the last published scores |
| `_stage/previous/` | PREVIOUS_FOLDER | report | the previous run's scenarios.json, model.json |
| `_stage/timings/<stage>[__<part>].json` | TIMINGS_FOLDER | every stage | its duration |
| `validation.json`, `gx_results.json` | VALIDATION_FILE, GX_RESULTS_FILE | validate | checks |
| `quarantine.csv` | QUARANTINE_FILE | validate | rows left out, with the reason |
| `model.json` | MODEL_FILE | fit | the fitted models |
| `quarantine_exercises.csv` | QUARANTINE_EXERCISES_FILE | simulate | exercise rows left out |
| `scenarios.json` | SCENARIOS_FILE | narrate | the contract |
| `readiness.json` | READINESS_FILE | report | readiness scores (with an exercise log) |
| `report.html`, `report.md` | REPORT_HTML_FILE, REPORT_MD_FILE | report | the reports |
| `checklists/<team>.md` | CHECKLISTS_FOLDER | report | a response checklist per team |
| `tabletop/<scenario id>.md` | TABLETOP_FOLDER | report | a facilitator pack per scenario |
| `plots/<picture>.svg` | PLOTS_FOLDER | report | the reports' pictures |

A run publishes ARTIFACTS and the files of ARTIFACT_FOLDERS, never `_stage/`.
"""

from __future__ import annotations

from pathlib import Path

STAGE_FOLDER = "_stage"

# In the stage folder.
SOURCES_FILE = "sources.json"
RAW_FILES = {"incidents": "incidents.raw.parquet", "topology": "topology.raw.parquet"}
MAPPING_FILE = "mapping.yaml"
RUN_FILE = "run.json"
CLEAN_INCIDENTS_FILE = "incidents.parquet"
CLEAN_TOPOLOGY_FILE = "topology.csv"
EXERCISES_FILE = "exercises.json"
FACTS_FILE = "scenario_facts.json"
NARRATION_INPUTS_FILE = "narration_inputs.json"
BREAKER_FILE = "llm-breaker.json"
NARRATED_FOLDER = "narrated"  # one file per scenario, then scenarios.json
PREVIOUS_READINESS_FILE = "previous_readiness.json"
PREVIOUS_FOLDER = "previous"  # the previous run's scenarios.json and model.json
TIMINGS_FOLDER = "timings"

# In the run folder itself.
VALIDATION_FILE = "validation.json"
GX_RESULTS_FILE = "gx_results.json"
QUARANTINE_FILE = "quarantine.csv"
MODEL_FILE = "model.json"
QUARANTINE_EXERCISES_FILE = "quarantine_exercises.csv"
SCENARIOS_FILE = "scenarios.json"
READINESS_FILE = "readiness.json"
REPORT_HTML_FILE = "report.html"
REPORT_MD_FILE = "report.md"
CHECKLISTS_FOLDER = "checklists"
TABLETOP_FOLDER = "tabletop"
PLOTS_FOLDER = "plots"

# What a run publishes: these files when it has them, then the files of these folders.
ARTIFACTS = (
    REPORT_HTML_FILE,
    REPORT_MD_FILE,
    SCENARIOS_FILE,
    MODEL_FILE,
    VALIDATION_FILE,
    GX_RESULTS_FILE,
    QUARANTINE_FILE,
    READINESS_FILE,
    QUARANTINE_EXERCISES_FILE,
)
EXPERIMENTS_FOLDER = "experiments"  # chaos experiments per format, and their index
EXPERIMENTS_INDEX_FILE = "index.json"  # in EXPERIMENTS_FOLDER (whatif.gameday.export)
ARTIFACT_FOLDERS = (CHECKLISTS_FOLDER, TABLETOP_FOLDER, PLOTS_FOLDER, EXPERIMENTS_FOLDER)


def _staged(name: str) -> str:
    """A stage file's name relative to the run folder, as a workspace's `only` takes it (a
    folder's ends in "/")."""
    return f"{STAGE_FOLDER}/{name}"


# What a mapped narrate task copies of the run (not the incidents or the model).
NARRATE_INPUTS = (_staged(FACTS_FILE), _staged(NARRATION_INPUTS_FILE), _staged(BREAKER_FILE))
# What assemble_narration copies: those, the narrated scenarios, the timings and the run's id.
ASSEMBLE_INPUTS = (
    *NARRATE_INPUTS,
    _staged(f"{NARRATED_FOLDER}/"),
    _staged(f"{TIMINGS_FOLDER}/"),
    _staged(RUN_FILE),
)


def stage_path(workdir: Path, *parts: str) -> Path:
    """A file or folder of the run's stage folder (which may not exist yet)."""
    return Path(workdir, STAGE_FOLDER, *parts)


def stage_folder(workdir: Path) -> Path:
    """The run's stage folder, made when missing."""
    folder = stage_path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def narrated_path(workdir: Path, scenario_id: str) -> Path:
    """The file of one narrated scenario."""
    return stage_path(workdir, NARRATED_FOLDER, f"{scenario_id}.json")


def breaker_path(workdir: Path) -> Path:
    """The LLM circuit breaker's state, shared by the run's narrate tasks."""
    return stage_path(workdir, BREAKER_FILE)


def timing_path(workdir: Path, stage: str, part: str | None = None) -> Path:
    """The duration record of a stage, or of one part of a mapped stage."""
    return stage_path(workdir, TIMINGS_FOLDER, f"{stage}__{part}.json" if part else f"{stage}.json")
