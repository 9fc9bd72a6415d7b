"""Weekly "What if...?" reliability scenarios from incident history and service topology.

Thin wiring only: every task calls one stage of the `whatif` engine (plugins/whatif) and passes
the run's work folder on through XCom. Heavy imports happen inside the tasks, so that parsing
this file stays fast. Trigger it by hand with params for an event (e.g. Black Friday).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import (
    AsyncCallback,
    DeadlineAlert,
    DeadlineReference,
    Param,
    dag,
    get_current_context,
    task,
)
from whatif_alerts import WebhookAlert
from whatif_assets import DAG_DEFAULTS, PROJECT, REPORT_ASSET, REPORTS_URL

DATA = PROJECT / "include" / "data"
REPORTS_CONN_ID = "whatif_reports"  # object storage of the reports (s3:// and the like)
CONFLUENCE_CONN_ID = "whatif_confluence"  # host = base URL, login, password = token, extra.space
# A run that has not finished this long after it was queued raises the deadline alert; 0 turns
# it off (needed under `airflow dags test`: Airflow 3.3.2's dag.test crashes at the end of a
# successful run of a DAG with a deadline, reading the alerts' ids from an unsaved DAG).
EXPECTED_RUN_MINUTES = int(os.environ.get("WHATIF_EXPECTED_RUN_MINUTES", "60"))
LLM_CONN_ID = "whatif_llm"  # host = server URL, password = API key, extra: provider, model...
LLM_POOL = "whatif_llm"  # bounds the LLM calls of all runs together (make run, compose init)
# Scenarios narrated at once within one run (read when the DAG file is parsed).
LLM_CONCURRENCY = int(os.environ.get("WHATIF_LLM_MAX_CONCURRENCY", "4"))
# What a mapped narrate task needs of the run's files (not the incidents or the model).
NARRATE_FILES = (
    "_stage/scenario_facts.json",
    "_stage/narration_inputs.json",
    "_stage/llm-breaker.json",
)


def _work_location(run_id: str) -> str:
    """Where this run's stages exchange files: WHATIF_WORK_URL (object storage, e.g.
    s3://bucket/whatif-work, for workers that share no disk), else WHATIF_WORK_DIR, else a
    folder in AIRFLOW_HOME. Only this location travels through XCom."""
    from whatif.publish import safe_run_id

    return _in_work_storage(safe_run_id(run_id))


def _in_work_storage(name: str) -> str:
    """`name` under WHATIF_WORK_URL, else WHATIF_WORK_DIR, else AIRFLOW_HOME/whatif-work."""
    url = os.environ.get("WHATIF_WORK_URL")
    if url:
        return f"{url.rstrip('/')}/{name}"
    base = (
        os.environ.get("WHATIF_WORK_DIR")
        or Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "whatif-work"
    )
    return str(Path(base) / name)


def _work_conn_id(params: dict) -> str | None:
    return os.environ.get("WHATIF_WORK_CONN_ID") or params["storage_conn_id"] or None


def _workspace(location: str, params: dict, only: tuple[str, ...] | None = None) -> Any:
    """The run's files as a local folder (a copy synchronised with object storage when the
    location is a URL; connection WHATIF_WORK_CONN_ID, else the storage connection)."""
    from whatif.workspace import workspace

    return workspace(location, _work_conn_id(params), only)


def _run_config(params: dict) -> Any:
    """The engine's RunConfig for this run; the history window ends at the interval end.
    The LLM settings are left out: only the narration tasks read them (_narration_config)."""
    from whatif.config import config_from_params

    context = get_current_context()
    as_of = context.get("data_interval_end") or context["dag_run"].run_after
    return config_from_params({**params, "narrator": "template"}, as_of)


def _narration_config(params: dict) -> Any:
    """The RunConfig with the LLM settings of the connection `whatif_llm` (host: the server
    URL; password: the API key; extra: provider, model, timeout, max_concurrency,
    temperature); the params llm_url / llm_model override it. narrator=llm takes the
    provider from the connection. The key is masked in every log from here on; without a
    connection it may come from WHATIF_LLM_API_KEY."""
    import dataclasses

    from airflow.sdk.log import mask_secret

    if params["narrator"] == "template":
        return _run_config(params)
    connection = _llm_connection()
    extra = connection.extra_dejson if connection else {}
    provider = params["narrator"]
    if provider == "llm":
        provider = extra.get("provider", "openai")
    config = dataclasses.replace(_run_config(params), narrator=provider)
    key = (connection.password if connection else None) or os.environ.get("WHATIF_LLM_API_KEY")
    if key:
        mask_secret(key)
    llm = dataclasses.replace(
        config.llm,
        url=params["llm_url"] or (_connection_url(connection) if connection else None),
        model=params["llm_model"] or extra.get("model"),
        api_key=key or None,
        timeout_s=float(extra.get("timeout", config.llm.timeout_s)),
        temperature=float(extra.get("temperature", config.llm.temperature)),
        max_concurrency=int(extra.get("max_concurrency", LLM_CONCURRENCY)),
        cache=os.environ.get("WHATIF_LLM_CACHE_URL") or _default_llm_cache(),
    )
    if not (llm.url and llm.model):
        from whatif.errors import UserError

        raise UserError(
            f"narrator {params['narrator']} needs the connection {LLM_CONN_ID} (host = the "
            "server URL, extra.model) or the params llm_url and llm_model"
        )
    return dataclasses.replace(config, llm=llm)


def _llm_connection() -> Any:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(LLM_CONN_ID)
    except AirflowNotFoundException:  # not defined: the params / environment must do
        return None


def _connection_url(connection: Any) -> str | None:
    """The server URL of a connection: its host as a full URL, or scheme://host:port."""
    host = (connection.host or "").rstrip("/")
    if not host:
        return None
    if "://" not in host:
        scheme = connection.extra_dejson.get("scheme", "http")
        host = f"{scheme}://{host}"
    if connection.port and host.count(":") < 2:
        scheme, rest = host.split("://", 1)
        name, _, path = rest.partition("/")
        host = f"{scheme}://{name}:{connection.port}" + (f"/{path}" if path else "")
    return host


