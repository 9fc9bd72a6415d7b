"""The pipeline's stages as functions over a work folder; the DAG tasks and the CLI call these.

Each stage reads what the previous one wrote into `workdir` and writes its own outputs there,
so that Airflow tasks pass only paths through XCom and any stage can be re-run alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from whatif import (
    changes,
    ingest,
    mappings,
    model,
    narrate,
    observe,
    publish,
    readiness,
    report,
    resources,
    runfolder,
    runs,
    simulate,
    sources,
    validate,
)
from whatif.config import ModelSettings, RunConfig
from whatif.errors import UserError
from whatif.schemas import INCIDENT_OPTIONAL, INCIDENT_REQUIRED, ModelDoc, ScenariosDoc
from whatif.topology import Topology

log = logging.getLogger(__name__)

# Rows of the quarantine files end in CRLF (RFC 4180, as spreadsheets write): the CSV writer
# then quotes a cell holding a lone CR, which with LF endings it leaves bare and every reader
# takes for the end of the row.
QUARANTINE_EOL = "\r\n"


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Where the incidents and the topology come from.

    Files are local paths or ObjectStoragePath URLs (`conn_id` names the connection for
    s3:// and the like); `sql` runs the package's sql/extract_*.sql (WHATIF_SQL_DIR
    overrides) instead, for incidents and, with `topology_from_sql`, the topology too."""

    incidents: str | None = None
    topology: str | None = None
    mapping: str | None = None
    aliases: str | None = None
    conn_id: str | None = None
    sql: sources.Fetch | None = None
    sql_display: str = "database"
    topology_from_sql: bool = False
    # What messages call a file, when not its path ("backstage https://...": an import).
    displays: Mapping[str, str] = dataclasses.field(default_factory=dict)


def _window(as_of: datetime, history_days: int) -> dict[str, datetime]:
    return {"window_start": as_of - timedelta(days=history_days), "window_end": as_of}


def _fetch_raw(inputs: Inputs, name: str, params: dict[str, Any]) -> tuple[Any, str, bool]:
    """The raw table for `incidents` or `topology`, the name messages should use, and whether
    it came from SQL."""
    from_sql = inputs.sql is not None and (name == "incidents" or inputs.topology_from_sql)
    if from_sql:
        query = resources.folder("sql") / f"extract_{name}.sql"
        display = f"{inputs.sql_display} ({query.name})"
        return sources.read_sql(query, inputs.sql, params, display), display, True
    location = inputs.incidents if name == "incidents" else inputs.topology
    if not location:
        raise UserError(f"no {name} source given", hint=f"pass --{name} PATH or a SQL source")
    display = inputs.displays.get(name, location)
    return sources.read_table(location, inputs.conn_id), display, False


def extract(inputs: Inputs, workdir: Path, as_of: datetime, history_days: int) -> dict[str, Any]:
    """Fetch both inputs (files, object storage or SQL) into the work folder and check their
    format, failing fast with the user's own file name; later stages read only the copy."""
    stage = runfolder.stage_folder(workdir)
    params = _window(as_of, history_days)
    described: dict[str, Any] = {}
    mapping = None
    if inputs.mapping:  # staged with the data: the validating worker may not have the file
        mappings.load(inputs.mapping)  # checked first, so that its errors name the user's file
        mapping = stage / runfolder.MAPPING_FILE
        mapping.write_bytes(mappings.locate(inputs.mapping).read_bytes())
    for name in ("incidents", "topology"):
        raw, display, from_sql = _fetch_raw(inputs, name, params)
        if name == "incidents":  # the format only: a few rows show it (validate reads all)
            table = ingest.incidents_table(raw.head(100), display, mapping and str(mapping))
        else:
            table = ingest.topology_table(raw, display)
        raw.to_parquet(stage / runfolder.RAW_FILES[name], index=False)
        described[name] = {
            "path": display,
            "format": table.format,
            "rows": len(raw),
            "mapping": inputs.mapping if name == "incidents" else None,
            "staged_mapping": mapping.name if mapping and name == "incidents" else None,
            # The query asked the database for the whole window: the history covers it.
            "covers_from": params["window_start"].isoformat() if from_sql else None,
        }
    described["aliases"] = validate.read_aliases(inputs.aliases) if inputs.aliases else {}
    report.write_json(stage / runfolder.SOURCES_FILE, described)
    del raw, table
    release_memory()
    return {k: v for k, v in described.items() if k != "aliases"}


