"""Failure rates that follow drift: a dynamic hierarchical Gamma-Poisson model.

Real incident rates drift (a platform grows, a team pays down debt), so a rate averaged over a
two-year window forecasts the next month badly. Per service, failures are a Poisson process
whose rate moves; looking back from a time x, a failure or a day of exposure a days old counts
exp(-kappa a), kappa = ln 2 / h (the continuous-time form of the Poisson-gamma discount model:
Smith & Miller 1986; West & Harrison, Bayesian Forecasting and Dynamic Models, ch. 14). The
service's evidence at x is its discounted count n_s and discounted exposure T_s. Partial
pooling: the fleet's current rates are Gamma(alpha, beta), fitted by the negative-binomial
marginal likelihood of (n_s, T_s); service s's rate is Gamma(alpha + n_s, beta + T_s).

Over a forecast horizon the rate is further multiplied by eps ~ Gamma(k, k), independently per
service: bursts and lulls that the local level does not follow. The predictive count is then
over-dispersed beyond the negative binomial of the rate's uncertainty; it is summarised by the
Gamma with the same mean and variance as rate x eps (shape a* with 1/a* = 1/a + 1/k + 1/(a k)).

The half-life h and the dispersion k are not flags to tune: they are chosen from the data, on
a grid, by the rolling-origin log score of the history before the fit (each forecast of the
next `horizon` days fitted only on what came before it), with Schwarz's price of 1/2 log N per
parameter that departs from the constant-rate model (h or k finite), so that a steady history
keeps the window average. The maths is in docs/model.md section 3.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import special, stats

HALF_LIVES: tuple[float, ...] = (14, 21, 30, 45, 60, 90, 120, 180, 270, 365, 540, math.inf)
DISPERSIONS: tuple[float, ...] = (math.inf, 32, 16, 8, 4, 2, 1, 0.5)
MIN_TRAIN_DAYS = 90.0  # history a forecast origin needs before it (and two horizons)
ALPHA_BOUNDS = (1e-2, 1e3)
BETA_BOUNDS = (1e-2, 1e8)  # days
NEWTON_TOLERANCE = 1e-7  # in log alpha and log beta: a relative change of one in ten million
MIN_GAP_DAYS = 7.0  # shorter silences are left alone, whatever the rate
GAP_FALSE_ALARMS = 0.01  # expected silences this long in a steady history of this rate
GAP_CONTEXT_DAYS = 90.0  # the local rate around a silence: this many days on each side
MIN_GAP_CONTEXT_EVENTS = 10  # events in that context needed to judge a silence at all


@dataclasses.dataclass(frozen=True)
class Events:
    """Failures of a fleet: when (days since the window start) and where (service index); per
    service the day its exposure begins (it could not fail before); and the gaps of the
    export, (from, to) in days, which count as no exposure at all."""

    days: np.ndarray
    service: np.ndarray
    begins: np.ndarray
    gaps: tuple[tuple[float, float], ...] = ()

    @property
    def services(self) -> int:
        return len(self.begins)

    def totals(self, at: np.ndarray, half_life: float) -> tuple[np.ndarray, np.ndarray]:
        """Discounted counts and exposures (days) of every service, looking back from each
        time of `at` (ascending; a failure at exactly a time counts after it): two arrays of
        shape (len(at), services). An infinite half-life gives plain counts and days."""
        at = np.asarray(at, dtype=float)
        slot = np.searchsorted(at, self.days, side="right")
        inside = slot < len(at)
        slot, service, days = slot[inside], self.service[inside], self.days[inside]
        key = slot * self.services + service
        size = len(at) * self.services
        kappa = 0.0 if math.isinf(half_life) else math.log(2.0) / half_life
        weights = np.exp(-kappa * (at[slot] - days))
        # (bincount of nothing gives integers, even with weights)
        counts = np.bincount(key, weights=weights, minlength=size).astype(float)
        counts = counts.reshape(len(at), -1)
        decay = np.exp(-kappa * np.diff(at))
        for j in range(1, len(at)):  # per time, vectorised over services
            counts[j] += counts[j - 1] * decay[j - 1]
        return counts, self._exposure(at, kappa)

    def _exposure(self, at: np.ndarray, kappa: float) -> np.ndarray:
        """Discounted days of exposure from each service's start to each time, less the
        gaps."""
        end = at[:, None]
        exposure = _discounted_days(end, self.begins[None, :], end, kappa)
        for low, high in self.gaps:
            exposure -= _discounted_days(
                end, np.maximum(low, self.begins[None, :]), np.minimum(high, end), kappa
            )
        return np.maximum(exposure, 0.0)

    def observed_days(self, low: float, high: float) -> float:
        """Days of [low, high) outside the gaps."""
        covered = sum(max(0.0, min(high, b) - max(low, a)) for a, b in self.gaps)
        return max(0.0, high - low - covered)

    def counts_in(self, low: float, high: float) -> np.ndarray:
        """Plain counts per service of the failures in [low, high)."""
        inside = (self.days >= low) & (self.days < high)
        return np.bincount(self.service[inside], minlength=self.services).astype(float)

    def window_totals(self, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
        """Plain counts and days of exposure (less the gaps) per service within [low, high):
        the plain totals up to `high` less those up to `low`."""
        counts, exposure = self.totals(np.array([low, high]), math.inf)
        return counts[1] - counts[0], exposure[1] - exposure[0]


def _discounted_days(at: np.ndarray, low: np.ndarray, high: np.ndarray, kappa: float) -> np.ndarray:
    """Integral of exp(-kappa (at - u)) du over [low, high] (empty where high <= low)."""
    high = np.minimum(high, at)
    low = np.minimum(low, high)
    if kappa == 0.0:
        return high - low
    return (np.exp(-kappa * (at - high)) - np.exp(-kappa * (at - low))) / kappa


def find_gaps(days: np.ndarray, window_days: float) -> tuple[tuple[float, float], ...]:
    """Silences of the whole fleet too long to be chance: holes in the export (a tool
    migration, a scraper that stopped), not quiet weeks. `days` are the event times (the days
    on which some incident started). A silence of L days between two events (or between an
    event and the window's ends) is a gap when even a cautious estimate of the fleet's local
    rate, r = the 5 % quantile of its Gamma posterior from the events within GAP_CONTEXT_DAYS on
    each side, makes a silence that long rare over the window: r D exp(-r L) <
    GAP_FALSE_ALARMS, with L >= MIN_GAP_DAYS and at least MIN_GAP_CONTEXT_EVENTS events to
    judge by (a sparse history has no gaps to find)."""
    ordered = np.sort(np.asarray(days, dtype=float))
    edges = np.concatenate([[0.0], ordered, [window_days]])
    low, high = edges[:-1], edges[1:]
    candidates = np.flatnonzero(high - low >= MIN_GAP_DAYS)
    before = np.maximum(0.0, low[candidates] - GAP_CONTEXT_DAYS)
    after = np.minimum(window_days, high[candidates] + GAP_CONTEXT_DAYS)
    context = (low[candidates] - before) + (after - high[candidates])
    count = (np.searchsorted(ordered, low[candidates]) - np.searchsorted(ordered, before)) + (
        np.searchsorted(ordered, after) - np.searchsorted(ordered, high[candidates])
    )
    judged = (count >= MIN_GAP_CONTEXT_EVENTS) & (context > 0)
    rate = np.zeros(len(candidates))
    rate[judged] = stats.gamma.ppf(0.05, count[judged], scale=1.0 / context[judged])
    length = high[candidates] - low[candidates]
    alarms = rate * window_days * np.exp(-rate * length)
    gap = judged & (alarms < GAP_FALSE_ALARMS)
    return tuple(
        (float(a), float(b))
        for a, b in zip(low[candidates][gap], high[candidates][gap], strict=True)
    )


# --- the fleet prior ------------------------------------------------------------------------


def _marginal_loglik(
    n: np.ndarray, exposure: np.ndarray, mask: np.ndarray, alpha: np.ndarray, beta: np.ndarray
) -> np.ndarray:
    """Sum over services of log NegBin(n; alpha, beta / (beta + T)) per problem (rows), up to
    the terms that do not depend on (alpha, beta); written with gammaln, so that discounted
    (non-integer) counts are used as they are."""
    a, b = alpha[:, None], beta[:, None]
    terms = (
        special.gammaln(n + a)
        - special.gammaln(a)
        + a * np.log(b / (b + exposure))
        - n * np.log(b + exposure)
    )
    return np.where(mask, terms, 0.0).sum(axis=1)


def fit_gamma_priors(
    counts: np.ndarray, exposure: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Empirical-Bayes Gamma(alpha, beta) priors of many problems at once (rows: problems,
    columns: services; `mask` the services that count), each maximising its negative-binomial
    marginal likelihood: damped Newton on (log alpha, log beta) with backtracking, vectorised
    over the problems. Bounds alpha in [0.01, 1000], beta in [0.01, 1e8] days."""
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    exposure = np.atleast_2d(np.asarray(exposure, dtype=float))
    mask = np.ones_like(counts, dtype=bool) if mask is None else np.atleast_2d(mask)
    mask = mask & (exposure > 0)
    n, big_t = np.where(mask, counts, 0.0), np.where(mask, exposure, 1.0)
    mean_rate = np.maximum(n.sum(axis=1) / np.maximum(big_t.sum(axis=1, where=mask), 1e-9), 1e-6)
    low = np.log([ALPHA_BOUNDS[0], BETA_BOUNDS[0]])
    high = np.log([ALPHA_BOUNDS[1], BETA_BOUNDS[1]])
    theta = np.clip(_moment_start(n, big_t, mask, mean_rate), low, high)
    value = _marginal_loglik(n, big_t, mask, *np.exp(theta).T)
    active = np.arange(len(n))
    for _ in range(100):
        step = _newton_step(n[active], big_t[active], mask[active], theta[active])
        moved = np.zeros(len(active), dtype=bool)
        pending = np.arange(len(active))
        for halving in range(40):  # backtracking, only on the problems not yet improved
            rows = active[pending]
            trial = np.clip(theta[rows] + 0.5**halving * step[pending], low, high)
            trial_value = _marginal_loglik(n[rows], big_t[rows], mask[rows], *np.exp(trial).T)
            better = trial_value >= value[rows] - 1e-12
            change = np.abs(trial[better] - theta[rows[better]]).max(axis=1)
            moved[pending[better]] = change > NEWTON_TOLERANCE
            theta[rows[better]], value[rows[better]] = trial[better], trial_value[better]
            pending = pending[~better]
            if not len(pending):
                break
        active = active[moved]
        if not len(active):
            break
    alpha, beta = np.exp(theta).T
    return alpha, beta


def _moment_start(
    n: np.ndarray, exposure: np.ndarray, mask: np.ndarray, mean_rate: np.ndarray
) -> np.ndarray:
    """(log alpha, log beta) by the method of moments, where Newton starts: the spread of the
    services' rates beyond what Poisson noise explains is the Gamma's variance."""
    present = np.maximum(mask.sum(axis=1), 1)
    rates = n / exposure
    spread = np.where(mask, (rates - mean_rate[:, None]) ** 2, 0.0).sum(axis=1) / present
    noise = (np.where(mask, 1.0 / exposure, 0.0).sum(axis=1) / present) * mean_rate
    excess = spread - noise
    # No spread beyond noise (a flat likelihood ridge, e.g. no incidents yet): start at alpha 1.
    alpha = np.where(excess > 0, mean_rate**2 / np.where(excess > 0, excess, 1.0), 1.0)
    return np.column_stack([np.log(alpha), np.log(alpha / mean_rate)])


def _newton_step(
    n: np.ndarray, exposure: np.ndarray, mask: np.ndarray, theta: np.ndarray
) -> np.ndarray:
    """The Newton step of the marginal log-likelihood in (log alpha, log beta) per problem;
    where the Hessian is not negative definite, a gradient step instead."""
    alpha, beta = np.exp(theta).T
    a, b = alpha[:, None], beta[:, None]
    bt = b + exposure

    def total(values: np.ndarray) -> np.ndarray:
        return np.where(mask, values, 0.0).sum(axis=1)

    g_a = total(special.digamma(n + a) - special.digamma(a) + np.log(b / bt))
    g_b = total(a / b - (a + n) / bt)
    h_aa = total(trigamma(n + a) - trigamma(a))
    h_ab = total(1.0 / b - 1.0 / bt)
    h_bb = total(-a / b**2 + (a + n) / bt**2)
    g_u, g_v = alpha * g_a, beta * g_b  # chain rule to the logs
    h_uu = alpha**2 * h_aa + g_u
    h_vv = beta**2 * h_bb + g_v
    h_uv = alpha * beta * h_ab
    det = h_uu * h_vv - h_uv**2
    concave = (h_uu < 0) & (det > 0)
    safe = np.where(concave, det, 1.0)
    newton = np.column_stack([(h_uv * g_v - h_vv * g_u) / safe, (h_uv * g_u - h_uu * g_v) / safe])
    gradient = np.column_stack([g_u, g_v])
    gradient /= np.maximum(np.abs(gradient).max(axis=1, keepdims=True), 1.0)
    return np.where(concave[:, None], newton, gradient)


def trigamma(x: np.ndarray) -> np.ndarray:
    """psi'(x) for x > 0: the recurrence psi'(x) = psi'(x + 1) + 1/x^2 up to x >= 6, then the
    asymptotic series (error below 1e-10 there); several times faster than
    scipy.special.polygamma(1, x), which goes through the general Hurwitz zeta."""
    x = np.array(x, dtype=float)
    result = np.zeros_like(x)
    for _ in range(6):
        small = x < 6.0
        if not small.any():
            break
        result += np.where(small, 1.0 / x**2, 0.0)
        x = np.where(small, x + 1.0, x)
    inverse = 1.0 / x
    square = inverse * inverse
    series = inverse * (
        1.0
        + inverse
        * (0.5 + inverse * (1 / 6 + square * (-1 / 30 + square * (1 / 42 + square * (-1 / 30)))))
    )
    return result + series


# --- predictions ------------------------------------------------------------------------------


def predictive_shape(shape: np.ndarray, dispersion: float) -> np.ndarray:
    """The shape of the Gamma with the mean and variance of rate x eps, rate ~ Gamma(shape, .)
    and eps ~ Gamma(k, k): 1/a* = 1/a + 1/k + 1/(a k) (k infinite: a itself)."""
    if math.isinf(dispersion):
        return np.asarray(shape, dtype=float)
    return 1.0 / (1.0 / shape + 1.0 / dispersion + 1.0 / (shape * dispersion))


def negative_binomial_logpmf(
    y: np.ndarray, shape: np.ndarray, rate: np.ndarray, horizon: float | np.ndarray
) -> np.ndarray:
    """log P(y failures within `horizon` days) for a Poisson count whose daily rate is
    Gamma(shape, rate)."""
    p = rate / (rate + horizon)
    return (
        special.gammaln(y + shape)
        - special.gammaln(shape)
        - special.gammaln(y + 1.0)
        + shape * np.log(p)
        + special.xlog1py(y, -p)
    )


@dataclasses.dataclass(frozen=True)
class Choice:
    """The half-life and dispersion a fit uses, and how they were chosen."""

    half_life_days: float  # math.inf: no discounting (the window's average rate)
    dispersion: float  # math.inf: no extra-Poisson variation
    source: str  # "log score", "fixed" or "default"
    reason: str
    evaluations: int = 0  # service forecasts the choice was scored on
    log_scores: dict[tuple[float, float], float] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """For model.json: infinities as null."""
        finite = lambda v: None if math.isinf(v) else float(v)  # noqa: E731
        return {
            "half_life_days": finite(self.half_life_days),
            "dispersion": finite(self.dispersion),
            "chosen_by": self.source,
            "reason": self.reason,
            "evaluations": self.evaluations,
        }


@dataclasses.dataclass(frozen=True)
class Lattice:
    """Forecast origins every `horizon` days back from the window end, with every candidate
    half-life's discounted totals, fleet prior and log score at each: computed once per fit,
    then shared by the final fit and the backtest's folds (each fold chooses from the origins
    before it only)."""

    points: np.ndarray  # ascending; the last is the window end
    horizon: float
    half_lives: tuple[float, ...]
    counts: np.ndarray  # (half-life, point, service), discounted
    exposure: np.ndarray  # (half-life, point, service), discounted days
    alpha: np.ndarray  # (half-life, point)
    beta: np.ndarray
    observed: np.ndarray  # (point, service): plain counts in [point, point + horizon)
    spans: np.ndarray  # (point,): days of [point, point + horizon) outside the export's gaps
    scored: np.ndarray  # (point, service): a forecast there is scored
    scores: np.ndarray  # (half-life, dispersion, point): summed log score of the forecasts

    @property
    def end(self) -> int:
        return len(self.points) - 1

    def posterior(self, half_life: float, point: int) -> tuple[np.ndarray, np.ndarray]:
        """Per service, the Gamma(shape, rate) posterior of its current rate at a point."""
        h = self.half_lives.index(half_life)
        return (
            self.alpha[h, point] + self.counts[h, point],
            self.beta[h, point] + self.exposure[h, point],
        )

    def choose(self, before: int, half_life: float | None = None) -> Choice:
        """The (half-life, dispersion) with the best penalised log score over the forecasts
        whose horizon ended by point `before`; `half_life` fixes h (only k is chosen)."""
        usable = self.scored.any(axis=1) & (np.arange(len(self.points)) < before)
        usable &= self.points >= self.minimum_training
        evaluations = int(self.scored[usable].sum())
        if not evaluations:
            h = math.inf if half_life is None else half_life
            return Choice(
                h, math.inf, "default" if half_life is None else "fixed", _too_short(self), 0
            )
        totals = self.scores[:, :, usable].sum(axis=2)
        penalty = parameter_price(evaluations) * (
            np.isfinite(self.half_lives)[:, None].astype(float)
            + np.isfinite(DISPERSIONS)[None, :].astype(float)
        )
        value = totals - penalty
        if half_life is not None:
            value[[h != half_life for h in self.half_lives], :] = -np.inf
        best_h, best_k = np.unravel_index(np.argmax(value), value.shape)
        return Choice(
            self.half_lives[best_h],
            DISPERSIONS[best_k],
            "fixed" if half_life is not None else "log score",
            f"rolling-origin log score of {evaluations} service forecasts of "
            f"{self.horizon:g} days at {int(usable.sum())} origins",
            evaluations,
            {
                (h, k): float(totals[i, j])
                for i, h in enumerate(self.half_lives)
                for j, k in enumerate(DISPERSIONS)
            },
        )

    @property
    def minimum_training(self) -> float:
        return max(MIN_TRAIN_DAYS, 2 * self.horizon)


def parameter_price(evaluations: int) -> float:
    """Log-score units a finite half-life or a finite dispersion must earn over the constant
    Poisson-Gamma model: Schwarz's (BIC) 1/2 log N per parameter, N the forecasts scored. The
    summed rolling-origin log score is a prequential log marginal likelihood, and this price
    makes the choice consistent: a steady history keeps the window average (noise alone must
    not look like drift), while real drift earns far more than the price."""
    return 0.5 * math.log(max(evaluations, 1))


def _too_short(lattice: Lattice) -> str:
    return (
        f"the history is too short to score {lattice.horizon:g}-day forecasts after "
        f"{lattice.minimum_training:g} days of training: a constant rate"
    )


def build_lattice(
    events: Events, window_days: float, horizon: float, half_lives: tuple[float, ...] = HALF_LIVES
) -> Lattice:
    """Every candidate's forecasts at every origin of the lattice (see Lattice)."""
    steps = math.floor(window_days / horizon + 1e-9)
    points = window_days - horizon * np.arange(steps, -1, -1, dtype=float)
    points = points[points >= 0]
    totals = [events.totals(points, h) for h in half_lives]
    counts = np.stack([c for c, _ in totals])
    exposure = np.stack([e for _, e in totals])
    present = (events.begins[None, :] <= points[:, None]) & (exposure[0] > 0)
    flat_alpha, flat_beta = fit_gamma_priors(
        counts.reshape(-1, events.services),
        exposure.reshape(-1, events.services),
        np.broadcast_to(present, counts.shape).reshape(-1, events.services),
    )
    alpha = flat_alpha.reshape(len(half_lives), len(points))
    beta = flat_beta.reshape(len(half_lives), len(points))
    observed = np.zeros((len(points), events.services))
    spans = np.zeros(len(points))
    for j in range(len(points) - 1):  # per origin, vectorised over services
        observed[j] = events.counts_in(points[j], points[j] + horizon)
        spans[j] = events.observed_days(points[j], points[j] + horizon)
    scored = present & (spans[:, None] > 0)  # the window end's horizon is the future
    scores = _lattice_scores(counts, exposure, alpha, beta, observed, scored, spans)
    return Lattice(
        points,
        horizon,
        tuple(half_lives),
        counts,
        exposure,
        alpha,
        beta,
        observed,
        spans,
        scored,
        scores,
    )


def _lattice_scores(
    counts: np.ndarray,
    exposure: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    observed: np.ndarray,
    scored: np.ndarray,
    spans: np.ndarray,
) -> np.ndarray:
    """Summed log predictive probability of what happened next, per (half-life, dispersion,
    origin); each forecast is for the days of its horizon outside the gaps (`spans`).

    Only the scored forecasts are computed, and the log-gamma terms only where something
    happened (log P(0) = a log p): most services are quiet in most horizons."""
    points, services = np.nonzero(scored)
    y = observed[points, services]
    happened = y > 0
    shape = alpha[:, points] + counts[:, points, services]  # (half-life, forecast)
    mean = shape / (beta[:, points] + exposure[:, points, services])
    span = spans[points]
    log_factorial = special.gammaln(y[happened] + 1.0)
    scores = np.zeros((len(alpha), len(DISPERSIONS), len(spans)))
    for k, dispersion in enumerate(DISPERSIONS):  # eight candidates, vectorised otherwise
        wide = predictive_shape(shape, dispersion)
        p = (wide / mean) / (wide / mean + span)
        log_p = wide * np.log(p)
        busy = wide[:, happened]
        log_p[:, happened] += (
            special.gammaln(y[happened] + busy)
            - special.gammaln(busy)
            - log_factorial
            + y[happened] * np.log1p(-p[:, happened])
        )
        for h in range(len(alpha)):  # a dozen half-lives: sums per origin
            scores[h, k] = np.bincount(points, weights=log_p[h], minlength=len(spans))
    return scores


# --- the fit --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RateFit:
    """Root-failure and incident rates at the window end, with how they were chosen."""

    lattice: Lattice
    choice: Choice
    root_prior: tuple[float, float]  # the fleet's Gamma(alpha, beta)
    root_shape: np.ndarray  # per service: the posterior of its current root-failure rate
    root_rate: np.ndarray
    predictive_shape: np.ndarray  # the same with the dispersion folded in (same mean)
    incident_prior: tuple[float, float]
    incident_shape: np.ndarray  # per service, all incidents (roots and cascades)
    incident_rate: np.ndarray
    exposure_days: np.ndarray  # per service: plain days of exposure, less the gaps


def fit_rates(
    roots: Events,
    every: Events,
    window_days: float,
    horizon: float,
    fixed_half_life: float | None = None,
) -> RateFit:
    """The rate model at the window end (see the module's docstring); `fixed_half_life` (the
    user's override, math.inf for none) replaces the choice of the half-life."""
    if fixed_half_life is None:
        half_lives = HALF_LIVES
    else:
        half_lives = tuple(dict.fromkeys((fixed_half_life, math.inf)))
    lattice = build_lattice(roots, window_days, horizon, half_lives)
    choice = lattice.choose(lattice.end, fixed_half_life)
    chosen = half_lives.index(choice.half_life_days)
    shape, rate = lattice.posterior(choice.half_life_days, lattice.end)
    counts, exposure = every.totals(np.array([window_days]), choice.half_life_days)
    alpha, beta = fit_gamma_priors(counts, exposure)
    return RateFit(
        lattice=lattice,
        choice=choice,
        root_prior=(float(lattice.alpha[chosen, -1]), float(lattice.beta[chosen, -1])),
        root_shape=shape,
        root_rate=rate,
        predictive_shape=predictive_shape(shape, choice.dispersion),
        incident_prior=(float(alpha[0]), float(beta[0])),
        incident_shape=alpha[0] + counts[0],
        incident_rate=beta[0] + exposure[0],
        exposure_days=lattice.exposure[half_lives.index(math.inf), -1],
    )


RECENT_DAYS = 90.0  # "the recent rate": the last this many days (also the backtest baseline)
MOVERS = 5  # services listed as the largest changes
MIN_MOVER_INCIDENTS = 5  # root failures in the window a service needs to be listed


def drift(roots: Events, fit: RateFit, window_days: float, names: tuple[str, ...]) -> dict:
    """How the fleet's recent root-failure rate compares with the window's, in numbers and in
    a sentence for the model card; and the services whose current rate moved most."""
    counts, exposure = roots.window_totals(0.0, window_days)
    recent_counts, recent_exposure = roots.window_totals(window_days - RECENT_DAYS, window_days)
    n, total_days = counts.sum(), exposure.sum()
    n_recent, recent_days = recent_counts.sum(), recent_exposure.sum()
    summary: dict = {"recent_days": RECENT_DAYS, "detected": False}
    if window_days < 2 * RECENT_DAYS:
        summary["statement"] = (
            f"Drift: not measured (a {window_days:.0f}-day window is too short to compare its "
            f"last {RECENT_DAYS:g} days with)."
        )
        return summary
    if n == 0 or recent_days <= 0 or total_days <= 0:
        summary["statement"] = "Drift: not measured (no root failures or no recent exposure)."
        return summary
    share = stats.beta.ppf([0.05, 0.5, 0.95], n_recent + 0.5, n - n_recent + 0.5)
    low, _, high = share * total_days / recent_days
    ratio = (n_recent / recent_days) / (n / total_days)
    summary |= {
        "recent_rate_per_day": _fleet_rate(n_recent, recent_exposure),
        "window_rate_per_day": _fleet_rate(n, exposure),
        "ratio": significant(ratio),
        "ratio_p05": significant(low),
        "ratio_p95": significant(high),
        "detected": not math.isinf(fit.choice.half_life_days),
        "largest_changes": _movers(fit, counts, names),
    }
    summary["statement"] = _drift_statement(ratio, low, high, fit.choice, window_days)
    return summary


def _fleet_rate(count: float, exposure: np.ndarray) -> float:
    """Root failures per day of the whole fleet: the count over the mean exposure per service
    present (services that had begun)."""
    present = exposure > 0
    return significant(count / (exposure[present].mean() if present.any() else 1.0))


def _movers(fit: RateFit, counts: np.ndarray, names: tuple[str, ...]) -> list[dict]:
    """The services whose current rate differs most from their window average (among those
    with enough root failures to tell), largest change first; none without drift."""
    if math.isinf(fit.choice.half_life_days):
        return []
    window_shape, window_rate = fit.lattice.posterior(math.inf, fit.lattice.end)
    current = fit.root_shape / fit.root_rate
    average = window_shape / window_rate
    ratio = current / average
    eligible = np.flatnonzero(counts >= MIN_MOVER_INCIDENTS)
    order = eligible[np.argsort(-np.abs(np.log(ratio[eligible])), kind="stable")][:MOVERS]
    return [
        {
            "service": names[i],
            "current_rate_per_day": significant(float(current[i])),
            "window_rate_per_day": significant(float(average[i])),
            "ratio": significant(float(ratio[i])),
        }
        for i in order
    ]


def _drift_statement(
    ratio: float, low: float, high: float, choice: Choice, window_days: float
) -> str:
    """The model card's sentence on drift: whether the rates follow it, and by how much the
    fleet's recent rate differs from the window's."""
    recent = (
        f"the last {RECENT_DAYS:g} days' root-failure rate is {ratio:.2f}× the "
        f"{window_days:.0f}-day window's (90 % interval {low:.2f}–{high:.2f}×)"
    )
    differs = low > 1.0 or high < 1.0
    how = {
        "log score": "chosen by the rolling-origin log score",
        "fixed": "set by the half-life setting",
        "default": "the history is too short to choose a half-life",
    }[choice.source]
    if not math.isinf(choice.half_life_days):
        follow = f"The rates follow it with a half-life of {choice.half_life_days:g} days, {how}."
        if differs:
            return f"Drift detected: {recent}. {follow}"
        return (
            f"Drift detected service by service. {follow} The fleet's total has not changed "
            f"detectably: {recent}."
        )
    if differs:
        return (
            f"{recent[0].upper()}{recent[1:]}, but the rates are the window's averages ({how}"
            + (
                ": following recent history did not forecast held-out months better)."
                if choice.source == "log score"
                else ")."
            )
        )
    return f"No drift detected: {recent}. The rates are the window's averages ({how})."


def significant(value: float) -> float:
    """A figure for model.json: six significant digits."""
    return float(f"{value:.6g}")
