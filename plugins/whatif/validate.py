"""Validate: Great Expectations suites for incidents and topology, with hard and soft checks.

Each expectation carries a level in its meta:
- hard: the run stops with one line naming file, row and column;
- soft: the offending rows are quarantined with a reason and the run goes on;
- warn: the rows are kept (the value is ignored) and the count is reported.
Nothing is dropped silently: every input row is either used or in `quarantine.csv`.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from whatif import environment
from whatif.errors import UserError, shown
from whatif.ingest import (
    ROW,
    Table,
    map_distinct,
    open_status,
    split_dependencies,
    text_isin,
)
from whatif.schemas import DURATION_SOURCES, SCHEMA_VERSION
from whatif.topology import Topology

log = logging.getLogger(__name__)

KEY = "_key"  # an incident row's position: unique even where a mapping split an export row
# A resolved_at and a duration that differ by more than this contradict each other.
DURATION_TOLERANCE_MINUTES = 1.0
# A history whose newest incident is longer than this before --as-of may be an export that
# stopped: say so, since the quiet days count as days without incidents.
QUIET_TAIL_DAYS = 30
# Flag columns of the incident checks, not kept in the validated table.
INCIDENT_FLAGS = (
    "unknown_service",
    "severity_check",
    "last_timestamp",
    "unknown_caused_by",
    "bad_resolved_at",
    "bad_duration",
    "duration_disagrees",
)


@dataclasses.dataclass(frozen=True)
class Check:
    """One expectation and what a failure of it means for the rows."""

    reason: str
    level: str  # hard | soft | warn
    build: Callable[[Any], Any]  # gx.expectations module -> expectation
    message: str


@dataclasses.dataclass
class Validated:
    incidents: pd.DataFrame
    topology: Topology
    quarantine: pd.DataFrame
    report: dict[str, Any]
    gx_results: dict[str, Any]  # GX's own result documents, kept beside validation.json


def topology_checks() -> list[Check]:
    return [
        Check(
            "missing_service",
            "hard",
            lambda e: e.ExpectColumnValuesToNotBeNull(column="service"),
            "every topology row needs a service name",
        ),
        Check(
            "duplicate_service",
            "hard",
            lambda e: e.ExpectColumnValuesToBeUnique(column="service"),
            "each service may have one row only",
        ),
        Check(
            "slo_target_out_of_range",
            "warn",
            lambda e: e.ExpectColumnValuesToBeBetween(
                column="slo_target", min_value=0, max_value=1, strict_min=True, strict_max=True
            ),
            "slo_target must be a fraction such as 0.999; the value is ignored",
        ),
        Check(
            "unclear_user_facing",
            "warn",
            lambda e: e.ExpectColumnValuesToBeInSet(
                column="unclear_user_facing", value_set=[False]
            ),
            "user_facing is not true or false; it is inferred from the graph instead (a "
            "service nothing depends on is user-facing)",
        ),
        Check(
            "self_dependency",
            "warn",
            lambda e: e.ExpectColumnValuesToBeInSet(column="self_dependency", value_set=[False]),
            "a service lists itself in depends_on; that dependency is ignored",
        ),
        Check(
            "traffic_weight_out_of_range",
            "warn",
            lambda e: e.ExpectColumnValuesToBeBetween(
                column="traffic_weight", min_value=0, max_value=1
            ),
            "traffic_weight must be between 0 and 1; the value is ignored",
        ),
        Check(
            "bad_observed_counts",
            "warn",
            lambda e: e.ExpectColumnValuesToBeInSet(
                column="bad_observed_counts", value_set=[False]
            ),
            "observed_requests must be a number >= 0, observed_calls and observed_errors "
            "dependency=count pairs of the row's own dependencies; the value is ignored",
        ),
        Check(
            "bad_created_at",
            "warn",
            lambda e: e.ExpectColumnValuesToBeInSet(column="bad_created_at", value_set=[False]),
            "created_at is not an ISO-8601 timestamp; the service counts as present for the "
            "whole window",
        ),
    ]


def incident_checks(now: pd.Timestamp) -> list[Check]:
    return [
        Check(
            "missing_incident_id",
            "soft",
            lambda e: e.ExpectColumnValuesToNotBeNull(column="incident_id"),
            "incident_id is empty",
        ),
        Check(
            "missing_service",
            "soft",
            lambda e: e.ExpectColumnValuesToNotBeNull(column="service"),
            "service is empty",
        ),
        Check(
            "unknown_service",
            "soft",
            # A flag column, not the topology's names as a value set: GX copies an
            # expectation's arguments with every metric (seconds for a fleet's names).
            lambda e: e.ExpectColumnValuesToBeInSet(column="unknown_service", value_set=[False]),
            "service is not in the topology",
        ),
        Check(
            "bad_started_at",
            "soft",
            lambda e: e.ExpectColumnValuesToNotBeNull(column="started_at"),
            "started_at is empty or not an ISO-8601 timestamp",
        ),
        Check(
            "future_timestamp",
            "soft",
            lambda e: e.ExpectColumnValuesToBeBetween(column="last_timestamp", max_value=now),
            "started_at or resolved_at is in the future",
        ),
        Check(
            "resolved_before_started",
            "soft",
            lambda e: e.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="resolved_at",
                column_B="started_at",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
            "resolved_at is before started_at",
        ),
        Check(
            "unknown_severity",
            "warn",
            lambda e: e.ExpectColumnValuesToNotBeNull(column="severity_check"),
            "severity is not a known word; the row is used without a severity",
        ),
        Check(
            "unknown_caused_by",
            "warn",
            lambda e: e.ExpectColumnValuesToBeInSet(column="unknown_caused_by", value_set=[False]),
            "caused_by names no incident in the file; the row counts as a root failure",
        ),
        Check(
            "bad_load_factor",
            "warn",
            lambda e: e.ExpectColumnValuesToBeBetween(
                column="load_factor", min_value=0, strict_min=True
            ),
            "load_factor must be a positive number (traffic relative to normal); the value "
            "is ignored",
        ),
        Check(
            "bad_resolved_at",
            "warn",
            lambda e: e.ExpectColumnValuesToBeInSet(column="bad_resolved_at", value_set=[False]),
            "resolved_at is not an ISO-8601 timestamp; it is ignored and the row counts for "
            "rates, its duration from duration_minutes or duration_s when given",
        ),
        Check(
            "bad_duration",
            "warn",
            lambda e: e.ExpectColumnValuesToBeInSet(column="bad_duration", value_set=[False]),
            "duration_minutes or duration_s is not a number >= 0 (of at most ten years); the "
            "value is ignored",
        ),
        Check(
            "duration_disagrees",
            "warn",
            lambda e: e.ExpectColumnValuesToBeInSet(column="duration_disagrees", value_set=[False]),
            "resolved_at - started_at and the duration column differ by more than a minute; "
            "resolved_at is kept",
        ),
    ]


def run_suite(
    name: str, frame: pd.DataFrame, checks: list[Check], index: str = ROW
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the checks as one GX expectation suite: one result dict per check, with its failing
    rows, and GX's own result document (lists cut to GX_EXAMPLES items) to keep beside them."""
    environment.quiet_libraries()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX sets this logger to INFO itself; its "temporary directory" lines are noise here.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas(f"{name}_source")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe(f"{name}_batch")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=f"whatif_{name}"))
    columns = [index]
    for check in checks:
        expectation = check.build(gx.expectations)
        expectation.meta = {"reason": check.reason, "level": check.level}
        suite.add_expectation(expectation)
        columns += [getattr(expectation, f, None) for f in ("column", "column_A", "column_B")]
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}_validation", data=batch, suite=suite)
    )
    # Only the columns the expectations read: GX copies its batch (a million incidents'
    # titles and descriptions cost it 1.6 s for nothing).
    checked = frame[[c for c in dict.fromkeys(columns) if c is not None]]
    result = definition.run(
        batch_parameters={"dataframe": checked},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [index]},
    )
    by_reason = {r.expectation_config.meta["reason"]: r for r in result.results}
    outcomes = []
    for check in checks:
        outcome = by_reason[check.reason]
        failing = outcome.result.get("unexpected_index_list") or []
        rows = sorted(int(item[index]) for item in failing)
        outcomes.append(
            {
                "expectation": outcome.expectation_config.type,
                "reason": check.reason,
                "level": check.level,
                "message": check.message,
                "success": bool(outcome.success),
                "unexpected_count": len(rows),
                "rows": rows,
            }
        )
    return outcomes, _trimmed(result.describe_dict())


