"""Where a run's stages exchange files: the work location. Only its path or URL travels
through XCom; each task opens it as a local folder (whatif.workspace), a copy synchronised with
object storage when the location is a URL.

WHATIF_WORK_URL (object storage, e.g. s3://bucket/whatif-work, for workers that share no
disk), else WHATIF_WORK_DIR, else AIRFLOW_HOME/whatif-work. The connection of a URL is
WHATIF_WORK_CONN_ID, else the run's storage_conn_id.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from whatif import environment


def work_location(run_id: str) -> str:
    """The run's own work folder."""
    from whatif.publish import safe_run_id

    return in_work_storage(safe_run_id(run_id))


def in_work_storage(name: str) -> str:
    """`name` under WHATIF_WORK_URL, else WHATIF_WORK_DIR, else AIRFLOW_HOME/whatif-work."""
    url = environment.get("WHATIF_WORK_URL")
    if url:
        return f"{url.rstrip('/')}/{name}"
    base = (
        environment.path("WHATIF_WORK_DIR")
        or (environment.path("AIRFLOW_HOME") or Path("~/airflow").expanduser()) / "whatif-work"
    )
    return str(Path(base) / name)


def default_llm_cache() -> str:
    """Beside the runs' work folders: object storage when they are there, so that a retry on
    another worker finds the answers too."""
    return environment.get("WHATIF_LLM_CACHE") or in_work_storage("llm-cache")


def work_conn_id(params: Mapping[str, Any]) -> str | None:
    return environment.get("WHATIF_WORK_CONN_ID") or params.get("storage_conn_id") or None


def workspace(location: str, params: Mapping[str, Any], only: tuple[str, ...] | None = None) -> Any:
    """The run's files as a local folder (a context manager); `only` limits the copy to what
    the task reads."""
    from whatif.workspace import workspace as open_workspace

    return open_workspace(location, work_conn_id(params), only)
