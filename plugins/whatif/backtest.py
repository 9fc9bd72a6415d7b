"""Backtest: does the rate model predict held-out history better than naive rules?

Rolling origin: for each origin o, stepping back from the window end by the horizon H, the
model is fitted on the history before o (its half-life and dispersion chosen from the origins
before o only: whatif.rates.Lattice) and asked for the number of root incidents of every
service in [o, o + H) (the days of it outside the export's gaps); then the origin moves on.
Each prediction is scored by the log predictive probability of what happened (higher is
better) and by whether it fell inside the central 90 % predictive interval. Three baselines
get the same data: one global rate for every service, each service's own maximum-likelihood
rate, and each service's rate over the last 90 days (drift-aware, so that the model cannot
"win" against rules that share its blind spot), all Poisson. Each model's calibration is
recorded too: for nominal central-interval levels, the share of outcomes inside that model's
central predictive interval (`calibration`). The result goes into model.json under "backtest"
and into the report.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from whatif import model, rates
from whatif.config import ModelSettings
from whatif.schemas import BACKTEST_LABELS, BACKTEST_MODELS

MODELS = BACKTEST_MODELS
LABELS = BACKTEST_LABELS
MIN_TRAIN_DAYS = rates.MIN_TRAIN_DAYS
# Nominal levels of the central predictive intervals whose coverage `calibration` reports.
CALIBRATION_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def fold_points(lattice: rates.Lattice, settings: ModelSettings) -> list[int]:
    """The lattice points that are fold origins, oldest first: the last `backtest_folds`
    before the window end that keep at least max(90 days, two horizons) of history."""
    points = [lattice.end - k for k in range(settings.backtest_folds, 0, -1)]
    return [j for j in points if j >= 0 and lattice.points[j] >= lattice.minimum_training]


def run(
    fit: rates.RateFit, roots: rates.Events, start: pd.Timestamp, settings: ModelSettings
) -> dict[str, Any]:
    """The backtest section of model.json (`status` "skipped" with a reason when the history
    is too short or the backtest is turned off)."""
    lattice = fit.lattice
    horizon = settings.backtest_horizon_days
    if settings.backtest_folds == 0:
        return {"status": "skipped", "reason": "turned off (backtest folds = 0)"}
    folds = fold_points(lattice, settings)
    if len(folds) < 2:
        window_days = float(lattice.points[-1])
        needed = lattice.minimum_training + 2 * horizon
        return {
            "status": "skipped",
            "reason": f"the history covers {window_days:.0f} days; two {horizon:g}-day folds "
            f"after the minimum training period need {needed:.0f}",
        }
    parts = [_fold(lattice, roots, j, settings.fixed_half_life) | {"point": j} for j in folds]
    parts = [p for p in parts if len(p["observed"])]  # a fold inside a gap forecasts nothing
    if len(parts) < 2:
        return {
            "status": "skipped",
            "reason": "fewer than two origins had a service with history before them",
        }
    scores = {name: np.concatenate([p[name] for p in parts]) for name in MODELS}
    observed = np.concatenate([p["observed"] for p in parts])
    pit = {name: np.concatenate([p["pit"][name] for p in parts]) for name in MODELS}
    summary = {
        name: _summarise(*scores[name].T, observed) | {"pit_coverage_90": _pit_90(pit[name])}
        for name in MODELS
    }
    winner = max(MODELS, key=lambda name: (summary[name]["log_score"], name == "hierarchical"))
    comparison = {
        name: _difference(scores["hierarchical"][:, 0], scores[name][:, 0]) for name in MODELS[1:]
    }
    return {
        "status": "done",
        "target": "root incidents per service",
        "horizon_days": horizon,
        "folds": len(parts),
        "origins": [
            (start + pd.Timedelta(days=float(lattice.points[p["point"]]))).isoformat()
            for p in parts
        ],
        "services": int(np.unique(np.concatenate([p["services"] for p in parts])).size),
        "evaluations": len(observed),
        "scores": summary,
        "winner": winner,
        "comparison": comparison,
        "verdict": _verdict(comparison, horizon),
        "calibration": {name: calibration(*pit[name].T) for name in MODELS},
        "choices": [p["choice"] for p in parts],
    }


def _fold(
    lattice: rates.Lattice, roots: rates.Events, point: int, fixed_half_life: float | None
) -> dict[str, Any]:
    """Predictions of one origin for the services that existed at it: per model, rows of
    (log score, covered, predicted mean, zero-probability outcome); under "pit", per model,
    rows of the outcome's predictive CDF range (F(y - 1), F(y)) for `calibration`."""
    scored = lattice.scored[point]
    origin, span = float(lattice.points[point]), float(lattice.spans[point])
    choice = lattice.choose(point, fixed_half_life)
    y = lattice.observed[point][scored]
    if not scored.any():
        empty = np.zeros((0, 4))
        pit = {name: np.zeros((0, 2)) for name in MODELS}
        return {name: empty for name in MODELS} | {
            "observed": y,
            "services": y,
            "pit": pit,
            "choice": {},
        }
    shape, rate = lattice.posterior(choice.half_life_days, point)
    wide = rates.predictive_shape(shape[scored], choice.dispersion)
    p = (wide * rate[scored] / shape[scored]) / (wide * rate[scored] / shape[scored] + span)
    hierarchical = _rows(
        stats.nbinom.logpmf(y, wide, p),
        stats.nbinom.ppf(0.05, wide, p),
        stats.nbinom.ppf(0.95, wide, p),
        wide * (1 - p) / p,
        y,
    )
    plain = lattice.half_lives.index(math.inf)  # the baselines see plain counts and days
    n, big_t = lattice.counts[plain, point][scored], lattice.exposure[plain, point][scored]
    recent_n, recent_t = roots.window_totals(origin - rates.RECENT_DAYS, origin)
    recent_n, recent_t = recent_n[scored], recent_t[scored]
    # Jeffreys' (n + 1/2) / T: a quiet quarter is not a promise of no failure at all.
    recent_mean = (
        np.where(recent_t > 0, (recent_n + 0.5) / np.maximum(recent_t, 1e-9), (n + 0.5) / big_t)
        * span
    )
    global_mean = np.full(len(y), n.sum() / big_t.sum() * span)
    ml_mean = n / big_t * span
    return {
        "hierarchical": hierarchical,
        "global_rate": _poisson_rows(global_mean, y),
        "per_service_ml": _poisson_rows(ml_mean, y),
        "recent_rate": _poisson_rows(recent_mean, y),
        "observed": y,
        "services": np.flatnonzero(scored),
        "pit": {
            "hierarchical": nbinom_pit(wide, p, y),
            "global_rate": poisson_pit(global_mean, y),
            "per_service_ml": poisson_pit(ml_mean, y),
            "recent_rate": poisson_pit(recent_mean, y),
        },
        "choice": {key: choice.as_dict()[key] for key in ("half_life_days", "dispersion")},
    }