GX_EXAMPLES = 100


def _trimmed(document: Any) -> Any:
    """GX's result document with every list cut to GX_EXAMPLES items (a million bad rows must
    not make a million-line file)."""
    if isinstance(document, dict):
        return {k: _trimmed(v) for k, v in document.items()}
    if isinstance(document, list | tuple):
        return [_trimmed(v) for v in document[:GX_EXAMPLES]]
    return document


def validate_topology(
    table: Table, allow_external: bool = False
) -> tuple[Topology, dict[str, Any], list[str], dict[str, Any]]:
    """Check the topology; a UserError names its first fault (a hard check, a dependency that
    is no service, a comma, a case variant) and carries every fault found (`partial`: for
    validation.json and quarantine.csv of a stopped run). `allow_external`: a dependency
    without a row of its own becomes an external leaf service, with a warning."""
    frame = table.frame
    for column in ("slo_target", "traffic_weight"):
        if column in table.raw:
            # A value given but not a number ("abc", "NaN") fails the range check below like
            # "inf" does, rather than being read as empty without a word.
            given = table.raw[column].str.strip() != ""
            frame.loc[given & frame[column].isna(), column] = float("inf")
    given = table.raw["user_facing"].str.strip() != "" if "user_facing" in table.raw else False
    frame["unclear_user_facing"] = given & frame["user_facing"].isna().to_numpy()
    frame["self_dependency"] = [
        isinstance(s, str) and s in deps
        for s, deps in zip(frame["service"], frame["depends_on"], strict=True)
    ]
    outcomes, gx_result = run_suite("topology", frame, topology_checks())
    warnings: list[str] = []
    if table.format == "notebook":
        warnings.append(
            f"{table.path}: notebook topology: 'dependencies' is read as the services each "
            "service depends on (failure flows from them to it)"
        )
    for outcome in outcomes:
        if outcome["level"] == "warn" and outcome["rows"]:
            if outcome["reason"].endswith("_out_of_range"):
                column = outcome["reason"].removesuffix("_out_of_range")
                frame.loc[frame[ROW].isin(outcome["rows"]), column] = float("nan")
            warnings.append(_warning_line(table.path, outcome))
    prose = [name for name in frame["service"] if isinstance(name, str) and reads_like_prose(name)]
    if prose:
        warnings.append(
            f"{table.path}: service names that read like a sentence or a link, not a service "
            f"(a catch-all of the export?): {', '.join(repr(shown(n)) for n in prose[:5])}"
            + (f" and {len(prose) - 5} more" if len(prose) > 5 else "")
        )
    problems = _hard_problems(outcomes, table)
    names, external = _name_problems(table, frame, allow_external)
    problems += names
    if problems:
        raise _stopped(table, problems, outcomes, warnings)
    if external:
        warnings.append(_external_line(table.path, external, list(frame["service"])))
    topology = Topology.from_frame(frame)
    for cycle in topology.cycles():
        warnings.append(
            f"{table.path}: dependency cycle {' <-> '.join(cycle)}: failures may flow both "
            "ways; each service is counted once per cascade"
        )
    report = _input_report(table, len(frame), len(frame), {}, outcomes)
    return topology, report, warnings, gx_result


