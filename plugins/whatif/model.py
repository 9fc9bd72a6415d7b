"""Model: per-service failure rates, cascade probabilities, durations, severities, time and load.

Most services have few incidents, so every estimate borrows strength from the whole fleet:
- root attribution: `caused_by`, else a dependency incident that started shortly before;
- rates: dynamic hierarchical Gamma-Poisson with per-service exposure (whatif.rates): recent
  history counts more, at a half-life chosen from the data, and the fleet's Gamma prior is
  fitted by marginal likelihood (empirical Bayes);
- cascades per edge: Beta-Binomial with a hierarchical Beta prior per dependency criticality,
  integrated over the uncertainty of the class's mean and concentration;
- durations (detect, acknowledge, resolve): log-normal with the service means shrunk towards the
  fleet mean;
- severities and failure modes: Dirichlet-multinomial shrunk towards the fleet mix;
- day-of-week and hour-of-day multipliers, shrunk towards flat; the traffic elasticity of
  load-sensitive failure modes, learned from incidents' `load_factor` when they carry it.
The maths is written out in docs/model.md; the backtest is in whatif.backtest.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from whatif import classify, rates
from whatif.config import ModelSettings
from whatif.schemas import FAILURE_MODES, SEVERITIES, ModelDoc
from whatif.topology import Topology

log = logging.getLogger(__name__)

MODE_CONCENTRATION = 5.0  # pseudo-incidents of fleet mix added to each service's mode counts
SEVERITY_CONCENTRATION = 5.0
# Beta priors of propagation used when a criticality class has too few observed edges to fit
# its own (judgement, documented in docs/model.md): a hard dependency usually takes its caller
# down, a soft one (cache, fallback, async) rarely; unknown sits between.
DEFAULT_PROPAGATION_PRIORS = {"hard": (2.0, 3.0), "soft": (1.0, 9.0), "unknown": (1.0, 4.0)}
MIN_EDGES_FOR_PRIOR = 5  # observed edges a class needs for a prior fitted on its own edges
DEFAULT_DURATION = (math.log(60.0), 1.0)  # median 60 min, used when no durations are known
DAY_OF_WEEK_CONCENTRATION = 70.0  # as if 10 extra root incidents fell on each weekday
HOUR_OF_DAY_CONCENTRATION = 120.0  # as if 5 extra root incidents fell in each hour
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Modes whose rate grows with traffic (capacity, database, dependency timeouts).
LOAD_SENSITIVE_MODES = ("capacity", "database", "dependency")
DEFAULT_ELASTICITY = (1.0, 0.5)  # Normal(mean, sd) prior: rate proportional to traffic
MIN_LOAD_INCIDENTS = 10  # root incidents with load_factor needed in each group to learn from
LOG_FLOOR = math.log(1e-12)
Z90 = stats.norm.ppf(0.9)
DAY = np.timedelta64(1, "D")


def observation_window(
    incidents: pd.DataFrame, as_of: datetime, history_days: int, data_start: str | None = None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The exposure window: the history window, starting no earlier than the data does.

    A history that begins after the window start would otherwise count days with no data as
    days without incidents, and understate every rate. `data_start` is the earliest incident
    of the whole export (validation records it); without it, the earliest incident used.
    """
    end = pd.Timestamp(as_of)
    start = end - timedelta(days=history_days)
    first = pd.Timestamp(data_start) if data_start else incidents["started_at"].min()
    if pd.notna(first) and first.tzinfo is None:
        first = first.tz_localize("UTC")
    return (max(start, first.floor("D")) if pd.notna(first) else start), end


# --- root attribution -------------------------------------------------------------------


def attribute(incidents: pd.DataFrame, topology: Topology, window_minutes: float) -> pd.DataFrame:
    """One row per (incident, service) with its cause: `parent` (row position, -1 for a root)
    and `how` ("caused_by", "inferred" or "root").

    `caused_by` decides where given. Without it, the row is an inferred cascade from the most
    recent incident of one of its service's dependencies that started at most `window_minutes`
    before it (a different incident; at the same instant, only the one first in
    (started_at, incident_id) order can be the parent, so two rows never cause each other).
    """
    index = topology.index
    rows = (
        incidents.drop_duplicates(["incident_id", "service"])
        .sort_values(["started_at", "incident_id", "service"], kind="stable")
        .reset_index(drop=True)
    )
    frame = pd.DataFrame(
        {
            "incident_id": rows["incident_id"].astype(str).to_numpy(),
            "svc": rows["service"].map(index).to_numpy(np.int64),
            "t": rows["started_at"].to_numpy("datetime64[ns]"),
            "caused_by": rows["caused_by"].to_numpy(object),
        }
    )
    frame["pos"] = np.arange(len(frame))
    parent = np.full(len(frame), -1, dtype=np.int64)
    how = np.full(len(frame), "root", dtype=object)
    _link_caused_by(frame, topology, parent, how)
    if window_minutes > 0:
        _infer_cascades(frame, topology, window_minutes, parent, how)
    frame["parent"], frame["how"] = parent, how
    frame["service"] = rows["service"].to_numpy(object)
    for column in (
        *("resolved_at", "detected_at", "acknowledged_at", "category", "severity"),
        *("failure_mode_source", "severity_source"),
    ):
        frame[column] = rows.get(column)  # the same index: dtypes are kept
    frame["load_factor"] = rows["load_factor"].to_numpy(float) if "load_factor" in rows else np.nan
    return frame


def _edge_frame(topology: Topology) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "edge": np.arange(len(topology.edge_dependency)),
            "dependency": topology.edge_dependency,
            "dependent": topology.edge_dependent,
        }
    )


def _link_caused_by(
    frame: pd.DataFrame, topology: Topology, parent: np.ndarray, how: np.ndarray
) -> None:
    """Rows with caused_by: the parent is that incident's row on a dependency of the row's
    service (its first row when none is a dependency: still a cascade, with no edge)."""
    caused = frame.loc[frame["caused_by"].notna(), ["pos", "svc", "caused_by"]]
    if caused.empty:
        return
    parents = frame[["pos", "svc", "incident_id"]].rename(
        columns={"pos": "parent_pos", "svc": "parent_svc", "incident_id": "caused_by"}
    )
    links = caused.merge(parents, on="caused_by")
    links = links[links["parent_pos"] != links["pos"]]  # an incident is not its own cause
    edges = _edge_frame(topology)[["dependency", "dependent"]]
    on_edge = links.merge(
        edges, left_on=["parent_svc", "svc"], right_on=["dependency", "dependent"], how="left"
    )["dependency"].notna()
    links = links.assign(on_edge=on_edge.to_numpy()).sort_values(
        ["pos", "on_edge", "parent_pos"], ascending=[True, False, True]
    )
    best = links.drop_duplicates("pos")
    parent[best["pos"].to_numpy()] = best["parent_pos"].to_numpy()
    how[best["pos"].to_numpy()] = "caused_by"