def _load_sources(workdir: Path) -> tuple[ingest.Table, ingest.Table, dict[str, Any]]:
    stage = runfolder.stage_folder(workdir)
    described = json.loads((stage / runfolder.SOURCES_FILE).read_text())
    staged_mapping = described["incidents"]["staged_mapping"]
    incidents = ingest.incidents_table(
        pd.read_parquet(stage / runfolder.RAW_FILES["incidents"]),
        described["incidents"]["path"],
        str(stage / staged_mapping) if staged_mapping else None,
    )
    topology = ingest.topology_table(
        pd.read_parquet(stage / runfolder.RAW_FILES["topology"]), described["topology"]["path"]
    )
    return incidents, topology, described


def run_validation(
    workdir: Path, as_of: datetime, history_days: int, allow_external: bool = False
) -> dict[str, Any]:
    """Validate the staged inputs; write validation.json, quarantine.csv and the clean tables.
    `allow_external`: dependencies without a row of their own are external services."""
    incidents, topology, described = _load_sources(workdir)
    try:
        result = validate.validate(
            incidents, topology, as_of, history_days, described["aliases"], allow_external
        )
    except UserError as error:
        _write_stopped(Path(workdir), error, as_of)
        raise
    covers_from = described["incidents"].get("covers_from")
    if covers_from:  # a SQL source returns only the window: its history starts no later
        inputs_report = result.report["inputs"]["incidents"]
        inputs_report["data_start"] = min(filter(None, (inputs_report["data_start"], covers_from)))
    workdir = Path(workdir)
    report.write_json(workdir / runfolder.VALIDATION_FILE, result.report)
    report.write_json(workdir / runfolder.GX_RESULTS_FILE, result.gx_results)
    result.quarantine.to_csv(
        workdir / runfolder.QUARANTINE_FILE, index=False, lineterminator=QUARANTINE_EOL
    )
    _write_clean(result.incidents, result.topology, runfolder.stage_folder(workdir))
    summary = _validation_summary(result.report)
    del incidents, topology, result
    release_memory()
    return summary


def release_memory() -> None:
    """Hand the memory of a stage's frames back to the system before the next stage: Arrow's
    allocator and glibc's keep freed memory for reuse, so a `whatif fit` of a million
    incidents carried validation's 1.9 GB into the fit and peaked above 2 GB."""
    import ctypes
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _write_stopped(workdir: Path, error: UserError, as_of: datetime) -> None:
    """A run stopped by its inputs still writes validation.json (the error, every problem
    found, and what was checked) and quarantine.csv (the rows set aside so far; for a
    topology fault, the topology rows at fault), so that every problem shows at once."""
    partial = getattr(error, "partial", {})
    document = {
        "schema_version": validate.SCHEMA_VERSION,
        "as_of": as_of.isoformat(),
        "status": "stopped",
        "error": str(error),
        "problems": partial.get("problems") or [str(error)],
        "inputs": partial.get("inputs", {}),
        "warnings": partial.get("warnings", []),
    }
    report.write_json(workdir / runfolder.VALIDATION_FILE, document)
    quarantine = partial.get("quarantine")
    if quarantine is not None:
        quarantine.to_csv(
            workdir / runfolder.QUARANTINE_FILE, index=False, lineterminator=QUARANTINE_EOL
        )
    else:  # an earlier run's in the same folder would say something about these inputs
        (workdir / runfolder.QUARANTINE_FILE).unlink(missing_ok=True)


SUMMARY_KEYS = ("rows_read", "rows_used", "rows_quarantined", "rows_rates_only", "durations")


