"""Chaos Toolkit journals read back (issue 20): each journal of an experiment whatif exported
becomes an exercise (a row of the exercise log, for readiness and the selection feedback) and
cascade evidence (did each watched dependent deviate while the trigger was injected?).

A journal (chaostoolkit-lib's `chaos run --journal-path`) embeds its experiment, whose
`configuration` carries the whatif_* keys of `Plan.metadata()`; its `status` (completed,
failed, aborted, interrupted), `deviated`, `steady_states` {before, after, during} and `run`
(the method's activities, in order) say what happened. Every JSON file read is used or
quarantined with its reason, like the rows of the other inputs.

What the runner does, and what it means here (chaoslib 1.44, run.py and hypothesis.py):
- the steady-state hypothesis stops at its first probe out of tolerance, so after a
  deviation the later probes did not run: their services are *unobserved*, never "fine";
- a probe of the method records its output without judging it (an HTTP 503 is `succeeded`),
  so the reader judges the method's `steady-<service>` probes (whatif's experiments re-run
  them while the fault holds) by their tolerance (a status, a list, a range) or, without
  one, as the http provider does (a status above 399 is an error);
- a failed action does not stop the run nor change its status: a journal may say
  `completed` although nothing was injected. The injection is the method's first run of
  consecutive actions; a later action that failed (ending the fault) is an action item;
- a check after the method that stopped at a probe watching no service (the exporter's
  `injector-ready` gate) is no verdict on the services.

Outcome of a journal whose injection ran (docs/gameday.md):
- passed: the steady state held after the method and no dependent deviated meanwhile;
- partial: the steady state held after the method but a dependent deviated while the
  failure was injected and recovered (`recovered`), or only the trigger's own probe failed
  and every watched dependent was seen healthy (`contained`);
- failed: a dependent deviated and had not recovered when the steady state was checked
  after the method, or the check failed before reaching the dependents (they may have
  deviated too), or the run was stopped (aborted, interrupted, failed fast) while a
  dependent deviated.
An experiment that injected nothing, or stopped with nothing seen, says nothing about the
system: quarantined (dry_run, steady_state_not_met_before, injection_failed, no_injection,
experiment_aborted, experiment_interrupted, experiment_failed, no_steady_state_after).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from whatif.errors import UserError
from whatif.gameday.plan import METADATA_PREFIX, PROBE_PREFIX

FACILITATOR = "chaostoolkit"
EXERCISE_COLUMNS = ("date", "scenario", "team", "outcome", "action_items", "facilitator")
STATUSES = ("completed", "failed", "aborted", "interrupted")  # the only ones the runner writes
# A run stopped before its steady state was checked after the method: the reason when nothing
# deviated meanwhile (a deviation seen before the stop makes it a failed exercise).
STOPPED = {
    "aborted": "experiment_aborted",
    "interrupted": "experiment_interrupted",
    "failed": "experiment_failed",
}
# `chaos run --dry` modes that skip the injection or the tolerance checks; `pause` only
# skips the waits and still injects.
DRY_WITHOUT_EVIDENCE = ("actions", "activities", "probes")


@dataclasses.dataclass(frozen=True)
class JournalRecord:
    """One journal of a whatif experiment, read back. `watched` are the services with a
    `steady-<service>` probe; `deviated` those out of tolerance in the steady-state check
    after the method; `deviated_during` those seen deviated while the failure was injected
    (probes of the method, continuous checks) and not in `deviated` (they recovered by the
    check after the method, or it stopped before them); `unobserved` the watched
    services never checked while injected (the hypothesis stopped before them).
    `trigger_deviated` is None when the trigger has no probe or was never checked."""

    path: str
    day: date  # the date of the journal's start, in UTC
    scenario: str  # service--mode, as in scenarios.json
    service: str
    mode: str
    team: str  # whatif_team of the experiment; may be empty
    outcome: str  # passed, partial, failed (readiness.OUTCOMES)
    action_items: str
    status: str  # the journal's own status
    watched: tuple[str, ...]
    deviated: tuple[str, ...]
    deviated_during: tuple[str, ...]
    unobserved: tuple[str, ...]
    trigger_deviated: bool | None
    started: str  # the journal's start as written (which run this was)
    run_id: str = ""  # the whatif run the experiment was exported from
    facilitator: str = FACILITATOR


class _Quarantined(Exception):
    """A journal set aside, with its reason and what the reason is about."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
        self.scenario = ""  # set once the journal named its scenario


