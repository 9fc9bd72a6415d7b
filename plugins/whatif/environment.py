"""Every environment variable whatif reads, declared once: its name, what it does and its
default. Nothing else in the engine, the Airflow adapter or the DAG files reads os.environ
(tests/unit/test_environment.py checks it), so this table is the whole list a deployment can
set; docs/architecture.md shows it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Variable:
    name: str
    help: str
    default: str | None = None
    secret: bool = False  # never logged or shown
    deprecated_alias: str | None = None  # an older name still read, with a warning


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        # Narration (the CLI's defaults; the DAG takes the connection whatif_llm first).
        Variable("WHATIF_LLM_PROVIDER", "default --narrator of the CLI (ollama, openai)"),
        Variable("WHATIF_LLM_URL", "LLM server URL"),
        Variable("WHATIF_LLM_MODEL", "LLM model name"),
        Variable("WHATIF_LLM_API_KEY", "LLM API key (never a flag or a param)", secret=True),
        Variable(
            "WHATIF_LLM_CACHE",
            "LLM response cache: a folder or an object-storage URL (CLI default "
            "~/.cache/whatif/llm; the DAG's default is beside its work folders)",
            deprecated_alias="WHATIF_LLM_CACHE_URL",
        ),
        Variable("WHATIF_LLM_MAX_CONCURRENCY", "scenarios narrated at once", "4"),
        # Publishing.
        Variable("WHATIF_CONFLUENCE_USER", "Confluence user of the CLI (Cloud: the e-mail)"),
        Variable("WHATIF_CONFLUENCE_TOKEN", "Confluence API token or PAT of the CLI", secret=True),
        Variable("AWS_ENDPOINT_URL", "S3-compatible endpoint (MinIO, Ceph...), read by boto too"),
        # Importers (whatif topology import / whatif incidents import; the DAG takes its
        # whatif_* connections first). Tokens only here: a flag would leave them in the history.
        Variable("BACKSTAGE_TOKEN", "bearer token of the Backstage catalog API", secret=True),
        Variable("JAEGER_TOKEN", "bearer token of a Jaeger query behind a proxy", secret=True),
        Variable("PROMETHEUS_TOKEN", "bearer token of a Prometheus behind a proxy", secret=True),
        Variable("PAGERDUTY_TOKEN", "PagerDuty REST API key (read-only is enough)", secret=True),
        Variable("INCIDENT_IO_API_KEY", "incident.io API key (may view incidents)", secret=True),
        # Where the engine's own files are, for a deployment that keeps its own copies.
        Variable("WHATIF_TEMPLATES_DIR", "folder of the report and Confluence templates"),
        Variable("WHATIF_SQL_DIR", "folder of extract_incidents.sql / extract_topology.sql"),
        Variable("WHATIF_MAPPINGS_DIR", "folder of the named column mappings"),
        # The Airflow deployment (whatif_airflow).
        Variable("WHATIF_REPORTS_URL", "default publish target of the DAG"),
        Variable("WHATIF_WORK_URL", "object storage for the runs' work folders (s3://...)"),
        Variable("WHATIF_WORK_DIR", "local folder for the runs' work folders"),
        Variable("WHATIF_WORK_CONN_ID", "connection of WHATIF_WORK_URL"),
        Variable("WHATIF_EVENTS_FILE", "the event calendar of what_if_event_calendar"),
        Variable(
            "WHATIF_EXPECTED_RUN_MINUTES",
            "deadline alert after this many minutes from queueing (0: none)",
            "60",
        ),
        Variable("AIRFLOW_HOME", "Airflow's home: the default work folders are in it", "~/airflow"),
    )
}


def get(name: str) -> str | None:
    """The variable's value (empty counts as unset), else its default. Only declared names:
    a typo fails here rather than silently reading nothing."""
    variable = VARIABLES[name]
    value = os.environ.get(name)
    if not value and variable.deprecated_alias:
        value = os.environ.get(variable.deprecated_alias)
        if value:
            log.warning("%s is deprecated: set %s instead", variable.deprecated_alias, name)
    return value or variable.default


def get_int(name: str) -> int:
    value = get(name)
    try:
        return int(value or 0)
    except ValueError:
        from whatif.errors import UserError

        raise UserError(f"{name}={value!r}: not a whole number") from None


def path(name: str) -> Path | None:
    value = get(name)
    return Path(value).expanduser() if value else None


def set_aws_endpoint(url: str) -> None:
    """An endpoint given as a flag, for every S3 client made from here on (boto and s3fs read
    it from the environment)."""
    os.environ["AWS_ENDPOINT_URL"] = url


def quiet_libraries() -> None:
    """Great Expectations sends usage statistics unless told not to: never from here."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
