"""Model: per-service failure rates, cascade probabilities, durations and severities.

Most services have few incidents, so every estimate borrows strength from the whole fleet:
- rates: hierarchical Gamma-Poisson; the Gamma prior is fitted by marginal likelihood
  (empirical Bayes), each service's posterior is Gamma(alpha + n, beta + T);
- cascades per edge: Beta-Binomial with an empirical-Bayes Beta prior over edges;
- durations: log-normal with the service means shrunk towards the fleet mean;
- severities and failure modes: Dirichlet-multinomial shrunk towards the fleet mix.
The maths is written out in docs/model.md.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from scipy import optimize, stats

from whatif.schemas import FAILURE_MODES, SEVERITIES, ModelDoc
from whatif.topology import Topology

MODE_CONCENTRATION = 5.0  # pseudo-incidents of fleet mix added to each service's mode counts
SEVERITY_CONCENTRATION = 5.0
DEFAULT_PROPAGATION_PRIOR = (1.0, 4.0)  # Beta(1, 4): mean 0.2, used without caused_by evidence
DEFAULT_DURATION = (math.log(60.0), 1.0)  # median 60 min, used when no durations are known
Z90 = stats.norm.ppf(0.9)


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
    return (max(start, first.floor("D")) if pd.notna(first) else start), end


def fit_gamma_prior(counts: np.ndarray, exposure: np.ndarray) -> tuple[float, float]:
    """Empirical-Bayes Gamma(alpha, beta) prior on rates: maximise the negative-binomial
    marginal likelihood of the per-service counts."""
    counts, exposure = np.asarray(counts, float), np.asarray(exposure, float)

    def negative_log_likelihood(log_params: np.ndarray) -> float:
        alpha, beta = np.exp(log_params)
        return -float(stats.nbinom.logpmf(counts, alpha, beta / (beta + exposure)).sum())

    mean_rate = max(counts.sum() / exposure.sum(), 1e-6)
    start = np.log([1.0, 1.0 / mean_rate])
    bounds = [(math.log(1e-2), math.log(1e3)), (math.log(1e-2), math.log(1e8))]
    result = optimize.minimize(negative_log_likelihood, start, bounds=bounds, method="L-BFGS-B")
    alpha, beta = np.exp(result.x)
    return float(alpha), float(beta)


def fit_beta_prior(hits: np.ndarray, trials: np.ndarray) -> tuple[float, float]:
    """Empirical-Bayes Beta(a, b) prior on propagation probabilities (beta-binomial)."""
    hits, trials = np.asarray(hits, float), np.asarray(trials, float)
    observed = trials > 0
    if observed.sum() < 2:
        return DEFAULT_PROPAGATION_PRIOR

    def negative_log_likelihood(log_params: np.ndarray) -> float:
        a, b = np.exp(log_params)
        return -float(stats.betabinom.logpmf(hits[observed], trials[observed], a, b).sum())

    bounds = [(math.log(0.05), math.log(50.0))] * 2
    result = optimize.minimize(
        negative_log_likelihood,
        np.log(DEFAULT_PROPAGATION_PRIOR),
        bounds=bounds,
        method="L-BFGS-B",
    )
    a, b = np.exp(result.x)
    return float(a), float(b)


def gamma_interval(shape: np.ndarray, rate: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "mean": shape / rate,
        "p05": stats.gamma.ppf(0.05, shape, scale=1.0 / rate),
        "p95": stats.gamma.ppf(0.95, shape, scale=1.0 / rate),
    }


def beta_interval(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "mean": a / (a + b),
        "p05": stats.beta.ppf(0.05, a, b),
        "p95": stats.beta.ppf(0.95, a, b),
    }


def shrunk_mix(
    labels: pd.Series,
    groups: pd.Series,
    services: tuple[str, ...],
    vocabulary: tuple[str, ...],
    concentration: float,
) -> np.ndarray:
    """Dirichlet-multinomial posterior mean mix per service (rows) over the vocabulary."""
    known = labels.isin(vocabulary)
    table = (
        pd.crosstab(groups[known], labels[known])
        .reindex(index=list(services), columns=list(vocabulary), fill_value=0)
        .to_numpy(float)
    )
    fleet = (table.sum(axis=0) + 1.0) / (table.sum() + len(vocabulary))
    return (table + concentration * fleet) / (table.sum(axis=1, keepdims=True) + concentration)


def fit_durations(
    incidents: pd.DataFrame, services: tuple[str, ...]
) -> tuple[np.ndarray, float, np.ndarray, dict[str, float | str]]:
    """Per-service log-normal duration: partially pooled mean, pooled spread.

    Returns (mu per service, sigma, number of durations per service, prior description).
    """
    minutes = (incidents["resolved_at"] - incidents["started_at"]).dt.total_seconds() / 60.0
    known = minutes.notna()
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
    by_service = pd.DataFrame({"service": incidents.loc[known, "service"].to_numpy(), "y": logs})
    grouped = (
        by_service.groupby("service")["y"].agg(["count", "mean", "var"]).reindex(list(services))
    )
    n = grouped["count"].fillna(0).to_numpy(float)
    means = grouped["mean"].to_numpy(float)
    within = grouped["var"].fillna(0).to_numpy(float)
    sigma2 = float(np.sum(within * np.maximum(n - 1, 0)) / max(np.sum(np.maximum(n - 1, 0)), 1))
    sigma2 = sigma2 if sigma2 > 0 else float(np.var(logs)) or 1.0
    mu0 = float(np.mean(logs))
    seen = n > 0
    tau2 = max(float(np.var(means[seen])) - sigma2 * float(np.mean(1.0 / n[seen])), 0.01)
    weight = np.where(seen, (n / sigma2) / (n / sigma2 + 1.0 / tau2), 0.0)
    mu = weight * np.nan_to_num(means, nan=mu0) + (1.0 - weight) * mu0
    sigma = math.sqrt(sigma2)
    return mu, sigma, n, {"mu": mu0, "sigma": sigma, "tau": math.sqrt(tau2), "source": "data"}


def _incident_counts(incidents: pd.DataFrame, services: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    rows = incidents.drop_duplicates(["incident_id", "service"])
    total = rows["service"].value_counts().reindex(list(services), fill_value=0).to_numpy(float)
    roots = rows.loc[rows["caused_by"].isna(), "service"]
    root = roots.value_counts().reindex(list(services), fill_value=0).to_numpy(float)
    return total, root


def edge_evidence(incidents: pd.DataFrame, topology: Topology) -> tuple[np.ndarray, np.ndarray]:
    """For each edge: exposures = incidents of the dependency; hits = how many of them caused
    (by `caused_by`) an incident of the dependent."""
    services = topology.services
    total, _ = _incident_counts(incidents, services)
    exposures = total[topology.edge_dependency]
    parent_service = incidents.drop_duplicates(["incident_id", "service"]).set_index("incident_id")[
        "service"
    ]
    caused = incidents.dropna(subset=["caused_by"])
    pairs = (
        caused[["caused_by", "service"]]
        .merge(parent_service.rename("parent_service"), left_on="caused_by", right_index=True)
        .drop_duplicates(["caused_by", "service", "parent_service"])
    )
    hit_counts = pairs.groupby(["parent_service", "service"]).size()
    hits = np.array(
        [
            hit_counts.get((services[u], services[v]), 0)
            for u, v in zip(topology.edge_dependency, topology.edge_dependent, strict=True)
        ],
        dtype=float,
    )
    return exposures, np.minimum(hits, exposures)


def fit(
    incidents: pd.DataFrame,
    topology: Topology,
    as_of: datetime,
    history_days: int,
    data_start: str | None = None,
) -> ModelDoc:
    """Fit every model on validated incidents; the result is the model.json contract."""
    services = topology.services
    start, end = observation_window(incidents, as_of, history_days, data_start)
    days = (end - start).total_seconds() / 86400.0
    exposure = np.full(len(services), days)
    total, root = _incident_counts(incidents, services)

    alpha_all, beta_all = fit_gamma_prior(total, exposure)
    alpha_root, beta_root = fit_gamma_prior(root, exposure)
    incident_rate = gamma_interval(alpha_all + total, beta_all + exposure)
    root_shape, root_rate = alpha_root + root, beta_root + exposure
    root_rate_interval = gamma_interval(root_shape, root_rate)

    roots = incidents[incidents["caused_by"].isna()]
    modes = shrunk_mix(
        roots["category"], roots["service"], services, FAILURE_MODES, MODE_CONCENTRATION
    )
    severities = shrunk_mix(
        incidents["severity"], incidents["service"], services, SEVERITIES, SEVERITY_CONCENTRATION
    )
    mu, sigma, n_durations, duration_prior = fit_durations(incidents, services)

    has_causes = incidents["caused_by"].notna().any()
    exposures, hits = edge_evidence(incidents, topology)
    if not has_causes:  # no caused_by at all: absence of links is no evidence of no cascades
        exposures, hits = np.zeros_like(exposures), np.zeros_like(hits)
    prior_a, prior_b = fit_beta_prior(hits, exposures)
    edge_a, edge_b = prior_a + hits, prior_b + exposures - hits
    propagation = beta_interval(edge_a, edge_b)

    service_rows = []
    for i, name in enumerate(services):
        source = (
            "prior"
            if duration_prior["source"] == "default"
            else ("data" if n_durations[i] > 0 else "pooled")
        )
        service_rows.append(
            {
                "service": name,
                "incidents": int(total[i]),
                "root_incidents": int(root[i]),
                "incident_rate_per_day": _pick(incident_rate, i),
                "root_rate_per_day": _pick(root_rate_interval, i),
                "root_rate_posterior": {"shape": float(root_shape[i]), "rate": float(root_rate[i])},
                "mttr_minutes": {
                    "p50": _round(math.exp(mu[i])),
                    "p90": _round(math.exp(mu[i] + Z90 * sigma)),
                },
                "mttr_source": source,
                "duration_minutes_lognormal": {"mu": float(mu[i]), "sigma": float(sigma)},
                "severity_probabilities": _mix(severities[i], SEVERITIES),
                "failure_modes": _mix(modes[i], FAILURE_MODES),
            }
        )
    edge_rows = [
        {
            "service": services[v],
            "depends_on": services[u],
            "propagation_probability": _pick(propagation, k),
            "posterior": {"alpha": float(edge_a[k]), "beta": float(edge_b[k])},
            "evidence": {"exposures": int(exposures[k]), "hits": int(hits[k])},
        }
        for k, (u, v) in enumerate(
            zip(topology.edge_dependency, topology.edge_dependent, strict=True)
        )
    ]
    return ModelDoc.model_validate(
        {
            "window": {"start": start.isoformat(), "end": end.isoformat(), "days": round(days, 6)},
            "inputs": {
                "incidents": int(incidents["incident_id"].nunique()),
                "incident_rows": len(incidents),
                "root_incidents": int(root.sum()),
                "services": len(services),
                "edges": len(edge_rows),
            },
            "priors": {
                "incident_rate": {"alpha": alpha_all, "beta": beta_all},
                "root_rate": {"alpha": alpha_root, "beta": beta_root},
                "propagation": {
                    "alpha": prior_a,
                    "beta": prior_b,
                    "source": "data" if has_causes else "default",
                },
                "duration_log_minutes": duration_prior,
                "concentration": {
                    "failure_modes": MODE_CONCENTRATION,
                    "severity": SEVERITY_CONCENTRATION,
                },
            },
            "services": service_rows,
            "edges": edge_rows,
        }
    )


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _pick(interval: dict[str, np.ndarray], i: int) -> dict[str, float]:
    return {key: _round(float(values[i])) for key, values in interval.items()}


def _mix(row: np.ndarray, vocabulary: tuple[str, ...]) -> dict[str, float]:
    return {label: _round(float(p)) for label, p in zip(vocabulary, row, strict=True)}
