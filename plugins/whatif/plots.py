"""Pictures for the reports: deterministic inline SVG.

Every function returns an SVG string that is byte-identical from one run to the next
(matplotlib's Agg backend, a fixed `svg.hashsalt`, no date in the metadata) with its text
kept as text (`svg.fonttype` none), so that a test, a search or a screen reader finds the
labels. Colours are colour-blind safe: Okabe-Ito for categories, cividis (perceptually
uniform) for magnitudes, and a second cue (marker shape, line style) wherever a colour
carries meaning. Figures are about 5.5 inches wide with text of 9 to 12 points, so that
they stay legible when a phone scales them to the width of its screen; a figure with more
to show grows taller (or, for deep cascades, wider) instead of shrinking its text.
matplotlib is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterable
from typing import Any

from whatif.schemas import ModelDoc, backtest_label

VERMILLION = "#D55E00"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
BLUISH_GREEN = "#009E73"
BLUE = "#0072B2"
REDDISH_PURPLE = "#CC79A7"
GREY = "#555555"
SEVERITY_COLOURS = {
    "SEV1": VERMILLION,
    "SEV2": ORANGE,
    "SEV3": BLUE,
    "SEV4": BLUISH_GREEN,
    "unknown": "#999999",  # the history records no severity
}
# The backtest's models (whatif.backtest.MODELS): colour and marker.
BACKTEST_STYLES = {
    "hierarchical": (BLUE, "o"),
    "global_rate": (ORANGE, "s"),
    "per_service_ml": (BLUISH_GREEN, "^"),
    "recent_rate": (VERMILLION, "D"),
}
OTHER_STYLES = ((REDDISH_PURPLE, "P"), (SKY_BLUE, "v"), (GREY, "X"))
WIDTH = 5.5  # inches


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "whatif"
    plt.rcParams["svg.fonttype"] = "none"
    return plt


def _svg(plt: Any, figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


# -- risk matrix ---------------------------------------------------------------------------


def risk_matrix_svg(scenarios: list[dict[str, Any]]) -> str:
    """Probability x impact scatter of the reported scenarios, as deterministic inline SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "whatif"
    plt.rcParams["svg.fonttype"] = "none"
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=100)
    colours = SEVERITY_COLOURS
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
    axes.set_ylabel(
        "impact (weighted service-hours)"
        if any(sc["severity"] != "unknown" for sc in scenarios)
        else "impact (service-hours, users first)"
    )
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
    return _svg(plt, figure)