def _infer_cascades(
    frame: pd.DataFrame,
    topology: Topology,
    window_minutes: float,
    parent: np.ndarray,
    how: np.ndarray,
) -> None:
    """Rows without caused_by: the latest dependency incident within the window before them."""
    open_rows = frame.loc[frame["caused_by"].isna(), ["pos", "svc", "t", "incident_id"]]
    edges = _edge_frame(topology)[["dependency", "dependent"]]
    candidates = open_rows.merge(edges, left_on="svc", right_on="dependent")
    if candidates.empty:
        return
    parents = frame[["pos", "svc", "t", "incident_id"]].rename(
        columns={"pos": "parent_pos", "svc": "dependency", "t": "parent_t", "incident_id": "pid"}
    )
    # Strictly earlier parents (the latest per dependency), and parents at the same instant
    # (every one: only those that sort first may count), so that an excluded tie never hides
    # a valid earlier parent.
    earlier = _match_in_time(
        candidates, parents, "parent_t", "dependency", "backward", window_minutes, exact=False
    ).dropna(subset=["parent_pos"])
    same_instant = candidates.merge(
        parents, left_on=["dependency", "t"], right_on=["dependency", "parent_t"]
    )
    same_instant = same_instant[same_instant["parent_pos"] < same_instant["pos"]]
    matched = pd.concat([earlier, same_instant], ignore_index=True)
    matched = matched[matched["pid"] != matched["incident_id"]]
    best = matched.sort_values(["pos", "parent_t", "parent_pos"], ascending=[True, False, True])
    best = best.drop_duplicates("pos")
    parent[best["pos"].to_numpy()] = best["parent_pos"].to_numpy(np.int64)
    how[best["pos"].to_numpy()] = "inferred"


def _match_in_time(
    left: pd.DataFrame,
    right: pd.DataFrame,
    right_time: str,
    by: str,
    direction: str,
    window_minutes: float,
    exact: bool = True,
) -> pd.DataFrame:
    """Each row of `left` (time `t`) with the row of `right` of the same `by` closest in time in
    `direction`, at most `window_minutes` away (NaN when none); `exact`: may it be the same
    instant."""
    return pd.merge_asof(
        left.sort_values("t", kind="stable"),
        right.sort_values(right_time, kind="stable"),
        left_on="t",
        right_on=right_time,
        by=by,
        direction=direction,
        tolerance=pd.Timedelta(minutes=window_minutes),
        allow_exact_matches=exact,
    )


# --- exposure and rates ----------------------------------------------------------------


def exposure_starts(
    attributed: pd.DataFrame, topology: Topology, start: pd.Timestamp, end: pd.Timestamp
) -> np.ndarray:
    """Per service, days from the window start to when it could first fail: its `created_at`
    (or its first incident, when earlier: the date is then wrong), else the window start."""
    created = topology.attributes["created_at"]
    created_days = ((created - start) / pd.Timedelta(days=1)).to_numpy(float)
    first = np.full(topology.size, np.inf)
    days = (attributed["t"].to_numpy() - start.to_datetime64()) / DAY
    np.minimum.at(first, attributed["svc"].to_numpy(), days)
    window_days = (end - start) / pd.Timedelta(days=1)
    begins = np.where(np.isnan(created_days), 0.0, np.minimum(created_days, first))
    return np.clip(begins, 0.0, window_days)


def gamma_interval(shape: np.ndarray, rate: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "mean": shape / rate,
        "p05": stats.gamma.ppf(0.05, shape, scale=1.0 / rate),
        "p95": stats.gamma.ppf(0.95, shape, scale=1.0 / rate),
    }


# --- cascades -----------------------------------------------------------------------------