def _default_llm_cache() -> str:
    """Beside the runs' work folders: object storage when they are there, so that a retry
    on another worker finds the answers too."""
    return _in_work_storage("llm-cache")


def _reports_conn_id(target: str) -> str | None:
    """whatif_reports for a remote target when that connection exists (else the usual AWS_*
    environment or instance credentials)."""
    from whatif.sources import is_remote

    if not is_remote(target):
        return None
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(REPORTS_CONN_ID)
    except AirflowNotFoundException:
        return None
    return REPORTS_CONN_ID


def _confluence_target() -> Any:
    """The page target of the connection whatif_confluence: host = base URL, login = user
    (Cloud: the account's e-mail; empty for a Data Center personal access token), password =
    API token or PAT (masked), extra = {"space": KEY, "parent_id": ID, "cloud": bool}."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException
    from airflow.sdk.log import mask_secret
    from whatif.confluence import ConfluenceTarget
    from whatif.errors import UserError

    try:
        connection = BaseHook.get_connection(CONFLUENCE_CONN_ID)
    except AirflowNotFoundException:
        raise UserError(
            f'publish_targets names "confluence" but the connection {CONFLUENCE_CONN_ID} is '
            "not defined (host = base URL, password = API token, extra.space = space key)"
        ) from None
    extra = connection.extra_dejson
    if connection.password:
        mask_secret(connection.password)
    if not (connection.host and extra.get("space") and connection.password):
        raise UserError(
            f"the connection {CONFLUENCE_CONN_ID} needs host (the base URL), password (the "
            "token) and extra.space (the space key)"
        )
    return ConfluenceTarget(
        url=_connection_url(connection) or "",
        space=str(extra["space"]),
        parent_id=str(extra["parent_id"]) if extra.get("parent_id") else None,
        user=connection.login or None,
        token=connection.password,
        cloud=extra.get("cloud"),
    )


def _inputs(params: dict) -> Any:
    """Where the data comes from: files or object storage (connection `storage_conn_id`
    for s3:// and the like), or SQL through the connection `sql_conn_id`."""
    from whatif.pipeline import Inputs

    sql = None
    if params["source"] == "sql":
        from airflow.providers.common.sql.hooks.sql import DbApiHook
        from airflow.sdk import BaseHook
        from whatif.sources import sqlalchemy_fetch

        hook = BaseHook.get_connection(params["sql_conn_id"]).get_hook()
        if not isinstance(hook, DbApiHook):
            raise TypeError(f"connection {params['sql_conn_id']!r} is not a SQL database")
        sql = sqlalchemy_fetch(hook.get_sqlalchemy_engine())
    return Inputs(
        incidents=None if sql else params["incidents"],
        topology=None if sql and params["topology_from_sql"] else params["topology"],
        mapping=params["mapping"] or None,
        aliases=params["aliases"] or None,
        conn_id=params["storage_conn_id"] or None,
        sql=sql,
        sql_display=f"connection {params['sql_conn_id']}",
        topology_from_sql=bool(sql and params["topology_from_sql"]),
    )


def _user_errors_fail_fast(function: Callable[..., Any]) -> Callable[..., Any]:
    """A user error (bad data, bad params) will not fix itself: fail without retrying."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException
        from whatif.errors import UserError

        try:
            return function(*args, **kwargs)
        except UserError as error:
            raise AirflowFailException(str(error)) from None

    return wrapper


@dag(
    dag_id="what_if_scenarios",
    description="Ranked, quantified what-if reliability scenarios (weekly, or for an event)",
    schedule="0 6 * * 1",  # Mondays 06:00 UTC, before the weekly reliability review
    max_active_runs=1,
    doc_md=__doc__,
    **DAG_DEFAULTS,
    # Alerts to the chat webhook of the connection whatif_alerts (whatif_alerts.py): a failed
    # run (from the dag-processor), and a run still going EXPECTED_RUN_MINUTES after it was
    # queued (from the triggerer).
    on_failure_callback=WebhookAlert("run failed"),
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=EXPECTED_RUN_MINUTES),
        callback=AsyncCallback(
            WebhookAlert,
            kwargs={"what": f"run not finished {EXPECTED_RUN_MINUTES} minutes after it was queued"},
        ),
    )
    if EXPECTED_RUN_MINUTES > 0
    else None,
    params={
        "source": Param(
            "files",
            type="string",
            enum=["files", "sql"],
            description="files: the paths/URLs below; sql: include/sql/extract_*.sql on the "
            "connection sql_conn_id",
        ),
        "incidents": Param(
            str(DATA / "incidents.csv"),
            type="string",
            description="Incidents file (CSV, Parquet, JSON Lines): a path or an object-storage "
            "URL such as s3://bucket/incidents.csv",
        ),
        "topology": Param(
            str(DATA / "topology.csv"),
            type="string",
            description="Topology file (one row per service): a path or a URL",
        ),
        "mapping": Param(
            "",
            type="string",
            description="Column mapping of an incident-tool export: pagerduty, opsgenie, "
            "incident-io, jira, or a YAML path (empty: the data contract or notebook format)",
        ),
        "aliases": Param("", type="string", description="Service aliases file (CSV or YAML)"),
        "storage_conn_id": Param(
            "whatif_data", type="string", description="Connection for s3:// and other URLs"
        ),
        "sql_conn_id": Param(
            "whatif_incidents_db", type="string", description="Connection of the SQL source"
        ),
        "topology_from_sql": Param(
            False, type="boolean", description="With source=sql, read the topology from SQL too"
        ),
        "seed": Param(42, type="integer", description="Random seed (same seed, same scenarios)"),
        "scenarios": Param(
            8, type="integer", minimum=1, maximum=50, description="How many scenarios to report"
        ),
        "horizon_days": Param(
            7,
            type="number",
            exclusiveMinimum=0,
            maximum=366,
            description="Horizon of the probabilities, in days",
        ),
        "draws": Param(
            10000,
            type="integer",
            minimum=100,
            maximum=1000000,
            description="Simulated horizons of the whole fleet",
        ),
        "cascade_draws": Param(
            2000,
            type="integer",
            minimum=100,
            maximum=200000,
            description="Cascades simulated per trigger service, for its impact",
        ),
        "history_days": Param(
            730,
            type="integer",
            minimum=30,
            description="History window ending at the data interval end",
        ),
        "cascade_window_minutes": Param(
            30,
            type="number",
            minimum=0,
            description="An incident without caused_by that starts this many minutes after an "
            "incident of a dependency counts as its cascade (0: off)",
        ),
        "half_life_days": Param(
            "auto",
            type="string",
            pattern=r"^(auto|off|[0-9]+(\.[0-9]+)?)$",
            description="How fast old history fades from the failure rates: an incident this "
            "many days old counts half; off: the window's average; auto: chosen from the data",
        ),
        "backtest_horizon_days": Param(
            28, type="number", exclusiveMinimum=0, description="Backtest forecast horizon"
        ),
        "backtest_folds": Param(
            6, type="integer", minimum=0, maximum=52, description="Backtest origins (0: none)"
        ),
        "event_name": Param("", type="string", description="Event name, e.g. Black Friday"),
        "event_start": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Event start date (YYYY-MM-DD); with an event name and end",
        ),
        "event_end": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Event end date (YYYY-MM-DD, inclusive)",
        ),
        "exercises": Param(
            str(DATA / "exercises.csv"),
            type="string",
            description="Exercise log (date, scenario, team, outcome, action_items, "
            "facilitator): readiness.json, and the selection prefers what was never exercised "
            "or failed recently (empty: none)",
        ),
        "focus_services": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Services in focus (an event's): scenarios are picked among those "
            "that start at or reach them",
        ),
        "traffic_multiplier": Param(
            1.0,
            type="number",
            exclusiveMinimum=0,
            description="Traffic during the event relative to normal",
        ),
        "what_if": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Forced what-ifs: SERVICE or SERVICE:MODE",
        ),
        "narrator": Param(
            "template",
            type="string",
            enum=["template", "llm", "ollama", "openai"],
            description="Who writes the prose: template (offline), llm (the provider of the "
            "connection whatif_llm), ollama, or openai (any OpenAI-compatible server)",
        ),
        "llm_url": Param(
            "", type="string", description="LLM server URL (empty: the connection's host)"
        ),
        "llm_model": Param(
            "", type="string", description="LLM model (empty: the connection's extra.model)"
        ),
        "publish_targets": Param(
            [REPORTS_URL],
            type="array",
            items={"type": "string"},
            description="Where to publish: object-storage URLs (file://, s3://...; connection "
            'whatif_reports for remote ones) and/or "confluence" (connection whatif_confluence)',
        ),
    },
)
def what_if_scenarios() -> None:
    @task
    @_user_errors_fail_fast
    def extract(params: dict | None = None, run_id: str | None = None) -> str:
        from whatif import observe, pipeline

        location = _work_location(run_id)
        config = _run_config(params)
        with _workspace(location, params) as workdir, observe.stage(workdir, "extract", run_id):
            pipeline.extract(_inputs(params), workdir, config.effective_as_of, config.history_days)
            # The run's identity, into scenarios.json: publish reads it from there.
            pipeline.record_run(workdir, run_id, config.effective_as_of.date())
        return location

    @task
    @_user_errors_fail_fast
    def validate(location: str, params: dict | None = None, run_id: str | None = None) -> str:
        from whatif import observe, pipeline

        config = _run_config(params)
        with _workspace(location, params) as workdir, observe.stage(workdir, "validate", run_id):
            pipeline.run_validation(workdir, config.effective_as_of, config.history_days)
        return location

    @task
    @_user_errors_fail_fast
    def fit(location: str, params: dict | None = None, run_id: str | None = None) -> str:
        from whatif import observe, pipeline

        with _workspace(location, params) as workdir, observe.stage(workdir, "fit", run_id):
            pipeline.fit(workdir, _run_config(params).model)
        return location

    @task
    @_user_errors_fail_fast
    def simulate(location: str, params: dict | None = None, run_id: str | None = None) -> str:
        from whatif import observe, pipeline

        with _workspace(location, params) as workdir, observe.stage(workdir, "simulate", run_id):
            pipeline.run_simulation(workdir, _run_config(params))
        return location

    @task
    @_user_errors_fail_fast
    def plan_narration(location: str, params: dict | None = None) -> list[str]:
        """The scenarios to narrate, one mapped task each (ids only through XCom)."""
        from whatif import narrate

        _narration_config(params)  # a missing LLM connection fails here, once
        with _workspace(location, params, only=NARRATE_FILES) as workdir:
            narrate.reset(workdir)
            return narrate.scenario_ids(workdir)

    @task(
        pool=LLM_POOL,
        max_active_tis_per_dagrun=LLM_CONCURRENCY,
        map_index_template="{{ scenario_id }}",
    )
    @_user_errors_fail_fast
    def narrate_scenario(
        location: str, scenario_id: str, params: dict | None = None, run_id: str | None = None
    ) -> str:
        """One scenario's tabletop pack. LLM failures fall back to the template inside; the
        task's own retries are for infrastructure (object storage, a lost worker). Answers are
        cached, so a retry makes no call already made."""
        from whatif import narrate, observe

        get_current_context()["scenario_id"] = scenario_id  # the mapped task's label in the UI
        config = _narration_config(params)
        with (
            _workspace(location, params, only=NARRATE_FILES) as workdir,
            observe.stage(workdir, "narrate", run_id, scenario_id),
        ):
            client = narrate.make_client(
                config,
                breaker_state=str(narrate.stage_path(workdir, narrate.BREAKER_FILE)),
                cache_conn_id=_work_conn_id(params),
            )
            narrate.narrate_scenario_file(workdir, scenario_id, config, client)
        return scenario_id

    @task
    @_user_errors_fail_fast
    def assemble_narration(
        location: str, narrated: list, params: dict | None = None, run_id: str | None = None
    ) -> str:
        """scenarios.json from the narrated scenarios, with the narration summed up."""
        from whatif import narrate, observe

        only = (*NARRATE_FILES, "_stage/narrated/", "_stage/timings/", "_stage/run.json")
        with (
            _workspace(location, params, only=only) as workdir,
            observe.stage(workdir, "assemble_narration", run_id),
        ):
            path = narrate.assemble(workdir, _narration_config(params))
            summary = json.loads(path.read_text())["narration"]
        print(
            f"narration: {summary['llm_scenarios']} of {summary['scenarios']} scenarios by "
            f"{summary['narrator']}, {summary['fallbacks']} fallbacks "
            f"{summary['fallback_reasons']}, {summary['calls']} calls, {summary['cached']} "
            f"cached, {summary['prompt_tokens']}+{summary['completion_tokens']} tokens"
        )
        return location

    @task
    @_user_errors_fail_fast
    def report(location: str, params: dict | None = None, run_id: str | None = None) -> str:
        from whatif import observe, pipeline

        targets = [t for t in params["publish_targets"] if t != "confluence"]
        with _workspace(location, params) as workdir, observe.stage(workdir, "report", run_id):
            if params["exercises"] and targets:  # the previous run's scores, for the trend
                pipeline.fetch_previous_readiness(
                    workdir, targets[:1], _reports_conn_id(targets[0])
                )
            pipeline.run_report(workdir)
        return location

    @task(outlets=[REPORT_ASSET])
    @_user_errors_fail_fast
    def publish(
        location: str,
        params: dict | None = None,
        run_id: str | None = None,
        outlet_events: Any = None,
    ) -> dict:
        """Every target of publish_targets: object-storage URLs (connection whatif_reports
        for remote ones, when defined), and "confluence" for the page of the connection
        whatif_confluence. Then the Asset event, whose extra says where everything went.
        Returns that and the run summary (inputs, quarantined rows, scenarios, LLM calls,
        fallbacks, tokens, each stage's duration)."""
        from whatif import observe, pipeline, runs

        published: dict[str, Any] = {"targets": [], "confluence": None}
        with _workspace(location, params) as workdir:
            run = runs.of_folder(workdir)  # Airflow's run_id, recorded by extract
            published |= {"run_id": run.id, "run_date": run.date}
            log = observe.run_log(run_id, "publish")
            for target in params["publish_targets"]:
                if target == "confluence":
                    page = pipeline.run_confluence(workdir, _confluence_target())
                    published["confluence"] = page["url"]
                    log.info("report published: Confluence page %s (v%s)", page["url"],
                             page["version"])  # fmt: skip
                    continue
                where = pipeline.run_publish(workdir, target, _reports_conn_id(target))
                published["targets"].append(where)
                print(f"report published: {where['run']}/report.html (latest: {where['latest']})")
            published["top"] = pipeline.top_scenarios(workdir)
            summary = observe.run_summary(workdir)
        outlet_events[REPORT_ASSET].extra = published
        log.info("run summary: %s", json.dumps(summary, sort_keys=True))
        return published | {"summary": summary}

    simulated = simulate(fit(validate(extract())))
    narrated = narrate_scenario.partial(location=simulated).expand(
        scenario_id=plan_narration(simulated)
    )
    publish(report(assemble_narration(simulated, narrated)))


what_if_scenarios()
