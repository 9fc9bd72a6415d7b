"""Publish: copy a run's artifacts to object storage through Airflow's ObjectStoragePath.

Layout: <target>/<YYYY-MM-DD>/<run-id>/<file> for every run, then <target>/latest/<file>,
written only after every file of the run is in place so that readers of `latest` never see
a half-published run. Re-publishing the same run rewrites the same objects.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from pathlib import Path
from typing import Any

from whatif.sources import relative_name, storage_path

log = logging.getLogger(__name__)


def safe_run_id(run_id: str) -> str:
    """A run id usable as one path segment on every object store."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._") or "run"


def publish(
    source_dir: Path, files: list[str], target: str, run_date: date, run_id: str
) -> dict[str, str]:
    """Copy `files` (relative to source_dir) to the dated run folder, then to `latest`."""
    root = storage_path(target)
    run_folder = root / run_date.isoformat() / safe_run_id(run_id)
    latest = root / "latest"
    for folder in (run_folder, latest):
        for name in files:
            destination = folder / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes((source_dir / name).read_bytes())
    _remove_stale(latest, set(files))
    log.info("published %d files to %s and %s", len(files), run_folder, latest)
    return {"run": str(run_folder), "latest": str(latest)}


def _remove_stale(folder: Any, keep: set[str]) -> None:
    """Drop files an earlier run left in `latest` that this run no longer produces."""
    for path in folder.rglob("*"):
        if path.is_file() and relative_name(path, folder) not in keep:
            path.unlink()