@dataclasses.dataclass(frozen=True)
class Problem:
    """A fault of the topology that stops the run: its rows, reason and one-line error."""

    rows: list[int]
    reason: str
    error: UserError


def _stopped(
    table: Table, problems: list[Problem], outcomes: list[dict[str, Any]], warnings: list[str]
) -> UserError:
    """The first problem's error, saying how many more there are, with every problem (its
    line, its rows as read) for validation.json and quarantine.csv of the stopped run."""
    lines = [str(problem.error) for problem in problems]
    error = problems[0].error
    if len(problems) > 1:
        more = f"{len(problems) - 1} more problem{'s' if len(problems) > 2 else ''} in this file"
        error.hint = f"{error.hint}; {more}" if error.hint else more
    frame = table.frame
    position = {int(row): i for i, row in enumerate(frame[ROW])}
    reasons: dict[int, list[str]] = {}
    for problem in problems:
        for row in problem.rows:
            found = reasons.setdefault(position[int(row)], [])
            if problem.reason not in found:
                found.append(problem.reason)
    by_reason = Counter(reason for row in reasons.values() for reason in row)
    report = _input_report(
        table, len(frame), len(frame) - len(reasons), dict(sorted(by_reason.items())), outcomes
    )
    error.partial = {  # type: ignore[attr-defined]
        "inputs": {"topology": report},
        "warnings": warnings,
        "quarantine": _quarantine_rows(table, reasons, frame),
        "problems": lines,
    }
    return error


def _hard_problems(outcomes: list[dict[str, Any]], table: Table) -> list[Problem]:
    """The failed hard checks (an empty service name, a repeated one), each naming the file,
    the row and the column; for a repeated value, the row that repeats it, and every row
    where it stands."""
    problems = []
    for outcome in outcomes:
        if outcome["level"] != "hard" or outcome["success"]:
            continue
        rows, column = outcome["rows"], "service"
        message = outcome["message"]
        if rows:
            values = table.frame.set_index(ROW).loc[rows, column]
            value = values.iloc[-1]
            same = [str(r) for r, v in values.items() if pd.isna(value) or v == value]
            message += f": {shown(repr(value))}" if pd.notna(value) else ""
            message += f" (rows {', '.join(same[:10])})" if len(same) > 1 else ""
        error = UserError(
            message,
            file=table.path,
            row=rows[-1] if rows else None,
            column=column,
            hint="fix the file and run again",
        )
        problems.append(Problem([int(r) for r in rows], outcome["reason"], error))
    return problems


