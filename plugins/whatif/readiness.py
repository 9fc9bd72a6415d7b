"""Readiness: the exercise log, each owner team's readiness score, which what-ifs were
rehearsed, and the feedback of exercises into the selection of scenarios.

- Exercise log (`exercises.csv`: date, scenario, team, outcome, action_items, facilitator):
  every row is used or quarantined with its reason, like the other inputs.
- Readiness per owner team, 0-100: a weighted mean of four components, each 0-100 and shown
  with what it is made of (docs/readiness.md): response (the team's time to acknowledge and
  resolve against the organisation's), coverage (its services with an on-call and a runbook),
  exposure (the risk of the reported scenarios it owns, against the most exposed team) and
  exercises (credit for recent exercises: passed 1, partial 0.5, failed 0.2, halving every
  90 days, two credits make 100).
- Selection feedback: a scenario's rank is its risk times a factor: x1.5 when its trigger
  failed an exercise in the last 90 days, x1.2 when it was never exercised, x0.5 when it passed
  one in the last 90 days (partial: x1). The risk it shows is unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from whatif.errors import UserError
from whatif.schemas import FAILURE_MODES

OUTCOMES = {"passed": 1.0, "partial": 0.5, "failed": 0.2}  # credit of an exercise
HALF_LIFE_DAYS = 90.0  # an exercise's credit halves every 90 days
CREDIT_FOR_FULL_MARKS = 2.0  # two fresh passed exercises make the exercises component 100
RECENT_DAYS = 90  # what counts as recent for the selection feedback
WEIGHTS = {"response": 0.25, "coverage": 0.25, "exposure": 0.20, "exercises": 0.30}
FACTORS = {"failed": 1.5, "never": 1.2, "partial": 1.0, "passed": 0.5, "old": 1.0}
REQUIRED = ("date", "scenario", "team", "outcome")
OPTIONAL = ("action_items", "facilitator")


@dataclasses.dataclass(frozen=True)
class Exercise:
    day: date
    service: str
    mode: str | None  # None: the service in any mode
    team: str
    outcome: str
    action_items: str = ""
    facilitator: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"day": self.day.isoformat()}


def load_exercises(
    location: str,
    services: list[str],
    as_of: datetime,
    conn_id: str | None = None,
    owners: dict[str, str] | None = None,
) -> tuple[list[Exercise], dict[str, Any], list[dict[str, Any]]]:
    """The exercise log: (the rows used, what validation found, the rows quarantined with
    their reason). A missing column is a UserError naming the file and the column.
    `location` may also be a Chaos Toolkit journal or a folder of journals and exercise logs
    (game days, whatif.gameday.journals): each journal is a row, and what validation found
    carries their `cascade_trials` for the edge model; `owners` (service -> team) names the
    team of a journal that names none."""
    from whatif.validate import spreadsheet_safe

    frame, journal_quarantine, trials = _exercise_table(location, conn_id, owners, as_of.date())
    for column in REQUIRED:
        if column not in frame.columns:
            raise UserError(
                "missing column",
                file=location,
                column=column,
                hint=f"the exercise log needs {', '.join(REQUIRED)}",
            )
    known = {s.lower(): s for s in services}
    used: list[Exercise] = []
    quarantined: list[dict[str, Any]] = []
    unknown: dict[str, list[int]] = {}  # service names no service of the topology has: rows
    for record in frame.to_dict("records"):
        exercise, reason = _parse_row(record, known, as_of.date())
        if reason == "unknown_service":
            unknown.setdefault(_scenario_parts(record)[0], []).append(int(record["_row"]))
        if exercise is None:
            # quarantine_exercises.csv is opened in spreadsheets: no cell may run as a formula.
            where = {"file": record["_file"]} if record.get("_file") else {}
            quarantined.append({"row": int(record["_row"]), "reason": reason, **where, **{
                c: spreadsheet_safe(_text(record.get(c)))
                for c in (*REQUIRED, *OPTIONAL) if c in frame.columns
            }})  # fmt: skip
        else:
            used.append(exercise)
    quarantined += journal_quarantine
    reasons: dict[str, int] = {}
    for row in quarantined:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    report = {
        "path": location,
        "rows_read": len(frame) + len(journal_quarantine),
        "rows_used": len(used),
        "rows_quarantined": len(quarantined),
        "quarantined_by_reason": reasons,
        "warnings": [_unknown_services_line(location, unknown, services)] if unknown else [],
        "cascade_trials": [list(trial) for trial in trials],
    }
    return sorted(used, key=lambda e: (e.day, e.service)), report, quarantined


def _exercise_table(
    location: str, conn_id: str | None, owners: dict[str, str] | None, today: date
) -> tuple[Any, list[dict[str, Any]], list[tuple[str, str, bool]]]:
    """The exercise rows of a log, a journal or a folder (its exercise logs `*.csv` and its
    journals at any depth), the journals quarantined, and the cascade trials of the journals
    up to `today` (a later game day is no evidence for a run as of today)."""
    import pandas as pd

    from whatif.sources import ROW, is_remote, read_table

    path = Path(location)
    is_journal = not is_remote(location) and (path.is_dir() or path.suffix.lower() == ".json")
    if not is_journal:
        return read_table(location, conn_id), [], []
    from whatif.gameday import journals

    records, skipped = journals.read_journals(location) if _has_json(path) else ([], [])
    logs = [
        read_table(str(p)).assign(_file=str(p))
        for p in (sorted(path.glob("*.csv")) if path.is_dir() else [])
    ]
    ordered = sorted(records, key=lambda r: (r.day, r.started, r.scenario))  # as the rows
    rows = pd.DataFrame(
        journals.as_exercise_rows(ordered, owners), columns=list(REQUIRED + OPTIONAL)
    ).astype(str)
    # Each journal is one row of its own file.
    rows = rows.assign(**{ROW: 1, "_file": [r.path for r in ordered]})
    frame = pd.concat([*logs, rows], ignore_index=True)
    quarantine = [
        {"row": None, "reason": q["reason"], "file": q.get("file"), "scenario": q.get("scenario")}
        for q in skipped
    ]
    # A trial is a failure of the dependency, as an incident of it is: an injection the
    # trigger absorbed (its own probe never deviated) is no trial (docs/gameday.md).
    past = [r for r in records if r.day <= today]
    return frame, quarantine, journals.cascade_evidence(past, require_trigger_deviated=True)


def _has_json(path: Path) -> bool:
    return path.suffix.lower() == ".json" or any(path.rglob("*.json"))


def _unknown_services_line(
    location: str, unknown: dict[str, list[int]], services: list[str]
) -> str:
    """One warning naming the scenarios' services that are no service of the topology, with
    their rows and a did-you-mean (a typo costs the team its exercise's credit)."""
    from whatif.validate import ServiceNames, names_with_rows

    rows = sum(len(r) for r in unknown.values())
    return (
        f"{location}: {rows} exercise{'s name' if rows > 1 else ' names'} no service of the "
        f"topology and {'are' if rows > 1 else 'is'} quarantined: "
        f"{names_with_rows(unknown, ServiceNames(services))}"
    )


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _scenario_parts(record: dict[str, Any]) -> tuple[str, str]:
    """The service and the mode a row's scenario names (`service--mode`, `service:mode`)."""
    scenario = _text(record["scenario"]).strip()
    service, _, mode = scenario.replace("--", ":").partition(":")
    return service, mode


def _parse_row(
    record: dict[str, Any], known: dict[str, str], today: date
) -> tuple[Exercise | None, str]:
    try:
        day = date.fromisoformat(_text(record["date"]).strip()[:10])
    except ValueError:
        return None, "bad_date"
    if day > today:
        return None, "date_in_the_future"
    service, mode = _scenario_parts(record)
    if service.lower() not in known:
        return None, "unknown_service"
    mode = mode.strip().lower() or None
    if mode is not None and mode not in FAILURE_MODES:
        return None, "unknown_failure_mode"
    outcome = _text(record["outcome"]).strip().lower()
    if outcome not in OUTCOMES:
        return None, "bad_outcome"
    team = _text(record["team"]).strip()
    if not team:
        return None, "missing_team"
    extras = (_text(record.get("action_items")), _text(record.get("facilitator")))
    return Exercise(day, known[service.lower()], mode, team, outcome, *extras), ""


def last_exercise(exercises: list[Exercise], service: str, mode: str) -> Exercise | None:
    """The latest exercise of this trigger: of the service in this mode, or in any mode."""
    matching = [e for e in exercises if e.service == service and e.mode in (mode, None)]
    return max(matching, key=lambda e: e.day) if matching else None


def selection_factor(
    exercises: list[Exercise], service: str, mode: str, today: date
) -> tuple[float, str]:
    """How much exercises raise or lower a scenario's rank, and why (for its reason)."""
    latest = last_exercise(exercises, service, mode)
    if latest is None:
        return FACTORS["never"], "never exercised"
    recent = (today - latest.day).days <= RECENT_DAYS
    kind = latest.outcome if recent else "old"
    return FACTORS[kind], f"{latest.outcome} an exercise on {latest.day.isoformat()}"


def credit(exercise: Exercise, today: date) -> float:
    age = max(0, (today - exercise.day).days)
    return OUTCOMES[exercise.outcome] * 0.5 ** (age / HALF_LIFE_DAYS)


def readiness(
    scenarios: list[dict[str, Any]],
    owners: dict[str, str],
    attributes: dict[str, dict[str, Any]],
    incidents: Any,
    exercises: list[Exercise],
    as_of: datetime,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """readiness.json: every owner team's score and components, and the exercise coverage.
    `owners` maps service to team; `attributes` service to its oncall and runbook_url;
    `incidents` is the clean incident table (pandas) or None."""
    today = as_of.date()
    teams = sorted(set(owners.values()))
    response = _response_times(incidents, owners, today)
    exposure = {team: 0.0 for team in teams}
    for scenario in scenarios:
        team = owners.get(scenario["trigger"]["service"])
        if team:
            exposure[team] += scenario["risk_score"]
    most = max(exposure.values(), default=0.0)
    before = {t["team"]: t["score"] for t in (previous or {}).get("teams", [])}
    rows = []
    for team in teams:
        services = sorted(s for s, t in owners.items() if t == team)
        components = {
            "response": response.get(team) or _no_incidents(),
            "coverage": _coverage(services, attributes),
            "exposure": {
                "score": round(100 * (1 - exposure[team] / most) if most else 100.0, 1),
                "detail": f"risk of the reported scenarios it owns {exposure[team]:.3g} "
                f"(most exposed team {most:.3g})",
            },
            "exercises": _exercises(team, exercises, today),
        }
        score = round(sum(WEIGHTS[k] * components[k]["score"] for k in WEIGHTS), 1)
        previous_score = before.get(team)
        rows.append({
            "team": team, "score": score, "components": components,
            "previous_score": previous_score,
            "change": None if previous_score is None else round(score - previous_score, 1),
        })  # fmt: skip
    return {
        "schema_version": 1,
        "as_of": as_of.isoformat(),
        "weights": WEIGHTS,
        "teams": sorted(rows, key=lambda r: (r["score"], r["team"])),
        "coverage": exercise_coverage(scenarios, exercises, today),
    }


def _no_incidents() -> dict[str, Any]:
    return {"score": 100.0, "detail": "no incident in the last 365 days"}


def _response_times(incidents: Any, owners: dict[str, str], today: date) -> dict[str, dict]:
    """Per team: its median time to acknowledge and to resolve over the last 365 days against
    the organisation's (100 when as fast or faster, lower in proportion when slower), and the
    trend of its time to resolve (last 90 days against the 275 before)."""
    if incidents is None or len(incidents) == 0:
        return {}
    import pandas as pd

    frame = incidents.assign(team=incidents["service"].map(owners))
    start = pd.Timestamp(today - timedelta(days=365), tz="UTC")
    frame = frame[frame["started_at"] >= start]
    frame = frame.assign(
        ttr=(frame["resolved_at"] - frame["started_at"]).dt.total_seconds() / 60,
        tta=(frame["acknowledged_at"] - frame["started_at"]).dt.total_seconds() / 60
        if "acknowledged_at" in frame
        else float("nan"),
    )
    org = {m: frame[m].median() for m in ("tta", "ttr")}
    recent = pd.Timestamp(today - timedelta(days=90), tz="UTC")
    result = {}
    for team, mine in frame.groupby("team"):
        ratios = [
            min(1.0, org[m] / mine[m].median())
            for m in ("tta", "ttr")
            if pd.notna(org[m]) and pd.notna(mine[m].median()) and mine[m].median() > 0
        ]
        late, early = mine[mine["started_at"] >= recent], mine[mine["started_at"] < recent]
        trend = "not enough incidents for a trend"
        if len(late) >= 2 and len(early) >= 2:
            change = late["ttr"].median() / early["ttr"].median() - 1
            trend = f"time to resolve {'down' if change < 0 else 'up'} {abs(change):.0%} lately"
        result[team] = {
            "score": round(100 * sum(ratios) / len(ratios), 1) if ratios else 100.0,
            "detail": f"median time to acknowledge {mine['tta'].median():.0f} min, to resolve "
            f"{mine['ttr'].median():.0f} min (organisation {org['tta']:.0f} / "
            f"{org['ttr']:.0f} min); {trend}",
        }
    return result


def _coverage(services: list[str], attributes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    needed = ("oncall", "runbook_url")
    ready = [s for s in services if all(attributes.get(s, {}).get(k) for k in needed)]
    missing = sorted(set(services) - set(ready))
    return {
        "score": round(100 * len(ready) / len(services), 1) if services else 100.0,
        "detail": f"{len(ready)} of {len(services)} services with an on-call and a runbook"
        + (f"; missing: {', '.join(missing[:5])}" if missing else ""),
    }


def _exercises(team: str, exercises: list[Exercise], today: date) -> dict[str, Any]:
    mine = [e for e in exercises if e.team == team]
    total = sum(credit(e, today) for e in mine)
    latest = max(mine, key=lambda e: e.day) if mine else None
    return {
        "score": round(100 * min(1.0, total / CREDIT_FOR_FULL_MARKS), 1),
        "detail": f"{len(mine)} exercises, credit {total:.2f} of {CREDIT_FOR_FULL_MARKS:g}"
        + (f"; last {latest.day.isoformat()} ({latest.outcome})" if latest else "; none yet"),
    }


def exercise_coverage(
    scenarios: list[dict[str, Any]], exercises: list[Exercise], today: date
) -> dict[str, Any]:
    """Which service x mode combinations were exercised and when, and the reported
    scenarios never exercised, the largest risk first."""
    exercised: dict[tuple[str, str | None], Exercise] = {}
    for exercise in exercises:
        key = (exercise.service, exercise.mode)
        if key not in exercised or exercised[key].day < exercise.day:
            exercised[key] = exercise
    unexercised = [
        {"id": s["id"], "service": s["trigger"]["service"], "mode": s["trigger"]["failure_mode"],
         "risk_score": s["risk_score"], "title": s["title"]}
        for s in scenarios
        if last_exercise(exercises, s["trigger"]["service"], s["trigger"]["failure_mode"]) is None
    ]  # fmt: skip
    latest_first = sorted(exercised.items(), key=lambda kv: kv[1].day, reverse=True)
    return {
        "exercised": [
            {
                "service": service,
                "mode": mode or "any",
                "last": e.day.isoformat(),
                "outcome": e.outcome,
                "team": e.team,
                "days_ago": (today - e.day).days,
            }
            for (service, mode), e in latest_first
        ],
        "unexercised": sorted(unexercised, key=lambda u: (-u["risk_score"], u["id"])),
    }
