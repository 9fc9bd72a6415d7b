"""Backtest: does the hierarchical rate model predict held-out history better than naive rules?

Rolling origin: for each origin o, stepping back from the window end by the horizon H, the
rates are fitted on the history before o (at most `history_days` of it) and asked for the
number of root incidents of every service in [o, o + H); then the origin moves on. Each
prediction is scored by the log predictive probability of what happened (higher is better)
and by whether it fell inside the central 90 % predictive interval. Two baselines get the
same data: one global rate for every service, and each service's own maximum-likelihood rate
(both Poisson). Each model's calibration is recorded too: for nominal central-interval levels,
the share of outcomes inside that model's central predictive interval (`calibration`). The
result goes into model.json under "backtest" and into the report.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from whatif import model
from whatif.config import ModelSettings

MODELS = ("hierarchical", "global_rate", "per_service_ml")
LABELS = {
    "hierarchical": "hierarchical Gamma-Poisson (this model)",
    "global_rate": "one global rate",
    "per_service_ml": "per-service maximum likelihood",
}
MIN_TRAIN_DAYS = 90.0
# Nominal levels of the central predictive intervals whose coverage `calibration` reports.
CALIBRATION_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def origins(window_days: float, settings: ModelSettings) -> list[float]:
    """Fold origins in days since the window start, oldest first; each keeps at least
    max(90 days, two horizons) of history before it."""
    horizon = settings.backtest_horizon_days
    minimum = max(MIN_TRAIN_DAYS, 2 * horizon)
    candidates = [window_days - horizon * k for k in range(settings.backtest_folds, 0, -1)]
    return [o for o in candidates if o >= minimum]


def run(
    attributed: pd.DataFrame,
    begins: np.ndarray,
    start: pd.Timestamp,
    end: pd.Timestamp,
    history_days: float,
    settings: ModelSettings,
) -> dict[str, Any]:
    """The backtest section of model.json (`status` "skipped" with a reason when the history
    is too short or the backtest is turned off)."""
    window_days = (end - start) / pd.Timedelta(days=1)
    horizon = settings.backtest_horizon_days
    if settings.backtest_folds == 0:
        return {"status": "skipped", "reason": "turned off (backtest folds = 0)"}
    folds = origins(window_days, settings)
    if len(folds) < 2:
        needed = max(MIN_TRAIN_DAYS, 2 * horizon) + 2 * horizon
        return {
            "status": "skipped",
            "reason": f"the history covers {window_days:.0f} days; two {horizon:g}-day folds "
            f"after the minimum training period need {needed:.0f}",
        }
    roots = attributed["how"].to_numpy() == "root"
    t = ((attributed["t"].to_numpy() - start.to_datetime64()) / model.DAY)[roots]
    svc = attributed["svc"].to_numpy()[roots]
    parts = [
        _fold(t, svc, begins, o, horizon, history_days, settings.half_life_days) for o in folds
    ]
    parts = [p for p in parts if len(p["observed"])]
    if len(parts) < 2:
        return {
            "status": "skipped",
            "reason": "fewer than two origins had a service with history before them",
        }
    scores = {name: np.concatenate([p[name] for p in parts]) for name in MODELS}
    observed = np.concatenate([p["observed"] for p in parts])
    summary = {name: _summarise(*scores[name].T, observed) for name in MODELS}
    pit = {name: np.concatenate([p["pit"][name] for p in parts]) for name in MODELS}
    winner = max(MODELS, key=lambda name: (summary[name]["log_score"], name == "hierarchical"))
    comparison = {
        name: _difference(scores["hierarchical"][:, 0], scores[name][:, 0]) for name in MODELS[1:]
    }
    return {
        "status": "done",
        "target": "root incidents per service",
        "horizon_days": horizon,
        "folds": len(folds),
        "origins": [(start + pd.Timedelta(days=o)).isoformat() for o in folds],
        "services": int(np.unique(np.concatenate([p["services"] for p in parts])).size),
        "evaluations": len(observed),
        "scores": summary,
        "winner": winner,
        "comparison": comparison,
        "verdict": _verdict(winner, comparison, horizon),
        "calibration": {name: calibration(*pit[name].T) for name in MODELS},
    }


def _fold(
    t: np.ndarray,
    svc: np.ndarray,
    begins: np.ndarray,
    origin: float,
    horizon: float,
    history_days: float,
    half_life_days: float | None,
) -> dict[str, np.ndarray]:
    """Predictions of one origin for the services that existed at it: per model, rows of
    (log score, covered, predicted mean, zero-probability outcome); under "pit", per model,
    rows of the outcome's predictive CDF range (F(y - 1), F(y)) for `calibration`."""
    low = max(0.0, origin - history_days)
    counts, exposure = model.weighted_counts(t, svc, begins, (low, origin), half_life_days)
    observed, _ = model.weighted_counts(t, svc, begins, (origin, origin + horizon), None)
    scored = (begins <= origin) & (exposure > 0)
    n, big_t, y = counts[scored], exposure[scored], observed[scored]
    if not scored.any():
        empty = np.zeros((0, 4))
        pit = {name: np.zeros((0, 2)) for name in MODELS}
        return {name: empty for name in MODELS} | {"observed": y, "services": y, "pit": pit}
    alpha, beta = model.fit_gamma_prior(n, big_t)
    shape, p = alpha + n, (beta + big_t) / (beta + big_t + horizon)
    hierarchical = _rows(
        stats.nbinom.logpmf(y, shape, p),
        stats.nbinom.ppf(0.05, shape, p),
        stats.nbinom.ppf(0.95, shape, p),
        shape * (1 - p) / p,
        y,
    )
    global_mean = np.full(len(y), n.sum() / big_t.sum() * horizon)
    ml_mean = n / big_t * horizon
    return {
        "hierarchical": hierarchical,
        "global_rate": _poisson_rows(global_mean, y),
        "per_service_ml": _poisson_rows(ml_mean, y),
        "observed": y,
        "services": np.flatnonzero(scored),
        "pit": {
            "hierarchical": nbinom_pit(shape, p, y),
            "global_rate": poisson_pit(global_mean, y),
            "per_service_ml": poisson_pit(ml_mean, y),
        },
    }


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


def _verdict(winner: str, comparison: dict[str, dict[str, float]], horizon: float) -> str:
    per = f"per service and {horizon:g}-day horizon"
    against = "; ".join(
        f"{c['log_score_difference']:+.3f} ± {c['standard_error']:.3f} against {LABELS[name]}"
        for name, c in comparison.items()
    )
    if winner == "hierarchical":
        return (
            "The hierarchical model predicted held-out root-incident counts better than both "
            f"baselines (log score {per}: {against})."
        )
    return (
        f"On this history {LABELS[winner]} predicted held-out root-incident counts better "
        f"than the hierarchical model (log score {per}: {against}). The scenarios still use "
        "the hierarchical model; read its probabilities with that in mind."
    )