def _validation_summary(document: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {k: v for k, v in data.items() if k in SUMMARY_KEYS}
        for name, data in document["inputs"].items()
    }


def _write_clean(incidents: Any, topology: Topology, stage: Path) -> None:
    """The validated tables, typed (Parquet keeps UTC timestamps and missing values as they
    are), for the later stages to read without normalising again; each incident row keeps
    where its duration comes from (open rows are censored durations for the fit), and its
    failure mode and severity (whatif.classify)."""
    sources = ("duration_source", "failure_mode_source", "severity_source")
    incidents[[*INCIDENT_REQUIRED, *INCIDENT_OPTIONAL, *sources]].to_parquet(
        stage / runfolder.CLEAN_INCIDENTS_FILE, index=False
    )
    topology.to_frame().to_csv(stage / runfolder.CLEAN_TOPOLOGY_FILE, index=False)


def check_named_services(workdir: Path, config: RunConfig) -> None:
    """The services the user named (--what-if, --focus-service; the DAG's what_if and
    focus_services) exist in the validated topology: checked right after validation, so that a
    typo stops the run before the fit and the simulation, with a did-you-mean. The exercise
    log is read here too: a broken log stops the run as early, and its rows naming no service
    of the topology are quarantined (quarantine_exercises.csv) before the heavy stages."""
    if not (config.what_if or config.focus_services or config.exercises):
        return
    topology = Topology.from_frame(
        ingest.load_topology(runfolder.stage_path(workdir, runfolder.CLEAN_TOPOLOGY_FILE)).frame
    )
    simulate.resolve_what_ifs(config.what_if, topology)
    for service in config.focus_services:
        simulate.resolve_service(service, topology, "--focus-service")
    load_exercise_log(
        workdir, config, list(topology.services), _as_of(workdir), True, owners_of(topology)
    )


# What the fit never reads: the incidents' free text (it reads the failure modes and
# severities validation took from it), a third of a million incidents' memory.
NOT_FITTED = ("title", "description", "severity_raw")


def load_clean(workdir: Path, leave_out: tuple[str, ...] = ()) -> tuple[Any, Topology]:
    """The validated incidents (without the columns `leave_out`) and topology."""
    import pyarrow.parquet as pq

    stage = runfolder.stage_folder(workdir)
    path = stage / runfolder.CLEAN_INCIDENTS_FILE
    columns = [c for c in pq.read_schema(path).names if c not in leave_out]
    incidents = pd.read_parquet(path, columns=columns)
    topology = Topology.from_frame(
        ingest.load_topology(stage / runfolder.CLEAN_TOPOLOGY_FILE).frame
    )
    return incidents, topology


def _validation(workdir: Path) -> dict[str, Any]:
    return json.loads((Path(workdir) / runfolder.VALIDATION_FILE).read_text())


def _as_of(workdir: Path) -> datetime:
    return datetime.fromisoformat(_validation(workdir)["as_of"])


def fit(workdir: Path, settings: ModelSettings | None = None) -> Path:
    """Fit the models on the validated data; write model.json."""
    incidents, topology = load_clean(workdir, NOT_FITTED)
    validation = _validation(workdir)
    document = model.fit(
        incidents,
        topology,
        datetime.fromisoformat(validation["as_of"]),
        int(validation["window"]["days"]),
        validation["inputs"]["incidents"]["data_start"],
        settings,
        gameday_trials(workdir),
    )
    return report.write_json(Path(workdir) / runfolder.MODEL_FILE, document.model_dump())


def load_model(path: Path) -> ModelDoc:
    try:
        return ModelDoc.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("file not found", file=str(path)) from None
    except ValueError as exc:
        lines = str(exc).splitlines()
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise UserError(
            f"not a model.json of schema version 1: {detail}",
            file=str(path),
            hint="create it with `whatif fit`",
        ) from None