def edge_evidence(
    attributed: pd.DataFrame,
    topology: Topology,
    window_minutes: float,
    since: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per edge u -> v: one trial per incident of u (after v existed: `since`, per service, as
    datetime64). A hit when an incident of v has it as its parent; censored (not a trial) when
    v was failing anyway: another incident of v started within the cascade window around it,
    so whether u's failure would have spread is unseen."""
    edges = _edge_frame(topology)
    n_edges = len(edges)
    trials = attributed[["pos", "svc", "t"]].merge(edges, left_on="svc", right_on="dependency")
    if since is not None:
        trials = trials[trials["t"].to_numpy() >= since[trials["dependent"].to_numpy()]]
    children = attributed.loc[attributed["parent"] >= 0, ["parent", "svc", "how"]]
    hit_rows = trials.merge(
        children.rename(columns={"parent": "pos", "svc": "dependent"}),
        on=["pos", "dependent"],
        how="left",
    ).drop_duplicates(["pos", "edge"])
    hit = hit_rows["how"].notna().to_numpy()
    inferred = (hit_rows["how"] == "inferred").to_numpy()
    censored = np.zeros(len(hit_rows), dtype=bool)
    misses = hit_rows.loc[~hit, ["pos", "t", "dependent", "edge"]]
    if window_minutes > 0 and not misses.empty:
        others = attributed[["svc", "t"]].rename(columns={"svc": "dependent", "t": "other_t"})
        near = _match_in_time(misses, others, "other_t", "dependent", "nearest", window_minutes)
        censored_edges = near.loc[near["other_t"].notna(), ["pos", "edge"]]
        key = hit_rows[["pos", "edge"]].merge(
            censored_edges.assign(censored=True), on=["pos", "edge"], how="left"
        )
        censored = key["censored"].fillna(False).to_numpy(bool)
    edge = hit_rows["edge"].to_numpy()
    count = lambda mask: np.bincount(edge[mask], minlength=n_edges).astype(float)  # noqa: E731
    return {
        "trials": count(np.ones(len(edge), dtype=bool)),
        "exposures": count(~censored),
        "hits": count(hit),
        "inferred_hits": count(inferred),
        "censored": count(censored),
    }


def add_gameday_trials(
    evidence: dict[str, np.ndarray],
    topology: Topology,
    trials: Sequence[tuple[str, str, bool]],
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Game days as cascade evidence (docs/gameday.md): an experiment injected a failure into
    the dependency and watched the dependent's steady state; each (dependency, dependent,
    deviated) on an edge of the topology is one trial of that edge, a hit when the dependent
    deviated, counted with the incidents' (`gameday_trials`, `gameday_hits` kept apart for
    model.json). A pair that is no edge (the dependent reached through another service, or
    not a dependent at all) is not a trial of any edge: counted as `not_an_edge`."""
    n_edges = len(topology.edge_dependency)
    extra = {"gameday_trials": np.zeros(n_edges), "gameday_hits": np.zeros(n_edges)}
    summary = {"used": 0, "not_an_edge": 0}
    if trials:
        index = topology.index
        n = topology.size
        keys = topology.edge_dependency * n + topology.edge_dependent
        for dependency, dependent, deviated in trials:
            if dependency not in index or dependent not in index:
                summary["not_an_edge"] += 1
                continue
            key = index[dependency] * n + index[dependent]
            at = int(np.searchsorted(keys, key))
            if at >= n_edges or keys[at] != key:
                summary["not_an_edge"] += 1
                continue
            extra["gameday_trials"][at] += 1
            extra["gameday_hits"][at] += bool(deviated)
            summary["used"] += 1
    combined = dict(evidence)
    for name, added in (("trials", "gameday_trials"), ("exposures", "gameday_trials")):
        combined[name] = evidence[name] + extra[added]
    combined["hits"] = evidence["hits"] + extra["gameday_hits"]
    return {**combined, **extra}, summary


# A class's prior is hierarchical: p ~ Beta(mu * kappa, (1 - mu) * kappa), with the class mean mu
# and concentration kappa = a + b themselves uncertain. Plugging in their best fit would
# understate every edge's uncertainty when a class has few edges (kappa is then poorly known,
# and its best fit often far too high); so each edge's posterior is averaged over their
# posterior instead, on a grid. Hyper-prior: Jeffreys' Beta(1/2, 1/2) on mu, and kappa ** -1.5
# (the concentration part of the reference prior p(a, b) ~ (a + b) ** -2.5 of Gelman et al.,
# Bayesian Data Analysis, section 5.3, which is flat in mu).
PROPAGATION_CONCENTRATION = (0.1, 100.0)  # bounds of kappa: a prior never outweighs 100 trials
PROPAGATION_MEAN_LOGIT = (-13.8, 13.8)  # bounds of logit(mu): mu between 1e-6 and 1 - 1e-6
HYPER_GRID_POINTS = 25  # grid points per hyper-parameter
HYPER_GRID_SDS = 6.0  # half-width of the grid, in standard deviations of the Laplace approximation
HYPER_GRID_PASSES = 4  # at most this many grids: the first one, widened or narrowed
NEGLIGIBLE_LOG_DENSITY = 12.0  # grid points this far below the peak (log) are left out: e**-12
FINITE_DIFFERENCE_STEP = 1e-3  # in logit(mu) and log(kappa), for the Laplace approximation
LogDensity = Callable[[np.ndarray], np.ndarray]  # (2 x G) points -> G log densities


@dataclasses.dataclass(frozen=True)
class BetaMixture:
    """A distribution of propagation probabilities: Beta(alpha[g], beta[g]) with weight[g]."""

    alpha: np.ndarray
    beta: np.ndarray
    weight: np.ndarray

    @classmethod
    def single(cls, alpha: float, beta: float) -> BetaMixture:
        return cls(np.array([alpha]), np.array([beta]), np.array([1.0]))

    def posterior_beta(
        self, hits: np.ndarray, exposures: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per edge, the Beta(a, b) of its posterior: exact for a single Beta prior; for a
        mixture, the Beta with the mixture posterior's mean and variance (the simulation's
        mean is then exact)."""
        hits, exposures = np.asarray(hits, float), np.asarray(exposures, float)
        if len(self.weight) == 1:
            return self.alpha[0] + hits, self.beta[0] + exposures - hits
        pairs, inverse = np.unique(np.stack([hits, exposures]), axis=1, return_inverse=True)
        mean, variance = self._posterior_moments(pairs[0], pairs[1])
        concentration = mean * (1.0 - mean) / np.maximum(variance, 1e-300) - 1.0
        inverse = inverse.ravel()
        return (mean * concentration)[inverse], ((1.0 - mean) * concentration)[inverse]

    def _posterior_moments(
        self, hits: np.ndarray, exposures: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of sum_g weight[g] Beta(alpha[g] + k, beta[g] + x - k) per (k, x)."""
        a = self.alpha + hits[:, None]
        n = self.alpha + self.beta + exposures[:, None]
        mean = (a / n) @ self.weight
        second = (a * (a + 1.0) / (n * (n + 1.0))) @ self.weight
        return mean, second - mean**2


@dataclasses.dataclass(frozen=True)
class BetaBinomialTally:
    """A class's edge evidence as counts of edges per distinct number of hits, of misses and of
    trials: the beta-binomial log-likelihood is a sum of log-gamma terms of each, so it costs
    the number of distinct values, not of edges."""

    hits: tuple[np.ndarray, np.ndarray]  # (distinct values, edges with each)
    misses: tuple[np.ndarray, np.ndarray]
    trials: tuple[np.ndarray, np.ndarray]
    edges: int

    @classmethod
    def of(cls, hits: np.ndarray, trials: np.ndarray) -> BetaBinomialTally:
        return cls(
            np.unique(hits, return_counts=True),
            np.unique(trials - hits, return_counts=True),
            np.unique(trials, return_counts=True),
            len(trials),
        )

    def log_likelihood(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """sum over edges of log BetaBinomial(k; x, a, b) at each (a[g], b[g]), without the
        binomial coefficients (they do not depend on a or b)."""

        def log_gamma_sum(tally: tuple[np.ndarray, np.ndarray], shift: np.ndarray) -> np.ndarray:
            values, counts = tally
            return counts @ special.gammaln(values[:, None] + shift)

        per_edge_prior = special.gammaln(a) + special.gammaln(b) - special.gammaln(a + b)
        return (
            log_gamma_sum(self.hits, a)
            + log_gamma_sum(self.misses, b)
            - log_gamma_sum(self.trials, a + b)
            - self.edges * per_edge_prior
        )


def fit_beta_prior(
    hits: np.ndarray, trials: np.ndarray, default: tuple[float, float] = (1.0, 4.0)
) -> tuple[BetaMixture, str]:
    """A class's prior on propagation probabilities, from its edges' beta-binomial evidence:
    Beta(mu * kappa, (1 - mu) * kappa) averaged over the posterior of (mu, kappa), as a
    mixture on a grid; `default` when fewer than MIN_EDGES_FOR_PRIOR edges have been tried."""
    hits, trials = np.asarray(hits, float), np.asarray(trials, float)
    observed = trials > 0
    if observed.sum() < MIN_EDGES_FOR_PRIOR:
        return BetaMixture.single(*default), "default"
    tally = BetaBinomialTally.of(hits[observed], trials[observed])

    def log_density(points: np.ndarray) -> np.ndarray:
        return _log_hyper_posterior(points, tally)

    pooled = (hits.sum() + 0.5) / (trials.sum() + 1.0)
    start = np.array([special.logit(pooled), math.log(sum(default))])
    mode = _hyper_mode(log_density, np.clip(start, *_hyper_bounds()))
    points, log_p = _hyper_grid(log_density, mode, _laplace_sds(log_density, mode))
    weight = np.exp(log_p - log_p.max())
    mean, concentration = special.expit(points[0]), np.exp(points[1])
    return (
        BetaMixture(mean * concentration, (1.0 - mean) * concentration, weight / weight.sum()),
        "data",
    )


def _hyper_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of (logit mu, log kappa)."""
    low_kappa, high_kappa = PROPAGATION_CONCENTRATION
    return (
        np.array([PROPAGATION_MEAN_LOGIT[0], math.log(low_kappa)]),
        np.array([PROPAGATION_MEAN_LOGIT[1], math.log(high_kappa)]),
    )


def _log_hyper_posterior(points: np.ndarray, tally: BetaBinomialTally) -> np.ndarray:
    """log p(logit mu, log kappa | evidence) + constant at each column of `points` (2 x G):
    the class's beta-binomial likelihood times the hyper-prior (mu (1 - mu)) ** -0.5
    kappa ** -1.5 and the Jacobian mu (1 - mu) kappa."""
    logit_mean, log_concentration = points
    mean, concentration = special.expit(logit_mean), np.exp(log_concentration)
    likelihood = tally.log_likelihood(mean * concentration, (1.0 - mean) * concentration)
    log_mean_variance = -np.logaddexp(0.0, -logit_mean) - np.logaddexp(0.0, logit_mean)
    return likelihood + 0.5 * log_mean_variance - 0.5 * log_concentration


def _hyper_mode(log_density: LogDensity, start: np.ndarray) -> np.ndarray:
    """The (logit mu, log kappa) of highest posterior density, inside the bounds."""
    result = optimize.minimize(
        lambda point: -float(log_density(point[:, None])[0]),
        start,
        bounds=list(zip(*_hyper_bounds(), strict=True)),
        method="L-BFGS-B",
    )
    return result.x


def _laplace_sds(log_density: LogDensity, mode: np.ndarray) -> np.ndarray:
    """Posterior standard deviations of (logit mu, log kappa) from the curvature at the mode;
    where the curvature says nothing (a mode on a bound, a flat direction), the whole range."""
    h = FINITE_DIFFERENCE_STEP
    steps = np.array([[0, h, -h, 0, 0, h, h, -h, -h], [0, 0, 0, h, -h, h, -h, h, -h]])
    f = log_density(mode[:, None] + steps)
    cross = (f[5] - f[6] - f[7] + f[8]) / 4
    hessian = -np.array([[f[1] - 2 * f[0] + f[2], cross], [cross, f[3] - 2 * f[0] + f[4]]]) / h**2
    low, high = _hyper_bounds()
    whole_range = (high - low) / (2 * HYPER_GRID_SDS)
    if np.all(np.linalg.eigvalsh(hessian) > 0):
        sds = np.sqrt(np.diag(np.linalg.inv(hessian)))
    else:
        curvature = np.diag(hessian)
        sds = np.where(curvature > 0, 1.0 / np.sqrt(np.abs(curvature)), whole_range)
    return np.clip(np.nan_to_num(sds, nan=np.inf), 1e-6, whole_range)


def _hyper_grid(
    log_density: LogDensity, mode: np.ndarray, sds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Grid points (2 x G) carrying the hyper-posterior and their log densities: a box of
    HYPER_GRID_SDS standard deviations around the mode, widened on a side where the density
    is not negligible at its edge (a skewed posterior), narrowed around the points that carry
    it when they are few (a sharper one)."""
    bound_low, bound_high = _hyper_bounds()
    low = np.maximum(mode - HYPER_GRID_SDS * sds, bound_low)
    high = np.minimum(mode + HYPER_GRID_SDS * sds, bound_high)
    for _ in range(HYPER_GRID_PASSES):
        axes = [np.linspace(lo, hi, HYPER_GRID_POINTS) for lo, hi in zip(low, high, strict=True)]
        points = np.stack([grid.ravel() for grid in np.meshgrid(*axes, indexing="ij")])
        log_p = log_density(points)
        carrying = (log_p >= log_p.max() - NEGLIGIBLE_LOG_DENSITY).reshape(HYPER_GRID_POINTS, -1)
        new_low, new_high = _adjusted_box(carrying, axes, (low, high), (bound_low, bound_high))
        if np.allclose(new_low, low) and np.allclose(new_high, high):
            break
        low, high = new_low, new_high
    log_p = log_p + _log_trapezoid_weights(HYPER_GRID_POINTS)
    keep = log_p >= log_p.max() - NEGLIGIBLE_LOG_DENSITY
    return points[:, keep], log_p[keep]


def _log_trapezoid_weights(points_per_axis: int) -> np.ndarray:
    """log of the trapezoid rule's weights on a square grid (flattened as meshgrid's "ij"):
    half on each edge, so that a density that peaks on a bound is not overweighted there."""
    weights = np.ones(points_per_axis)
    weights[[0, -1]] = 0.5
    return np.log(np.outer(weights, weights)).ravel()


def _adjusted_box(
    carrying: np.ndarray,
    axes: list[np.ndarray],
    box: tuple[np.ndarray, np.ndarray],
    bounds: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The next grid's box, per hyper-parameter: extended by its width on a side where the
    grid points at the edge carry weight (unless at the bound); else, when the carrying points
    span less than a third of the grid, narrowed to them and one step either side."""
    low, high = box[0].copy(), box[1].copy()
    for axis, values in enumerate(axes):
        along = np.flatnonzero(carrying.any(axis=1 - axis))
        first, last = along[0], along[-1]
        width = high[axis] - low[axis]
        widen_low = first == 0 and low[axis] > bounds[0][axis]
        widen_high = last == len(values) - 1 and high[axis] < bounds[1][axis]
        if widen_low or widen_high:
            low[axis] = max(bounds[0][axis], low[axis] - width) if widen_low else low[axis]
            high[axis] = min(bounds[1][axis], high[axis] + width) if widen_high else high[axis]
        elif last - first < len(values) // 3:
            low[axis] = values[max(first - 1, 0)]
            high[axis] = values[min(last + 1, len(values) - 1)]
    return low, high


def beta_interval(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "mean": a / (a + b),
        "p05": stats.beta.ppf(0.05, a, b),
        "p95": stats.beta.ppf(0.95, a, b),
    }


def _observed(topology: Topology, coverage: np.ndarray, edge: int) -> dict[str, Any] | None:
    """What the traces saw on an edge (model.json), None for one they did not see."""
    calls = topology.edge_calls
    if calls is None or np.isnan(calls[edge]):
        return None
    errors = topology.edge_errors
    error_count = None if errors is None or np.isnan(errors[edge]) else int(errors[edge])
    share = None if np.isnan(coverage[edge]) else round(float(coverage[edge]), 6)
    return {"calls": int(calls[edge]), "errors": error_count, "coverage": share}


def propagation_posteriors(
    evidence: dict[str, np.ndarray],
    criticality: np.ndarray,
    learn: bool,
    coverage: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, float | str]]]:
    """Beta posteriors per edge, each class of criticality (hard, soft, unknown) with its own
    prior; without any cascade evidence (`learn` False) every edge keeps its class default.
    A class's prior in `priors` is the distribution of p for an edge of it with no evidence
    (for a fitted prior, the Beta with the mixture's mean and variance). `coverage` (per edge,
    from traces, NaN where unseen: Topology.coverage) moves each seen edge's prior mean with
    its coverage (trace_prior)."""
    hits, exposures = evidence["hits"], evidence["exposures"]
    if coverage is None:
        coverage = np.full(len(hits), np.nan)
    a, b = np.zeros(len(hits)), np.zeros(len(hits))
    priors: dict[str, dict[str, float | str]] = {}
    for name in ("hard", "soft", "unknown"):
        members = criticality == name
        if not members.any():
            continue
        default = DEFAULT_PROPAGATION_PRIORS[name]
        if learn:
            prior, source = fit_beta_prior(hits[members], exposures[members], default)
        else:
            prior, source = BetaMixture.single(*default), "default"
        a[members], b[members] = prior.posterior_beta(hits[members], exposures[members])
        prior_a, prior_b = prior.posterior_beta(np.zeros(1), np.zeros(1))
        priors[f"propagation_{name}"] = {
            "alpha": float(prior_a[0]),
            "beta": float(prior_b[0]),
            "source": source,
        }
        traced = members & ~np.isnan(coverage)
        if traced.any():
            exponent, edge_a, edge_b = trace_prior(
                float(prior_a[0]),
                float(prior_b[0]),
                coverage[traced],
                hits[traced],
                exposures[traced],
                learn,
            )
            if exponent > 0:
                a[traced] = edge_a + hits[traced]
                b[traced] = edge_b + exposures[traced] - hits[traced]
            priors[f"propagation_{name}"].update(
                traced_edges=float(traced.sum()), trace_exponent=exponent
            )
    # Kept from schema version 1's first release: the prior that most edges use.
    if priors:
        names, counts = np.unique(criticality.astype(str), return_counts=True)
        priors["propagation"] = priors[f"propagation_{names[np.argmax(counts)]}"]
    else:
        default = DEFAULT_PROPAGATION_PRIORS["unknown"]
        priors["propagation"] = {"alpha": default[0], "beta": default[1], "source": "default"}
    return a, b, priors


