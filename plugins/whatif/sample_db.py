"""Load incidents and a topology into PostgreSQL (resources/sql/schema.sql), so that a user can
try the SQL source: `whatif load-sample --db-url postgresql://...`.

Loading is idempotent: the tables are emptied and refilled in one transaction.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from whatif import ingest
from whatif.errors import UserError
from whatif.schemas import INCIDENT_OPTIONAL, INCIDENT_REQUIRED, TOPOLOGY_OPTIONAL
from whatif.sources import redact

log = logging.getLogger(__name__)

# The columns of whatif_incidents (resources/sql/schema.sql): durations and status are not
# stored there, the sample gives an end time for every incident.
INCIDENT_COLUMNS = [
    *INCIDENT_REQUIRED,
    *(c for c in INCIDENT_OPTIONAL if c not in ("duration_minutes", "duration_s", "status")),
]
SERVICE_COLUMNS = ["service", *(c for c in TOPOLOGY_OPTIONAL if c != "soft_depends_on")]


def load_sample(db_url: str, incidents: str, topology: str, schema: Path) -> dict[str, int]:
    """Create the tables if needed and replace their content with the given files."""
    import sqlalchemy

    incident_rows = _incident_rows(ingest.load_incidents(incidents).frame)
    services, dependencies = _topology_rows(ingest.load_topology(topology).frame)
    try:
        engine = sqlalchemy.create_engine(db_url)
        with engine.begin() as connection:
            connection.exec_driver_sql(schema.read_text(encoding="utf-8"))
            for table in ("whatif_incidents", "whatif_service_dependencies", "whatif_services"):
                connection.exec_driver_sql(f"DELETE FROM {table}")
            services.to_sql("whatif_services", connection, if_exists="append", index=False)
            dependencies.to_sql(
                "whatif_service_dependencies", connection, if_exists="append", index=False
            )
            incident_rows.to_sql(
                "whatif_incidents",
                connection,
                if_exists="append",
                index=False,
                chunksize=5000,
                method="multi",
            )
    except sqlalchemy.exc.SQLAlchemyError as error:
        detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise UserError(
            f"loading failed: {detail}",
            file=redact(db_url),
            hint="check the URL and that the database exists",
        ) from None
    counts = {
        "incidents": len(incident_rows),
        "services": len(services),
        "dependencies": len(dependencies),
    }
    log.info("loaded %s into %s", counts, redact(db_url))
    return counts


def _incident_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows the table's key and NOT NULL columns accept; the others are counted in the log."""
    rows = frame[INCIDENT_COLUMNS].copy()
    kept = rows.drop_duplicates(["incident_id", "service"], keep="last").dropna(
        subset=["incident_id", "service", "started_at"]
    )
    if len(kept) < len(rows):
        log.warning(
            "not loaded: %d rows without an id, a service or a start, or repeated",
            len(rows) - len(kept),
        )
    return kept


def _topology_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    services = frame[SERVICE_COLUMNS].copy()
    for column in ("tier", "owner_team", "runbook_url", "oncall"):
        services[column] = services[column].replace("", None)
    known = frame["soft_depends_on"].map(lambda soft: soft is not None).any()
    dependencies = pd.DataFrame(
        [
            (s, d, ("soft" if d in (soft or []) else "hard") if known else None)
            for s, deps, soft in zip(
                frame["service"], frame["depends_on"], frame["soft_depends_on"], strict=True
            )
            for d in deps
        ],
        columns=["service", "depends_on", "criticality"],
    )
    return services, dependencies
