"""Alerts of the what-if DAGs: a notifier that posts to a chat incoming webhook (the HTTP
connection `whatif_alerts`: host = the webhook URL) when a run fails (the DAG's
on_failure_callback, run by the dag-processor) or overruns its deadline (a DeadlineAlert's
AsyncCallback, run by the triggerer). Without that connection it only logs a warning: an alert
channel must never fail the pipeline."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

ALERTS_CONN_ID = "whatif_alerts"


def post_json(conn_id: str, message: dict[str, str]) -> bool:
    """POST the message to the webhook of an HTTP connection (host = the webhook URL); False
    when the connection is not defined."""
    from airflow.providers.http.hooks.http import HttpHook

    from whatif_airflow.connections import optional_connection

    if optional_connection(conn_id) is None:
        return False
    HttpHook(method="POST", http_conn_id=conn_id).run(endpoint="", json=message)
    return True


def post_alert(conn_id: str, message: dict[str, str]) -> bool:
    """post_json, with a warning when the connection is not defined: an alert channel must
    never fail the pipeline."""
    if post_json(conn_id, message):
        return True
    log.warning("no connection %s: alert not sent: %s", conn_id, message["text"])
    return False


class WebhookAlert(BaseNotifier):
    """Posts what happened to the run: `what` (e.g. "run failed"), with the run id, the
    failed task and its error, and the link to its log when the context has them."""

    template_fields = ()  # nothing to render (see render_template_fields)

    def __init__(
        self, what: str = "run failed", conn_id: str = ALERTS_CONN_ID, context: Any = None
    ) -> None:
        super().__init__(context)
        self.what = what
        self.conn_id = conn_id

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render. Airflow 3.3's DAG-level callbacks pass a SerializedDAG, on which
        BaseNotifier's rendering fails ("no attribute get_template_env") before notify runs:
        found by tests/airflow/test_dag.py, so this notifier skips it."""

    def message(self, context: Any) -> dict[str, str]:
        from whatif.observe import alert_message

        run = context.get("dag_run")
        dag = context.get("dag")
        ti = context.get("ti") or context.get("task_instance")
        reason = context.get("reason") or context.get("exception")
        detail = f"task {ti.task_id}" if ti is not None else None
        if reason:
            detail = f"{detail}: {reason}" if detail else str(reason)
        return alert_message(
            self.what,
            getattr(dag, "dag_id", None) or getattr(run, "dag_id", None) or "what_if_scenarios",
            getattr(run, "run_id", None),
            detail,
            getattr(ti, "log_url", None),
        )

    def notify(self, context: Any) -> None:
        post_alert(self.conn_id, self.message(context))

    async def async_notify(self, context: Any) -> None:
        await asyncio.to_thread(post_alert, self.conn_id, self.message(context))