def read_journals(location: str) -> tuple[list[JournalRecord], list[dict[str, Any]]]:
    """The journals of `location` (a journal file, or a folder searched at any depth for
    *.json): (the journals used, oldest first; every other JSON file with its reason).
    Other JSON files beside the journals (the exported experiments) are counted with the
    reason not_a_journal. A journal copied twice (same scenario, same start) counts once."""
    used: list[JournalRecord] = []
    quarantined: list[dict[str, Any]] = []
    first: dict[tuple[str, str], str] = {}  # (scenario, start) -> the file read first
    for path in _journal_files(location):
        try:
            record = _record(path)
            key = (record.scenario, record.started)
            if key in first:
                duplicate = _Quarantined("duplicate_journal", f"the same run as {first[key]}")
                duplicate.scenario = record.scenario
                raise duplicate
            first[key] = record.path
            used.append(record)
        except _Quarantined as problem:
            where = {"file": str(path), "reason": problem.reason, "scenario": problem.scenario}
            quarantined.append(where | {"detail": problem.detail})
    return sorted(used, key=lambda r: (r.day, r.started, r.scenario)), quarantined


def _journal_files(location: str) -> list[Path]:
    """The JSON files to read: the file itself, or every *.json under the folder in a stable
    order. A location that is missing, or a folder without any JSON, is the user's error."""
    path = Path(location)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(
            "no such file or folder",
            file=location,
            hint="give a Chaos Toolkit journal (journal.json) or a folder of journals",
        )
    files = sorted(p for p in path.rglob("*.json") if p.is_file())
    if not files:
        raise UserError(
            "the folder holds no JSON file",
            file=location,
            hint="chaos run writes its journal to journal.json (--journal-path)",
        )
    return files


def _record(path: Path) -> JournalRecord:
    """One file as a journal record, or _Quarantined saying why it is none."""
    journal = _load(path)
    experiment = journal["experiment"]
    scenario, service, mode, team, run_id = _identity(experiment)
    try:
        return _judged(path, journal, scenario, service, mode, team, run_id)
    except _Quarantined as problem:
        problem.scenario = scenario
        raise


def _judged(
    path: Path,
    journal: dict[str, Any],
    scenario: str,
    service: str,
    mode: str,
    team: str,
    run_id: str,
) -> JournalRecord:
    """The record of a whatif journal, or _Quarantined when it says nothing of the system."""
    experiment = journal["experiment"]
    day, started = _start(journal)
    status = journal.get("status")
    if status not in STATUSES:
        raise _Quarantined("unknown_status", f"status {status!r}, not one of {STATUSES}")
    injected_at = _injection(journal)
    watched = _watched(experiment)
    after = _after(journal)
    during = _during(journal, injected_at)
    outcome, why = _outcome(journal, service, watched, after, during)
    states = {s: _state(s, after, during) for s in watched}
    deviated = tuple(s for s in watched if after.get(s) is False)
    deviated_during = tuple(s for s in watched if states[s] == "deviated" and s not in deviated)
    unobserved = tuple(s for s in watched if states[s] is None)
    trigger = None if states.get(service) is None else states[service] == "deviated"
    return JournalRecord(
        path=str(path),
        day=day,
        scenario=scenario,
        service=service,
        mode=mode,
        team=team,
        outcome=outcome,
        action_items=_action_items(why, deviated, deviated_during, unobserved, after, journal),
        status=status,
        watched=watched,
        deviated=deviated,
        deviated_during=deviated_during,
        unobserved=unobserved,
        trigger_deviated=trigger,
        started=started,
        run_id=run_id,
    )


