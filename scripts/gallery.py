"""The real-history gallery: what whatif says about public incident histories, and the sample.

    .venv/bin/python scripts/gallery.py             # render docs/examples/ and docs/example/
    .venv/bin/python scripts/gallery.py --prepare   # first, from ../shared/data (see below)

`--prepare` takes each public history of HISTORIES from the shared data folder (ten public
histories with their provenance: ../shared/data/README.md) and writes it as a user would feed
it to whatif into tests/data/public/<history>/: the incidents of the 730-day window that ends
the day after the newest one (the only rows a run reads), the export's columns mapped onto the
data contract (`root_cause_category` is the contract's `category`), and its topology: the
system's own where one is public, else one row per service the history names, without
dependencies (status pages publish no dependency graph).

Rendering runs `whatif run` on each prepared history (template narrator, seed 42, as of the
day after its newest incident) and keeps what a reader needs in docs/examples/<history>/:
report.md, scenarios.json and the plots; and the sample run (with the sample's exercise log and
one forced what-if) in full in docs/example/. tests/unit/test_gallery.py runs the same
function and checks that the committed gallery is what the engine says today.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "tests" / "data" / "public"
EXAMPLES = ROOT / "docs" / "examples"
SAMPLE_EXAMPLE = ROOT / "docs" / "example"
WINDOW_DAYS = 730
CONTRACT = [
    "incident_id",
    "service",
    "started_at",
    "resolved_at",
    "duration_minutes",
    "duration_s",
    "severity",
    "category",
    "title",
]

# history: (incidents file of the shared data, its public topology or None, what it is)
HISTORIES: dict[str, tuple[str, str | None, str]] = {
    "github-status": ("github-status.csv", None, "GitHub's status page, 2010-2023"),
    "llm-status": ("llm-status.csv", None, "OpenAI's, Anthropic's and Character.AI's status pages"),
    "gcp-status": ("gcp-status.csv", None, "Google Cloud's status page, 2021-2022"),
    "gaia-micross": (
        "gaia-micross.csv",
        "gaia-micross.csv",
        "fault injection on the GAIA MicroSS system, with its topology",
    ),
    "cloud-postmortems": (
        "cloud-postmortems.csv",
        None,
        "AWS, Azure and GCP public post-mortems (dates only, durations in minutes)",
    ),
}


def as_of(incidents: pd.DataFrame) -> str:
    """The day after the newest incident: the window ends at the data."""
    started = pd.to_datetime(incidents["started_at"], utc=True, errors="coerce", format="mixed")
    return (started.max() + pd.Timedelta(days=1)).strftime("%Y-%m-%d")


def prepare(data: Path, history: str) -> Path:
    """tests/data/public/<history>/: the window's incidents on the contract, and a topology."""
    source, topology_file, _ = HISTORIES[history]
    raw = pd.read_csv(data / "incidents" / source, dtype=str, keep_default_na=False)
    raw = raw.rename(columns={"root_cause_category": "category"})
    # Free-text service names in several spellings ("App Service", "App service"): one name
    # each, the most frequent spelling, as whatif asks of a topology.
    names = raw["service"].str.strip()
    spelling = names[names != ""].groupby(names.str.casefold()).agg(lambda s: s.mode().iloc[0])
    raw["service"] = names.str.casefold().map(spelling).fillna(names)
    end = pd.Timestamp(as_of(raw), tz="UTC")
    started = pd.to_datetime(raw["started_at"], utc=True, errors="coerce", format="mixed")
    kept = raw[started.isna() | (started >= end - pd.Timedelta(days=WINDOW_DAYS))]
    folder = PUBLIC / history
    folder.mkdir(parents=True, exist_ok=True)
    kept[[c for c in CONTRACT if c in kept.columns]].to_csv(folder / "incidents.csv", index=False)
    if topology_file:
        topology = pd.read_csv(data / "topologies" / topology_file, dtype=str)
        topology = topology[["service", "depends_on"]].fillna("")
    else:
        services = sorted({s for s in raw["service"] if s})
        topology = pd.DataFrame({"service": services, "depends_on": ""})
    topology.to_csv(folder / "topology.csv", index=False)
    return folder


