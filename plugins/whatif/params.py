"""Every run setting, declared once: name, type, default, bounds, help, environment variable.

The CLI's options (`add_options`) and the DAG's trigger-form Params (`dag_params`) are both
generated from SETTINGS, and the engine's settings classes (whatif.config) take their defaults
and check their bounds here (`default`, `check`), so a default or a bound has one home. A
setting's `surfaces` says where it appears: the CLI, the DAG, or both (connections and
publish targets are the DAG's; the LLM's timeout and retries the CLI's, the DAG reads them from
the connection whatif_llm).

This module is imported when Airflow parses the DAG files: it imports nothing heavy.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any

from whatif import environment
from whatif.errors import UserError

NARRATORS = ("template", "ollama", "openai")
# The chaos experiment formats, one module of whatif.gameday each (docs/gameday.md).
EXPORT_FORMATS = ("chaostoolkit", "chaosmesh", "litmus", "fis")
# The DAG's import sources (whatif.importers.fetch: the kinds; "+" merges a catalog and traces).
TOPOLOGY_SOURCES = ("file", "backstage", "jaeger", "tempo", "backstage+jaeger", "backstage+tempo")
INCIDENT_SOURCES = ("file", "pagerduty", "incident-io")
CLI = "cli"
DAG = "dag"
BOTH = frozenset({CLI, DAG})

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array"}


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str  # the DAG param and the argparse dest
    kind: type  # int, float, str, bool or list (of str)
    default: Any
    help: str
    group: str  # inputs, model, scenarios, narration, airflow
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False  # > 0 (an exclusive minimum of 0)
    zero_means: str | None = None  # "off": 0 turns it off (said in the bound's message)
    choices: tuple[str, ...] = ()
    dag_choices: tuple[str, ...] = ()  # the DAG's, when it has more (narrator "llm")
    env: str | None = None  # gives the CLI's default (whatif.environment)
    flag: str | None = None  # default: --name-with-dashes
    metavar: str | None = None
    pattern: str | None = None  # the DAG form's check of a text setting
    is_date: bool = False  # an optional YYYY-MM-DD
    surfaces: frozenset[str] = BOTH
    show_default: bool = True

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def cli_default(self) -> Any:
        """The default, or the environment's value for it."""
        value = environment.get(self.env) if self.env else None
        if value is None:
            return [] if self.kind is list and self.default is None else self.default
        return self.kind(value) if self.kind in (int, float) else value

    def check(self, value: Any) -> Any:
        """The value within the bounds, else a UserError naming the option."""
        if value is None or self.kind not in (int, float):
            return value
        problem = self._bound_problem(float(value))
        if problem:
            raise UserError(f"{self.option} {value}: must be {problem}")
        return value

    def _bound_problem(self, value: float) -> str | None:
        low, high = self.minimum, self.maximum
        within = math.isfinite(value)
        if self.positive:
            within = within and value > 0
        if low is not None:
            within = within and value >= low
        if high is not None:
            within = within and value <= high
        if within:
            return None
        if self.positive:
            return "positive" + (f" and at most {_number(high)}" if high is not None else "")
        if low is not None and high is not None:
            return f"{_number(low)} to {_number(high)}"
        if low is not None:
            if low == 0:
                return f"0 ({self.zero_means}) or more" if self.zero_means else "0 or more"
            return f"at least {_number(low)}"
        return f"at most {_number(high)}"

    def bounds_text(self) -> str:
        """The bounds for the help: '1 to 50', '> 0', '>= 30'..."""
        parts = []
        if self.positive:
            parts.append("> 0")
        if self.minimum is not None and self.maximum is not None:
            return f"{_number(self.minimum)} to {_number(self.maximum)}"
        if self.minimum is not None:
            parts.append(f">= {_number(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"<= {_number(self.maximum)}")
        return ", ".join(parts)

    def param_schema(self, default: Any) -> dict[str, Any]:
        """The keyword arguments of the DAG's Param: JSON schema of the trigger form."""
        schema: dict[str, Any] = {"default": default, "description": self.help}
        if self.is_date:
            schema |= {"type": ["null", "string"], "format": "date"}
        else:
            schema["type"] = _JSON_TYPES[self.kind]
        if self.kind is list:
            schema["items"] = {"type": "string"}
            if self.choices:  # each item one of them
                schema["items"]["enum"] = list(self.choices)
        elif self.dag_choices or self.choices:
            schema["enum"] = list(self.dag_choices or self.choices)
        if self.positive:
            schema["exclusiveMinimum"] = 0
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.pattern:
            schema["pattern"] = self.pattern
        return schema


def _number(value: float) -> str:
    """1000000 as 1,000,000 and 0.5 as 0.5."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


SETTINGS_LIST: tuple[Setting, ...] = (
    # Where the data comes from.
    Setting(
        "source",
        str,
        "files",
        "files: the incidents and topology files; sql: the package's sql/extract_*.sql on the "
        "connection sql_conn_id",
        "airflow",
        choices=("files", "sql"),
        surfaces=frozenset({DAG}),
    ),
    Setting(
        "topology_source",
        str,
        "file",
        "file: the topology param; backstage, jaeger, tempo: imported at each run through the "
        "connection whatif_backstage, whatif_jaeger or whatif_prometheus (docs/sources.md); "
        "backstage+jaeger, backstage+tempo: the catalog merged with the traces",
        "airflow",
        choices=TOPOLOGY_SOURCES,
        surfaces=frozenset({DAG}),
    ),
    Setting(
        "incident_source",
        str,
        "file",
        "file: the incidents param (or SQL with source sql); pagerduty, incident-io: the "
        "history window's incidents imported at each run through the connection "
        "whatif_pagerduty or whatif_incidentio",
        "airflow",
        choices=INCIDENT_SOURCES,
        surfaces=frozenset({DAG}),
    ),
    Setting(
        "trace_lookback_days",
        float,
        7.0,
        "with topology_source jaeger or tempo: the days of traces before the run's time that "
        "give the edges and their call counts",
        "airflow",
        positive=True,
        maximum=90,
        surfaces=frozenset({DAG}),
    ),
    Setting(
        "incidents",
        str,
        None,
        "incidents file: CSV, Parquet or JSON Lines; a local path or an object-storage URL "
        "(file://, s3://...)",
        "inputs",
        metavar="PATH|URL",
    ),
    Setting(
        "topology",
        str,
        None,
        "topology file (one row per service, depends_on ';'-separated): a path or a URL",
        "inputs",
        metavar="PATH|URL",
    ),
    Setting(
        "mapping",
        str,
        None,
        "column mapping of an incident-tool export: pagerduty, opsgenie, incident-io, jira, or "
        "a YAML file (docs/mappings.md); empty: the data contract or the notebook format",
        "inputs",
        metavar="NAME|PATH",
    ),
    Setting(
        "aliases", str, None, "service aliases: CSV alias,service or YAML", "inputs", metavar="PATH"
    ),
    Setting(
        "incidents_sql_url",
        str,
        None,
        "read incidents from this database with the package's sql/extract_incidents.sql "
        "(e.g. postgresql://user@host/db)",
        "inputs",
        metavar="URL",
        surfaces=frozenset({CLI}),
    ),
    Setting(
        "storage_conn_id",
        str,
        "whatif_data",
        "connection for s3:// and other URLs",
        "airflow",
        surfaces=frozenset({DAG}),
    ),
    Setting(
        "sql_conn_id",
        str,
        "whatif_incidents_db",
        "connection of the SQL source",
        "airflow",
        surfaces=frozenset({DAG}),
    ),
    Setting(
        "topology_from_sql",
        bool,
        False,
        "with a SQL source, read the topology from the same database (sql/extract_topology.sql)",
        "inputs",
        show_default=False,
    ),
    Setting(
        "allow_external_dependencies",
        bool,
        False,
        "a depends_on name that is no service of the topology becomes an external leaf "
        "service (a warning names each) instead of an error; without it, give an external "
        "service a row of its own",
        "inputs",
        show_default=False,
    ),
    Setting(
        "as_of",
        str,
        None,
        "end of the history window (ISO-8601; default: now)",
        "inputs",
        metavar="DATE",
        surfaces=frozenset({CLI}),  # the DAG's is the data interval's end
    ),
    # The scenarios.
    Setting(
        "seed",
        int,
        42,
        "random seed (same inputs and seed, same scenarios)",
        "scenarios",
        metavar="N",
    ),
    Setting(
        "scenarios",
        int,
        8,
        "how many scenarios to report",
        "scenarios",
        minimum=1,
        maximum=50,
        metavar="K",
    ),
    Setting(
        "horizon_days",
        float,
        7.0,
        "horizon of the probabilities, in days (an event window replaces it)",
        "scenarios",
        positive=True,
        maximum=366,
        metavar="D",
    ),
    Setting(
        "draws",
        int,
        10_000,
        "simulated horizons of the whole fleet",
        "scenarios",
        minimum=100,
        maximum=1_000_000,
        metavar="N",
    ),
    Setting(
        "cascade_draws",
        int,
        2000,
        "cascades simulated per trigger service, for its impact",
        "scenarios",
        minimum=100,
        maximum=200_000,
        metavar="N",
    ),
    Setting(
        "history_days",
        int,
        730,
        "length of the history window, in days, ending at the as-of date (the DAG: the data "
        "interval's end)",
        "inputs",
        minimum=30,
        metavar="D",
    ),
    # How the models are fitted (docs/model.md).
    Setting(
        "cascade_window_minutes",
        float,
        30.0,
        "an incident without caused_by that starts at most this many minutes after an incident "
        "of one of its dependencies counts as its cascade",
        "model",
        minimum=0,
        zero_means="off",
        metavar="M",
    ),
    Setting(
        "half_life_days",
        str,
        "auto",
        "how fast old history fades from the failure rates: an incident this many days old "
        "counts half; off: the window's average; auto: chosen by the rolling-origin log score",
        "model",
        pattern=r"^(auto|off|[0-9]+(\.[0-9]+)?)$",
        metavar="auto|off|D",
    ),
    Setting(
        "backtest_horizon_days",
        float,
        28.0,
        "backtest forecast horizon, in days",
        "model",
        positive=True,
        metavar="D",
    ),
    Setting(
        "backtest_folds",
        int,
        6,
        "backtest origins",
        "model",
        minimum=0,
        maximum=52,
        zero_means="no backtest",
        metavar="N",
    ),
    # An event (Black Friday, a launch): its window replaces the horizon.
    Setting("event_name", str, None, "event name, e.g. Black Friday", "scenarios", metavar="TEXT"),
    Setting(
        "event_start",
        str,
        None,
        "event start date (YYYY-MM-DD); with an event name and end",
        "scenarios",
        is_date=True,
        metavar="DATE",
    ),
    Setting(
        "event_end",
        str,
        None,
        "event end date (YYYY-MM-DD, inclusive)",
        "scenarios",
        is_date=True,
        metavar="DATE",
    ),
    Setting(
        "exercises",
        str,
        None,
        "the exercise log (CSV, Parquet, JSON Lines: date, scenario, team, outcome, "
        "action_items, facilitator), a Chaos Toolkit journal.json, or a folder of both "
        "(docs/gameday.md): writes readiness.json, the selection prefers what was never "
        "exercised or failed recently, and game days' observed cascades are edge evidence",
        "scenarios",
        metavar="PATH|URL",
    ),
    Setting(
        "export_formats",
        list,
        None,
        "also export each scenario as a chaos experiment (chaostoolkit, chaosmesh, litmus, "
        "fis) into the run's experiments/ folder, published beside the report "
        "(docs/gameday.md)",
        "scenarios",
        flag="--export-format",
        metavar="FORMAT",
        choices=EXPORT_FORMATS,
    ),
    Setting(
        "focus_services",
        list,
        None,
        "an event's services in focus: scenarios are picked among those that start at or reach "
        "them, others only when they run out",
        "scenarios",
        flag="--focus-service",
        metavar="SERVICE",
    ),
    Setting(
        "traffic_multiplier",
        float,
        1.0,
        "expected traffic during the event, relative to normal",
        "scenarios",
        positive=True,
        maximum=100,
        metavar="X",
    ),
    Setting(
        "what_if",
        list,
        None,
        "forced what-ifs, always reported: SERVICE or SERVICE:MODE",
        "scenarios",
        metavar="SERVICE[:MODE]",
    ),
    # Who writes the prose.
    Setting(
        "narrator",
        str,
        "template",
        "who writes the prose: template (offline), ollama, or openai (any OpenAI-compatible "
        "server: OpenAI, Azure OpenAI, vLLM, llama.cpp, LM Studio); the DAG also takes llm "
        "(the provider of the connection whatif_llm)",
        "narration",
        choices=NARRATORS,
        dag_choices=("template", "llm", "ollama", "openai"),
        env="WHATIF_LLM_PROVIDER",
    ),
    Setting(
        "llm_url",
        str,
        None,
        "LLM server URL, e.g. http://127.0.0.1:11434 or https://api.openai.com/v1 (the DAG: "
        "empty takes the connection's host)",
        "narration",
        env="WHATIF_LLM_URL",
        metavar="URL",
    ),
    Setting(
        "llm_model",
        str,
        None,
        "LLM model (the DAG: empty takes the connection's extra.model)",
        "narration",
        env="WHATIF_LLM_MODEL",
        metavar="NAME",
    ),
    Setting(
        "llm_timeout",
        float,
        60.0,
        "seconds per LLM call",
        "narration",
        positive=True,
        metavar="SECONDS",
        surfaces=frozenset({CLI}),
    ),
    Setting(
        "llm_max_concurrency",
        int,
        4,
        "scenarios narrated at once",
        "narration",
        minimum=1,
        maximum=64,
        env="WHATIF_LLM_MAX_CONCURRENCY",
        metavar="N",
        surfaces=frozenset({CLI}),
    ),
    Setting(
        "llm_temperature",
        float,
        0.0,
        "sampling temperature",
        "narration",
        minimum=0,
        maximum=2,
        metavar="T",
        surfaces=frozenset({CLI}),
    ),
    Setting(
        "llm_retries",
        int,
        3,
        "retries per LLM call (timeouts, refused connections, 429, 5xx)",
        "narration",
        minimum=0,
        metavar="N",
        surfaces=frozenset({CLI}),
    ),
    Setting(
        "llm_cache",
        str,
        "~/.cache/whatif/llm",
        "LLM response cache: a folder or an object-storage URL; a re-run of the same prompts "
        "makes no call",
        "narration",
        env="WHATIF_LLM_CACHE",
        metavar="DIR|URL",
        surfaces=frozenset({CLI}),
    ),
    Setting(
        "publish_targets",
        list,
        None,
        "where to publish: object-storage URLs (file://, s3://...; connection whatif_reports "
        'for remote ones) and/or "confluence" (connection whatif_confluence)',
        "airflow",
        surfaces=frozenset({DAG}),
    ),
)
SETTINGS: dict[str, Setting] = {setting.name: setting for setting in SETTINGS_LIST}


def default(name: str) -> Any:
    return SETTINGS[name].default


def check(name: str, value: Any) -> Any:
    return SETTINGS[name].check(value)


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    groups: Iterable[str] = (),
    names: Iterable[str] = (),
) -> None:
    """The CLI options of these groups (and these single settings), in SETTINGS order."""
    wanted_groups, wanted_names = set(groups), set(names)
    for setting in SETTINGS_LIST:
        if CLI not in setting.surfaces:
            continue
        if setting.group in wanted_groups or setting.name in wanted_names:
            _add_option(parser, setting)


def _add_option(parser: Any, setting: Setting) -> None:
    value = setting.cli_default()
    help_text = setting.help
    bounds = setting.bounds_text()
    if bounds:
        help_text += f"; {bounds}"
    if setting.show_default and value not in (None, [], ""):
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        help_text += f" (default {shown}{f', ${setting.env}' if setting.env else ''})"
    elif setting.env:
        help_text += f" (default ${setting.env})"
    options: dict[str, Any] = {"dest": setting.name, "help": help_text.replace("%", "%%")}
    if setting.kind is bool:
        options |= {"action": "store_true", "default": bool(value)}
    elif setting.kind is list:
        options |= {"action": "append", "default": list(value), "metavar": setting.metavar}
        options["help"] += " (repeatable)"
    else:
        options |= {"type": setting.kind, "default": value, "metavar": setting.metavar}
        if setting.choices:
            options |= {"choices": setting.choices, "metavar": None}
    parser.add_argument(setting.option, **options)


def dag_params(
    defaults: dict[str, Any] | None = None, make: Callable[..., Any] | None = None
) -> dict[str, Any]:
    """The DAG's params, in SETTINGS order: `make(**schema)` for each (Airflow's Param), else
    the schema dicts. `defaults` are the deployment's own (the sample files, the reports
    folder); every other default is the setting's."""
    defaults = defaults or {}
    params = {}
    for setting in SETTINGS_LIST:
        if DAG not in setting.surfaces:
            continue
        value = defaults.get(setting.name, setting.default)
        if value is None and not setting.is_date:
            value = [] if setting.kind is list else ""
        schema = setting.param_schema(value)
        params[setting.name] = make(**schema) if make else schema
    return params