def _name_problems(
    table: Table, frame: pd.DataFrame, allow_external: bool
) -> tuple[list[Problem], dict[str, list[int]]]:
    """Every service has one name and every dependency is a service of the topology. A typo'd
    dependency, or two names joined by a comma, would otherwise become a service nobody runs
    and lose the real edge; names that differ only in case would become two services. An
    external service (a SaaS, a payment provider) is declared with a row of its own, or, with
    `allow_external`, is any other name (returned with its rows; a comma or a variant of a
    service's name is still a problem)."""
    problems: list[Problem] = []
    rows = [int(row) for row in frame[ROW]]
    first_by_fold: dict[str, tuple[str, int]] = {}
    for name, row in zip(frame["service"], rows, strict=True):
        if not isinstance(name, str):
            continue  # an empty name: a hard check's problem
        seen = first_by_fold.setdefault(name.casefold(), (name, row))
        if seen[0] != name:
            problems.append(_case_problem(table, seen, name, row, "service"))
    services = ServiceNames([name for name in frame["service"] if isinstance(name, str)])
    external: dict[str, list[int]] = {}
    external_by_fold: dict[str, tuple[str, int]] = {}
    columns = _dependency_columns(table)
    for deps, row, column_of in zip(frame["depends_on"], rows, columns, strict=True):
        for dependency in deps:
            if dependency in services.declared:
                continue
            column = column_of[dependency]
            problem = _dependency_problem(table, dependency, row, column, services, allow_external)
            if problem is None:  # allowed as an external service: one spelling only
                seen = external_by_fold.setdefault(dependency.casefold(), (dependency, row))
                if seen[0] != dependency:
                    problem = _case_problem(table, seen, dependency, row, column)
                else:
                    external.setdefault(dependency, []).append(row)
            if problem is not None:
                problems.append(problem)
    return sorted(problems, key=lambda problem: problem.error.row or 0), external


def _dependency_columns(table: Table) -> list[dict[str, str]]:
    """Per row: the column each of its dependencies was written in (depends_on, or
    soft_depends_on for one named there only; the notebook format's `dependencies`)."""
    main = "dependencies" if table.format == "notebook" else "depends_on"
    frame = table.frame
    given = table.raw[main] if main in table.raw else pd.Series([""] * len(frame))
    soft = frame.get("soft_depends_on")
    columns = []
    for i, deps in enumerate(frame["depends_on"]):
        listed = set(split_dependencies(given.iloc[i]))
        softly = set(soft.iloc[i] or []) if soft is not None else set()
        columns.append(
            {d: "soft_depends_on" if d in softly and d not in listed else main for d in deps}
        )
    return columns


def _dependency_problem(
    table: Table,
    dependency: str,
    row: int,
    column: str,
    services: ServiceNames,
    allow_external: bool,
) -> Problem | None:
    """What is wrong with a dependency that is no service of the topology; None when
    `allow_external` lets it be an external service."""
    parts = [part.strip() for part in dependency.split(",") if part.strip()]
    if "," in dependency:
        joined = len(parts) > 1 and all(part in services.declared for part in parts)
        message = (
            f"{column} {shown(dependency)!r} joins services with ','"
            if joined
            else f"{column} {shown(dependency)!r} holds a ',', which no service name has"
        )
        hint = f"separate dependencies with ';': {shown(';'.join(parts))}"
        error = UserError(message, file=table.path, row=row, column=column, hint=hint)
        return Problem([row], "comma_in_dependencies", error)
    if allow_external and services.variant_of(dependency) is None:
        return None  # not a case (or space, '-', '_') variant of a service's name
    close = services.closest(dependency)
    hint = (
        f"did you mean {shown(close)!r}?"
        if close
        else "fix the name, or give an external service a row of its own or run with "
        "--allow-external-dependencies"
    )
    error = UserError(
        f"{column} names {shown(dependency)!r}, which is no service of the topology",
        file=table.path,
        row=row,
        column=column,
        hint=hint,
    )
    return Problem([row], "unknown_dependency", error)


def _case_problem(table: Table, seen: tuple[str, int], name: str, row: int, column: str) -> Problem:
    """Two spellings of one name (`seen`: the first and its row) in a column."""
    what = "services" if column == "service" else f"{column} names"
    error = UserError(
        f"{what} {shown(seen[0])!r} (row {seen[1]}) and {shown(name)!r} differ only "
        "in case and would be two services",
        file=table.path,
        row=row,
        column=column,
        hint="give the service one name in every row",
    )
    return Problem([seen[1], row], "case_variant", error)


def _external_line(path: str, external: dict[str, list[int]], services: list[str]) -> str:
    """The warning that names the external services (--allow-external-dependencies), with a
    did-you-mean for those close to a service's name."""
    names = ServiceNames([name for name in services if isinstance(name, str)])
    count = f"{len(external)} dependenc{'ies' if len(external) > 1 else 'y'}"
    return (
        f"{path}: {count} without a row of their own, taken as external leaf services "
        f"(--allow-external-dependencies): {names_with_rows(external, names)}"
    )


