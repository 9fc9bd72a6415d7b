"""Consumers of the what-if report: DAGs scheduled on the Asset the main DAG's publish task
updates (whatif_airflow.assets.REPORT_ASSET), so they run after every published report.

`what_if_report_to_chat` posts the top scenarios and the report's links to a chat incoming
webhook: the HTTP connection `whatif_chat` (host = the webhook URL; Slack, Mattermost, Teams
and Google Chat read the {"text": ...} it sends). Without that connection it skips.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task
from whatif_airflow.assets import REPORT_ASSET
from whatif_airflow.defaults import DAG_DEFAULTS

CHAT_CONN_ID = "whatif_chat"


@dag(
    dag_id="what_if_report_to_chat",
    description="Post the top what-if scenarios to chat after each published report",
    schedule=[REPORT_ASSET],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def what_if_report_to_chat() -> None:
    @task(inlets=[REPORT_ASSET])
    def post_top_scenarios(
        triggering_asset_events: Any = None, inlet_events: Any = None
    ) -> dict[str, str]:
        """The event that triggered this run (a manual run: the asset's latest event)."""
        from airflow.sdk.exceptions import AirflowSkipException
        from whatif.publish import chat_message
        from whatif_airflow.alerts import post_json

        events = list((triggering_asset_events or {}).get(REPORT_ASSET, []))
        if not events and inlet_events is not None:
            events = list(inlet_events[REPORT_ASSET])[-1:]
        if not events:
            raise AirflowSkipException("no published report yet: nothing to post")
        message = chat_message(events[-1].extra)
        if not post_json(CHAT_CONN_ID, message):
            raise AirflowSkipException(
                f"the connection {CHAT_CONN_ID} (the chat webhook URL) is not defined"
            )
        return message

    post_top_scenarios()


what_if_report_to_chat()
