"""What every task of what_if_scenarios does around its engine stage: the run's settings from
its params and context, the narration's from the connection whatif_llm, the inputs, and user
errors failing without retries. The engine is imported inside the functions: the DAG file
imports this module when it is parsed."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from whatif.errors import UserError

from whatif_airflow import connections, defaults, storage


def fail_fast(function: Callable[..., Any]) -> Callable[..., Any]:
    """A user error (bad data, bad params) will not fix itself: fail without retrying."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        try:
            return function(*args, **kwargs)
        except UserError as error:
            raise AirflowFailException(str(error)) from None

    return wrapper


@contextlib.contextmanager
def stage(
    name: str,
    location: str,
    params: Mapping[str, Any],
    run_id: str | None,
    only: tuple[str, ...] | None = None,
    part: str | None = None,
) -> Iterator[Path]:
    """The run's work folder (`only` these files of it), for one timed and logged stage."""
    from whatif import observe

    with (
        storage.workspace(location, params, only) as workdir,
        observe.stage(workdir, name, run_id, part),
    ):
        yield workdir


def run_config(params: Mapping[str, Any], as_of: Any = None) -> Any:
    """The engine's RunConfig for this run; the history window ends at the data interval's
    end (the run's logical time for a manual run). The LLM settings are left out: only the
    narration tasks read them (narration_config)."""
    from whatif.config import run_config as engine_run_config

    if as_of is None:
        from airflow.sdk import get_current_context

        context = get_current_context()
        as_of = context.get("data_interval_end") or context["dag_run"].run_after
    return engine_run_config({**params, "narrator": "template"}, as_of)


def narration_config(params: Mapping[str, Any], as_of: Any = None) -> Any:
    """The RunConfig with the LLM settings of the connection whatif_llm; the params llm_url /
    llm_model override it; narrator=llm takes the provider from the connection. Without a
    connection the key may come from WHATIF_LLM_API_KEY, the cache from WHATIF_LLM_CACHE."""
    from whatif import environment

    config = run_config(params, as_of)
    if params["narrator"] == "template":
        return config
    settings = connections.settings_of(
        connections.optional_connection(connections.LLM_CONN_ID), connections.LLM_FIELDS
    )
    provider = params["narrator"]
    if provider == "llm":
        provider = settings.get("provider", "openai")
    key = settings.get("api_key") or environment.get("WHATIF_LLM_API_KEY")
    if key:
        from airflow.sdk.log import mask_secret

        mask_secret(key)
    llm = dataclasses.replace(
        config.llm,
        url=params.get("llm_url") or settings.get("url"),
        model=params.get("llm_model") or settings.get("model"),
        api_key=key,
        timeout_s=settings.get("timeout_s", config.llm.timeout_s),
        temperature=settings.get("temperature", config.llm.temperature),
        max_concurrency=settings.get("max_concurrency", defaults.LLM_CONCURRENCY),
        cache=storage.default_llm_cache(),
    )
    if not (llm.url and llm.model):
        raise UserError(
            f"narrator {params['narrator']} needs the connection {connections.LLM_CONN_ID} "
            "(host = the server URL, extra.model) or the params llm_url and llm_model"
        )
    return dataclasses.replace(config, narrator=provider, llm=llm)


def inputs(params: Mapping[str, Any]) -> Any:
    """Where the data comes from: files or object storage (connection storage_conn_id for
    s3:// and the like), or SQL through the connection sql_conn_id."""
    from whatif.pipeline import Inputs

    sql = connections.sql_fetch(params["sql_conn_id"]) if params["source"] == "sql" else None
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


def import_sources(inputs: Any, params: Mapping[str, Any], workdir: Path, config: Any) -> Any:
    """The inputs with the params' topology_source / incident_source imported into the work
    folder first (each through its whatif_* connection); files and SQL as they are."""
    from whatif.importers import fetch

    topology = params["topology_source"]
    topology_kinds = [] if topology == "file" else topology.split("+")
    incident_kind = None if params["incident_source"] == "file" else params["incident_source"]
    if incident_kind and params["source"] == "sql":
        raise UserError(
            f"incident_source {incident_kind} and source sql both give the incidents: choose one"
        )
    if not (topology_kinds or incident_kind):
        return inputs
    return fetch.stage_imports(
        inputs,
        workdir,
        config.effective_as_of,
        config.history_days,
        [connections.import_source(kind) for kind in topology_kinds],
        connections.import_source(incident_kind) if incident_kind else None,
        float(params["trace_lookback_days"]),
    )


def narration_summary(summary: Mapping[str, Any]) -> str:
    """One log line of how the narration went."""
    return (
        f"narration: {summary['llm_scenarios']} of {summary['scenarios']} scenarios by "
        f"{summary['narrator']}, {summary['fallbacks']} fallbacks "
        f"{summary['fallback_reasons']}, {summary['calls']} calls, {summary['cached']} "
        f"cached, {summary['prompt_tokens']}+{summary['completion_tokens']} tokens"
    )


def previous_run(workdir: Any, params: Mapping[str, Any]) -> None:
    """The run already published at the first object-storage target (its latest/): the
    report opens with what changed since, and the readiness scores get their trend."""
    from whatif import pipeline

    targets = [t for t in params["publish_targets"] if t != "confluence"]
    if targets:
        pipeline.fetch_previous(workdir, targets[:1], connections.reports_conn_id(targets[0]))


def publish(workdir: Any, params: Mapping[str, Any], log: Any) -> dict[str, Any]:
    """Every target of publish_targets: object-storage URLs (connection whatif_reports for
    remote ones, when defined), and "confluence" for the page of the connection
    whatif_confluence. Returns where everything went and the top scenarios: the Asset event's
    extra."""
    from whatif import pipeline, runfolder, runs

    run = runs.of_folder(workdir)  # Airflow's run_id, recorded by extract
    published: dict[str, Any] = {
        "targets": [],
        "confluence": None,
        "run_id": run.id,
        "run_date": run.date,
    }
    for target in params["publish_targets"]:
        if target == "confluence":
            page = pipeline.run_confluence(workdir, connections.confluence_target())
            published["confluence"] = page["url"]
            log.info("report published: Confluence page %s (v%s)", page["url"], page["version"])
            continue
        where = pipeline.run_publish(workdir, target, connections.reports_conn_id(target))
        published["targets"].append(where)
        report = runfolder.REPORT_HTML_FILE
        print(f"report published: {where['run']}/{report} (latest: {where['latest']})")
    published["top"] = pipeline.top_scenarios(workdir)
    return published