def names_with_rows(found: dict[str, list[int]], services: ServiceNames, limit: int = 10) -> str:
    """Names that are no service, for a warning: "'dbx' (rows 2, 4; did you mean 'db'?),
    'old' (row 9)", the first `limit` of them."""
    parts = []
    for name, rows in list(found.items())[:limit]:
        where = f"row{'s' if len(rows) > 1 else ''} {', '.join(str(r) for r in rows[:5])}"
        where += ", ..." if len(rows) > 5 else ""
        close = services.closest(name) if name else None
        where += f"; did you mean {shown(close)!r}?" if close else ""
        parts.append(f"{shown(name)!r} ({where})")
    more = f" and {len(found) - limit} more" if len(found) > limit else ""
    return ", ".join(parts) + more


PROSE_LINK = re.compile(r"https?://|www\.|\b[\w-]+\.(com|org|net|io|dev|cloud)\b", re.I)
PROSE_LENGTH = 80  # characters: a description, not a name


def reads_like_prose(name: str) -> bool:
    """A link, six words or more, a sentence's end, or more than PROSE_LENGTH characters:
    GitHub's status export names a component "Visit www.githubstatus.com for more
    information"."""
    words = name.split()
    return (
        bool(PROSE_LINK.search(name))
        or len(words) >= 6
        or len(name) > PROSE_LENGTH
        or (len(words) >= 3 and name.rstrip().endswith((".", "!", "?")))
    )


class ServiceNames:
    """The topology's service names, and the one a name that is none of them most likely
    meant (asked once per name: a large topology's misspelt names repeat)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.declared = set(names)
        self._by_key = {_name_key(name): name for name in names}
        self._closest: dict[str, str | None] = {}

    def variant_of(self, name: str) -> str | None:
        """The service `name` is but for case, spaces, '-' and '_'; None if none."""
        return self._by_key.get(_name_key(name))

    def closest(self, name: str) -> str | None:
        """The variant, else the closest spelling (difflib), else None."""
        if name not in self._closest:
            close = self.variant_of(name)
            if close is None:
                matches = difflib.get_close_matches(name, self.names, n=1, cutoff=0.6)
                close = matches[0] if matches else None
            self._closest[name] = close
        return self._closest[name]


def _warning_line(path: str, outcome: dict[str, Any]) -> str:
    rows = outcome["rows"]
    shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
    return f"{path}: {outcome['message']} ({len(rows)} rows: {shown})"


def validate_incidents(
    table: Table,
    topology: Topology,
    as_of: datetime,
    history_days: int,
    aliases: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], list[str], dict[str, Any]]:
    """Check every incident row; quarantine the soft failures.

    Rows are tracked by KEY, their position: a mapping that splits one export row into one row
    per service gives several rows the same `_row`, and each is used or quarantined on its own.
    Messages and quarantine.csv still name the export's row."""
    frame = table.frame.reset_index(drop=True)
    frame[KEY] = np.arange(len(frame))
    frame["service"] = _match_service_names(frame["service"], topology.services, aliases or {})
    # Null only where a severity was given but not recognised (empty is simply unknown).
    frame["severity_check"] = frame["severity"].where(frame["severity_raw"] != "", "not given")
    reasons: dict[int, list[str]] = {}
    duplicated = (
        frame.duplicated(subset=["incident_id", "service"], keep="last")
        & frame["incident_id"].notna()
    )
    for key in frame.loc[duplicated, KEY]:
        reasons.setdefault(int(key), []).append("duplicate")
    # A flag column, not a value set of every incident id: GX copies an expectation's
    # arguments many times over, which takes minutes for the ids of a large export.
    frame["unknown_service"] = frame["service"].notna().to_numpy() & ~text_isin(
        frame["service"], topology.services
    )
    known_cause = text_isin(frame["caused_by"], frame["incident_id"])
    frame["unknown_caused_by"] = frame["caused_by"].notna().to_numpy() & ~known_cause
    # Clocks drift: only a timestamp more than five minutes ahead of this machine is "future".
    now = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=5)
    frame["last_timestamp"] = frame[["started_at", "resolved_at"]].max(axis=1)
    frame["bad_duration"] = (frame["duration_minutes"] < 0) | (frame["duration_s"] < 0)
    duration = _given_duration_minutes(frame)
    frame["duration_disagrees"] = _disagrees(frame, duration)
    checks = incident_checks(now)
    outcomes, gx_result = run_suite("incidents", frame, checks, index=KEY)
    warnings: list[str] = []
    for outcome in outcomes:
        keys = outcome.pop("rows")
        outcome["keys"] = keys
        outcome["rows"] = sorted({int(r) for r in frame[ROW].to_numpy()[keys]})
        if not keys:
            continue
        if outcome["level"] == "soft":
            for key in keys:
                reasons.setdefault(key, []).append(outcome["reason"])
        else:
            warnings.append(_warning_line(table.path, outcome))
    unknown_cause = _at_keys(
        len(frame), next(o["keys"] for o in outcomes if o["reason"] == "unknown_caused_by")
    )
    frame.loc[unknown_cause, "caused_by"] = pd.NA
    frame.loc[frame["load_factor"] <= 0, "load_factor"] = float("nan")
    for column in ("duration_minutes", "duration_s"):
        frame.loc[frame[column] < 0, column] = float("nan")
    start = pd.Timestamp(as_of) - timedelta(days=history_days)
    outside = frame["started_at"].notna() & (
        (frame["started_at"] <= start) | (frame["started_at"] > pd.Timestamp(as_of))
    )
    for key in frame.loc[outside, KEY]:
        reasons.setdefault(int(key), []).append("outside_window")
    quarantined = _at_keys(len(frame), reasons)
    frame["duration_source"] = _duration_sources(frame, duration, ~quarantined, as_of)
    derived = frame["duration_source"] == "duration_column"
    frame.loc[derived, "resolved_at"] = frame.loc[derived, "started_at"] + pd.to_timedelta(
        duration[derived], unit="min"
    )
    used = frame.loc[~quarantined].drop(columns=[KEY, *INCIDENT_FLAGS]).reset_index(drop=True)
    quarantine = _quarantine_rows(table, reasons, frame)
    by_reason = Counter(reason for row in reasons.values() for reason in row)
    for outcome in outcomes:
        del outcome["keys"]
    report = _input_report(table, len(frame), len(used), dict(sorted(by_reason.items())), outcomes)
    report |= _duration_counts(used["duration_source"])
    if report["rows_rates_only"]:
        warnings.append(_rates_only_line(table.path, report))
    if len(frame) != len(table.raw):
        report["source_rows"] = len(table.raw)  # a mapping split rows: counts are after it
    # Where the export's history begins, so that the model does not count the days before
    # it as days without incidents.
    earliest = frame["started_at"].min()
    report["data_start"] = earliest.isoformat() if pd.notna(earliest) else None
    newest = _newest_start(frame, reasons)
    report["data_end"] = newest.isoformat() if newest is not None else None
    quiet = quiet_tail(used, newest, as_of, history_days)
    if quiet:
        report["quiet_tail"] = quiet
        warnings.append(_quiet_tail_line(table.path, quiet))
    return used, quarantine, report, warnings, gx_result


