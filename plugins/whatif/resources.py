"""The files the engine ships as package data (plugins/whatif/resources/): report templates,
SQL, column mappings, word lists, the synthetic fleet's catalogue. Read through here, never by
a path relative to the source tree, so that an installed package (`pip install .`, not
editable) finds them from any folder. A deployment may keep its own templates, SQL or
mappings: the variables WHATIF_TEMPLATES_DIR, WHATIF_SQL_DIR and WHATIF_MAPPINGS_DIR point at
them instead.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from whatif import environment

# The variable that overrides a kind of resource.
OVERRIDES = {
    "templates": "WHATIF_TEMPLATES_DIR",
    "sql": "WHATIF_SQL_DIR",
    "mappings": "WHATIF_MAPPINGS_DIR",
}


def folder(kind: str) -> Path:
    """The folder of a kind of resource: its override, else the package's own. The package is
    installed as files (never zipped), so its resources are a real folder."""
    override = environment.path(OVERRIDES[kind]) if kind in OVERRIDES else None
    if override is not None:
        return override
    return Path(str(resources.files("whatif") / "resources" / kind))


def read_text(kind: str, name: str) -> str:
    return (folder(kind) / name).read_text(encoding="utf-8")


def project_sample(name: str) -> Path | None:
    """A file of the project's sample (include/data) when the engine runs from a checkout of
    the project; None from an installed package (the sample is not part of it)."""
    candidate = Path(__file__).resolve().parents[2] / "include" / "data" / name
    return candidate if candidate.exists() else None
