"""`whatif export`: a run's scenarios as chaos experiments, one file per scenario and format,
with an index saying what each file is and why a scenario has none in a format. Nothing is
run or injected here: the files are inert until an operator arms them (docs/gameday.md)."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from whatif import ingest, runfolder
from whatif.errors import UserError
from whatif.gameday.plan import FORMATS, TARGET_COLUMNS, Experiment, Plan, Target
from whatif.topology import Topology

log = logging.getLogger("whatif")

MAX_WATCHED = 10  # dependents probed per experiment, most likely first


def export_run(
    run_dir: Path, formats: Sequence[str], out: Path | None = None, targets: str | None = None
) -> dict[str, Any]:
    """Export every scenario of the run in `run_dir` in each format into `out` (default the
    run's experiments/ folder) and write the index there; returns the index. Where each
    service runs comes from the topology's target columns, or from `targets` (a CSV of
    service and those columns) where it gives a value."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(
            f"export format {', '.join(unknown) or '(none)'}: choose among {', '.join(FORMATS)}"
        )
    scenarios_doc = _read_scenarios(run_dir)
    topology = _read_topology(run_dir)
    overrides = read_targets(targets, topology) if targets else {}
    plans = [plan_of(s, topology, scenarios_doc, overrides) for s in scenarios_doc["scenarios"]]
    out = out or run_dir / runfolder.EXPERIMENTS_FOLDER
    _clear(out)
    entries = []
    for name in dict.fromkeys(formats):
        exporter = importlib.import_module(f"whatif.gameday.{name}")
        for plan in plans:
            entries.append(_write(exporter.export(plan), out))
    index = {
        "run_id": scenarios_doc.get("run", {}).get("id"),
        "formats": list(dict.fromkeys(formats)),
        "experiments": entries,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / runfolder.EXPERIMENTS_INDEX_FILE).write_text(
        json.dumps(index, indent=2) + "\n", encoding="utf-8"
    )
    made = sum(1 for e in entries if e["file"])
    log.info(
        "exported %d experiments (%d skipped) for %d scenarios to %s",
        made,
        len(entries) - made,
        len(plans),
        out,
    )
    return index


def _clear(out: Path) -> None:
    """An earlier export's files (a reused run folder: scenarios no longer selected must not
    be published as this run's); only the format folders and the index, which are ours."""
    import shutil

    for name in FORMATS:
        shutil.rmtree(out / name, ignore_errors=True)
    (out / runfolder.EXPERIMENTS_INDEX_FILE).unlink(missing_ok=True)


def _write(experiment: Experiment, out: Path) -> dict[str, Any]:
    """The experiment's file under out/<format>/, and its index entry."""
    entry: dict[str, Any] = {
        "scenario": experiment.scenario_id,
        "format": experiment.format,
        "file": None,
        "skipped": experiment.skipped,
        "note": experiment.note,
    }
    if experiment.skipped is None and experiment.text is not None and experiment.filename:
        folder = out / experiment.format
        folder.mkdir(parents=True, exist_ok=True)
        (folder / experiment.filename).write_text(experiment.text, encoding="utf-8")
        entry["file"] = f"{experiment.format}/{experiment.filename}"
    return entry


def _read_scenarios(run_dir: Path) -> dict[str, Any]:
    path = run_dir / runfolder.SCENARIOS_FILE
    if not path.is_file():
        raise UserError(
            f"{run_dir}: no {runfolder.SCENARIOS_FILE}",
            hint="give a folder written by `whatif run`",
        )
    return json.loads(path.read_text(encoding="utf-8"))


def _read_topology(run_dir: Path) -> Topology:
    path = runfolder.stage_folder(run_dir) / runfolder.CLEAN_TOPOLOGY_FILE
    if not path.is_file():
        raise UserError(
            f"{run_dir}: no validated topology ({path.relative_to(run_dir)})",
            hint="give a folder written by `whatif run` (its _stage/ folder is needed)",
        )
    return Topology.from_frame(ingest.load_topology(path).frame)


def read_targets(location: str, topology: Topology) -> dict[str, dict[str, str]]:
    """A targets file: `service` and any of TARGET_COLUMNS, one row per service; a service
    that is not in the topology is a UserError naming its row (a typo would otherwise leave
    the real service without its selector)."""
    from whatif.sources import ROW, read_table

    frame = read_table(location)
    if "service" not in frame.columns:
        raise UserError("missing column", file=location, column="service", row=1)
    found: dict[str, dict[str, str]] = {}
    for record in frame.to_dict("records"):
        service = str(record.get("service") or "").strip()
        if service not in topology.index:
            raise UserError(
                f"{service!r} is no service of the run's topology",
                file=location,
                row=int(record[ROW]),
                column="service",
            )
        found[service] = {
            c: str(record[c]).strip()
            for c in TARGET_COLUMNS
            if c in record and str(record[c] or "").strip()
        }
    return found


def plan_of(
    scenario: dict[str, Any],
    topology: Topology,
    doc: dict[str, Any],
    overrides: dict[str, dict[str, str]] | None = None,
) -> Plan:
    """A scenario of scenarios.json as an experiment plan."""
    overrides = overrides or {}
    trigger = scenario["trigger"]
    service = trigger["service"]
    watched = [s for s in scenario.get("affected_services") or [] if s != service]
    duration = scenario.get("expected_duration_minutes") or {}
    return Plan(
        scenario_id=scenario["id"],
        title=scenario["title"],
        description=scenario.get("predicted_impact") or scenario["title"],
        trigger=target_of(service, topology, overrides.get(service)),
        mode=trigger["failure_mode"],
        dependents=tuple(target_of(s, topology, overrides.get(s)) for s in watched[:MAX_WATCHED]),
        probability=float(scenario.get("probability") or 0.0),
        risk_score=float(scenario.get("risk_score") or 0.0),
        duration_p50_minutes=duration.get("p50"),
        duration_p90_minutes=duration.get("p90"),
        severity=str(scenario.get("severity") or "unknown"),
        run_id=str((doc.get("run") or {}).get("id") or ""),
        seed=doc.get("seed"),
    )


def target_of(service: str, topology: Topology, override: dict[str, str] | None = None) -> Target:
    """Where a service runs, from its topology row (docs/gameday.md: k8s_namespace,
    k8s_selector `key=value,...`, health_url, aws_target); a dependency without a row of its
    own, or a row with tier external, is a third party."""
    if service not in topology.index:
        return Target(service=service, external=True)

    def text(name: str) -> str | None:
        if override and override.get(name):
            return override[name]
        value = topology.attribute(service, name)  # None when empty
        return None if value is None else (str(value).strip() or None)

    slo = topology.attribute(service, "slo_target")
    return Target(
        service=service,
        namespace=text("k8s_namespace"),
        selector=parse_selector(text("k8s_selector") or ""),
        health_url=text("health_url"),
        aws_target=text("aws_target"),
        external=service in topology.implicit or (text("tier") or "").lower() == "external",
        owner_team=text("owner_team"),
        slo_target=float(slo) if isinstance(slo, float) else None,
    )


def parse_selector(text: str) -> tuple[tuple[str, str], ...]:
    """`app=orders,tier=backend` -> (("app", "orders"), ("tier", "backend")); parts without
    `=` are ignored (validation of the topology warns about them)."""
    pairs = []
    for part in text.replace(";", ",").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip() and value.strip():
            pairs.append((key.strip(), value.strip()))
    return tuple(pairs)