def _at_keys(n: int, keys: Any) -> np.ndarray:
    """A mask of n rows, true at the given KEYs (KEY is the row's position)."""
    mask = np.zeros(n, dtype=bool)
    mask[np.fromiter(keys, dtype=np.int64)] = True
    return mask


def _newest_start(frame: pd.DataFrame, reasons: dict[int, list[str]]) -> pd.Timestamp | None:
    """Where the export's history ends: the newest start of the rows that only the history
    window keeps out, if anything (rows quarantined for other faults say nothing about it)."""
    faulty = [key for key, why in reasons.items() if any(r != "outside_window" for r in why)]
    starts = frame.loc[~_at_keys(len(frame), faulty), "started_at"]
    newest = starts.max()
    return newest if pd.notna(newest) else None


def quiet_tail(
    used: pd.DataFrame, newest: pd.Timestamp | None, as_of: datetime, history_days: int
) -> dict[str, Any] | None:
    """The silence between the export's newest incident and as_of, when it is longer than
    QUIET_TAIL_DAYS: its length, the as-of that would end the window at the data, and how
    likely so long a silence is at the rate the window had before it (Poisson)."""
    end = pd.Timestamp(as_of)
    if newest is None or used.empty or end - newest <= pd.Timedelta(days=QUIET_TAIL_DAYS):
        return None
    days = (end - newest) / pd.Timedelta(days=1)
    start = max(end - pd.Timedelta(days=history_days), used["started_at"].min())
    before = max((newest - start) / pd.Timedelta(days=1), 1.0)
    rate = used["incident_id"].nunique() / before  # incidents, not their rows per service
    return {
        "newest_incident": newest.isoformat(),
        "as_of": end.isoformat(),
        "days": round(days, 1),
        "rate_per_day_before": rate,
        "chance_at_that_rate": float(np.exp(-rate * days)),
        "suggested_as_of": (newest + pd.Timedelta(days=1)).date().isoformat(),
    }


def chance_in_words(chance: float) -> str:
    """A small probability as a reader takes it in: "0.03", "less than one in a million"."""
    return "less than one in a million" if chance < 1e-6 else f"{chance:.2g}"


def _quiet_tail_line(path: str, quiet: dict[str, Any]) -> str:
    odds = chance_in_words(quiet["chance_at_that_rate"])
    spacing = 1 / quiet["rate_per_day_before"]
    every = f"{spacing:.1f}" if spacing < 10 else f"{spacing:.0f}"
    return (
        f"{path}: the newest incident starts {quiet['newest_incident'][:10]}, "
        f"{quiet['days']:.0f} days before --as-of {quiet['as_of'][:10]}, and those days "
        "count as days without incidents, lowering every rate (before them the history had "
        f"one incident every {every} days: a silence this long has a chance of {odds}); if "
        f"the export ends there, rerun with --as-of {quiet['suggested_as_of']}"
    )


