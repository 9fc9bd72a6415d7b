"""What the tests share, imported by name (never from conftest): the project's paths, the
small shop's inputs, a writer for tiny files, free loopback ports and the PostgreSQL server."""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE_INCIDENTS = PROJECT / "include" / "data" / "incidents.csv"
SAMPLE_TOPOLOGY = PROJECT / "include" / "data" / "topology.csv"
NOTEBOOK_INCIDENTS = PROJECT / "tests" / "data" / "notebook_incidents.csv"
NOTEBOOK_TOPOLOGY = PROJECT / "tests" / "data" / "notebook_topology.csv"
SAMPLE_AS_OF = "2026-11-01T00:00:00Z"

# A small shop: failure flows db -> api -> web (web calls api, api calls db and cache).
TOPOLOGY_CSV = """\
service,depends_on,tier,owner_team,user_facing,runbook_url,oncall,slo_target,traffic_weight
web,api,frontend,web-team,true,https://runbooks.example.com/web,web-primary,0.999,1.0
api,db;cache,core,api-team,false,https://runbooks.example.com/api,api-primary,0.999,
db,,data,data-team,false,,data-primary,,
cache,,data,data-team,false,,,,
"""

INCIDENTS_CSV = """\
incident_id,service,started_at,resolved_at,severity,category,title,caused_by
I1,db,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,SEV2,database,db down,
I2,api,2026-01-05T10:05:00Z,2026-01-05T11:05:00Z,SEV2,dependency,api errors,I1
I3,web,2026-01-05T10:07:00Z,2026-01-05T11:10:00Z,SEV1,dependency,web errors,I2
I4,api,2026-02-10T09:00:00Z,2026-02-10T09:30:00Z,SEV3,deployment,bad deploy,
I5,cache,2026-03-01T12:00:00Z,2026-03-01T12:20:00Z,SEV4,capacity,cache evictions,
I6,db,2026-04-01T08:00:00Z,2026-04-01T08:45:00Z,SEV3,database,slow queries,
I7,web,2026-05-01T08:00:00Z,2026-05-01T08:10:00Z,P3,config,bad flag,
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


PG_ADMIN_URL = os.environ.get("WHATIF_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
