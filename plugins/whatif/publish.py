"""Publish: copy a run's artifacts to object storage through Airflow's ObjectStoragePath.

Layout: <target>/<YYYY-MM-DD>/<run-id>/<file> for every run, then <target>/latest/<file>.
`latest` is touched only after every file of the run folder is in place, so a failure while
the run folder is written leaves the previous `latest` as it was; its `manifest.json` (run id,
files and their SHA-256) is written last, so a reader can tell which run `latest` holds and
check that every file belongs to it. Re-publishing the same run rewrites the same objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import date
from pathlib import Path
from typing import Any

from whatif.sources import relative_name, storage_path

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def safe_run_id(run_id: str) -> str:
    """A run id usable as one path segment on every object store."""
    return safe_segment(run_id, "run")


def safe_segment(text: str, empty: str) -> str:
    """`text` as one path segment on every object store: letters, digits, `.`, `_` and `-`
    (anything else becomes `_`); `empty` when nothing is left."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or empty


def publish(
    source_dir: Path,
    files: list[str],
    target: str,
    run_date: date,
    run_id: str,
    conn_id: str | None = None,
) -> dict[str, str]:
    """Copy `files` (relative to source_dir) to the dated run folder, then to `latest`, each
    with a manifest; through the Airflow connection `conn_id` when given (s3:// and the like).
    """
    root = storage_path(target, conn_id)
    run_folder = root / run_date.isoformat() / safe_run_id(run_id)
    latest = root / "latest"
    contents = {name: (Path(source_dir) / name).read_bytes() for name in files}
    manifest = json.dumps(
        {
            "run_id": run_id,
            "run_date": run_date.isoformat(),
            "run_folder": str(run_folder),
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()},
        },
        indent=2,
        sort_keys=True,
    ).encode()
    for folder in (run_folder, latest):  # the run folder complete before latest is touched
        for name, data in contents.items():
            _write(folder / name, data)
        _write(folder / MANIFEST, manifest)
    _remove_stale(latest, set(contents) | {MANIFEST})
    log.info("published %d files to %s and %s", len(files), run_folder, latest)
    return {"run": str(run_folder), "latest": str(latest)}


def _write(destination: Any, data: bytes) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(data)


def _remove_stale(folder: Any, keep: set[str]) -> None:
    """Drop files an earlier run left in `latest` that this run no longer produces."""
    for path in folder.rglob("*"):
        if path.is_file() and relative_name(path, folder) not in keep:
            path.unlink()


def chat_message(event: dict[str, Any]) -> dict[str, str]:
    """A chat post ({"text": ...}: Slack, Mattermost, Teams and Google Chat incoming webhooks
    read it) from a publish event's extra: the top scenarios and where the report is.
    Scenario titles may hold any text, so <, > and & are escaped (Slack's control characters)."""
    from whatif.observe import inert_text as inert

    lines = [f"What-if scenarios ({inert(str(event.get('run_id') or 'latest run'))}):"]
    for number, scenario in enumerate(event.get("top") or [], start=1):
        probability = scenario["probability"] * 100
        share = f"{probability:.1f}%" if probability < 10 else f"{probability:.0f}%"
        lines.append(
            f"{number}. {inert(scenario['title'])} ({share} within the horizon, "
            f"{scenario['severity']}; {inert(scenario['selection_reason'])})"
        )
    for target in event.get("targets") or []:
        lines.append(f"Report: {target['latest']}/report.html")
    if event.get("confluence"):
        lines.append(f"Confluence: {event['confluence']}")
    return {"text": "\n".join(lines)}