def _empty_window_hint(report: dict[str, Any], as_of: datetime, history_days: int) -> str:
    """What to do when nothing was usable: when the window missed the history, the as-of
    date that ends it the day after the newest incident."""
    newest = report.get("data_end")
    start = pd.Timestamp(as_of) - timedelta(days=history_days)
    if "outside_window" in report["quarantined_by_reason"] and newest:
        newest_start = pd.Timestamp(newest)
        if not start < newest_start <= pd.Timestamp(as_of):
            after = (newest_start + pd.Timedelta(days=1)).date().isoformat()
            return (
                f"the history window is {start.date()} to {pd.Timestamp(as_of).date()} and the "
                f"newest incident starts {newest_start.date()}: rerun with --as-of {after}; "
                "in Airflow, a run whose data interval ends then"
            )
    return "see quarantine.csv; check the history window (--as-of) and service names"


def _given_duration_minutes(frame: pd.DataFrame) -> pd.Series:
    """The duration a row gives, in minutes: duration_minutes, else duration_s; NaN when it
    gives none (or only values that are not a number >= 0, which ingest marked -1)."""
    minutes = frame["duration_minutes"].where(frame["duration_minutes"] >= 0)
    seconds = frame["duration_s"].where(frame["duration_s"] >= 0)
    return minutes.fillna(seconds / 60.0)


def _disagrees(frame: pd.DataFrame, duration: pd.Series) -> pd.Series:
    """Rows whose resolved_at and duration column both say how long, differently (a row that
    ends before it starts is quarantined for that instead)."""
    measured = (frame["resolved_at"] - frame["started_at"]).dt.total_seconds() / 60.0
    return (measured >= 0) & ((measured - duration).abs() > DURATION_TOLERANCE_MINUTES)


def _duration_sources(
    frame: pd.DataFrame, duration: pd.Series, used: pd.Series, as_of: datetime
) -> pd.Series:
    """Where each row's duration comes from: its resolved_at; its duration column (then
    resolved_at = started_at + duration); or, with neither, `open` (still going at as_of: the
    duration is right-censored) or `not_recorded` (unknown: the row counts for rates only). A
    row whose resolved_at is given but unreadable ended, so it is not open."""
    ended = frame["resolved_at"].notna()
    from_column = ~ended & duration.notna() & frame["started_at"].notna()
    lasted = (frame["resolved_at"] - frame["started_at"]).fillna(
        pd.to_timedelta(duration, unit="min")
    )
    longest = lasted[(ended | from_column) & used].max()  # NaT when nothing was recorded
    still_open = _still_open(frame, longest, as_of)
    is_open = ~ended & ~from_column & ~frame["bad_resolved_at"] & still_open
    sources = np.select(
        [ended, from_column, is_open], ["resolved_at", "duration_column", "open"], "not_recorded"
    )
    return pd.Series(sources, index=frame.index)


def _still_open(frame: pd.DataFrame, longest: pd.Timedelta, as_of: datetime) -> pd.Series:
    """Whether a row without an end was still going at as_of: what its status word says; with
    none, whether it started no longer ago than the `longest` duration recorded. An incident
    "open" for longer than any incident lasted is almost surely a record never closed, and
    with no recorded duration at all (NaT: fault-injection catalogues) no row is taken as
    open."""
    started_recently = (pd.Timestamp(as_of) - frame["started_at"]) <= longest
    return open_status(frame["status"]).fillna(started_recently).astype(bool)


def _duration_counts(sources: pd.Series) -> dict[str, Any]:
    """validation.json: the rows used by where their duration comes from, and how many count
    for rates only (no observed duration: open or not recorded)."""
    counts = {name: int((sources == name).sum()) for name in DURATION_SOURCES}
    return {"durations": counts, "rows_rates_only": counts["open"] + counts["not_recorded"]}


def _rates_only_line(path: str, report: dict[str, Any]) -> str:
    counts = report["durations"]
    return (
        f"{path}: {report['rows_rates_only']} rows have no end time and count for rates only "
        f"({counts['open']} still open at as_of: their durations are censored; "
        f"{counts['not_recorded']} with their end not recorded)"
    )


def _match_service_names(
    names: pd.Series, services: tuple[str, ...], aliases: dict[str, str]
) -> pd.Series:
    """Incident service names matched to the topology's spelling, ignoring case, spaces and
    `-`/`_`, after the aliases file has renamed the names it knows."""
    canonical = {_name_key(s): s for s in services}
    renamed = {_name_key(a): s for a, s in aliases.items()}

    def match(name: object) -> object:
        if not isinstance(name, str):
            return name
        key = _name_key(renamed.get(_name_key(name), name))
        return canonical.get(key, renamed.get(_name_key(name), name))

    return map_distinct(names, match)  # once per distinct name, not per row