def run_simulation(
    workdir: Path, config: RunConfig, progress: simulate.Progress | None = None
) -> Path:
    """Simulate and select the scenarios; write their facts (no prose yet) and what the
    narrators may use besides (narrate.build_inputs), so that narrating needs neither the
    incident table nor the model."""
    incidents, topology = load_clean(workdir)
    model_doc = load_model(Path(workdir) / runfolder.MODEL_FILE)
    as_of = _as_of(workdir)
    exercises = load_exercise_log(
        workdir, config, list(topology.services), as_of, owners=owners_of(topology)
    )
    result = simulate.simulate(
        model_doc,
        topology,
        config,
        progress,
        functools.partial(readiness.selection_factor, exercises, today=as_of.date())
        if config.exercises
        else None,
    )
    inputs = narrate.build_inputs(
        result["scenarios"], topology, incidents, model_doc, config, _as_of(workdir)
    )
    stage = runfolder.stage_folder(workdir)
    report.write_json(stage / runfolder.NARRATION_INPUTS_FILE, inputs)
    return report.write_json(stage / runfolder.FACTS_FILE, result)


def load_exercise_log(
    workdir: Path,
    config: RunConfig,
    services: list[str],
    as_of: datetime,
    announce: bool = False,
    owners: dict[str, str] | None = None,
) -> list[readiness.Exercise]:
    """The exercise log of --exercises / the `exercises` param, validated (its rows used or
    quarantined with a reason: quarantine_exercises.csv) and kept for the report stage;
    `announce`: log its warnings (once per run: where the names are checked)."""
    if not config.exercises:
        return []
    used, found, quarantined = readiness.load_exercises(
        config.exercises, services, as_of, owners=owners
    )
    trials = found.pop("cascade_trials", [])
    report.write_json(
        runfolder.stage_folder(workdir) / runfolder.EXERCISES_FILE,
        {"validation": found, "exercises": [e.as_dict() for e in used], "cascade_trials": trials},
    )
    if quarantined:
        pd.DataFrame(quarantined).to_csv(
            Path(workdir) / runfolder.QUARANTINE_EXERCISES_FILE,
            index=False,
            lineterminator=QUARANTINE_EOL,
        )
    log.info(
        "exercise log: %d rows read, %d used, %d quarantined",
        found["rows_read"], found["rows_used"], found["rows_quarantined"],
    )  # fmt: skip
    for line in found["warnings"] if announce else []:
        log.warning("%s", line)
    return used


def owners_of(topology: Topology) -> dict[str, str]:
    """Service -> owner team, for the services that have one."""
    return {s: str(t) for s in topology.services if (t := topology.attribute(s, "owner_team"))}


def gameday_trials(workdir: Path) -> list[tuple[str, str, bool]]:
    """The game days' cascade trials the exercise log gave (none without journals)."""
    path = runfolder.stage_folder(workdir) / runfolder.EXERCISES_FILE
    if not path.exists():
        return []
    trials = json.loads(path.read_text()).get("cascade_trials") or []
    return [(str(a), str(b), bool(hit)) for a, b, hit in trials]


def write_readiness(workdir: Path) -> dict[str, Any] | None:
    """readiness.json from the run's scenarios, owners, incidents and exercise log (none:
    no exercise log given), with the previous run's scores when fetched
    (`_stage/previous_readiness.json`)."""
    workdir = Path(workdir)
    stage = runfolder.stage_folder(workdir)
    logged = stage / runfolder.EXERCISES_FILE
    if not logged.exists():
        return None
    exercises = [
        readiness.Exercise(**(e | {"day": date.fromisoformat(e["day"])}))
        for e in json.loads(logged.read_text())["exercises"]
    ]
    inputs = json.loads((stage / runfolder.NARRATION_INPUTS_FILE).read_text())
    attributes = {
        s: {"oncall": inputs["oncall"].get(s), "runbook_url": inputs["runbooks"].get(s)}
        for s in inputs["services"]
    }
    previous_file = stage / runfolder.PREVIOUS_READINESS_FILE
    document = readiness.readiness(
        json.loads((workdir / runfolder.SCENARIOS_FILE).read_text())["scenarios"],
        inputs["owners"],
        attributes,
        pd.read_parquet(stage / runfolder.CLEAN_INCIDENTS_FILE),
        exercises,
        _as_of(workdir),
        json.loads(previous_file.read_text()) if previous_file.exists() else None,
    )
    report.write_json(workdir / runfolder.READINESS_FILE, document)
    return document


