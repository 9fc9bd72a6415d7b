"""Report: scenarios.json (the contract) and what people read: report.html, report.md, a
response checklist per team (checklists/<team>.md) and a facilitator pack per scenario
(tabletop/<scenario-id>.md).

The reports lead with a picture (the risk matrix) and are rendered from the Jinja2 templates
in the package's resources/templates (WHATIF_TEMPLATES_DIR overrides), escaped for their
format: HTML by Jinja2's autoescaping, Markdown by `_markdown_text` (which neutralises HTML in
it), so no incident or LLM text can inject markup.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from whatif import plots, resources, runfolder
from whatif.formatting import percent
from whatif.observe import inert_text
from whatif.publish import safe_segment
from whatif.schemas import BACKTEST_MODELS, ModelDoc, ScenariosDoc, backtest_label


def write_json(path: Path, document: dict[str, Any]) -> Path:
    """Stable JSON (sorted keys, fixed indent) so that re-runs rewrite identical bytes."""
    path.write_text(
        json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return path


def mermaid_cascade(scenario: dict[str, Any], edges: list[tuple[str, str]]) -> str:
    """A Mermaid graph of the affected services, arrows in the direction failure flows."""
    roots = [t["service"] for t in (scenario["trigger"], scenario.get("co_trigger")) if t]
    affected = set(scenario["affected_services"]) | set(roots)
    probability = scenario["impact"]["affected_probability"]
    node_ids = {name: f"n{i}" for i, name in enumerate(sorted(affected))}
    lines = ["graph LR"]
    for name, node in node_ids.items():
        share = probability.get(name)
        label = f"{name} ({share * 100:.0f}%)" if share is not None else name
        label = label.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
        lines.append(f'  {node}["{label}"]')
    for dependency, dependent in edges:
        if dependency in affected and dependent in affected:
            lines.append(f"  {node_ids[dependency]} --> {node_ids[dependent]}")
    for trigger in (scenario["trigger"], scenario.get("co_trigger")):
        if trigger:
            lines.append(f"  style {node_ids[trigger['service']]} fill:#D55E00,color:#fff")
    return "\n".join(lines)


def _prior_source(prior: dict[str, Any]) -> str:
    """Where a class's cascade prior came from, and what the traces did to it (model.md 4a)."""
    text = "fitted to the fleet" if prior["source"] == "data" else "default"
    traced = int(prior.get("traced_edges") or 0)
    if not traced:
        return text
    exponent = float(prior.get("trace_exponent") or 0.0)
    seen = f"{traced} edge{'s'[: traced != 1]} seen in traces"
    if exponent == 0:
        return f"{text}; {seen}: call coverage ignored, it did not predict this history's cascades"
    scale = "call coverage" if exponent == 1 else f"call coverage^{exponent:g}"
    return f"{text}; {seen}: means scaled by {scale}"


def model_card(model_doc: ModelDoc) -> dict[str, Any]:
    """The facts of the model card: what was fitted on what, and how well it forecast."""
    doc = model_doc.model_dump()
    edges = doc["edges"]
    observed = [e for e in edges if e["evidence"]["exposures"] > 0]
    classes = {
        "hard": "hard dependencies",
        "soft": "soft dependencies",
        "unknown": "dependencies of unknown criticality",
    }
    priors = [
        {
            "label": classes[name],
            "mean": prior["alpha"] / (prior["alpha"] + prior["beta"]),
            "source": _prior_source(prior),
        }
        for name in classes
        if edges and (prior := doc["priors"].get(f"propagation_{name}"))
    ]  # a flat topology has no dependency for a prior to be about
    weekdays = (doc["time_multipliers"] or {}).get("day_of_week") or {}
    hours = (doc["time_multipliers"] or {}).get("hour_of_day") or {}
    backtest = doc["backtest"] or {"status": "skipped", "reason": "not run (an older model.json)"}
    scores = backtest.get("scores") or {}
    rows = [
        {"name": name, "label": backtest_label(name), **scores[name]}
        for name in BACKTEST_MODELS
        if name in scores
    ]
    return {
        "window": doc["window"],
        "services": doc["inputs"]["services"],
        "edges": len(edges),
        "edges_observed": len(observed),
        "attribution": doc["attribution"],
        "root_prior_per_30_days": 30
        * doc["priors"]["root_rate"]["alpha"]
        / doc["priors"]["root_rate"]["beta"],
        "propagation_priors": priors,
        "busiest_weekday": max(weekdays, key=weekdays.get) if weekdays else None,
        "quietest_weekday": min(weekdays, key=weekdays.get) if weekdays else None,
        "weekdays": weekdays,
        "busiest_hour": max(hours, key=hours.get) if hours else None,
        "load": doc["load"],
        "settings": doc["settings"] or {},
        "backtest": backtest,
        "backtest_rows": rows,
        "rates": _rate_card(doc["rates"]),
    }


