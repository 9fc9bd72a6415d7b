"""Weekly "What if...?" reliability scenarios from incident history and service topology.

The task graph only: each task opens the run's work folder and calls one stage of the engine
(plugins/whatif); what tasks share around the engine (settings from params and connections,
the work location, failing fast on user errors) is the Airflow adapter's
(plugins/whatif_airflow). The trigger form's params come from the engine's parameter spec
(whatif.params). Trigger it by hand with params for an event (e.g. Black Friday).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference, dag, task
from whatif_airflow import defaults, storage, tasks
from whatif_airflow.alerts import WebhookAlert
from whatif_airflow.assets import REPORT_ASSET

late = f"run not finished {defaults.EXPECTED_RUN_MINUTES} minutes after it was queued"


@dag(
    dag_id="what_if_scenarios",
    description="Ranked, quantified what-if reliability scenarios (weekly, or for an event)",
    schedule="0 6 * * 1",  # Mondays 06:00 UTC, before the weekly reliability review
    max_active_runs=1,
    doc_md=__doc__,
    **defaults.DAG_DEFAULTS,
    # Alerts to the chat webhook of the connection whatif_alerts: a failed run (from the
    # dag-processor), and a run still going EXPECTED_RUN_MINUTES after it was queued (from
    # the triggerer).
    on_failure_callback=WebhookAlert("run failed"),
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=defaults.EXPECTED_RUN_MINUTES),
        callback=AsyncCallback(WebhookAlert, kwargs={"what": late}),
    )
    if defaults.EXPECTED_RUN_MINUTES > 0
    else None,
    params=defaults.scenario_params(),
)
def what_if_scenarios() -> None:
    @task
    @tasks.fail_fast
    def extract(params: dict | None = None, run_id: str | None = None) -> str:
        from whatif import pipeline

        location = storage.work_location(run_id)
        config = tasks.run_config(params)
        as_of = config.effective_as_of
        with tasks.stage("extract", location, params, run_id) as workdir:
            inputs = tasks.import_sources(tasks.inputs(params), params, workdir, config)
            pipeline.extract(inputs, workdir, as_of, config.history_days)
            # The run's identity, into scenarios.json: publish reads it from there.
            pipeline.record_run(workdir, run_id, as_of.date())
        return location

    @task
    @tasks.fail_fast
    def validate(location: str, params: dict | None = None, run_id: str | None = None) -> str:
        from whatif import pipeline

        config = tasks.run_config(params)
        with tasks.stage("validate", location, params, run_id) as workdir:
            pipeline.run_validation(
                workdir,
                config.effective_as_of,
                config.history_days,
                config.allow_external_dependencies,
            )
            pipeline.check_named_services(workdir, config)  # before the fit, not after
        return location

    @task
    @tasks.fail_fast
    def fit(location: str, params: dict | None = None, run_id: str | None = None) -> str:
        from whatif import pipeline

        with tasks.stage("fit", location, params, run_id) as workdir:
            pipeline.fit(workdir, tasks.run_config(params).model)
        return location

    @task
    @tasks.fail_fast
    def simulate(location: str, params: dict | None = None, run_id: str | None = None) -> str:
        from whatif import pipeline

        with tasks.stage("simulate", location, params, run_id) as workdir:
            pipeline.run_simulation(workdir, tasks.run_config(params))
        return location

    @task
    @tasks.fail_fast
    def plan_narration(location: str, params: dict | None = None) -> list[str]:
        """The scenarios to narrate, one mapped task each (ids only through XCom)."""
        from whatif import narrate, runfolder

        tasks.narration_config(params)  # a missing LLM connection fails here, once
        with storage.workspace(location, params, only=runfolder.NARRATE_INPUTS) as workdir:
            narrate.reset(workdir)
            return narrate.scenario_ids(workdir)

    @task(
        pool=defaults.LLM_POOL,
        max_active_tis_per_dagrun=defaults.LLM_CONCURRENCY,
        map_index_template="{{ scenario_id }}",
    )
    @tasks.fail_fast
    def narrate_scenario(
        location: str, scenario_id: str, params: dict | None = None, run_id: str | None = None
    ) -> str:
        """One scenario's tabletop pack. LLM failures fall back to the template inside; the
        task's own retries are for infrastructure (object storage, a lost worker). Answers are
        cached, so a retry makes no call already made."""
        from airflow.sdk import get_current_context
        from whatif import narrate, runfolder

        get_current_context()["scenario_id"] = scenario_id  # the mapped task's label in the UI
        config = tasks.narration_config(params)
        with tasks.stage(
            "narrate", location, params, run_id, runfolder.NARRATE_INPUTS, scenario_id
        ) as workdir:
            client = narrate.make_client(
                config,
                breaker_state=str(runfolder.breaker_path(workdir)),
                cache_conn_id=storage.work_conn_id(params),
            )
            narrate.narrate_scenario_file(workdir, scenario_id, config, client)
        return scenario_id

    @task
    @tasks.fail_fast
    def assemble_narration(
        location: str, narrated: list, params: dict | None = None, run_id: str | None = None
    ) -> str:
        """scenarios.json from the narrated scenarios, with the narration summed up."""
        from whatif import narrate, runfolder

        with tasks.stage(
            "assemble_narration", location, params, run_id, runfolder.ASSEMBLE_INPUTS
        ) as workdir:
            path = narrate.assemble(workdir, tasks.narration_config(params))
            print(tasks.narration_summary(json.loads(path.read_text())["narration"]))
        return location

    @task
    @tasks.fail_fast
    def report(location: str, params: dict | None = None, run_id: str | None = None) -> str:
        from whatif import pipeline

        with tasks.stage("report", location, params, run_id) as workdir:
            tasks.previous_run(workdir, params)
            pipeline.run_report(workdir, tasks.run_config(params).export_formats)
        return location

    @task(outlets=[REPORT_ASSET])
    @tasks.fail_fast
    def publish(
        location: str,
        params: dict | None = None,
        run_id: str | None = None,
        outlet_events: Any = None,
    ) -> dict:
        """Every target of publish_targets, then the Asset event, whose extra says where
        everything went. Returns that and the run summary (inputs, quarantined rows,
        scenarios, LLM calls, fallbacks, tokens, each stage's duration)."""
        from whatif import observe

        log = observe.run_log(run_id, "publish")
        with storage.workspace(location, params) as workdir:
            published = tasks.publish(workdir, params, log)
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