def _scale(axis: Any, set_scale: Any, values: list[float], label: Any) -> None:
    """Log scale with 1-2-5 ticks when the values span more than a factor of 20, else linear."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if values and max(values) / min(values) > 20:
        set_scale("log")
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(label))


# -- blast radius --------------------------------------------------------------------------

HIT_BINS = 10  # the colour scale of "chance of being hit": 10 bins of 10 %


def cascade_layers(
    roots: Iterable[str], nodes: Iterable[str], edges: Iterable[tuple[str, str]]
) -> dict[str, int]:
    """Column of every node: its shortest cascade distance from the nearest root.

    Roots (added to the nodes if missing) are column 0; a node is k when the shortest path
    from a root along `edges` (dependency, dependent), through drawn nodes only, has k steps;
    edges touching a node outside `nodes` are ignored, and so are self-loops. A node that no
    root reaches that way is kept, not dropped, in one extra last column (max distance + 1),
    so that the picture never hides a service the simulation saw hit.
    """
    drawn = set(nodes) | set(roots)
    distance = _distances(roots, drawn, edges)
    last = max(distance.values(), default=-1) + 1
    return {name: distance.get(name, last) for name in sorted(drawn)}


def _distances(
    roots: Iterable[str], drawn: set[str], edges: Iterable[tuple[str, str]]
) -> dict[str, int]:
    """Breadth-first distances from the roots, over the edges among `drawn`; only the nodes
    reached."""
    root_list = sorted(set(roots))
    after: dict[str, list[str]] = {name: [] for name in drawn | set(root_list)}
    for dependency, dependent in sorted(set(edges)):
        if dependency in drawn and dependent in drawn and dependency != dependent:
            after[dependency].append(dependent)
    distance = dict.fromkeys(root_list, 0)
    queue = deque(root_list)
    while queue:
        name = queue.popleft()
        for dependent in after[name]:
            if dependent not in distance:
                distance[dependent] = distance[name] + 1
                queue.append(dependent)
    return distance


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%" if share < 0.1 else f"{share * 100:.0f}%"


def _wrap(name: str, width: int = 16) -> str:
    """A long service name on two lines, broken at the separator nearest its middle."""
    if len(name) <= width:
        return name
    cuts = [i for i, c in enumerate(name) if c in "-_." and 0 < i < len(name) - 1]
    if not cuts:
        return name
    cut = min(cuts, key=lambda i: (abs(2 * i - len(name)), i))
    return f"{name[: cut + 1]}\n{name[cut + 1 :]}"


# A blast-radius picture draws at most this many services besides the roots: a shared
# service's cascade can reach hundreds, which no reader can follow in one picture (and which
# took seconds to draw); the report's table lists them all.
MAX_DRAWN_SERVICES = 30


def _most_likely_hit(
    probability: dict[str, float], roots: list[str]
) -> tuple[dict[str, float], tuple[int, float] | None]:
    """The services to draw (at most MAX_DRAWN_SERVICES besides the roots, the most likely
    hit first, ties by name) and, when some are left out, how many and the highest chance
    among them."""
    ranked = sorted(
        ((name, share) for name, share in probability.items() if name not in roots),
        key=lambda item: (-item[1], item[0]),
    )
    kept = dict(ranked[:MAX_DRAWN_SERVICES])
    kept |= {root: probability[root] for root in roots if root in probability}
    rest = ranked[MAX_DRAWN_SERVICES:]
    return kept, ((len(rest), rest[0][1]) if rest else None)


def blast_radius_svg(
    scenario: dict[str, Any], edges: list[tuple[str, str]], user_facing: set[str]
) -> str:
    """The scenario's cascade on the dependency graph, failure flowing left to right.

    Drawn: the trigger, the co-trigger if any, every service of
    `impact.affected_probability`, and the edges of `edges` (dependency, dependent) among
    them. Columns by `cascade_layers` (roots first; services no root reaches within the
    drawn set in a last column headed "not reached"), services within a column by name.
    Roots are filled vermillion; every other service is filled by its chance of being hit
    (cividis, in 10 % bins, with a colour bar); user-facing services are squares, internal
    ones circles. Labels: the service name and its chance of being hit ("trigger" for roots).
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D

    plt = _pyplot()
    import matplotlib

    roots = [t["service"] for t in (scenario["trigger"], scenario.get("co_trigger")) if t]
    probability, left_out = _most_likely_hit(scenario["impact"]["affected_probability"], roots)
    layers = cascade_layers(roots, probability, edges)
    drawn = [(a, b) for a, b in sorted(set(edges)) if a in layers and b in layers and a != b]
    reached = max(_distances(roots, set(layers), drawn).values(), default=0)
    columns: dict[int, list[str]] = {}
    for name in sorted(layers):
        columns.setdefault(layers[name], []).append(name)
    widest = max(len(names) for names in columns.values())
    wrapped = any("\n" in _wrap(name) for name in layers)
    pitch = 0.95 if wrapped else 0.8  # inches between the rows of a column
    column_pitch = 1.5
    trigger = scenario["trigger"]
    title = f"Blast radius: {trigger['service']} fails ({trigger.get('failure_mode', '?')})"
    if scenario.get("co_trigger"):
        title += f"\nwith {scenario['co_trigger']['service']} at the same time"
    if left_out:
        title += (
            f"\ndrawn: the {len(probability) - len(roots)} services most likely hit;\n"
            f"{left_out[0]} more (each hit in at most {_percent(left_out[1])}) are in the report"
        )
    # Wide enough for the title too (about 0.1 inch a character at 12 points).
    longest = max(len(line) for line in title.splitlines())
    width = max(WIDTH, column_pitch * len(columns) + 0.4, 0.1 * longest)
    top, bottom = 0.95 + (0.5 if left_out else 0.0), 1.05  # title and headers; colour bar
    height = top + bottom + pitch * widest
    figure = plt.figure(figsize=(width, height), dpi=100)
    axes = figure.add_axes((0.02, bottom / height, 0.96, (height - top - bottom) / height))
    axes.set_xlim(-0.5 * column_pitch, (len(columns) - 0.5) * column_pitch)
    axes.set_ylim(-widest * pitch / 2, widest * pitch / 2)
    axes.axis("off")
    position = {}
    for layer, names in columns.items():
        for i, name in enumerate(names):
            # Top to bottom in name order, each column centred on the middle row.
            position[name] = (layer * column_pitch, ((len(names) - 1) / 2 - i) * pitch + 0.12)
    colours = matplotlib.colormaps["cividis"].resampled(HIT_BINS)
    cmap = ListedColormap([colours(i) for i in range(HIT_BINS)])
    norm = BoundaryNorm([i / HIT_BINS for i in range(HIT_BINS + 1)], HIT_BINS)
    radius = 11  # points
    for dependency, dependent in drawn:
        (x0, y0), (x1, y1) = position[dependency], position[dependent]
        span = layers[dependent] - layers[dependency]
        # Straight to the next column; arcs otherwise, within a column bulging to its right
        # (into the gap between the columns, away from the labels below the nodes).
        bend = 0.0 if span == 1 else 0.25 if span != 0 else (0.5 if y1 > y0 else -0.5)
        axes.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={
                "arrowstyle": "-|>",
                "color": GREY,
                "lw": 1.1,
                "mutation_scale": 11,
                "shrinkA": radius + 1,
                "shrinkB": radius + 2,
                "connectionstyle": f"arc3,rad={bend}",
            },
            zorder=1,
        )
    for name in sorted(layers):
        x, y = position[name]
        root = name in roots
        share = float(probability.get(name, 1.0 if root else 0.0))
        fill = VERMILLION if root else cmap(norm(min(share, 0.999999)))
        axes.scatter(
            [x],
            [y],
            s=(2 * radius) ** 2 * (0.78 if name in user_facing else 1.0),
            marker="s" if name in user_facing else "o",
            color=fill,
            edgecolor=VERMILLION if root else "black",
            linewidth=2.0 if root else 0.8,
            zorder=3,
        )
        detail = "trigger" if root else _percent(share)
        axes.annotate(
            f"{_wrap(name)}\n{detail}",
            (x, y),
            textcoords="offset points",
            xytext=(0, -radius - 3),
            ha="center",
            va="top",
            fontsize=10,
            linespacing=1.1,
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85},
            zorder=4,
        )
    header_y = widest * pitch / 2
    for layer in columns:
        if layer == 0:
            header = "root" if len(roots) == 1 else "roots"
        elif layer > reached:
            header = "not reached"
        else:
            header = f"{layer} step" + ("s" if layer > 1 else "")
        axes.text(layer * column_pitch, header_y, header, ha="center", va="bottom", fontsize=10)
    figure.suptitle(title, fontsize=12, y=1 - 0.12 / height, va="top")
    # The colour bar (left) and the shapes (right), a fixed 0.18 inch high band at the bottom.
    bar = figure.add_axes((0.06, 0.55 / height, 0.42, 0.18 / height))
    scale = figure.colorbar(
        matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), cax=bar, orientation="horizontal"
    )
    scale.set_ticks([0, 0.25, 0.5, 0.75, 1.0], labels=["0%", "25%", "50%", "75%", "100%"])
    scale.ax.tick_params(labelsize=9)
    scale.set_label("chance of being hit", fontsize=10)
    handles = [
        Line2D([], [], ls="", marker="o", ms=10, mfc=VERMILLION, mec=VERMILLION, label="root"),
        Line2D([], [], ls="", marker="o", ms=10, mfc="white", mec="black", label="internal"),
        Line2D([], [], ls="", marker="s", ms=9, mfc="white", mec="black", label="user-facing"),
    ]
    figure.legend(
        handles=handles,
        loc="lower right",
        bbox_to_anchor=(0.98, 0.08 / height),
        fontsize=10,
        frameon=False,
        handletextpad=0.3,
    )
    return _svg(plt, figure)