def _load(path: Path) -> dict[str, Any]:
    """The file's JSON if it is a Chaos Toolkit journal: an object embedding its experiment,
    with a status and the steady states or the method's runs (chaoslib's
    initialize_run_journal). An experiment file has a method but no status."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise _Quarantined("unreadable_json", f"line {error.lineno}: {error.msg}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise _Quarantined("unreadable_json", str(error)) from error
    if not (
        isinstance(document, dict)
        and isinstance(document.get("experiment"), dict)
        and "status" in document
        and ("steady_states" in document or "run" in document)
    ):
        raise _Quarantined("not_a_journal", "no experiment, status and runs of a journal")
    return document


def _text(value: Any) -> str:
    """A configuration value as text; a value resolved at run time (an env reference, a
    dynamic probe) is a dict the journal does not resolve, so it reads as missing."""
    return value.strip() if isinstance(value, str) else ""


def _identity(experiment: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """(scenario, service, mode, team, run id) from the experiment's whatif_* configuration,
    else its `scenario:` / `service:` / `mode:` tags, else the scenario id `service--mode`."""
    config = experiment.get("configuration")
    config = config if isinstance(config, dict) else {}
    tags = experiment.get("tags")
    tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []

    def value(key: str, tag: str) -> str:
        found = _text(config.get(METADATA_PREFIX + key))
        tagged = (t.partition(":")[2].strip() for t in tags if t.startswith(f"{tag}:"))
        return found or next(tagged, "")

    scenario = value("scenario", "scenario")
    if not scenario:
        raise _Quarantined("not_from_whatif", "no whatif_scenario in its configuration or tags")
    by_id = scenario.rpartition("--")
    service = value("service", "service") or by_id[0]
    mode = (value("failure_mode", "mode") or by_id[2]).lower()
    if not service or not mode:
        raise _Quarantined("bad_scenario", f"scenario {scenario!r} names no service--mode")
    return (
        scenario,
        service,
        mode,
        _text(config.get(f"{METADATA_PREFIX}team")),
        _text(config.get(f"{METADATA_PREFIX}run_id")),
    )


def _timestamp(value: Any) -> datetime | None:
    """An ISO timestamp of the journal in UTC (chaoslib writes them with +00:00; a naive
    one is taken as UTC)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _start(journal: dict[str, Any]) -> tuple[date, str]:
    """The exercise's date: the UTC date the run started (a game day that runs past
    midnight UTC keeps each experiment on its own date)."""
    moment = _timestamp(journal.get("start"))
    if moment is None:
        raise _Quarantined("no_start_time", f"start {journal.get('start')!r} is no timestamp")
    return moment.date(), str(journal["start"])


