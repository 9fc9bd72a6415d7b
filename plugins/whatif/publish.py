"""Publish: copy a run's artifacts to object storage through Airflow's ObjectStoragePath.

Layout: <target>/<run date>/<run id>/<file> for every run, then <target>/latest/<file>; each
folder has a `manifest.json` (run id and date, files and their SHA-256), written last.

Idempotent per run: the date and id are the run's own, fixed when it was made and read from its
scenarios.json (whatif.runs), never the clock's, so publishing a run again rewrites the objects
of its run folder and adds none.

`latest` points at one complete run, also when runs publish at the same time. Object stores
have no lock or atomic rename, so every publisher follows one protocol:

1. write the whole run folder, its manifest last: a run folder is complete before any manifest
   names it, and a failure here leaves the previous `latest` as it was;
2. write the files into `latest`, then `latest/manifest.json`;
3. settle: read `latest/manifest.json` (whoever wrote it last), make `latest` hold exactly the
   files it lists (missing or different ones copied from the run folder it names, checked
   against their SHA-256; others dropped), read the manifest again, and repeat until a pass
   changes nothing and the manifest stayed the same.

The manifest is one object, so the last one written wins. A publisher ends only on a clean pass
made after its last write, so when every publisher has finished, the last writer of each file
has checked it against the final manifest (or the final manifest's writer checked it after):
`latest` holds exactly the run its manifest names. While publishes overlap, a reader may see a
mix: checking the files against the manifest's SHA-256 tells, or it reads the run folder the
manifest names, complete before the manifest was written. A local file is written beside its
place and renamed into it, so no reader or publisher sees half a file (object stores replace an
object whole). A crashed publisher may leave a file behind; the next publish settles it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import random
import re
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from whatif import runfolder
from whatif.errors import UserError
from whatif.sources import is_remote, relative_name, storage_error, storage_path

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PARTIAL = ".partial"  # suffix of a local file being written, before its rename into place
SETTLE_PASSES = 40  # some 30 s of waiting for other publishes to finish writing `latest`


class PublishConflict(RuntimeError):
    """`latest` kept changing: other publishes of the same target did not finish."""


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
    with a manifest, then settle `latest` (module doc); through the Airflow connection
    `conn_id` when given (s3:// and the like)."""
    root = storage_path(target, conn_id)
    run_folder = _run_folder(root, run_date.isoformat(), run_id)
    latest = root / "latest"
    contents = {name: (Path(source_dir) / name).read_bytes() for name in files}
    manifest = json.dumps(
        {
            "run_id": run_id,
            "run_date": run_date.isoformat(),
            "run_folder": str(run_folder),
            "files": {name: _sha256(data) for name, data in contents.items()},
        },
        indent=2,
        sort_keys=True,
    ).encode()
    try:
        for folder in (run_folder, latest):  # the run folder complete before latest
            _write_folder(folder, contents, manifest)
        passes = _settle(root, latest)
    except Exception as error:
        mapped = _publish_error(error, target, conn_id)
        if mapped is None:
            raise
        raise mapped from None
    log.info("published %d files to %s and %s (%d passes)", len(files), run_folder, latest, passes)
    return {"run": str(run_folder), "latest": str(latest)}


# Why a local folder cannot take the files: no permission, a file in the way, a read-only or
# full disk.
UNWRITABLE = {
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EISDIR,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
}


def _publish_error(error: Exception, target: str, conn_id: str | None) -> UserError | None:
    """A failure to publish that the user can fix, as one line naming the target: a local
    folder that cannot be written (no permission, a file in the way, a read-only disk), or
    object storage's (credentials, endpoint, bucket, permission); None for anything else."""
    if not is_remote(target) and isinstance(error, OSError) and error.errno in UNWRITABLE:
        return UserError(
            f"cannot write there ({error.strerror or error})",
            file=target,
            hint="name a folder you can write to",
        )
    return storage_error(error, target, conn_id, writing=True)


def _run_folder(root: Any, run_date: str, run_id: str) -> Any:
    return root / run_date / safe_run_id(run_id)


def _sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _write_folder(folder: Any, contents: dict[str, bytes], manifest: bytes) -> None:
    """The files, less those an earlier publish left that this one lacks, then the manifest."""
    parents = {str((folder / name).parent): (folder / name).parent for name in contents}
    for parent in [folder, *parents.values()]:  # once each (a missing bucket is created)
        parent.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        _write(folder / name, data)
    _remove_stale(folder, set(contents) | {MANIFEST})
    _write(folder / MANIFEST, manifest)


def _settle(root: Any, latest: Any) -> int:
    """Passes over `latest` until one finds it holding exactly the run its manifest names and
    the manifest unchanged (the module doc says why that suffices); how many it took."""
    for number in range(1, SETTLE_PASSES + 1):
        manifest = _read(latest / MANIFEST)
        if not _align(root, latest, manifest) and _read(latest / MANIFEST) == manifest:
            return number
        time.sleep(min(0.05 * number, 2.0) * random.uniform(0.5, 1.0))  # others still write
    raise PublishConflict(f"{latest} kept changing: other publishes to it did not finish")


def _align(root: Any, latest: Any, manifest: bytes | None) -> bool:
    """Make `latest` hold the files `manifest` lists, copied from the run folder it names;
    True when anything changed or could not be made right yet (the pass is not clean)."""
    try:
        document = json.loads(manifest or b"")
        wanted: dict[str, str] = document["files"]
        source = _run_folder(root, document["run_date"], document["run_id"])
    except (ValueError, KeyError, TypeError):
        return True  # absent, or not a manifest: nothing to align to yet
    changed = _remove_stale(latest, set(wanted) | {MANIFEST})
    for name, digest in sorted(wanted.items()):
        if _sha256(_read(latest / name)) == digest:
            continue
        data = _read(source / name)
        if _sha256(data) != digest:  # that run is being published again: a later pass
            return True
        (latest / name).parent.mkdir(parents=True, exist_ok=True)
        _write(latest / name, data)  # type: ignore[arg-type]
        changed = True
    return changed


def _read(path: Any) -> bytes | None:
    """The object's bytes as stored now (None: absent), in one request past fsspec's listing
    cache, which another publisher's writes leave stale."""
    try:
        return path.fs.cat_file(path.path)
    except FileNotFoundError:
        return None


def _write(destination: Any, data: bytes) -> None:
    """Replace the object at `destination` whole: an object store does; a local file is
    written beside it and renamed into place."""
    if destination.protocol not in ("file", "local"):
        destination.write_bytes(data)
        return
    path = Path(destination.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}{PARTIAL}")
    partial.write_bytes(data)
    os.replace(partial, path)


def _remove_stale(folder: Any, keep: set[str]) -> bool:
    """Drop the files of `folder` not in `keep` (an earlier run's, in `latest`), listed afresh;
    whether there were any. Another publisher's local files being written are left alone."""
    folder.fs.invalidate_cache(folder.path)
    stale = [
        path
        for path in folder.rglob("*")
        if path.is_file()
        and relative_name(path, folder) not in keep
        and not (path.name.startswith(".") and path.name.endswith(PARTIAL))
    ]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):  # another publisher dropped it first
            path.unlink()
    return bool(stale)


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
        lines.append(f"Report: {target['latest']}/{runfolder.REPORT_HTML_FILE}")
    if event.get("confluence"):
        lines.append(f"Confluence: {event['confluence']}")
    return {"text": "\n".join(lines)}