def fetch_previous(workdir: Path, targets: list[str], conn_id: str | None = None) -> bool:
    """The run already published at the first object-storage target (its `latest/`, before
    this run publishes): for what changed since, and the readiness scores' trend."""
    for target in targets:
        if target != "confluence":
            return fetch_previous_run(workdir, f"{target.rstrip('/')}/latest", conn_id)
    return False


def forget_previous(workdir: Path) -> dict[str, Path]:
    """Remove the previous run an earlier run in this folder fetched (a reused --out, a DAG
    run cleared and run again): what changed is said only against the previous run of this
    one. Returns where each of its files goes."""
    stage = runfolder.stage_folder(workdir)
    folder = stage / runfolder.PREVIOUS_FOLDER
    wanted = {
        runfolder.SCENARIOS_FILE: folder / runfolder.SCENARIOS_FILE,
        runfolder.MODEL_FILE: folder / runfolder.MODEL_FILE,
        runfolder.READINESS_FILE: stage / runfolder.PREVIOUS_READINESS_FILE,
    }
    for path in wanted.values():
        path.unlink(missing_ok=True)
    return wanted


def fetch_previous_run(workdir: Path, location: str, conn_id: str | None = None) -> bool:
    """A previous run's scenarios.json, model.json and readiness.json (a run folder or a
    published `latest/`, local or object storage) into the stage folder. None there: a first
    run, no change to report. Unreadable: a warning, and no change reported either."""
    wanted = forget_previous(workdir)
    folder = runfolder.stage_folder(workdir) / runfolder.PREVIOUS_FOLDER
    root = location.rstrip("/")
    fetched = {}
    for name in wanted:
        try:
            fetched[name] = sources.read_bytes(f"{root}/{name}", conn_id)
        except UserError as error:
            if "not found" not in str(error):
                log.warning("previous run at %s not read: %s", location, error)
                return False
    if runfolder.SCENARIOS_FILE not in fetched:
        return False
    try:
        ScenariosDoc.model_validate_json(fetched[runfolder.SCENARIOS_FILE])
    except ValueError:
        log.warning("previous run at %s not read: its scenarios.json is not valid", location)
        return False
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in fetched.items():
        wanted[name].write_bytes(data)
    return True


def write_changes(workdir: Path) -> dict[str, Any] | None:
    """What changed since the previous run, into scenarios.json (`changes`); None without a
    previous run."""
    folder = runfolder.stage_folder(workdir) / runfolder.PREVIOUS_FOLDER
    if not (folder / runfolder.SCENARIOS_FILE).exists():
        return None
    previous_model = folder / runfolder.MODEL_FILE
    readiness_file = Path(workdir) / runfolder.READINESS_FILE
    document = json.loads((Path(workdir) / runfolder.SCENARIOS_FILE).read_text())
    document["changes"] = changes.compare(
        json.loads((folder / runfolder.SCENARIOS_FILE).read_text()),
        json.loads(previous_model.read_text()) if previous_model.exists() else None,
        document,
        json.loads((Path(workdir) / runfolder.MODEL_FILE).read_text()),
        json.loads(readiness_file.read_text()) if readiness_file.exists() else None,
    )
    report.write_json(Path(workdir) / runfolder.SCENARIOS_FILE, document)
    return document["changes"]


def load_topology_only(path: str, allow_external: bool = False) -> Topology:
    """A validated topology without incidents (for `whatif simulate`)."""
    topology, _, warnings, _ = validate.validate_topology(
        ingest.load_topology(path), allow_external
    )
    for line in warnings:
        log.warning("%s", line)
    return topology


