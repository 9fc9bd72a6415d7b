"""Pre-event what-if runs from the event calendar (include/events.yaml, or WHATIF_EVENTS_FILE).

Every morning it reads the calendar and, for each event due (from `lead_days` before its
start until it ends), triggers one run of what_if_scenarios with the event's window, traffic
multiplier and services in focus as params. The run id comes from the event's name and start
(`event__black-friday__2026-11-27`), so an event is run once: on the following days the
trigger finds that run and is skipped. Re-run an event by hand by deleting its run, or
trigger what_if_scenarios with the same params.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task
from whatif_airflow import tasks
from whatif_airflow.defaults import DAG_DEFAULTS, EVENTS_FILE


@dag(
    dag_id="what_if_event_calendar",
    description="Trigger a pre-event what-if run for each event of the calendar, once",
    schedule="0 5 * * *",  # daily, before the weekly run's 06:00
    max_active_runs=1,
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def what_if_event_calendar() -> None:
    @task
    @tasks.fail_fast  # a calendar typo does not fix itself with retries
    def due_event_runs() -> list[dict[str, Any]]:
        """The pre-event runs due today: their run ids and params."""
        from whatif.events import due_events, load_calendar

        context = get_current_context()
        today = (context.get("data_interval_end") or context["dag_run"].run_after).date()
        due = due_events(load_calendar(EVENTS_FILE), today)
        for event in due:
            print(f"due: {event.name} ({event.start} to {event.end}) as run {event.run_id}")
        return [{"trigger_run_id": e.run_id, "conf": e.params()} for e in due]

    TriggerDagRunOperator.partial(
        task_id="trigger_pre_event_run",
        trigger_dag_id="what_if_scenarios",
        skip_when_already_exists=True,  # the event's run exists: it was triggered already
        wait_for_completion=False,
    ).expand_kwargs(due_event_runs())


what_if_event_calendar()
