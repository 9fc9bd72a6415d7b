"""A run's identity: its id and date, fixed when the run is made and kept in scenarios.json.

Publishing reads them from the run folder and never from the clock, so that publishing the same
run again (a retried task, `whatif publish` after `whatif run --publish-to`) rewrites the same
`<date>/<id>/` objects instead of adding a second run. The id is recorded in the stage folder
when the run starts (`_stage/run.json`: the DAG's run_id, or the CLI's) and copied into
scenarios.json when it is assembled, so that re-narrating a run keeps its id.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

from whatif import runfolder
from whatif.errors import UserError
from whatif.schemas import RunInfo

CONTENT_PREFIX = "content__"  # the id of a scenarios.json written before runs had one


def cli_run_id(as_of: datetime, fingerprint: str) -> str:
    """`cli__<as-of>__<8 hex>`: the history's end and a digest of the inputs and settings, so
    that two runs differ in their id unless they are the same run made again."""
    return f"cli__{as_of.astimezone(UTC):%Y-%m-%dT%H%M%SZ}__{fingerprint[:8]}"


def record(path: Path, run_id: str, run_date: date) -> RunInfo:
    """Write the run's identity to `path` (the stage folder's runfolder.RUN_FILE)."""
    run = RunInfo(id=run_id, date=run_date.isoformat())
    Path(path).write_text(json.dumps(run.model_dump(), sort_keys=True) + "\n", encoding="utf-8")
    return run


def recorded(path: Path) -> RunInfo | None:
    """The identity recorded at `path`; None when the run started before runs had one."""
    path = Path(path)
    if not path.exists():
        return None
    return RunInfo.model_validate_json(path.read_text(encoding="utf-8"))


def of_folder(folder: Path) -> RunInfo:
    """The identity of the run in `folder`: scenarios.json's `run`, else one derived from the
    file's content (an older run): stable, so that publishing it twice lands in one place."""
    path = Path(folder) / runfolder.SCENARIOS_FILE
    try:
        content = path.read_bytes()
        document = json.loads(content)
        if document.get("run"):
            return RunInfo.model_validate(document["run"])
        as_of = datetime.fromisoformat(str(document["as_of"]).replace("Z", "+00:00"))
    except FileNotFoundError:
        raise UserError("no scenarios.json here", file=str(folder)) from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(
            f"not a scenarios.json with a run id or as_of: {error}", file=str(path)
        ) from None
    digest = hashlib.sha256(content).hexdigest()[:12]
    return RunInfo(id=f"{CONTENT_PREFIX}{digest}", date=as_of.date().isoformat())