# The trace prior (docs/model.md): an edge the traces saw gets its class prior with the mean
# scaled by coverage ** exponent (normalised so that the class's traced edges keep the class
# mean) and the class's concentration. The exponent is chosen among these by the marginal
# likelihood of the class's cascade evidence (0: coverage says nothing here, the traces are
# ignored); without enough evidence it is 1, coverage taken at its word.
TRACE_EXPONENTS = (1.0, 0.5, 0.0)  # ties go to the first
COVERAGE_FLOOR = 0.01  # an edge called on 1 request in 10,000 is not 100 times weaker than 1 in 100
TRACE_MEAN_BOUNDS = (1e-4, 0.99)


def trace_prior(
    prior_alpha: float,
    prior_beta: float,
    coverage: np.ndarray,
    hits: np.ndarray,
    exposures: np.ndarray,
    learn: bool,
) -> tuple[float, np.ndarray, np.ndarray]:
    """(exponent, alpha, beta): per traced edge of one class, its prior Beta(alpha, beta)."""
    concentration = prior_alpha + prior_beta
    mean = prior_alpha / concentration
    scaled = np.clip(coverage, COVERAGE_FLOOR, 1.0)
    tried = exposures > 0
    choose = learn and tried.sum() >= MIN_EDGES_FOR_PRIOR
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    for exponent in TRACE_EXPONENTS if choose else TRACE_EXPONENTS[:1]:
        weight = scaled**exponent
        edge_mean = np.clip(mean * weight / weight.mean(), *TRACE_MEAN_BOUNDS)
        alpha, beta = edge_mean * concentration, (1.0 - edge_mean) * concentration
        score = float(
            stats.betabinom.logpmf(hits[tried], exposures[tried], alpha[tried], beta[tried]).sum()
        )
        if best is None or score > best[1] + 1e-9:
            best = (exponent, score, alpha, beta)
    assert best is not None
    return best[0], best[2], best[3]


