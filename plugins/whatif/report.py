"""Report: scenarios.json (the contract) and the Markdown and HTML reports people read.

The reports lead with a picture (the risk matrix) and are rendered from Jinja2 templates
with autoescaping on for HTML, so no incident text can inject markup.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jinja2

from whatif.schemas import ModelDoc, ScenariosDoc

TEMPLATES = Path(__file__).parent / "templates"


def write_json(path: Path, document: dict[str, Any]) -> Path:
    """Stable JSON (sorted keys, fixed indent) so that re-runs rewrite identical bytes."""
    path.write_text(
        json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return path


def risk_matrix_svg(scenarios: list[dict[str, Any]]) -> str:
    """Probability x impact scatter of the reported scenarios, as deterministic inline SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "whatif"
    plt.rcParams["svg.fonttype"] = "none"
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=100)
    colours = {"SEV1": "#D55E00", "SEV2": "#E69F00", "SEV3": "#0072B2", "SEV4": "#009E73"}
    for number, scenario in enumerate(scenarios, start=1):
        x = max(scenario["probability"], 1e-6)
        y = max(scenario["impact"]["impact_score"], 1e-3)
        axes.scatter(
            [x],
            [y],
            s=90,
            color=colours[scenario["severity"]],
            edgecolor="black",
            zorder=3,
            label=scenario["severity"],
        )
        axes.annotate(str(number), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
    xs = [max(s["probability"], 1e-6) for s in scenarios]
    ys = [max(s["impact"]["impact_score"], 1e-3) for s in scenarios]
    _scale(axes.xaxis, axes.set_xscale, xs, lambda v, _: f"{v * 100:.2g}%")
    _scale(axes.yaxis, axes.set_yscale, ys, lambda v, _: f"{v:.3g}")
    axes.set_xlabel("probability within the horizon")
    axes.set_ylabel("impact (weighted service-hours)")
    axes.set_title("Risk matrix: numbers are the scenarios below")
    axes.grid(True, which="both", alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes.legend(
        [unique[k] for k in sorted(unique)],
        sorted(unique),
        title="severity",
        loc="best",
        fontsize=8,
    )
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def _scale(axis: Any, set_scale: Any, values: list[float], label: Any) -> None:
    """Log scale with 1-2-5 ticks when the values span more than a factor of 20, else linear."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if values and max(values) / min(values) > 20:
        set_scale("log")
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(label))


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
        lines.append(f'  {node}["{label}"]')
    for dependency, dependent in edges:
        if dependency in affected and dependent in affected:
            lines.append(f"  {node_ids[dependency]} --> {node_ids[dependent]}")
    for trigger in (scenario["trigger"], scenario.get("co_trigger")):
        if trigger:
            lines.append(f"  style {node_ids[trigger['service']]} fill:#D55E00,color:#fff")
    return "\n".join(lines)


BACKTEST_LABELS = {
    "hierarchical": "hierarchical Gamma-Poisson (this model)",
    "global_rate": "baseline: one global rate",
    "per_service_ml": "baseline: per-service maximum likelihood",
}


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
            "source": "fitted to the fleet" if prior["source"] == "data" else "default",
        }
        for name in classes
        if (prior := doc["priors"].get(f"propagation_{name}"))
    ]
    weekdays = (doc["time_multipliers"] or {}).get("day_of_week") or {}
    hours = (doc["time_multipliers"] or {}).get("hour_of_day") or {}
    backtest = doc["backtest"] or {"status": "skipped", "reason": "not run (an older model.json)"}
    scores = backtest.get("scores") or {}
    rows = [
        {"name": name, "label": label, **scores[name]}
        for name, label in BACKTEST_LABELS.items()
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
    }


def _environment(autoescape: bool) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["pct"] = lambda p: f"{p * 100:.1f}%" if p < 0.1 else f"{p * 100:.0f}%"
    environment.filters["num"] = lambda v: f"{v:,.0f}" if v >= 10 else f"{v:.2g}"
    # An error budget burnt several times over reads better as a multiple than as 1514 %.
    environment.filters["budget"] = lambda v: f"{v * 100:.0f}%" if v < 1 else f"{v:.1f}×"
    # A Markdown table cell: a "|" would end it and a line break the row.
    environment.filters["cell"] = lambda text: " ".join(str(text).split()).replace("|", "\\|")
    return environment


def render_reports(
    out_dir: Path, scenarios_doc: ScenariosDoc, model_doc: ModelDoc, validation: dict[str, Any]
) -> list[Path]:
    """Write report.md and report.html beside scenarios.json."""
    scenarios = scenarios_doc.model_dump()["scenarios"]
    edges = [(e.depends_on, e.service) for e in model_doc.edges]
    context = {
        "doc": scenarios_doc.model_dump(),
        "scenarios": scenarios,
        "cascades": {s["id"]: mermaid_cascade(s, edges) for s in scenarios},
        "model": model_doc.model_dump(),
        "riskiest_services": sorted(
            model_doc.model_dump()["services"],
            key=lambda s: (-s["root_rate_per_day"]["mean"], s["service"]),
        )[:10],
        "validation": validation,
        "card": model_card(model_doc),
    }
    markdown = _environment(False).get_template("report.md.j2").render(**context)
    html = (
        _environment(True)
        .get_template("report.html.j2")
        .render(**context, risk_matrix=jinja2.filters.Markup(risk_matrix_svg(scenarios)))
    )
    written = [out_dir / "report.md", out_dir / "report.html"]
    written[0].write_text(markdown, encoding="utf-8")
    written[1].write_text(html, encoding="utf-8")
    return written