def _pit_90(pit: np.ndarray) -> float:
    """The share of outcomes inside the central 90 % interval, by the randomised PIT (see
    `calibration`): unlike coverage_90, not inflated by the discreteness of small counts."""
    return calibration(*pit.T, levels=(0.9,))[0]["observed"]


def poisson_pit(mean: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows (F(y - 1), F(y)) of Poisson(mean) forecasts; a mean of 0 is a point mass at 0."""
    mean = np.maximum(np.asarray(mean, dtype=float), 1e-300)
    y = np.asarray(y, dtype=float)
    return np.column_stack([stats.poisson.cdf(y - 1, mean), stats.poisson.cdf(y, mean)])


def nbinom_pit(shape: np.ndarray, p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows (F(y - 1), F(y)) of NegBin(shape, p) forecasts (scipy's parametrisation)."""
    y = np.asarray(y, dtype=float)
    return np.column_stack([stats.nbinom.cdf(y - 1, shape, p), stats.nbinom.cdf(y, shape, p)])


def calibration(
    below: np.ndarray, upto: np.ndarray, levels: tuple[float, ...] = CALIBRATION_LEVELS
) -> list[dict[str, float]]:
    """Nominal against observed coverage of the central predictive intervals.

    `below` = F(y - 1) and `upto` = F(y) are each outcome's predictive CDF just below and at
    what happened. The method is the randomised PIT, u = F(y - 1) + V (F(y) - F(y - 1)) with
    V ~ Uniform(0, 1), averaged over V analytically instead of drawn (so: no random numbers,
    no seed): an outcome counts as the share of its PIT range [F(y - 1), F(y)] that lies
    inside the central interval [(1 - c) / 2, (1 + c) / 2] of level c. For a forecast that is
    the true distribution, the observed share is c in expectation, at every level and however
    small the counts (a plain "is y inside [q_low, q_high]" over-covers discrete counts, as
    `coverage_90` does). An outcome of predictive probability 0 has an empty range, a point
    (F(y - 1) = F(y)): it counts 1 when the point lies inside the interval, else 0.
    Observed below nominal: over-confident forecasts (intervals too narrow or off-centre);
    above: under-confident ones.
    """
    below = np.asarray(below, dtype=float)
    upto = np.asarray(upto, dtype=float)
    width = upto - below
    points = []
    for level in levels:
        low, high = (1 - level) / 2, (1 + level) / 2
        overlap = np.clip(np.minimum(upto, high) - np.maximum(below, low), 0.0, None)
        point = (low <= below) & (below <= high)
        share = np.where(width > 0, overlap / np.where(width > 0, width, 1.0), point)
        points.append(
            {
                "nominal": level,
                "observed": model._round(float(share.mean())) if len(share) else 0.0,
            }
        )
    return points


def _poisson_rows(mean: np.ndarray, y: np.ndarray) -> np.ndarray:
    low = np.where(mean > 0, stats.poisson.ppf(0.05, np.maximum(mean, 1e-300)), 0.0)
    high = np.where(mean > 0, stats.poisson.ppf(0.95, np.maximum(mean, 1e-300)), 0.0)
    log_score = np.where(mean > 0, stats.poisson.logpmf(y, np.maximum(mean, 1e-300)), 0.0)
    log_score = np.where((mean == 0) & (y > 0), -np.inf, log_score)
    return _rows(log_score, low, high, mean, y)


def _rows(
    log_score: np.ndarray, low: np.ndarray, high: np.ndarray, mean: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """A predicted probability of 0 for what happened scores LOG_FLOOR (not -inf), and is
    counted: a rule that calls observed failures impossible is penalised, not undefined."""
    impossible = ~np.isfinite(log_score)
    return np.column_stack(
        [
            np.where(impossible, model.LOG_FLOOR, log_score),
            (low <= y) & (y <= high),
            mean,
            impossible,
        ]
    ).astype(float)


def _summarise(
    log_score: np.ndarray,
    covered: np.ndarray,
    predicted: np.ndarray,
    impossible: np.ndarray,
    observed: np.ndarray,
) -> dict[str, float | int]:
    return {
        "log_score": model._round(float(log_score.mean())),
        "coverage_90": model._round(float(covered.mean())),
        "predicted_total": model._round(float(predicted.sum())),
        "observed_total": int(observed.sum()),
        "zero_probability_outcomes": int(impossible.sum()),
    }


def _difference(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Mean paired difference in log score (ours minus the baseline) and its standard error."""
    difference = ours - theirs
    error = 0.0
    if len(difference) > 1:
        error = float(difference.std(ddof=1) / math.sqrt(len(difference)))
    return {
        "log_score_difference": model._round(float(difference.mean())),
        "standard_error": model._round(error),
    }


def _verdict(comparison: dict[str, dict[str, float]], horizon: float) -> str:
    """A plain sentence: which baselines the model beat, and which it did not."""
    per = f"per service and {horizon:g}-day horizon"
    against = "; ".join(
        f"{c['log_score_difference']:+.3f} ± {c['standard_error']:.3f} against {LABELS[name]}"
        for name, c in comparison.items()
    )
    lost = [name for name, c in comparison.items() if c["log_score_difference"] <= 0]
    close = [
        name
        for name, c in comparison.items()
        if 0 < c["log_score_difference"] < c["standard_error"]
    ]
    if lost:
        return (
            f"The model did not beat {_names(lost)} on this history (log score {per}: "
            f"{against}). The scenarios still use the model; read its probabilities with that "
            "in mind."
        )
    caveat = (
        f" Its lead over {_names(close)} is within one standard error: a lean, not proof."
        if close
        else ""
    )
    return (
        "The model predicted held-out root-incident counts better than every baseline "
        f"(log score {per}: {against}).{caveat}"
    )


def _names(models: list[str]) -> str:
    labels = [LABELS[name] for name in models]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " or " + labels[-1]