def _runs(value: Any) -> list[dict[str, Any]]:
    """The objects of a journal's list (runs, probes, states); anything else is ignored, so
    that a hand-edited journal is judged on what it holds rather than crash the run."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _steady_state(journal: dict[str, Any], when: str) -> dict[str, Any] | None:
    """The steady state checked `before` or `after` the method; None when it was not."""
    states = journal.get("steady_states")
    state = states.get(when) if isinstance(states, dict) else None
    return state if isinstance(state, dict) else None


def _activity(run: Any) -> dict[str, Any]:
    activity = run.get("activity") if isinstance(run, dict) else None
    return activity if isinstance(activity, dict) else {}


def _answered_ok(run: dict[str, Any]) -> bool:
    """Whether an activity the runner does not judge did what it was asked: its run
    succeeded and, for the providers that return a status rather than raise, the status
    says so as the providers themselves warn (HTTP below 400, a process exiting 0)."""
    if run.get("status") != "succeeded":
        return False
    output, provider = run.get("output"), _activity(run).get("provider")
    code = output.get("status") if isinstance(output, dict) else None
    kind = provider.get("type") if isinstance(provider, dict) else None
    if not isinstance(code, int):
        return True
    return code < 400 if kind == "http" else code == 0 if kind == "process" else True


def _injection_block(journal: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """(the injection, the actions after it): the injection is the method's first run of
    consecutive actions (whatif's experiments create their fault objects, then observe, then
    delete them); an action after the observation only cleans up."""
    runs = _runs(journal.get("run"))
    kinds = [_activity(r).get("type") for r in runs]
    start = kinds.index("action") if "action" in kinds else len(runs)
    end = next((i for i in range(start, len(runs)) if kinds[i] != "action"), len(runs))
    later = [r for r, kind in zip(runs[end:], kinds[end:], strict=True) if kind == "action"]
    return runs[start:end], later


def _injection(journal: dict[str, Any]) -> datetime | None:
    """When the failure was injected (the end of the method's first action: what the probes
    see from then on is the system under the failure), or _Quarantined when it never was:
    then the journal says nothing about the system, whatever its steady state did. None when
    the actions carry no usable end time."""
    dry = journal["experiment"].get("dry")
    if isinstance(dry, str) and dry.lower() in DRY_WITHOUT_EVIDENCE:
        raise _Quarantined("dry_run", f"chaos run --dry {dry}: nothing was injected or judged")
    before = _steady_state(journal, "before")
    if isinstance(before, dict) and before.get("steady_state_met") is False:
        probe = _last_probe_name(before)
        raise _Quarantined(
            "steady_state_not_met_before",
            f"{probe} was out of tolerance before anything was injected: the method did not run",
        )
    actions, _ = _injection_block(journal)
    failed = [r for r in actions if not _answered_ok(r)]
    if failed:
        raise _Quarantined("injection_failed", _failure_line(failed[0]))
    if not actions:
        status = journal.get("status")
        if status in STOPPED:
            raise _Quarantined(STOPPED[status], f"the run was {status} before any action ran")
        raise _Quarantined("no_injection", "the method ran no action: nothing was injected")
    ends = [_timestamp(r.get("end")) for r in actions]
    return min((e for e in ends if e is not None), default=None)


def _last_probe_name(state: dict[str, Any]) -> str:
    probes = _runs(state.get("probes")) or [{}]
    return str(_activity(probes[-1]).get("name") or "a probe")


def _failure_line(run: dict[str, Any]) -> str:
    """The failed action and the last line of its error, for the quarantine's detail."""
    name = _activity(run).get("name") or "an action"
    exception = run.get("exception") or []
    last = str(exception[-1]).strip().splitlines()[-1] if exception else ""
    if not last and isinstance(run.get("output"), dict):
        last = f"answered status {run['output'].get('status')}"
    return f"action {name} failed" + (f": {last}" if last else "")


def _service(run: Any) -> str | None:
    """The service a `steady-<service>` probe watches, or None for any other activity."""
    activity = _activity(run)
    name = activity.get("name")
    if activity.get("type") != "probe" or not isinstance(name, str):
        return None
    if not name.startswith(PROBE_PREFIX):
        return None
    return name[len(PROBE_PREFIX) :] or None


def _watched(experiment: dict[str, Any]) -> tuple[str, ...]:
    """The services the experiment watches: its steady-<service> probes, in the
    hypothesis's order, then those only the method probes."""
    hypothesis = experiment.get("steady-state-hypothesis")
    hypothesis = hypothesis if isinstance(hypothesis, dict) else {}
    probes = [*_runs(hypothesis.get("probes")), *_runs(experiment.get("method"))]
    found = (_service({"activity": p}) for p in probes if isinstance(p, dict))
    return tuple(dict.fromkeys(s for s in found if s))


def _after(journal: dict[str, Any]) -> dict[str, bool]:
    """Per watched service checked after the method: whether its probe met its tolerance.
    Services past the first failing probe are absent: the runner did not check them."""
    probes = _runs((_steady_state(journal, "after") or {}).get("probes"))
    return {
        service: p.get("status") == "succeeded" and p.get("tolerance_met") is True
        for p in probes
        if (service := _service(p))
    }