def quiet_tail_card(validation: dict[str, Any]) -> dict[str, Any] | None:
    """The silence before as_of that validation found (validate.quiet_tail), with its chance
    in words; None when there was none (or validation.json is older than the check)."""
    from whatif.validate import chance_in_words

    quiet = ((validation.get("inputs") or {}).get("incidents") or {}).get("quiet_tail")
    return quiet and quiet | {"chance": chance_in_words(quiet["chance_at_that_rate"])}


def _rate_card(section: dict[str, Any] | None) -> dict[str, Any] | None:
    """The rate model's choice in words: what the card says about drift and gaps."""
    if not section:
        return None  # a model.json written before the rate model was dynamic
    half_life = section["half_life_days"]
    dispersion = section["dispersion"]
    how = {
        "log score": f"chosen by the {section['reason']}",
        "fixed": "set by the half-life setting",
        "default": section["reason"],
    }[section["chosen_by"]]
    return {
        "memory": (
            f"recent history counts more: an incident {half_life:g} days old counts half ({how})"
            if half_life is not None
            else f"every day of the window counts the same ({how})"
        ),
        "dispersion": (
            "incidents come in bursts beyond chance: the forecasts are widened as if the rate "
            f"of each {section.get('horizon_days') or 28:g}-day period varied by "
            f"±{100 / math.sqrt(dispersion):.0f} %"
            if dispersion is not None
            else None
        ),
        "drift": section.get("drift") or {},
        "gaps": section.get("gaps") or [],
    }


def _markdown_text(value: Any) -> Any:
    """Every value a Markdown template prints, made inert: HTML-special characters become
    entities (Markdown renderers pass raw HTML through). Markup (the Mermaid diagrams, built
    here from validated names) is left as it is."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return inert_text(value)


def _environment(autoescape: bool) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(resources.folder("templates")),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=None if autoescape else _markdown_text,
    )
    environment.filters["pct"] = percent
    environment.filters["num"] = lambda v: f"{v:,.0f}" if v >= 10 else f"{v:.2g}"
    # An error budget burnt several times over reads better as a multiple than as 1514 %.
    environment.filters["budget"] = lambda v: f"{v * 100:.0f}%" if v < 1 else f"{v:.1f}×"
    # A Markdown table cell: a "|" would end it and a line break the row.
    environment.filters["cell"] = lambda text: " ".join(str(text).split()).replace("|", "\\|")
    return environment


# The report's own section anchors (report.html.j2): no scenario may take one.
SECTION_ANCHORS = ("changes", "readiness", "model-card")


def slug(text: str) -> str:
    """`text` as a link target that survives Markdown and HTML: lowercase letters, digits and
    hyphens ("Pull Requests--other" -> "pull-requests-other")."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def anchors(ids: list[str]) -> dict[str, str]:
    """The link target of each scenario id in the reports (the one every link to a scenario
    uses: the report's table, the checklists, the tabletop packs): its slug, made unique in
    order ("-2", "-3") when two ids fold to the same or to a section's anchor."""
    taken = set(SECTION_ANCHORS)
    found: dict[str, str] = {}
    for scenario_id in ids:
        base = slug(scenario_id) or "scenario"
        anchor, n = base, 1
        while anchor in taken:
            n += 1
            anchor = f"{base}-{n}"
        taken.add(anchor)
        found[scenario_id] = anchor
    return found


EXPERIMENT_LABELS = {
    "chaostoolkit": "Chaos Toolkit",
    "chaosmesh": "Chaos Mesh",
    "litmus": "LitmusChaos",
    "fis": "AWS FIS",
}