# --- durations, mixes, time and load --------------------------------------------------------


# The EM of censored durations stops when no service's mu and not sigma (log minutes) moves by
# more than the tolerance, or at the cap (it takes tens of iterations on real histories).
EM_TOLERANCE = 1e-9
EM_MAX_ITERATIONS = 500


def fit_durations(
    minutes: pd.Series,
    service: pd.Series,
    services: tuple[str, ...],
    censored_at: pd.Series | None = None,
) -> tuple[np.ndarray, float, np.ndarray, dict[str, float | str]]:
    """Per-service log-normal duration: partially pooled mean, pooled spread.

    `minutes` may hold NaN (unknown) and negative values (timestamps out of order), both left
    out; under a minute counts as one. `censored_at` (aligned with `minutes`, NaN where not
    censored): how long an incident still open when the history ends had lasted; its duration
    is only known to be longer, which the EM below takes in (dropping it would bias every
    estimate towards the short incidents that closed in time). Returns (mu per service, sigma,
    number of durations per service, observed or censored, prior description)."""
    known = minutes.notna() & (minutes >= 0)
    logs = np.log(np.maximum(minutes[known].to_numpy(float), 1.0))
    if len(logs) < 2:
        mu0, sigma = DEFAULT_DURATION
        n = np.zeros(len(services))
        return (
            np.full(len(services), mu0),
            sigma,
            n,
            {"mu": mu0, "sigma": sigma, "source": "default"},
        )
    by_service = pd.DataFrame({"service": service[known].to_numpy(), "y": logs})
    grouped = (
        by_service.groupby("service")["y"].agg(["count", "mean", "var"]).reindex(list(services))
    )
    n = grouped["count"].fillna(0).to_numpy(float)
    means = grouped["mean"].to_numpy(float)
    within = grouped["var"].fillna(0).to_numpy(float)
    mu0 = float(np.mean(logs))
    mu, sigma2, tau2 = _pooled_log_normal(
        n, means, within * np.maximum(n - 1, 0), mu0, float(np.var(logs))
    )
    censored = _censored_logs(censored_at, service, services, known)
    if censored is None:
        sigma = math.sqrt(sigma2)
        return mu, sigma, n, {"mu": mu0, "sigma": sigma, "tau": math.sqrt(tau2), "source": "data"}
    observed = (logs, pd.Index(services).get_indexer(service[known]))
    mu, sigma2, tau2, mu0, iterations = _censored_em(observed, censored, mu, sigma2)
    n = n + np.bincount(censored[1], minlength=len(services))
    sigma = math.sqrt(sigma2)
    description: dict[str, float | str] = {
        "mu": mu0,
        "sigma": sigma,
        "tau": math.sqrt(tau2),
        "source": "data",
        "censored": len(censored[0]),
        "iterations": iterations,
    }
    return mu, sigma, n, description


def _pooled_log_normal(
    n: np.ndarray,
    means: np.ndarray,
    within_ss: np.ndarray,
    mu0: float,
    total_var: float,
    means_var: float | None = None,
) -> tuple[np.ndarray, float, float]:
    """The partial pooling of docs/model.md section 6 from per-service counts, means and
    within-service sums of squares: (mu per service, sigma^2, tau^2). `means_var`: the
    variance of the service means when it is not that of `means` (the EM's expected one)."""
    sigma2 = float(np.sum(within_ss) / max(np.sum(np.maximum(n - 1, 0)), 1))
    sigma2 = sigma2 if sigma2 > 0 else total_var or 1.0
    seen = n > 0
    spread = float(np.var(means[seen])) if means_var is None else means_var
    tau2 = max(spread - sigma2 * float(np.mean(1.0 / n[seen])), 0.01)
    weight = np.where(seen, (n / sigma2) / (n / sigma2 + 1.0 / tau2), 0.0)
    mu = weight * np.nan_to_num(means, nan=mu0) + (1.0 - weight) * mu0
    return mu, sigma2, tau2