def _probe_healthy(run: dict[str, Any]) -> bool | None:
    """Whether a probe's run found its service healthy: a run that failed (no answer) did
    not; a judged run (a steady state) by `tolerance_met`; a method probe, which the runner
    does not judge, by its tolerance, or without one as its provider warns (_answered_ok).
    None: a tolerance this reader does not evaluate (regex, jsonpath, a probe)."""
    if run.get("status") != "succeeded":
        return False
    if "tolerance_met" in run:
        return run["tolerance_met"] is True
    activity = _activity(run)
    if "tolerance" not in activity:
        return _answered_ok(run)
    return _within(activity["tolerance"], run.get("output"))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _within(tolerance: Any, output: Any) -> bool | None:
    """chaoslib's within_tolerance for what a health probe's tolerance is (a status, a list
    of statuses, a range, optionally on a `target` key of the output); None for the others,
    which would need chaoslib (and a probe tolerance would run an activity)."""
    code = output.get("status", output) if isinstance(output, dict) else output
    if isinstance(tolerance, bool):
        return output == tolerance
    if isinstance(tolerance, int):
        return code == tolerance
    if isinstance(tolerance, str):
        return output == tolerance
    if isinstance(tolerance, list) and all(_number(t) for t in tolerance):
        return code in tolerance
    if isinstance(tolerance, dict) and tolerance.get("type") == "range":
        bounds, target = tolerance.get("range"), tolerance.get("target")
        value = output.get(target, output) if target and isinstance(output, dict) else output
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(map(_number, bounds))):
            return None
        return _number(value) and bounds[0] <= value <= bounds[1]
    return None


def _during(journal: dict[str, Any], injected_at: datetime | None) -> dict[str, list[bool]]:
    """Per watched service, what its probes found while the failure was injected and before
    the check after the method: the method's steady-<service> probes and the continuous
    checks (`--hypothesis-strategy continuously`) that started once the injection ended."""
    states = journal.get("steady_states")
    states = states.get("during") if isinstance(states, dict) else None
    runs = _runs(journal.get("run"))
    runs += [p for s in _runs(states) for p in _runs(s.get("probes"))]
    found: dict[str, list[bool]] = {}
    for run in runs:
        service = _service(run)
        if service is None:
            continue
        started = _timestamp(run.get("start"))
        if injected_at and started and started < injected_at:
            continue
        healthy = _probe_healthy(run)
        if healthy is not None:
            found.setdefault(service, []).append(healthy)
    return found


def _state(service: str, after: dict[str, bool], during: dict[str, list[bool]]) -> str | None:
    """deviated (any check while injected failed), held (checked, never failed) or None."""
    seen = [*during.get(service, []), *([after[service]] if service in after else [])]
    return None if not seen else "held" if all(seen) else "deviated"


def _outcome(
    journal: dict[str, Any],
    trigger: str,
    watched: tuple[str, ...],
    after: dict[str, bool],
    during: dict[str, list[bool]],
) -> tuple[str, str]:
    """(passed | partial | failed, why) of a journal whose injection ran, by the rule of the
    module's docstring; _Quarantined when the run ended without saying how the system did."""
    status, deviated = journal["status"], journal.get("deviated") is True
    dependents = [s for s in watched if s != trigger]
    states = {s: _state(s, after, during) for s in dependents}
    hit = [s for s in dependents if states[s] == "deviated"]
    if status in ("aborted", "interrupted") or (status == "failed" and not deviated):
        if hit:
            return "failed", f"the run was {status} while a dependent deviated"
        detail = f"the run was {status} before the check after the method; no dependent deviated"
        raise _Quarantined(STOPPED[status], detail)
    checked = _steady_state(journal, "after")
    stopped_at = _last_probe_name(checked) if checked else ""
    if not checked or (deviated and False not in after.values()):
        # not checked (hypothesis strategy), or stopped at a probe of no service (the
        # injector's gate, a third party's reachability): no verdict on the services
        if hit:
            return "failed", "a dependent deviated while the failure was injected"
        detail = (
            f"the check after the method stopped at {stopped_at}"
            if checked
            else ("no steady-state check after the method (hypothesis strategy)")
        )
        raise _Quarantined("no_steady_state_after", f"{detail}; no dependent deviated")
    if not deviated and checked.get("steady_state_met") is not False:
        return ("partial", "recovered") if hit else ("passed", "held")
    if hit:
        return "failed", "a dependent deviated"
    if after.get(trigger) is False and dependents and all(states[s] == "held" for s in states):
        return "partial", "contained"
    return "failed", "the steady state was not met after the method"