def experiments_by_scenario(out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Each scenario's exported chaos experiments (experiments/index.json, whatif.gameday):
    label, relative link, or why there is none; empty when the run exported none."""
    index = Path(out_dir) / runfolder.EXPERIMENTS_FOLDER / runfolder.EXPERIMENTS_INDEX_FILE
    if not index.is_file():
        return {}
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in json.loads(index.read_text(encoding="utf-8"))["experiments"]:
        file = entry["file"]
        found.setdefault(entry["scenario"], []).append(
            {
                "label": EXPERIMENT_LABELS.get(entry["format"], entry["format"]),
                "link": f"{runfolder.EXPERIMENTS_FOLDER}/{file}" if file else None,
                "skipped": entry["skipped"],
                "note": entry["note"],
            }
        )
    return found


def render_reports(
    out_dir: Path,
    scenarios_doc: ScenariosDoc,
    model_doc: ModelDoc,
    validation: dict[str, Any],
    owners: dict[str, str] | None = None,
    summary: dict[str, Any] | None = None,
    readiness: dict[str, Any] | None = None,
) -> list[Path]:
    """Write report.md, report.html, checklists/<team>.md, tabletop/<scenario-id>.md and
    plots/*.svg beside scenarios.json (stale files of an earlier render are removed)."""
    scenarios = scenarios_doc.model_dump()["scenarios"]
    edges = [(e.depends_on, e.service) for e in model_doc.edges]
    doc = scenarios_doc.model_dump()
    pictures = pictures_of(scenarios, edges, model_doc)
    if readiness:
        pictures["readiness"] = plots.readiness_svg(readiness)
    context = {
        "doc": doc,
        "scenarios": scenarios,
        "cascades": {s["id"]: Markup(mermaid_cascade(s, edges)) for s in scenarios},
        "anchors": anchors([s["id"] for s in scenarios]),
        "model": model_doc.model_dump(),
        "riskiest_services": sorted(
            model_doc.model_dump()["services"],
            key=lambda s: (-s["root_rate_per_day"]["mean"], s["service"]),
        )[:10],
        "validation": validation,
        "card": model_card(model_doc),
        "quiet_tail": quiet_tail_card(validation),
        "plots": {name: plot_file(name) for name in pictures},
        "summary": summary or {"inputs": {}, "stages": {}, "narration": None},
        "readiness": readiness,
        "experiments": experiments_by_scenario(out_dir),
    }
    markdown = _environment(False)
    written = [out_dir / runfolder.REPORT_MD_FILE, out_dir / runfolder.REPORT_HTML_FILE]
    written[0].write_text(markdown.get_template("report.md.j2").render(**context), "utf-8")
    html = (
        _environment(True)
        .get_template("report.html.j2")
        .render(**context, svg={name: Markup(svg) for name, svg in pictures.items()})
    )
    written[1].write_text(html, encoding="utf-8")
    written += _write_each(
        out_dir / runfolder.PLOTS_FOLDER,
        {plot_file(name): svg for name, svg in pictures.items()},
        ".svg",
    )
    written += _write_each(
        out_dir / runfolder.CHECKLISTS_FOLDER,
        {
            file_name(team): markdown.get_template("checklist.md.j2").render(
                doc=doc, team=team, entries=entries, anchors=context["anchors"]
            )
            for team, entries in team_checklists(scenarios, owners or {}).items()
        },
    )
    written += _write_each(
        out_dir / runfolder.TABLETOP_FOLDER,
        {
            file_name(s["id"]): markdown.get_template("tabletop.md.j2").render(
                doc=doc,
                s=s,
                number=number,
                cascade=context["cascades"][s["id"]],
                anchor=context["anchors"][s["id"]],
            )
            for number, s in enumerate(scenarios, start=1)
        },
    )
    return written


def pictures_of(
    scenarios: list[dict[str, Any]], edges: list[tuple[str, str]], model_doc: ModelDoc
) -> dict[str, str]:
    """The report's pictures as SVG, by name: the risk matrix, each scenario's blast radius
    (its id), the failure rates and, when the backtest ran, its calibration."""
    pictures = {"risk-matrix": plots.risk_matrix_svg(scenarios)}
    for scenario in scenarios:
        pictures[f"blast-radius-{scenario['id']}"] = plots.blast_radius_svg(
            scenario, edges, set(scenario["user_facing_affected"])
        )
    pictures["failure-rates"] = plots.forest_plot_svg(model_doc)
    calibration = plots.calibration_svg(model_doc)
    if calibration is not None:
        pictures["calibration"] = calibration
    return pictures


def plot_file(name: str) -> str:
    return file_name(name).removesuffix(".md") + ".svg"


def team_checklists(
    scenarios: list[dict[str, Any]], owners: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """Per team paged by some scenario: those scenarios (report order), whether the team owns
    the trigger, and the checklist items for its on-call plus the roles everyone shares."""
    teams: dict[str, list[dict[str, Any]]] = {}
    known = set(owners.values())
    for number, scenario in enumerate(scenarios, start=1):
        roots = [t["service"] for t in (scenario["trigger"], scenario.get("co_trigger")) if t]
        owning = {owners[r] for r in roots if owners.get(r)}
        whose = [(item, _role_teams(item["role"], known)) for item in scenario["checklist"]]
        for team in sorted(set(scenario["impact"]["teams_paged"]) | owning):
            actions = [item for item, of in whose if team in of or not of]
            teams.setdefault(team, []).append(
                {"number": number, "s": scenario, "owns": team in owning, "actions": actions}
            )
    return dict(sorted(teams.items()))


def _role_teams(role: str, teams: set[str]) -> set[str]:
    """The teams a checklist role belongs to: those its text starts with, then a space
    ("payments on-call" is payments'); empty for a role everyone shares (incident commander).
    Looked up by the role's own prefixes, not by every team of a large fleet."""
    return {role[:i] for i, char in enumerate(role) if char == " " and role[:i] in teams}


def file_name(name: str) -> str:
    """A team or scenario id as a file name (the same on every object store)."""
    return safe_segment(name, "unnamed") + ".md"


def _write_each(folder: Path, pages: dict[str, str], suffix: str = ".md") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"*{suffix}"):
        if stale.name not in pages:
            stale.unlink()
    written = []
    for name, text in sorted(pages.items()):
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