# -- forest plot ---------------------------------------------------------------------------


def forest_rows(model_doc: ModelDoc, top: int = 15) -> list[tuple[str, float, float, float]]:
    """(service, mean, p05, p95) of root failures per 30 days for the `top` services with
    the highest posterior mean, highest first (ties by name)."""
    rows = [
        (
            s.service,
            30 * s.root_rate_per_day.mean,
            30 * s.root_rate_per_day.p05,
            30 * s.root_rate_per_day.p95,
        )
        for s in _doc(model_doc).services
    ]
    return sorted(rows, key=lambda row: (-row[1], row[0]))[: max(top, 0)]


def forest_plot_svg(model_doc: ModelDoc, top: int = 15) -> str:
    """Root failures per 30 days (root_rate_per_day x 30) of the `top` most failure-prone
    services: the posterior mean (dot) and its 90 % interval p05-p95 (bar), the highest
    mean at the top; a dashed line at the fleet prior mean (priors.root_rate alpha / beta)
    when model.json gives one."""
    plt = _pyplot()
    doc = _doc(model_doc)
    rows = forest_rows(doc, top)
    height = 1.9 + 0.3 * max(len(rows), 1)
    figure, axes = plt.subplots(figsize=(WIDTH, height), dpi=100)
    ys = list(range(len(rows), 0, -1))
    means = [row[1] for row in rows]
    axes.errorbar(
        means,
        ys,
        xerr=[[row[1] - row[2] for row in rows], [row[3] - row[1] for row in rows]],
        fmt="o",
        color=BLUE,
        ecolor=BLUE,
        elinewidth=2,
        capsize=3,
        markersize=6,
        label="posterior mean, 90 % interval",
        zorder=3,
    )
    prior = _prior_mean_per_30_days(doc)
    if prior is not None:
        axes.axvline(
            prior,
            color=VERMILLION,
            linestyle="--",
            linewidth=1.5,
            label=f"fleet prior mean ({prior:.2g})",
            zorder=2,
        )
    axes.set_yticks(ys, [row[0] for row in rows], fontsize=10)
    axes.set_ylim(0.4, len(rows) + 0.6)
    axes.set_xlim(left=0)
    axes.tick_params(axis="x", labelsize=10)
    axes.set_xlabel("root failures per 30 days", fontsize=11)
    shown = f"The {len(rows)} most failure-prone services" if rows else "No services"
    axes.set_title(shown, fontsize=12)
    axes.grid(True, axis="x", alpha=0.3)
    if rows:
        axes.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.55 / (height - 1.4)),
            ncol=2,
            fontsize=9,
            frameon=False,
        )
    figure.tight_layout()
    return _svg(plt, figure)