def simulate_document(
    model_doc: ModelDoc, topology: Topology, config: RunConfig, as_of: datetime, model_path: str
) -> ScenariosDoc:
    """Simulate, select and narrate in one go, from a model.json and a topology (no
    incident history: the prompts get no similar past incidents)."""
    simulate.check_model_matches(model_doc, topology, model_path)
    result = simulate.simulate(model_doc, topology, config)
    inputs = narrate.build_inputs(result["scenarios"], topology, None, model_doc, config, as_of)
    narrated = narrate.narrate(result["scenarios"], inputs, config)
    return narrate.scenarios_document(
        narrated, result["simulation"], model_doc.inputs, config, as_of
    )


def run_narration(workdir: Path, config: RunConfig) -> Path:
    """Write each scenario's prose; write scenarios.json (the contract)."""
    return narrate.narrate_all(workdir, config)


def run_report(workdir: Path, export_formats: Sequence[str] = ()) -> list[Path]:
    """readiness.json, what changed, the chaos experiments of `export_formats` (in
    experiments/, linked from the report) and the reports."""
    workdir = Path(workdir)
    scenarios_doc = ScenariosDoc.model_validate_json(
        (workdir / runfolder.SCENARIOS_FILE).read_text()
    )
    model_doc = load_model(workdir / runfolder.MODEL_FILE)
    validation = json.loads((workdir / runfolder.VALIDATION_FILE).read_text())
    inputs = runfolder.stage_folder(workdir) / runfolder.NARRATION_INPUTS_FILE
    owners = json.loads(inputs.read_text())["owners"] if inputs.exists() else {}
    readiness_doc = write_readiness(workdir)
    if export_formats:
        from whatif.gameday import export

        export.export_run(workdir, export_formats)
    if write_changes(workdir) is not None:
        scenarios_doc = ScenariosDoc.model_validate_json(
            (workdir / runfolder.SCENARIOS_FILE).read_text()
        )
    return report.render_reports(
        workdir, scenarios_doc, model_doc, validation, owners, observe.run_summary(workdir),
        readiness_doc,
    )  # fmt: skip


def run_publish(
    workdir: Path, target: str, conn_id: str | None = None, run_id: str | None = None
) -> dict[str, str]:
    """Publish the run folder under the run's own id and date (scenarios.json), never the
    clock's, so that publishing it again rewrites the same objects; `run_id` renames it."""
    workdir = Path(workdir)
    run = runs.of_folder(workdir)
    run_date = date.fromisoformat(run.date)
    return publish.publish(workdir, artifacts(workdir), target, run_date, run_id or run.id, conn_id)


def record_run(workdir: Path, run_id: str, run_date: date) -> None:
    """Fix the run's identity when it starts (scenarios.json gets it when assembled)."""
    runs.record(runfolder.stage_folder(workdir) / runfolder.RUN_FILE, run_id, run_date)


def run_fingerprint(workdir: Path, config: RunConfig, as_of: datetime) -> str:
    """SHA-256 of the staged inputs and the settings (the CLI's run id): the same run made
    again gets the same id, and so replaces its published folder instead of adding one."""
    stage = runfolder.stage_folder(workdir)
    names = [runfolder.SOURCES_FILE, *runfolder.RAW_FILES.values()]
    described = json.loads((stage / runfolder.SOURCES_FILE).read_text())
    staged_mapping = described["incidents"]["staged_mapping"]
    digest = hashlib.sha256()
    for name in [*names, *([staged_mapping] if staged_mapping else [])]:
        digest.update(f"{name}\0".encode() + (stage / name).read_bytes())
    settings = dataclasses.asdict(dataclasses.replace(config, as_of=as_of))
    settings["llm"] = {k: v for k, v in settings["llm"].items() if k not in ("api_key", "cache")}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def run_confluence(workdir: Path, target: Any) -> dict[str, Any]:
    """The run's Confluence page (created, or updated to a new version on a re-run), with
    its plots attached."""
    from whatif import confluence

    workdir = Path(workdir)
    doc = json.loads((workdir / runfolder.SCENARIOS_FILE).read_text(encoding="utf-8"))
    plots = sorted((workdir / runfolder.PLOTS_FOLDER).glob("*.svg"))
    attachments = {p.name: p.read_bytes() for p in plots}
    body = confluence.render_storage(doc, list(attachments))
    return confluence.publish_page(target, confluence.page_title(doc), body, attachments)