def _censored_logs(
    censored_at: pd.Series | None,
    service: pd.Series,
    services: tuple[str, ...],
    known: pd.Series,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(log of the censoring minutes, service position) of the censored rows (a row with an
    observed duration is not censored; under a minute counts as one); None when none is."""
    if censored_at is None:
        return None
    position = pd.Index(services).get_indexer(service)
    rows = censored_at.notna().to_numpy() & ~known.to_numpy() & (position >= 0)
    if not rows.any():
        return None
    minutes = np.maximum(censored_at.to_numpy(float)[rows], 1.0)
    return np.log(minutes), position[rows]


def _censored_em(
    observed: tuple[np.ndarray, np.ndarray],
    censored: tuple[np.ndarray, np.ndarray],
    mu: np.ndarray,
    sigma2: float,
) -> tuple[np.ndarray, float, float, float, int]:
    """EM for log durations some of which are right-censored, started from the fit without
    them; returns (mu per service, sigma^2, tau^2, mu0, iterations).

    sigma never goes below that fit's: the durations that closed in time are the shorter ones,
    whose spread understates sigma (truncating a normal narrows it). Without this floor, a
    history of mostly open incidents in small services can shrink sigma towards 0: the
    completed values then sit on their bounds, whose spread is small, and shrink it further."""
    floor, iterations, change = sigma2, 0, math.inf
    while change >= EM_TOLERANCE and iterations < EM_MAX_ITERATIONS:
        new_mu, new_sigma2, tau2, mu0 = _em_step(observed, censored, mu, sigma2)
        new_sigma2 = max(new_sigma2, floor)
        change = max(
            float(np.max(np.abs(new_mu - mu))), abs(math.sqrt(new_sigma2) - math.sqrt(sigma2))
        )
        mu, sigma2, iterations = new_mu, new_sigma2, iterations + 1
    return mu, sigma2, tau2, mu0, iterations


def _em_step(
    observed: tuple[np.ndarray, np.ndarray],
    censored: tuple[np.ndarray, np.ndarray],
    mu: np.ndarray,
    sigma2: float,
) -> tuple[np.ndarray, float, float, float]:
    """One EM iteration. E-step: each censored y > l gets its conditional mean and variance
    under its service's current mu and the pooled sigma. M-step: the pooling of
    `_pooled_log_normal` on the conditional expectations of the statistics it uses."""
    bound, place = censored
    expected, variance = _normal_moments_above(mu[place], math.sqrt(sigma2), bound)
    count, means, within_ss, means_var = _expected_service_statistics(
        observed, (expected, variance, place), len(mu)
    )
    mu0, total_var = _expected_fleet_statistics(observed[0], expected, variance)
    new_mu, new_sigma2, tau2 = _pooled_log_normal(
        count, means, within_ss, mu0, total_var, means_var
    )
    return new_mu, new_sigma2, tau2, mu0


def _expected_service_statistics(
    observed: tuple[np.ndarray, np.ndarray],
    censored: tuple[np.ndarray, np.ndarray, np.ndarray],
    size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per service, given the observed logs and each censored one's conditional mean and
    variance v: the count n, E[mean], E[sum of squares about the service's own mean] and, over
    the services with data, E[variance of their means]. The mean moves with each censored
    value, so only (1 - 1/n) v of it is spread about the mean (none for a service with one
    incident: it has no within-service spread), and the means vary by v / n^2 more."""
    logs, where = observed
    expected, variance, place = censored
    mine = where >= 0  # observed rows of a service of the topology (all, once validated)
    logs, where = logs[mine], where[mine]
    count = np.bincount(where, minlength=size) + np.bincount(place, minlength=size)
    sums = np.bincount(where, logs, size) + np.bincount(place, expected, size)
    means = np.divide(sums, count, out=np.full(size, np.nan), where=count > 0)
    centre = np.nan_to_num(means)
    within_ss = np.bincount(where, (logs - centre[where]) ** 2, size) + np.bincount(
        place, (expected - centre[place]) ** 2 + variance * (1 - 1 / count[place]), size
    )
    seen = count > 0
    mean_variance = np.bincount(place, variance, size)[seen] / count[seen] ** 2
    services = int(seen.sum())
    means_var = float(np.var(means[seen])) + (services - 1) / services**2 * mean_variance.sum()
    return count, means, within_ss, means_var


def _expected_fleet_statistics(
    logs: np.ndarray, expected: np.ndarray, variance: np.ndarray
) -> tuple[float, float]:
    """E[mean] and E[variance] (1/N) of every log duration, observed and censored."""
    total = len(logs) + len(expected)
    mu0 = float((logs.sum() + expected.sum()) / total)
    spread = np.sum((logs - mu0) ** 2) + np.sum((expected - mu0) ** 2 + variance * (1 - 1 / total))
    return mu0, float(spread / total)


def _normal_moments_above(
    mean: np.ndarray, sd: float, lower: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of y ~ Normal(mean, sd^2) given y > lower, through the inverse Mills
    ratio m = phi(a) / (1 - Phi(a)), a = (lower - mean) / sd (on the log scale, so that it
    stays finite far in the tail): mean + sd m and sd^2 (1 + a m - m^2)."""
    a = (lower - mean) / sd
    mills = np.exp(stats.norm.logpdf(a) - stats.norm.logsf(a))
    return mean + sd * mills, np.maximum(sd**2 * (1 + a * mills - mills**2), 0.0)


def shrunk_mix(
    labels: pd.Series,
    groups: pd.Series,
    services: tuple[str, ...],
    vocabulary: tuple[str, ...],
    concentration: float,
) -> np.ndarray:
    """Dirichlet-multinomial posterior mean mix per service (rows) over the vocabulary."""
    table = label_counts(labels, groups, services, vocabulary).astype(float)
    fleet = (table.sum(axis=0) + 1.0) / (table.sum() + len(vocabulary))
    return (table + concentration * fleet) / (table.sum(axis=1, keepdims=True) + concentration)


def label_counts(
    labels: pd.Series, groups: pd.Series, services: tuple[str, ...], vocabulary: tuple[str, ...]
) -> np.ndarray:
    """How many rows of each service (rows) carry each label of the vocabulary (columns)."""
    row = pd.Index(services).get_indexer(groups)  # -1: not a service, or missing
    column = pd.Index(vocabulary).get_indexer(labels)  # -1: not in the vocabulary
    known = (row >= 0) & (column >= 0)
    cells = np.bincount(
        row[known] * len(vocabulary) + column[known], minlength=len(services) * len(vocabulary)
    )
    return cells.reshape(len(services), len(vocabulary)).astype(np.int64)


def shrunk_multipliers(
    counts: np.ndarray, exposure_share: np.ndarray, concentration: float
) -> np.ndarray:
    """Rate multipliers per period (mean 1 over the exposure): the Dirichlet posterior mean
    share of incidents, with `concentration` pseudo-incidents spread like the exposure (flat),
    divided by the period's share of the exposure."""
    share = (counts + concentration * exposure_share) / (counts.sum() + concentration)
    return np.divide(share, exposure_share, out=np.ones_like(share), where=exposure_share > 0)


def time_multipliers(roots: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, Any]:
    """Day-of-week and hour-of-day multipliers of the root-failure rate (UTC), shrunk to flat."""
    t = pd.DatetimeIndex(roots["t"])
    days = pd.date_range(start.floor("D"), end.ceil("D"), freq="D", inclusive="left")
    weekday_exposure = np.bincount(days.weekday, minlength=7).astype(float)
    weekday = shrunk_multipliers(
        np.bincount(t.weekday, minlength=7).astype(float),
        weekday_exposure / weekday_exposure.sum(),
        DAY_OF_WEEK_CONCENTRATION,
    )
    hour = shrunk_multipliers(
        np.bincount(t.hour, minlength=24).astype(float),
        np.full(24, 1 / 24),
        HOUR_OF_DAY_CONCENTRATION,
    )
    return {
        "timezone": "UTC",
        "root_incidents": len(t),
        "day_of_week": {name: _round(v) for name, v in zip(WEEKDAYS, weekday, strict=True)},
        "hour_of_day": {f"{h:02d}": _round(v) for h, v in enumerate(hour)},
        "concentration": {
            "day_of_week": DAY_OF_WEEK_CONCENTRATION,
            "hour_of_day": HOUR_OF_DAY_CONCENTRATION,
        },
    }


def expected_exposure_days(
    start: datetime, days: float, day_of_week: dict[str, float] | None
) -> float:
    """The horizon's length in days, each day weighted by its weekday multiplier (a week
    sums to about 7; a Friday-only event window to the Friday multiplier)."""
    if not day_of_week:
        return days
    weights = [day_of_week[name] for name in WEEKDAYS]
    total, cursor, left = 0.0, pd.Timestamp(start), days
    while left > 1e-9:
        next_midnight = cursor.floor("D") + pd.Timedelta(days=1)
        step = min(left, (next_midnight - cursor) / pd.Timedelta(days=1))
        total += step * weights[cursor.weekday()]
        cursor, left = cursor + pd.Timedelta(days=step), left - step
    return total


def fit_load_elasticity(roots: pd.DataFrame) -> dict[str, Any]:
    """Traffic elasticity of the load-sensitive modes from root incidents' `load_factor`.

    If the rate of load-sensitive failures grows as load ** e while other modes do not depend
    on load, the log-odds that an incident at load L is load-sensitive is c + e log L: a
    logistic regression whose slope is e (the other modes serve as controls for how often
    each load level occurs). MAP with the default as a Normal prior on e, so thin data stays
    near it; the interval is the Laplace approximation."""
    prior_mean, prior_sd = DEFAULT_ELASTICITY
    known = roots["load_factor"].notna() & (roots["load_factor"] > 0)
    x = np.log(roots.loc[known, "load_factor"].to_numpy(float))
    y = roots.loc[known, "category"].isin(LOAD_SENSITIVE_MODES).to_numpy(float)
    description: dict[str, Any] = {
        "modes": list(LOAD_SENSITIVE_MODES),
        "incidents_with_load": int(known.sum()),
    }
    if min(y.sum(), len(y) - y.sum()) < MIN_LOAD_INCIDENTS or np.ptp(x) == 0:
        mean, sd, source = prior_mean, prior_sd, "default"
    else:
        theta = np.array([math.log(max(y.mean(), 1e-3) / max(1 - y.mean(), 1e-3)), prior_mean])
        prior_precision = np.diag([1e-2, 1.0 / prior_sd**2])
        design = np.column_stack([np.ones_like(x), x])
        for _ in range(50):
            p = special.expit(design @ theta)
            gradient = design.T @ (y - p) - prior_precision @ (theta - [0.0, prior_mean])
            hessian = design.T @ (design * (p * (1 - p))[:, None]) + prior_precision
            step = np.linalg.solve(hessian, gradient)
            theta = theta + step
            if np.abs(step).max() < 1e-10:
                break
        p = special.expit(design @ theta)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + prior_precision
        mean, sd, source = float(theta[1]), float(math.sqrt(np.linalg.inv(hessian)[1, 1])), "data"
    return description | {
        "elasticity": {
            "mean": _round(mean),
            "sd": _round(sd),
            "p05": _round(mean - 1.6448536 * sd),
            "p95": _round(mean + 1.6448536 * sd),
        },
        "source": source,
    }


def traffic_factor(multiplier: float, elasticity: dict[str, float]) -> float:
    """E[multiplier ** e] for e ~ Normal(mean, sd): the rate factor of a load-sensitive mode."""
    log_m = math.log(multiplier)
    return math.exp(elasticity["mean"] * log_m + 0.5 * (elasticity["sd"] * log_m) ** 2)


# --- the fit ------------------------------------------------------------------------------


def fit(
    incidents: pd.DataFrame,
    topology: Topology,
    as_of: datetime,
    history_days: int,
    data_start: str | None = None,
    settings: ModelSettings | None = None,
    gameday_trials: Sequence[tuple[str, str, bool]] = (),
) -> ModelDoc:
    """Fit every model on validated incidents; the result is the model.json contract.
    `gameday_trials` (dependency, dependent, deviated) from game-day journals are cascade
    evidence like an incident's (add_gameday_trials)."""
    from whatif import backtest

    settings = settings or ModelSettings()
    services = topology.services
    start, end = observation_window(incidents, as_of, history_days, data_start)
    days = (end - start).total_seconds() / 86400.0
    window_minutes, inference = _inference_window(incidents, settings)
    attributed = attribute(incidents, topology, window_minutes)
    t_days = (attributed["t"].to_numpy() - start.to_datetime64()) / DAY
    svc = attributed["svc"].to_numpy()
    is_root = (attributed["how"] == "root").to_numpy()
    begins = exposure_starts(attributed, topology, start, end)
    gaps = rates.find_gaps(_incident_days(attributed, start), days)
    root_events = rates.Events(t_days[is_root], svc[is_root], begins, gaps)
    fitted = rates.fit_rates(
        root_events,
        rates.Events(t_days, svc, begins, gaps),
        days,
        settings.backtest_horizon_days,
        settings.fixed_half_life,
    )
    raw_total = np.bincount(svc, minlength=topology.size)
    raw_root = np.bincount(svc[is_root], minlength=topology.size)
    incident_rate = gamma_interval(fitted.incident_shape, fitted.incident_rate)
    root_rate_interval = gamma_interval(fitted.root_shape, fitted.root_rate)

    roots = attributed[is_root]
    modes = shrunk_mix(
        roots["category"], roots["service"], services, FAILURE_MODES, MODE_CONCENTRATION
    )
    # The evidence behind each mode: a mode no root incident shows is its prior alone.
    mode_counts = label_counts(roots["category"], roots["service"], services, FAILURE_MODES)
    severities = shrunk_mix(
        attributed["severity"],
        attributed["service"],
        services,
        SEVERITIES,
        SEVERITY_CONCENTRATION,
    )
    durations = _response_times(attributed, services, _open_minutes(incidents, attributed, as_of))

    since = start.to_datetime64() + (begins * 86400e9).astype("timedelta64[ns]")
    evidence = edge_evidence(attributed, topology, window_minutes, since)
    if window_minutes == 0 and incidents["caused_by"].isna().all():
        # Nothing links incidents: the absence of links is no evidence that failures do
        # not spread, so every edge keeps its prior.
        evidence = {key: np.zeros_like(values) for key, values in evidence.items()}
    evidence, gameday = add_gameday_trials(evidence, topology, gameday_trials)
    if gameday["not_an_edge"]:
        log.info(
            "game days: %d watched services are no direct dependent of the injected one: "
            "not edge trials",
            gameday["not_an_edge"],
        )
    learn = bool((attributed["how"] != "root").any()) or gameday["used"] > 0
    coverage = topology.coverage()
    edge_a, edge_b, propagation_priors = propagation_posteriors(
        evidence, topology.criticality, learn, coverage
    )
    propagation = beta_interval(edge_a, edge_b)

    service_rows = [
        _service_row(
            i,
            name,
            raw_total,
            raw_root,
            fitted.exposure_days,  # raw days, like the counts beside them (not discounted)
            incident_rate,
            root_rate_interval,
            (fitted.root_shape, fitted.root_rate),
            fitted.predictive_shape,
            durations,
            severities,
            modes,
            mode_counts,
        )
        for i, name in enumerate(services)
    ]
    criticality = topology.criticality
    edge_rows = [
        {
            "service": services[v],
            "depends_on": services[u],
            "criticality": str(criticality[k]),
            "propagation_probability": _pick(propagation, k),
            "posterior": {"alpha": float(edge_a[k]), "beta": float(edge_b[k])},
            "evidence": {
                "exposures": int(evidence["exposures"][k]),
                "hits": int(evidence["hits"][k]),
                "inferred_hits": int(evidence["inferred_hits"][k]),
                "censored": int(evidence["censored"][k]),
                "gameday_trials": int(evidence["gameday_trials"][k]),
                "gameday_hits": int(evidence["gameday_hits"][k]),
            },
            "observed": _observed(topology, coverage, k),
        }
        for k, (u, v) in enumerate(
            zip(topology.edge_dependency, topology.edge_dependent, strict=True)
        )
    ]
    how = attributed["how"].value_counts()
    return ModelDoc.model_validate(
        {
            "window": {"start": start.isoformat(), "end": end.isoformat(), "days": round(days, 6)},
            "settings": settings.as_dict(),
            "inputs": {
                "incidents": int(incidents["incident_id"].nunique()),
                "incident_rows": len(incidents),
                "root_incidents": int(raw_root.sum()),
                "services": len(services),
                "edges": len(edge_rows),
                "gameday_trials": gameday["used"],
            },
            "attribution": {
                "window_minutes": window_minutes,
                "inference": inference,
                "rows": len(attributed),
                "roots": int(how.get("root", 0)),
                "caused_by": int(how.get("caused_by", 0)),
                "inferred": int(how.get("inferred", 0)),
            },
            "priors": {
                "incident_rate": dict(zip(("alpha", "beta"), fitted.incident_prior, strict=True)),
                "root_rate": dict(zip(("alpha", "beta"), fitted.root_prior, strict=True)),
                **propagation_priors,
                **{f"{name}_log_minutes": prior for name, (*_, prior) in durations.items()},
                "concentration": {
                    "failure_modes": MODE_CONCENTRATION,
                    "severity": SEVERITY_CONCENTRATION,
                },
            },
            "time_multipliers": time_multipliers(roots, start, end),
            "load": fit_load_elasticity(roots),
            "rates": _rate_section(fitted, root_events, start, days, services),
            "backtest": backtest.run(fitted, root_events, start, settings),
            "evidence_sources": evidence_sources(roots, attributed),
            "services": service_rows,
            "edges": edge_rows,
        }
    )


def evidence_sources(roots: pd.DataFrame, rows: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Where the labels of each mix came from (whatif.classify.SOURCES), counted over the rows
    the mix is fitted on: failure modes over root rows, severities over all rows. A severity
    counts as known ("column" or "text") only where the row has one, so a history without any
    has column + text = 0. Rows without a source (a clean table written before the sources
    were recorded) count as the column's, except mode "other" and no severity: "none"."""

    def count(source: pd.Series, unknown: pd.Series) -> dict[str, int]:
        tally = source.fillna("column").where(~unknown, "none").value_counts()
        return {name: int(tally.get(name, 0)) for name in classify.SOURCES}

    mode_source = roots["failure_mode_source"]
    return {
        "failure_mode": count(
            mode_source, mode_source.isna() & roots["category"].isin(["other", None])
        ),
        "severity": count(rows["severity_source"], rows["severity"].isna()),
    }


def _incident_days(attributed: pd.DataFrame, start: pd.Timestamp) -> np.ndarray:
    """The days (since the window start) on which some incident started, each once: the
    events of the gap test (incidents cluster: one on ten services, or ten in a bad
    afternoon, are one sign that the export was recording that day)."""
    days = np.floor((attributed["t"].to_numpy() - start.to_datetime64()) / DAY)
    return np.unique(days) + 0.5


def _rate_section(
    fitted: rates.RateFit,
    roots: rates.Events,
    start: pd.Timestamp,
    days: float,
    services: tuple[str, ...],
) -> dict[str, Any]:
    """model.json "rates": how the rate model was chosen, the export's gaps, and drift."""

    def when(day: float) -> str:
        return (start + pd.Timedelta(days=day)).isoformat()

    return {
        "model": "dynamic hierarchical Gamma-Poisson",
        **fitted.choice.as_dict(),
        "horizon_days": fitted.lattice.horizon,
        "gaps": [
            {"start": when(low), "end": when(high), "days": _round(high - low)}
            for low, high in roots.gaps
        ],
        "drift": rates.drift(roots, fitted, days, services),
    }


def _inference_window(incidents: pd.DataFrame, settings: ModelSettings) -> tuple[float, str]:
    """The cascade window to infer with, and why when it is off: timestamps that are dates
    only (the notebook format) would make every same-day pair look simultaneous."""
    if settings.cascade_window_minutes == 0:
        return 0.0, "off: cascade window set to 0"
    started = incidents["started_at"].dropna()
    if len(started) and (started == started.dt.floor("D")).all():
        return 0.0, "off: the start times are dates only"
    return settings.cascade_window_minutes, "on"


def _response_times(
    attributed: pd.DataFrame, services: tuple[str, ...], open_minutes: pd.Series | None = None
) -> dict[str, tuple[np.ndarray, float, np.ndarray, dict[str, float | str]]]:
    """Log-normal fits of time to resolve (start -> resolved), to detect (start -> detected)
    and to acknowledge (detected, else start -> acknowledged). `open_minutes` (per row, NaN
    where not open): how long incidents still open at as_of had lasted, censored times to
    resolve."""
    started = pd.to_datetime(attributed["t"], utc=True)

    def minutes(later: str, earlier: pd.Series) -> pd.Series:
        values = pd.to_datetime(attributed[later], utc=True)
        return (values - earlier).dt.total_seconds() / 60.0

    detected = pd.to_datetime(attributed["detected_at"], utc=True)
    fits = {
        "duration": minutes("resolved_at", started),
        "detect": minutes("detected_at", started),
        "acknowledge": minutes("acknowledged_at", detected.fillna(started)),
    }
    censored = {"duration": open_minutes}
    return {
        name: fit_durations(m, attributed["service"], services, censored.get(name))
        for name, m in fits.items()
    }


def _open_minutes(
    incidents: pd.DataFrame, attributed: pd.DataFrame, as_of: datetime
) -> pd.Series | None:
    """Per attributed row, the minutes from its start to as_of when validation found it still
    open (`duration_source` "open"), else NaN; None when the table does not say (no column)."""
    if "duration_source" not in incidents:
        return None
    still_open = incidents.loc[incidents["duration_source"] == "open"]
    keys = pd.MultiIndex.from_arrays(
        [still_open["incident_id"].astype(str), still_open["service"].astype(str)]
    )
    rows = pd.MultiIndex.from_arrays([attributed["incident_id"], attributed["service"]])
    started = pd.to_datetime(attributed["t"], utc=True)
    minutes = (pd.Timestamp(as_of) - started).dt.total_seconds() / 60.0
    return minutes.where(rows.isin(keys))


def _service_row(
    i: int,
    name: str,
    total: np.ndarray,
    root: np.ndarray,
    exposure: np.ndarray,
    incident_rate: dict[str, np.ndarray],
    root_rate_interval: dict[str, np.ndarray],
    posterior: tuple[np.ndarray, np.ndarray],
    predictive_shape: np.ndarray,
    durations: dict[str, tuple[np.ndarray, float, np.ndarray, dict[str, float | str]]],
    severities: np.ndarray,
    modes: np.ndarray,
    mode_counts: np.ndarray,
) -> dict[str, Any]:
    mu, sigma, n_durations, duration_prior = durations["duration"]
    source = (
        "prior"
        if duration_prior["source"] == "default"
        else ("data" if n_durations[i] > 0 else "pooled")
    )
    root_mean = float(root_rate_interval["mean"][i])
    return {
        "service": name,
        "incidents": int(total[i]),
        "root_incidents": int(root[i]),
        "exposure_days": _round(float(exposure[i])),
        "incident_rate_per_day": _pick(incident_rate, i),
        "root_rate_per_day": _pick(root_rate_interval, i),
        "root_rate_posterior": {"shape": float(posterior[0][i]), "rate": float(posterior[1][i])},
        "root_rate_predictive": {
            "shape": float(predictive_shape[i]),
            "rate": float(predictive_shape[i] * posterior[1][i] / posterior[0][i]),
        },
        "root_rate_by_mode_per_day": _mix(modes[i] * root_mean, FAILURE_MODES),
        "mttr_minutes": _lognormal_percentiles(mu[i], sigma),
        "mttr_source": source,
        "duration_minutes_lognormal": {"mu": float(mu[i]), "sigma": float(sigma)},
        "mttd_minutes": _measured_percentiles(durations["detect"], i),
        "mtta_minutes": _measured_percentiles(durations["acknowledge"], i),
        "severity_probabilities": _mix(severities[i], SEVERITIES),
        "failure_modes": _mix(modes[i], FAILURE_MODES),
        "root_incidents_by_mode": {
            mode: int(n) for mode, n in zip(FAILURE_MODES, mode_counts[i], strict=True) if n
        },
    }


def _lognormal_percentiles(mu: float, sigma: float) -> dict[str, float]:
    return {"p50": _round(math.exp(mu)), "p90": _round(math.exp(mu + Z90 * sigma))}


def _measured_percentiles(
    fitted: tuple[np.ndarray, float, np.ndarray, dict[str, float | str]], i: int
) -> dict[str, float] | None:
    """Percentiles of a response time, or None when the input has no such timestamps."""
    mu, sigma, _, prior = fitted
    return None if prior["source"] == "default" else _lognormal_percentiles(mu[i], sigma)


_round = rates.significant


def _pick(interval: dict[str, np.ndarray], i: int) -> dict[str, float]:
    return {key: _round(float(values[i])) for key, values in interval.items()}


def _mix(row: np.ndarray, vocabulary: tuple[str, ...]) -> dict[str, float]:
    return {label: _round(float(p)) for label, p in zip(vocabulary, row, strict=True)}