def run(history: str, out: Path) -> Path:
    """`whatif run` on a prepared history into `out` (in this process)."""
    from whatif.cli import main

    folder = PUBLIC / history
    incidents = pd.read_csv(folder / "incidents.csv", dtype=str, keep_default_na=False)
    code = main(
        [
            "run",
            "--incidents",
            str(folder / "incidents.csv"),
            "--topology",
            str(folder / "topology.csv"),
            "--as-of",
            as_of(incidents),
            "--out",
            str(out),
            "--no-llm-cache",
            "--run-id",
            f"gallery__{history}",
        ]
    )
    if code != 0:
        raise SystemExit(f"whatif run on {history} exited {code}")
    return out


def run_sample(out: Path) -> Path:
    """The sample run of docs/example: its exercise log and one forced what-if."""
    from whatif.cli import main

    data = ROOT / "include" / "data"
    code = main(
        [
            "run",
            "--incidents",
            str(data / "incidents.csv"),
            "--topology",
            str(data / "topology.csv"),
            "--exercises",
            str(data / "exercises.csv"),
            "--what-if",
            "payment-provider:dependency",
            "--as-of",
            "2026-11-01",
            "--out",
            str(out),
            "--no-llm-cache",
            "--run-id",
            "gallery__sample",
        ]
    )
    if code != 0:
        raise SystemExit(f"whatif run on the sample exited {code}")
    return out


def keep(run_folder: Path, target: Path, everything: bool = False) -> None:
    """What the gallery keeps of a run folder: the Markdown report, scenarios.json and the
    plots; for the sample also the HTML report, readiness, checklists and tabletop packs."""
    screenshot = target / "report.png"  # make screenshot's picture of the report: kept
    picture = screenshot.read_bytes() if screenshot.exists() else None
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    files = ("report.md", "scenarios.json")
    folders = ("plots",)
    if everything:  # what people read, and the contract: not the model or the validation
        files += ("report.html", "readiness.json")
        folders += ("checklists", "tabletop")
    for name in files:
        if (run_folder / name).exists():
            shutil.copy(run_folder / name, target / name)
    for name in folders:
        shutil.copytree(run_folder / name, target / name)
    if picture:
        screenshot.write_bytes(picture)


def index() -> str:
    """docs/examples/README.md: one line per history, its top scenarios."""
    lines = [
        "# What whatif says about public incident histories",
        "",
        "Rendered by `scripts/gallery.py` from the public histories prepared in",
        "`tests/data/public/` (provenance: `tests/data/public/README.md`), each with the template",
        "narrator, seed 42, as of the day after its newest incident. `tests/unit/test_gallery.py`",
        "checks that these are what the engine says today.",
        "",
        "| history | what it is | scenarios | the first three |",
        "|---|---|---|---|",
    ]
    for history, (_, _, what) in HISTORIES.items():
        doc = json.loads((EXAMPLES / history / "scenarios.json").read_text(encoding="utf-8"))
        top = "; ".join(s["title"] for s in doc["scenarios"][:3])
        lines.append(
            f"| [{history}]({history}/report.md) | {what} | {len(doc['scenarios'])} | {top} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--prepare", action="store_true", help="prepare tests/data/public first")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "plugins"))
    if args.prepare:
        for history in HISTORIES:
            print(f"prepared {prepare(args.data, history)}")
    with tempfile.TemporaryDirectory(prefix="whatif-gallery-") as work:
        for history in HISTORIES:
            keep(run(history, Path(work) / history), EXAMPLES / history)
            print(f"rendered {EXAMPLES / history}")
        keep(run_sample(Path(work) / "sample"), SAMPLE_EXAMPLE, everything=True)
        print(f"rendered {SAMPLE_EXAMPLE}")
    (EXAMPLES / "README.md").write_text(index(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
