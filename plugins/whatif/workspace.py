"""Where a run's stages exchange files: a local folder, or object storage when the workers
share no disk (CeleryExecutor on several hosts).

The DAG passes only the location through XCom, never the data. For an object-storage
location each task works in a temporary local copy: it downloads the run's files, runs its
stage on plain paths (pandas, GX and the templates need nothing else) and uploads what the
stage wrote or changed. Large artifacts (model.json, the staged Parquet) stay in storage.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from whatif.sources import is_remote, relative_name, storage_path

log = logging.getLogger(__name__)


@contextlib.contextmanager
def workspace(
    location: str, conn_id: str | None = None, only: tuple[str, ...] | None = None
) -> Iterator[Path]:
    """A local folder with the run's files; changes are uploaded back when the block ends
    without an error (a failed stage leaves storage as it was, so a retry starts clean).
    `only`: the relative names (or folder prefixes ending in "/") a task needs, so that a
    mapped task per scenario does not copy the whole run."""
    if not is_remote(location):
        folder = Path(location.removeprefix("file://")).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    remote = storage_path(location, conn_id)
    with tempfile.TemporaryDirectory(prefix="whatif-work-") as scratch:
        local = Path(scratch)
        before = download(remote, local, only)
        yield local
        uploaded = upload(local, remote, before)
        log.info("work files: %d read from %s, %d written back", len(before), location, uploaded)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download(remote: object, local: Path, only: tuple[str, ...] | None = None) -> dict[str, str]:
    """Copy the files under `remote` (those named in `only`, when given) into `local`; their
    digests, by relative path."""
    digests = {}
    for path in remote.rglob("*"):  # type: ignore[attr-defined]
        if not path.is_file():
            continue
        name = relative_name(path, remote)
        if only is not None and not any(
            name == wanted or (wanted.endswith("/") and name.startswith(wanted)) for wanted in only
        ):
            continue
        target = local / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
        digests[name] = _digest(target)
    return digests


def upload(local: Path, remote: object, before: dict[str, str]) -> int:
    """Copy the files of `local` that are new or changed since `before` to `remote`."""
    count = 0
    for path in sorted(local.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(local).as_posix()
        if before.get(name) == _digest(path):
            continue
        destination = remote / name  # type: ignore[operator]
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(path.read_bytes())
        count += 1
    return count