def read_aliases(location: str) -> dict[str, str]:
    """Service aliases: a CSV with columns alias,service, or a YAML mapping alias: service."""
    if location.lower().endswith((".yaml", ".yml")):
        import yaml

        from whatif.sources import decode, read_bytes

        try:
            data = yaml.safe_load(decode(read_bytes(location), location)) or {}
        except yaml.YAMLError as error:
            raise UserError(
                f"not valid YAML: {str(error).splitlines()[0]}", file=location
            ) from None
        if not isinstance(data, dict):
            raise UserError("an aliases YAML file must map alias: service", file=location)
        return {str(k): str(v) for k, v in data.items()}
    from whatif.sources import read_table

    table = read_table(location)
    for column in ("alias", "service"):
        if column not in table:
            raise UserError("required column missing", file=location, row=1, column=column)
    return dict(zip(table["alias"], table["service"], strict=True))


def _name_key(name: str) -> str:
    return "".join(name.lower().split()).replace("_", "-")


# A cell starting with one of these is a formula to a spreadsheet (CSV injection): in
# quarantine.csv, a file made to be opened in one, it is written with a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """`value` as text a spreadsheet shows and never runs: a formula gets a leading `'`."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def _quarantine_rows(
    table: Table, reasons: dict[int, list[str]], frame: pd.DataFrame
) -> pd.DataFrame:
    """The quarantined rows as read (every cell text), with file, row and reason; cells that a
    spreadsheet would run as formulas are prefixed with `'`. When a mapping split an export
    row, each quarantined part is a line of its own, with the service it was split into."""
    keys = sorted(reasons)
    rows = frame[ROW].to_numpy()[keys] if keys else []
    raw = table.raw.set_index(ROW)
    quarantine = (
        raw.loc[rows].reset_index(names="row") if keys else raw.iloc[:0].reset_index(names="row")
    )
    for column in quarantine.columns.drop("row"):
        quarantine[column] = quarantine[column].map(spreadsheet_safe)
    if len(frame) != len(table.raw):
        quarantine.insert(1, "split_service", frame["service"].to_numpy()[keys] if keys else [])
    quarantine.insert(0, "reason", [";".join(reasons[k]) for k in keys])
    quarantine.insert(0, "file", table.path)
    return quarantine


def _input_report(
    table: Table,
    rows_read: int,
    rows_used: int,
    quarantined_by_reason: dict[str, int],
    outcomes: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "path": table.path,
        "format": table.format,
        "rows_read": rows_read,
        "rows_used": rows_used,
        "rows_quarantined": rows_read - rows_used,
        "quarantined_by_reason": {k: int(v) for k, v in quarantined_by_reason.items()},
        "expectations": [
            {k: v for k, v in o.items() if k != "rows"} | {"sample_rows": o["rows"][:20]}
            for o in outcomes
        ],
    }


def validate(
    incidents: Table,
    topology_table: Table,
    as_of: datetime,
    history_days: int,
    aliases: dict[str, str] | None = None,
    allow_external: bool = False,
) -> Validated:
    """Validate both inputs; raise UserError on a hard failure or when no incident is usable.
    `allow_external`: dependencies without a row of their own are external services."""
    topology, topology_report, warnings, topology_gx = validate_topology(
        topology_table, allow_external
    )
    used, quarantine, incident_report, incident_warnings, incident_gx = validate_incidents(
        incidents, topology, as_of, history_days, aliases
    )
    warnings += incident_warnings
    if used.empty:
        reasons = (
            ", ".join(f"{k}: {v}" for k, v in incident_report["quarantined_by_reason"].items())
            or "none"
        )
        error = UserError(
            f"no usable incident rows (quarantined by reason: {reasons})",
            file=incidents.path,
            hint=_empty_window_hint(incident_report, as_of, history_days),
        )
        # What the run found before it stopped, for validation.json and quarantine.csv.
        error.partial = {  # type: ignore[attr-defined]
            "inputs": {"incidents": incident_report, "topology": topology_report},
            "warnings": warnings,
            "quarantine": quarantine,
        }
        raise error
    for line in warnings:
        log.warning("%s", line)
    report = {
        "schema_version": SCHEMA_VERSION,
        "as_of": as_of.isoformat(),
        "window": {
            "start": (as_of - timedelta(days=history_days)).isoformat(),
            "end": as_of.isoformat(),
            "days": history_days,
        },
        "inputs": {"incidents": incident_report, "topology": topology_report},
        "warnings": warnings,
    }
    gx_results = {"incidents": incident_gx, "topology": topology_gx}
    return Validated(used, topology, quarantine, report, gx_results)