def _action_items(
    why: str,
    deviated: tuple[str, ...],
    during: tuple[str, ...],
    unobserved: tuple[str, ...],
    after: dict[str, bool],
    journal: dict[str, Any],
) -> str:
    """A short line for the exercise log: what deviated (and recovered by the check after
    the method, or was not checked again), what was never checked, and a rollback that
    failed or was never played (the facilitator must restore the trigger by hand)."""
    recovered = [s for s in during if after.get(s) is True]
    unknown = [s for s in during if s not in recovered]
    parts = []
    if deviated:
        parts.append(f"out of tolerance after the method: {', '.join(deviated)}")
    if unknown:
        parts.append(f"deviated while injected, not checked after the method: {', '.join(unknown)}")
    if recovered:
        parts.append(f"deviated while injected, recovered after the method: {', '.join(recovered)}")
    if why == "contained":
        parts.append("contained: every watched dependent held")
    if unobserved:
        parts.append(f"never checked (the hypothesis stopped first): {', '.join(unobserved)}")
    cleanup = [str(_activity(r).get("name")) for r in _injection_block(journal)[1]
               if not _answered_ok(r)]  # fmt: skip
    if cleanup:
        parts.append(f"action failed after the injection: {', '.join(cleanup)}")
    rollbacks = _runs(journal.get("rollbacks"))
    failed = [str(_activity(r).get("name")) for r in rollbacks if r.get("status") != "succeeded"]
    if failed:
        parts.append(f"rollback failed: {', '.join(failed)}")
    elif not rollbacks and journal["experiment"].get("rollbacks"):
        parts.append("rollbacks not played: check the trigger was restored")
    return "; ".join(parts) or "steady state held"


def as_exercise_rows(
    records: Iterable[JournalRecord], owners: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """The records as rows of the exercise log (EXERCISE_COLUMNS), which
    readiness.load_exercises reads like the rows of a tabletop's CSV: scenario `service:mode`.
    A journal without a team (an experiment exported before the topology named owners) gets
    the trigger's owner from `owners` when given; left empty, load_exercises quarantines it
    as missing_team."""
    owners = owners or {}
    return [
        {
            "date": r.day.isoformat(),
            "scenario": f"{r.service}:{r.mode}",
            "team": r.team or owners.get(r.service, ""),
            "outcome": r.outcome,
            "action_items": r.action_items,
            "facilitator": r.facilitator,
        }
        for r in sorted(records, key=lambda r: (r.day, r.started, r.scenario))
    ]


def cascade_evidence(
    records: Iterable[JournalRecord], require_trigger_deviated: bool = False
) -> list[tuple[str, str, bool]]:
    """Trials for the edge model, (dependency, dependent, hit): the trigger was injected and
    each watched service other than it either deviated while injected (a hit) or was seen
    healthy throughout (a miss). Unobserved services are no trial: a probe that never ran
    is no evidence that the failure did not spread. The reader knows no topology: the model
    keeps the trials that are edges of it (a watched service two hops away is no trial of
    an edge from the trigger). Only journals whose injection ran are records at all.

    An injection the trigger absorbed (its own probe never deviated) is a weaker trial than
    an incident of it; `require_trigger_deviated` keeps only the journals where the trigger
    was seen deviating."""
    trials = []
    for record in records:
        if require_trigger_deviated and record.trigger_deviated is not True:
            continue
        hits = {*record.deviated, *record.deviated_during}
        trials += [
            (record.service, service, service in hits)
            for service in record.watched
            if service != record.service and service not in record.unobserved
        ]
    return trials