def _prior_mean_per_30_days(doc: ModelDoc) -> float | None:
    prior = doc.priors.get("root_rate") or {}
    alpha, beta = prior.get("alpha"), prior.get("beta")
    if isinstance(alpha, int | float) and isinstance(beta, int | float) and beta > 0:
        return 30 * float(alpha) / float(beta)
    return None


def _doc(model_doc: ModelDoc | dict[str, Any]) -> ModelDoc:
    return model_doc if isinstance(model_doc, ModelDoc) else ModelDoc.model_validate(model_doc)


# -- calibration ---------------------------------------------------------------------------


def calibration_svg(model_doc: ModelDoc) -> str | None:
    """Nominal against observed coverage of each backtested model's central predictive
    intervals (model.json backtest.calibration); on the diagonal a model is calibrated,
    below it over-confident. None when the backtest was skipped or has no calibration (a
    model.json written before it was recorded)."""
    backtest = _doc(model_doc).backtest
    if backtest is None or backtest.status != "done" or not backtest.calibration:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(WIDTH, 5.2), dpi=100)
    axes.plot([0, 1], [0, 1], color=GREY, linestyle="--", linewidth=1, label="perfectly calibrated")
    others = iter(OTHER_STYLES * len(backtest.calibration))
    known = [name for name in BACKTEST_STYLES if name in backtest.calibration]
    for name in known + sorted(set(backtest.calibration) - set(known)):
        points = backtest.calibration[name]
        colour, marker = BACKTEST_STYLES.get(name) or next(others)
        label = backtest_label(name)
        axes.plot(
            [p.nominal for p in points],
            [p.observed for p in points],
            color=colour,
            marker=marker,
            markersize=6,
            linewidth=1.6,
            label=label,
            zorder=3,
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_aspect("equal")
    percent = [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    axes.set_xticks(percent, [f"{v * 100:.0f}%" for v in percent], fontsize=10)
    axes.set_yticks(percent, [f"{v * 100:.0f}%" for v in percent], fontsize=10)
    axes.set_xlabel("nominal central interval", fontsize=11)
    axes.set_ylabel("observed share inside", fontsize=11)
    axes.text(
        0.97,
        0.03,
        "below the diagonal:\nover-confident",
        ha="right",
        va="bottom",
        fontsize=9,
        color=GREY,
    )
    axes.text(0.03, 0.97, "above: under-confident", ha="left", va="top", fontsize=9, color=GREY)
    folds = f"{backtest.evaluations} forecasts" if backtest.evaluations else "the backtest"
    axes.set_title(f"Calibration of the rate forecasts\n({folds}, held-out)", fontsize=12)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(0.0, 0.92), fontsize=8.5, frameon=True)
    figure.tight_layout()
    return _svg(plt, figure)


# -- readiness -------------------------------------------------------------------------------


def readiness_svg(document: dict[str, Any]) -> str:
    """Each owner team's readiness score (0-100) as a bar, its previous score as a marker;
    least ready at the top."""
    plt = _pyplot()
    teams = sorted(document["teams"], key=lambda t: (t["score"], t["team"]), reverse=True)
    figure, axes = plt.subplots(figsize=(WIDTH + 1, 0.45 * len(teams) + 1.4), dpi=100)
    y = list(range(len(teams)))
    colours = [
        BLUISH_GREEN if t["score"] >= 75 else ORANGE if t["score"] >= 50 else VERMILLION
        for t in teams
    ]
    axes.barh(y, [t["score"] for t in teams], color=colours, edgecolor="black", height=0.6)
    earlier = [
        (k, t["previous_score"]) for k, t in enumerate(teams) if t["previous_score"] is not None
    ]
    if earlier:
        axes.scatter(
            [score for _, score in earlier], [k for k, _ in earlier], marker="|", s=300,
            color="black", zorder=3, label="previous run",
        )  # fmt: skip
        axes.legend(loc="lower right", fontsize=8)
    for k, team in enumerate(teams):
        axes.annotate(f"{team['score']:.0f}", (team["score"], k), xytext=(4, -3),
                      textcoords="offset points", fontsize=8)  # fmt: skip
    axes.set_yticks(y, [t["team"] for t in teams])
    axes.set_xlim(0, 105)
    axes.set_xlabel("readiness score (0-100)")
    axes.set_title("Team readiness (least ready at the top)")
    axes.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    return _svg(plt, figure)
