"""Plots: deterministic, parseable SVG with its labels as text; the layers of a cascade; the
forest plot's order; the backtest's calibration and its picture."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import numpy as np
import pytest
from scipy import stats
from test_model import AS_OF, incidents_frame, topology_frame
from whatif import backtest, model, plots
from whatif.schemas import Backtest, ModelDoc
from whatif.topology import Topology

SVG = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    """Every line of text in the SVG, in document order (the SVG must parse)."""
    root = ET.fromstring(svg)
    return ["".join(node.itertext()).strip() for node in root.iter(f"{SVG}text")]


def position(svg: str, label: str) -> tuple[float, float]:
    """Where the (first) text element `label` is drawn: its x, y in SVG coordinates."""
    for node in ET.fromstring(svg).iter(f"{SVG}text"):
        if "".join(node.itertext()).strip() == label:
            if "x" in node.attrib:
                return float(node.attrib["x"]), float(node.attrib["y"])
            x, y = re.match(r"translate\(([-\d.]+) ([-\d.]+)\)", node.attrib["transform"]).groups()
            return float(x), float(y)
    raise AssertionError(f"{label!r} not in the SVG")


def check_svg(render, *args) -> str:
    first = render(*args)
    assert first.startswith("<svg") and first == render(*args)  # byte-identical re-render
    ET.fromstring(first)
    assert "<image" not in first  # vector only, no embedded bitmap
    return first


def service(name: str, mean: float, p05: float, p95: float) -> dict:
    return {
        "service": name,
        "incidents": 3,
        "root_incidents": 2,
        "incident_rate_per_day": {"mean": mean, "p05": p05, "p95": p95},
        "root_rate_per_day": {"mean": mean, "p05": p05, "p95": p95},
        "root_rate_posterior": {"shape": 2.0, "rate": 2.0 / mean},
        "mttr_minutes": {"p50": 30.0, "p90": 90.0},
        "mttr_source": "data",
        "duration_minutes_lognormal": {"mu": 3.4, "sigma": 0.8},
        "severity_probabilities": {"SEV3": 1.0},
        "failure_modes": {"other": 1.0},
    }


def model_doc(services: list[dict], backtest_section: dict | None = None) -> ModelDoc:
    return ModelDoc.model_validate(
        {
            "window": {"start": "2025-01-01", "end": "2026-01-01", "days": 365.0},
            "inputs": {"services": len(services)},
            "priors": {"root_rate": {"alpha": 2.0, "beta": 200.0}},
            "services": services,
            "edges": [],
            "backtest": backtest_section,
        }
    )


# -- risk matrix ---------------------------------------------------------------------------


def test_the_risk_matrix_is_deterministic_svg_with_its_labels():
    scenarios = [
        {"probability": 0.2, "severity": "SEV2", "impact": {"impact_score": 3.0}},
        {"probability": 0.01, "severity": "SEV1", "impact": {"impact_score": 30.0}},
    ]
    lines = texts(check_svg(plots.risk_matrix_svg, scenarios))
    for label in ("probability within the horizon", "impact (weighted service-hours)", "SEV1"):
        assert label in lines


# -- blast radius --------------------------------------------------------------------------


def test_cascade_layers_of_a_chain_a_diamond_and_two_roots():
    chain = [("db", "api"), ("api", "web")]
    assert plots.cascade_layers(["db"], ["api", "web"], chain) == {"db": 0, "api": 1, "web": 2}
    diamond = [("db", "left"), ("db", "right"), ("left", "top"), ("right", "top")]
    assert plots.cascade_layers(["db"], ["left", "right", "top"], diamond) == {
        "db": 0,
        "left": 1,
        "right": 1,
        "top": 2,
    }
    # A shortcut wins: the shortest distance counts, not the longest path.
    assert plots.cascade_layers(["db"], ["api", "web"], [*chain, ("db", "web")])["web"] == 1
    # Two roots: both in column 0, each service at its distance from the nearer one.
    two = [("db", "api"), ("api", "web"), ("cache", "web"), ("db", "cache")]
    assert plots.cascade_layers(["db", "cache"], ["api", "web"], two) == {
        "api": 1,
        "cache": 0,
        "db": 0,
        "web": 1,
    }


def test_cascade_layers_put_the_unreached_in_a_last_column_and_ignore_the_rest():
    edges = [
        ("db", "api"),
        ("api", "web"),
        ("db", "outside"),  # not drawn: ignored
        ("outside", "batch"),  # reachable only through a service that is not drawn
        ("api", "api"),  # self-loop
        ("web", "db"),  # a cycle back to the root
    ]
    layers = plots.cascade_layers(["db"], ["api", "web", "batch"], edges)
    assert layers == {"db": 0, "api": 1, "web": 2, "batch": 3}
    assert plots.cascade_layers(["db"], [], []) == {"db": 0}


def scenario(trigger: str, affected: dict[str, float], co_trigger: str | None = None) -> dict:
    return {
        "trigger": {"service": trigger, "failure_mode": "database"},
        "co_trigger": {"service": co_trigger, "failure_mode": "network"} if co_trigger else None,
        "impact": {"affected_probability": affected},
    }


def test_the_blast_radius_draws_the_cascade_left_to_right_with_its_legend():
    edges = [("cc", "aa"), ("aa", "bb"), ("bb", "web"), ("cc", "dd"), ("zz", "aa")]
    drawn = scenario("cc", {"cc": 1.0, "aa": 0.5, "bb": 0.25, "dd": 0.125})
    svg = check_svg(plots.blast_radius_svg, drawn, edges, {"bb"})
    lines = texts(svg)
    for label in ("cc", "aa", "bb", "dd", "trigger", "50%", "25%", "12%", "chance of being hit"):
        assert label in lines
    for label in ("root", "internal", "user-facing", "1 step", "2 steps"):
        assert label in lines
    assert "web" not in lines and "zz" not in lines  # not part of this cascade
    # Columns by cascade distance, not by name: cc (root) < aa = dd (1 step) < bb (2 steps).
    x = {name: position(svg, name)[0] for name in ("cc", "aa", "bb", "dd")}
    assert x["cc"] < x["aa"] < x["bb"]
    assert x["aa"] == pytest.approx(x["dd"], abs=2)  # one column (centred labels)
    assert position(svg, "aa")[1] < position(svg, "dd")[1]  # by name, top to bottom


def test_the_blast_radius_of_one_service_and_of_forty():
    """Forty services: the roots and the 30 most likely hit are drawn (ties by name), the
    title says how many more are left out and their highest chance."""
    alone = check_svg(plots.blast_radius_svg, scenario("lonely", {"lonely": 1.0}), [], set())
    assert "lonely" in texts(alone) and "root" in texts(alone)
    names = [f"s{i:02d}" for i in range(40)]
    edges = [(names[(i - 1) // 3], names[i]) for i in range(1, 40)]  # a tree, 3 children each
    affected = {name: (i % 10) / 10 for i, name in enumerate(names)}
    big = check_svg(
        plots.blast_radius_svg, scenario("s00", affected, co_trigger="s39"), edges, set()
    )
    left_out = {"s10", "s20", "s30", "s01", "s11", "s21", "s31", "s32"}  # 0 %, 10 %, last 20 %
    assert set(names) - left_out <= set(texts(big))
    assert not left_out & set(texts(big))
    assert "8 more (each hit in at most 20%)" in " ".join(texts(big))
    assert "roots" in texts(big)  # trigger and co-trigger share column 0
    assert "with s39 at the same time" in " ".join(texts(big))
    height = float(re.search(r'height="([\d.]+)pt"', big).group(1))
    assert height > 2 * float(re.search(r'height="([\d.]+)pt"', alone).group(1))


# -- forest plot ---------------------------------------------------------------------------


def test_the_forest_plot_lists_the_most_failure_prone_services_at_the_top():
    services = [
        service("quiet", 0.001, 0.0005, 0.002),
        service("busy", 0.05, 0.03, 0.08),
        service("tie-b", 0.02, 0.01, 0.03),
        service("tie-a", 0.02, 0.01, 0.03),
        service("middling", 0.03, 0.02, 0.04),
    ]
    doc = model_doc(services)
    rows = plots.forest_rows(doc, top=4)
    assert [row[0] for row in rows] == ["busy", "middling", "tie-a", "tie-b"]
    assert rows[0][1:] == pytest.approx((1.5, 0.9, 2.4))  # per 30 days
    svg = check_svg(plots.forest_plot_svg, doc, 4)
    lines = texts(svg)
    assert "quiet" not in lines
    assert "root failures per 30 days" in lines
    assert "fleet prior mean (0.3)" in lines  # 30 * 2 / 200
    heights = [position(svg, name)[1] for name in ("busy", "middling", "tie-a", "tie-b")]
    assert heights == sorted(heights)  # SVG y grows downwards: busiest at the top


def test_the_forest_plot_without_a_root_rate_prior_has_no_prior_line():
    doc = model_doc([service("only", 0.01, 0.005, 0.02)])
    doc.priors.clear()
    lines = texts(check_svg(plots.forest_plot_svg, doc))
    assert "only" in lines and not any(line.startswith("fleet prior") for line in lines)


# -- calibration ---------------------------------------------------------------------------


def test_forecasts_that_are_the_true_distribution_are_calibrated():
    rng = np.random.default_rng(7)
    means = rng.uniform(0.05, 4.0, 6000)  # small counts, where discreteness matters most
    counts = rng.poisson(means)
    points = backtest.calibration(*backtest.poisson_pit(means, counts).T)
    assert [p["nominal"] for p in points] == list(backtest.CALIBRATION_LEVELS)
    for p in points:
        assert p["observed"] == pytest.approx(p["nominal"], abs=0.03)
    shape, success = rng.uniform(0.5, 5.0, 6000), rng.uniform(0.3, 0.9, 6000)
    counts = stats.nbinom.rvs(shape, success, random_state=rng)
    for p in backtest.calibration(*backtest.nbinom_pit(shape, success, counts).T):
        assert p["observed"] == pytest.approx(p["nominal"], abs=0.03)


def test_an_over_confident_forecast_covers_less_than_it_claims():
    rng = np.random.default_rng(8)
    means = rng.uniform(0.5, 4.0, 6000)
    # The truth varies around the forecast mean (Gamma noise); the Poisson forecast ignores it.
    counts = rng.poisson(means * rng.gamma(0.5, 2.0, len(means)))
    for p in backtest.calibration(*backtest.poisson_pit(means, counts).T):
        assert p["observed"] < p["nominal"] - 0.02


def test_an_impossible_outcome_is_never_inside_and_a_certain_one_counts_its_share():
    # Poisson(0) forecasts: y = 1 had probability 0 (outside every interval); y = 0 was
    # certain (its PIT range is all of [0, 1], so it counts the level's share).
    below, upto = backtest.poisson_pit(np.zeros(2), np.array([1, 0])).T
    assert list(below) == [1.0, 0.0] and list(upto) == [1.0, 1.0]
    points = backtest.calibration(below, upto, levels=(0.5,))
    assert points == [{"nominal": 0.5, "observed": 0.25}]


@pytest.fixture(scope="module")
def fitted():
    """A small fleet, 24 services at three rates over two years: enough for six folds."""
    rng = np.random.default_rng(5)
    services = [f"s{i:02d}" for i in range(24)]
    rows = [
        {"incident_id": f"{s}-{k}", "service": s, "started_at": AS_OF - timedelta(days=float(d))}
        for i, s in enumerate(services)
        for k, d in enumerate(rng.uniform(0, 730, rng.poisson((0.01, 0.03, 0.08)[i % 3] * 730)))
    ]
    topology = Topology.from_frame(topology_frame(services))
    return model.fit(incidents_frame(rows), topology, AS_OF, 730, "2024-01-01")


def test_the_backtest_records_every_models_calibration_and_draws_it(fitted):
    result = fitted.backtest
    assert result.status == "done"
    assert set(result.calibration) == set(backtest.MODELS)
    for points in result.calibration.values():
        assert [p.nominal for p in points] == list(backtest.CALIBRATION_LEVELS)
        observed = [p.observed for p in points]
        assert observed == sorted(observed)  # a wider interval holds at least as much
    for p in result.calibration["hierarchical"]:
        assert p.observed == pytest.approx(p.nominal, abs=0.12)  # 144 forecasts
    lines = texts(check_svg(plots.calibration_svg, fitted))
    for label in (
        "nominal central interval",
        "observed share inside",
        "perfectly calibrated",
        "dynamic hierarchical Gamma-Poisson (this model)",
        "baseline: one global rate",
        "baseline: per-service maximum likelihood",
        "baseline: each service's rate over the last 90 days",
    ):
        assert label in lines


def test_no_calibration_picture_for_a_skipped_or_older_backtest():
    skipped = {"status": "skipped", "reason": "turned off (backtest folds = 0)"}
    assert plots.calibration_svg(model_doc([], skipped)) is None
    assert plots.calibration_svg(model_doc([])) is None  # no backtest at all
    older = {"status": "done", "folds": 6, "scores": {}, "winner": "hierarchical"}
    assert Backtest.model_validate(older).calibration is None  # a file from before it reads
    assert plots.calibration_svg(model_doc([], older)) is None


def test_a_calibration_of_an_unknown_model_gets_a_style_of_its_own():
    points = [{"nominal": level, "observed": level} for level in backtest.CALIBRATION_LEVELS]
    doc = model_doc(
        [], {"status": "done", "calibration": {"hierarchical": points, "new_rule": points}}
    )
    lines = texts(check_svg(plots.calibration_svg, doc))
    assert "new_rule" in lines and "dynamic hierarchical Gamma-Poisson (this model)" in lines
