"""How well whatif.classify reads failure modes and severities from real incident text.

Not a test: it asserts nothing. On the public histories under ../shared/data/incidents, one
row per incident (the first row of each `incident_id`):

- labelled histories (a `root_cause_category` and a title): the category is hidden, the title
  classified by the text rules and compared with the mode the category column gives
  (`classify.category_modes`, what the pipeline would have used with the column). Accuracy and
  per-mode precision and recall; post-mortems and fault-injection catalogues apart (the
  latter's titles are written from their labels: "cpu_contention injected into ...").
  Dan Luu's "Uncategorized" is no label and is left out;
- status histories without a category: the share of incidents that get a mode;
- severity: where a status history has both a severity column and a title with the impact words
  of the severity rules, how often the two agree;
- impact words as a cause: among the labelled cloud post-mortems, the causes of incidents whose
  symptoms include "performance" against the others.

    PYTHONPATH=plugins .venv/bin/python bench/bench_classify.py [--data ../shared/data/incidents]
        [--out bench/classify_results.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from whatif import classify, ingest
from whatif.schemas import FAILURE_MODES

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "incidents"
POST_MORTEMS = ("cloud-postmortems", "danluu-postmortems")
INJECTED = ("gaia-micross", "nezha-faultinjection", "rcaeval-re1")
UNLABELLED = ("github-status", "llm-status", "gcp-status", "aws-health")
WITH_SEVERITY = ("github-status", "llm-status", "gcp-status", "cloudirbench-samples")
NO_LABEL = ("", "Uncategorized")
# Impact words that severity.yaml does not map, to show why.
RISEN = "(?:elevated|increased|high|higher) (?:[a-z0-9]+ )?"
CANDIDATES = {
    "elevated / increased errors": RISEN + "(?:errors?|error rates?|failures?|failure rates?)",
    "elevated / increased latency": RISEN + "latenc[a-z]*",
    "outage (any)": "outage",
    "down, unavailable": "down|unavailable|inaccessible",
}


def incidents(data: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(data / f"{name}.csv", dtype=str, keep_default_na=False)
    return frame.drop_duplicates("incident_id").reset_index(drop=True)


def text_mode(titles: pd.Series) -> pd.Series:
    return classify.text_modes(titles).replace("", "other")


def labelled(data: Path, names: tuple[str, ...]) -> pd.DataFrame:
    parts = []
    for name in names:
        frame = incidents(data, name)
        frame = frame[~frame["root_cause_category"].str.strip().isin(NO_LABEL)]
        parts.append(
            pd.DataFrame(
                {
                    "history": name,
                    "truth": classify.category_modes(frame["root_cause_category"]).to_numpy(),
                    "text": text_mode(frame["title"]).to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def agreement(frame: pd.DataFrame) -> list[str]:
    lines = ["| history | incidents | accuracy | with a mode from text |", "|---|---|---|---|"]
    for name, part in [*frame.groupby("history", sort=False), ("all", frame)]:
        lines.append(
            f"| {name} | {len(part)} | {(part['truth'] == part['text']).mean():.0%} "
            f"| {(part['text'] != 'other').mean():.0%} |"
        )
    lines += ["", "| mode | precision | recall |", "|---|---|---|"]
    for mode in FAILURE_MODES:
        said, true = frame["text"] == mode, frame["truth"] == mode
        if said.any() or true.any():
            hits = int((said & true).sum())
            lines.append(f"| {mode} | {hits}/{int(said.sum())} | {hits}/{int(true.sum())} |")
    return lines


def shares(data: Path) -> list[str]:
    lines = ["| history | incidents | with a mode | modes |", "|---|---|---|---|"]
    for name in UNLABELLED:
        frame = incidents(data, name)
        modes = classify.text_modes(frame["title"])
        found = modes[modes != ""].value_counts().to_dict()
        lines.append(f"| {name} | {len(frame)} | {(modes != '').mean():.1%} | {found} |")
    return lines


def severities(data: Path) -> list[str]:
    parts = []
    for name in WITH_SEVERITY:
        frame = incidents(data, name)
        parts.append(
            pd.DataFrame(
                {
                    "column": frame["severity"].map(ingest.normalise_severity),
                    "text": classify.text_severities(frame["title"]),
                    "title": frame["title"],
                }
            )
        )
    both = pd.concat(parts, ignore_index=True)
    both = both[both["column"].notna()]
    lines = ["| from the title | incidents | the column says |", "|---|---|---|"]
    for severity, part in both[both["text"] != ""].groupby("text"):
        counts = part["column"].value_counts().sort_index().to_dict()
        agree = (part["column"] == severity).mean()
        lines.append(f"| {severity} | {len(part)} | {counts} ({agree:.0%} agree) |")
    lines += ["", "Impact words the rules leave out:", ""]
    lines += ["| words in the title | incidents | the column says |", "|---|---|---|"]
    lowered = both["title"].str.lower()
    for label, words in CANDIDATES.items():
        part = both[lowered.str.contains(classify._text_pattern([words]), regex=True)]
        counts = part["column"].value_counts().sort_index().to_dict()
        lines.append(f"| {label} | {len(part)} | {counts} |")
    lines += ["", f"All incidents: {both['column'].value_counts().sort_index().to_dict()}"]
    return lines


def impact_as_cause(data: Path) -> list[str]:
    """Causes of cloud post-mortems with and without a performance symptom: capacity from the
    category ("insufficient resource", "excessive flow"), network and config from the finer
    `root_cause_layer3`."""
    frame = incidents(data, "cloud-postmortems")
    frame = frame[frame["root_cause_category"].str.strip() != ""]
    causes = {
        "capacity": frame["root_cause_category"].str.contains("insufficient resource|excessive"),
        "network": frame["root_cause_layer3"].str.contains("network|fiber|cable"),
        "config": frame["root_cause_layer3"].str.contains("config"),
    }
    performance = frame["impact_symptom"].str.contains("performance")
    lines = ["| symptoms | incidents | " + " | ".join(causes) + " |", "|---|---|---|---|---|"]
    for label, rows in (("with performance", performance), ("without", ~performance)):
        cells = " | ".join(f"{cause[rows].mean():.0%}" for cause in causes.values())
        lines.append(f"| {label} | {int(rows.sum())} | {cells} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = ["# Failure modes and severities from incident text (bench/bench_classify.py)", ""]
    lines += ["## Post-mortems: text against the category column", ""]
    lines += agreement(labelled(args.data, POST_MORTEMS))
    lines += ["", "## Fault-injection catalogues (titles written from the labels)", ""]
    lines += agreement(labelled(args.data, INJECTED))
    lines += ["", "## Status histories without a category", "", *shares(args.data)]
    lines += ["", "## Severity from impact words against the severity column", ""]
    lines += severities(args.data)
    lines += ["", "## Is a performance symptom evidence of capacity? (cloud post-mortems)", ""]
    lines += impact_as_cause(args.data)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