def top_scenarios(workdir: Path, count: int = 3) -> list[dict[str, Any]]:
    """The first scenarios of the report, in brief (for the Asset event and chat)."""
    doc = json.loads((Path(workdir) / runfolder.SCENARIOS_FILE).read_text(encoding="utf-8"))
    return [
        {
            "id": s["id"],
            "title": s["title"],
            "probability": s["probability"],
            "severity": s["severity"],
            "selection_reason": s["selection_reason"],
        }
        for s in doc["scenarios"][:count]
    ]


def artifacts(workdir: Path) -> list[str]:
    """What a run publishes: the fixed artifacts it has, then its checklists, tabletop packs
    and plots (relative names)."""
    workdir = Path(workdir)
    names = [name for name in runfolder.ARTIFACTS if (workdir / name).exists()]
    for folder in runfolder.ARTIFACT_FOLDERS:
        names += sorted(
            p.relative_to(workdir).as_posix() for p in (workdir / folder).rglob("*") if p.is_file()
        )
    return names


def run_all(
    inputs: Inputs,
    out_dir: Path,
    config: RunConfig,
    progress: simulate.Progress | None = None,
    publish_targets: list[str] | None = None,
    run_id: str | None = None,
    previous: str | None = None,
) -> dict[str, Any]:
    """Every stage in order into out_dir (what `whatif run` does, without publishing);
    `progress` follows the simulation, the long step on large topologies; the previous run
    (what changed since, the readiness trend) is `previous`, else the `latest/` of the first
    of `publish_targets`. The run's id is `run_id`,
    else `cli__<as-of>__<digest of the inputs and settings>` (runs.cli_run_id)."""
    out_dir = Path(out_dir)
    as_of = config.effective_as_of
    forget_previous(out_dir)
    # An earlier run's experiments in a reused --out are not this run's (it exports its own
    # at its report step, when asked).
    shutil.rmtree(out_dir / runfolder.EXPERIMENTS_FOLDER, ignore_errors=True)
    if previous:
        fetch_previous_run(out_dir, previous)
    elif publish_targets:
        fetch_previous(out_dir, publish_targets)
    steps = [
        ("extract", lambda: _extract_run(inputs, out_dir, config, as_of, run_id)),
        ("validate", lambda: _validate_run(out_dir, config)),
        ("fit", lambda: fit(out_dir, config.model)),
        ("simulate", lambda: run_simulation(out_dir, config, progress)),
        ("narrate", lambda: run_narration(out_dir, config)),
        ("report", lambda: run_report(out_dir, config.export_formats)),
    ]
    results: dict[str, Any] = {}
    for number, (name, step) in enumerate(steps, start=1):
        started = datetime.now(UTC)
        with observe.stage(out_dir, name):
            results[name] = step()
        seconds = (datetime.now(UTC) - started).total_seconds()
        log.info("[%d/%d] %s done in %.1f s", number, len(steps), name, seconds)
    return results


def _validate_run(out_dir: Path, config: RunConfig) -> dict[str, Any]:
    summary = run_validation(
        out_dir, config.effective_as_of, config.history_days, config.allow_external_dependencies
    )
    check_named_services(out_dir, config)
    return summary


def _extract_run(
    inputs: Inputs, workdir: Path, config: RunConfig, as_of: datetime, run_id: str | None
) -> dict[str, Any]:
    """Extract, then fix the run's identity (its default id needs the staged inputs)."""
    described = extract(inputs, workdir, as_of, config.history_days)
    run_id = run_id or runs.cli_run_id(as_of, run_fingerprint(workdir, config, as_of))
    record_run(workdir, run_id, as_of.date())
    return described
