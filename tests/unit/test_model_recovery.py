"""Parameter recovery: fit the model on histories drawn from a known truth and find it again.

The requirement (model issue): the 90 % intervals cover the true root rates of at least 80 % of
services and the true cascade probabilities of at least 75 % of well-observed edges, both with
and without `caused_by`; the posterior-mean error of rates is no worse than per-service maximum
likelihood, and clearly better when the history is short (about four months).

The histories come from whatif.synthetic.known_history: fleets of 120 services in a layered
graph, Gamma-distributed root rates, Beta(2, 5) propagation probabilities, independent cascades.
Without `caused_by` the model has to recognise cascades from timing (a dependency's incident
that started shortly before); the tests are the same, and so are the thresholds.

Issue 14 adds a truth that the model's priors do not match: the sample generator's
(whatif.synthetic.sample_history), whose hard and soft edges are not one Beta distribution
each. There the cascade intervals must cover 85-95 % of the true probabilities of all edges,
without ranking them worse than before.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from whatif import model
from whatif.schemas import ModelDoc
from whatif.synthetic import KnownHistory, SampleHistory, known_history, sample_history
from whatif.synthetic.histories import AS_OF
from whatif.synthetic.sample import SAMPLE_AS_OF
from whatif.topology import Topology

# Six fleets (720 services, ~800 edges) per variant: one fleet's error ratio is too noisy to
# compare estimators on (see test_posterior_mean_rates_are_no_worse_than_maximum_likelihood).
SEEDS = (0, 1, 2, 3, 4, 5)
LONG_DAYS = 730  # two years
SHORT_DAYS = 120  # about four months
# An edge is well observed when its dependency failed at least this often in the history: each
# failure is one trial of the edge. Counted from the generated history, not from the model's
# `evidence`, so that the model cannot choose the edges it is judged on.
WELL_OBSERVED_FAILURES = 15
MIN_WELL_OBSERVED_EDGES = 20  # per fleet, so that the edge test can fail meaningfully
# The 90 % interval of a Beta posterior after 15 trials, half of them hits, from a flat prior:
# as wide as 15 trials leave a probability (the widest case, p = 1/2). Well-observed edges'
# intervals must be no wider on average, or they cover the truth by being vague (the
# no-evidence default Beta(1, 4) spans 0.51, and covers most Beta(2, 5) draws).
FIFTEEN_TRIALS_WIDTH = float(np.diff(stats.beta.ppf([0.05, 0.95], 8.5, 8.5))[0])  # 0.39

variants = pytest.mark.parametrize(
    "with_caused_by", [True, False], ids=["with_caused_by", "without_caused_by"]
)

# The sample generator's truth: 47 fixed edges, 32 hard ones spread like a Beta with
# a + b = 17 and 15 soft ones like a + b = 92, measured over twenty histories (940 edge
# estimates) per window: the default two years and one year. A Beta prior per class plugged
# in at its best fit covered 0.846 and 0.816 of them, its hard edges 0.811 and 0.758.
SAMPLE_SEEDS = tuple(range(20))
SAMPLE_WINDOWS = (730, 365)
# Spearman correlation of the posterior means with the truth on those histories, before the
# hierarchical prior: coverage must not be bought by ranking the edges worse.
SAMPLE_RANK_CORRELATION_BEFORE = {730: 0.855, 365: 0.787}


@functools.cache
def fitted(seed: int, days: int, with_caused_by: bool) -> tuple[KnownHistory, ModelDoc]:
    history = known_history(seed, days, with_caused_by)
    topology = Topology.from_frame(history.topology)
    return history, model.fit(history.incidents, topology, AS_OF, days, history.data_start)


def rate_table(seed: int, days: int, with_caused_by: bool) -> pd.DataFrame:
    """Per service: the true root rate, the model's interval and posterior mean, and the
    per-service maximum-likelihood rate on the model's own root attribution."""
    history, doc = fitted(seed, days, with_caused_by)
    by_name = {s.service: s for s in doc.services}
    rows = [by_name[name] for name in history.root_rate.index]
    return pd.DataFrame(
        {
            "seed": seed,
            "truth": history.root_rate.to_numpy(),
            "p05": [s.root_rate_per_day.p05 for s in rows],
            "p95": [s.root_rate_per_day.p95 for s in rows],
            "mean": [s.root_rate_per_day.mean for s in rows],
            "ml": [s.root_incidents / doc.window.days for s in rows],
        },
        index=history.root_rate.index,
    )


def edge_table(seed: int, with_caused_by: bool) -> pd.DataFrame:
    """Per edge: the true probability, the model's interval, and how often the dependency
    failed in the history."""
    history, doc = fitted(seed, LONG_DAYS, with_caused_by)
    by_key = {(e.depends_on, e.service): e.propagation_probability for e in doc.edges}
    keys = list(history.propagation.index)
    dependency = history.propagation.index.get_level_values("depends_on")
    return pd.DataFrame(
        {
            "seed": seed,
            "truth": history.propagation.to_numpy(),
            "p05": [by_key[k].p05 for k in keys],
            "p95": [by_key[k].p95 for k in keys],
            "dependency_failures": history.failures.loc[dependency].to_numpy(),
        },
        index=history.propagation.index,
    )


@functools.cache
def sample_fitted(seed: int, days: int) -> tuple[SampleHistory, ModelDoc]:
    history = sample_history(seed, days)
    doc = model.fit(history.incidents, history.topology, SAMPLE_AS_OF, days, history.data_start)
    return history, doc


def sample_edge_table(days: int) -> pd.DataFrame:
    """Per edge of each sample history: the true probability, the model's posterior mean and
    interval, the edge's class and its evidence."""
    rows = []
    for seed in SAMPLE_SEEDS:
        history, doc = sample_fitted(seed, days)
        rows += [
            {
                "seed": seed,
                "criticality": e.criticality,
                "truth": history.propagation[(e.depends_on, e.service)],
                "mean": e.propagation_probability.mean,
                "p05": e.propagation_probability.p05,
                "p95": e.propagation_probability.p95,
                "hits": e.evidence.hits,
                "exposures": e.evidence.exposures,
            }
            for e in doc.edges
        ]
    return pd.DataFrame(rows)


def unpooled_width(table: pd.DataFrame) -> pd.Series:
    """The width of each edge's 90 % interval on its own evidence, from a flat prior: what an
    edge learns without borrowing from its class."""
    hits, misses = table["hits"] + 1.0, table["exposures"] - table["hits"] + 1.0
    return pd.Series(stats.beta.ppf(0.95, hits, misses) - stats.beta.ppf(0.05, hits, misses))


def covered(table: pd.DataFrame) -> pd.Series:
    return (table["p05"] <= table["truth"]) & (table["truth"] <= table["p95"])


def squared_error_ratio(table: pd.DataFrame) -> float:
    """Posterior-mean squared error over maximum likelihood's, summed over all services."""
    posterior = ((table["mean"] - table["truth"]) ** 2).sum()
    likelihood = ((table["ml"] - table["truth"]) ** 2).sum()
    return float(posterior / likelihood)


def per_seed(table: pd.DataFrame, measure) -> str:
    return ", ".join(f"{seed}: {measure(group):.3f}" for seed, group in table.groupby("seed"))


def error_detail(table: pd.DataFrame) -> str:
    fleets = per_seed(table, squared_error_ratio)
    return f"posterior / ML squared error {squared_error_ratio(table):.3f}; per fleet {fleets}"


# --- the requirement -----------------------------------------------------------------------


@variants
def test_root_rate_intervals_cover_the_true_rates(with_caused_by):
    table = pd.concat([rate_table(seed, LONG_DAYS, with_caused_by) for seed in SEEDS])
    coverage = covered(table).mean()
    detail = f"coverage {coverage:.3f}; per fleet {per_seed(table, lambda g: covered(g).mean())}"
    assert coverage >= 0.80, detail
    assert coverage <= 0.99, detail  # nominal 90 %: far above it, the intervals are too wide


@variants
def test_cascade_intervals_cover_the_true_probabilities_of_well_observed_edges(with_caused_by):
    table = pd.concat([edge_table(seed, with_caused_by) for seed in SEEDS])
    well = table[table["dependency_failures"] >= WELL_OBSERVED_FAILURES]
    counts = well.groupby("seed").size().reindex(SEEDS, fill_value=0)
    assert (counts >= MIN_WELL_OBSERVED_EDGES).all(), counts.to_dict()  # the generator's job

    coverage = covered(well).mean()
    width = (well["p95"] - well["p05"]).mean()
    detail = (
        f"{len(well)} well-observed edges: coverage {coverage:.3f}, mean 90 % width "
        f"{width:.3f} (at most {FIFTEEN_TRIALS_WIDTH:.3f}); "
        f"per fleet {per_seed(well, lambda g: covered(g).mean())}"
    )
    assert coverage >= 0.75, detail
    assert coverage <= 0.99, detail
    assert width <= FIFTEEN_TRIALS_WIDTH, detail  # covering by evidence, not by vagueness


@pytest.mark.parametrize("days", SAMPLE_WINDOWS)
def test_cascade_intervals_cover_a_truth_that_is_not_one_beta_per_class(days):
    table = sample_edge_table(days)
    coverage = covered(table).mean()
    hard = covered(table[table["criticality"] == "hard"]).mean()
    width = (table["p95"] - table["p05"]).mean()
    unpooled = unpooled_width(table).mean()
    rank_correlation = stats.spearmanr(table["mean"], table["truth"]).statistic
    detail = (
        f"{len(table)} edges over {len(SAMPLE_SEEDS)} histories of {days} days: coverage "
        f"{coverage:.3f} (hard edges {hard:.3f}), mean 90 % width {width:.3f} (unpooled "
        f"{unpooled:.3f}), Spearman {rank_correlation:.3f} (before: "
        f"{SAMPLE_RANK_CORRELATION_BEFORE[days]}); per history "
        f"{per_seed(table, lambda g: covered(g).mean())}"
    )
    assert 0.85 <= coverage <= 0.95, detail
    assert hard >= 0.85, detail  # the class whose truth spreads widest
    assert width <= unpooled, detail  # pooling buys precision: no covering by vagueness
    assert rank_correlation >= SAMPLE_RANK_CORRELATION_BEFORE[days], detail


# Squared error, not absolute: the posterior mean is the estimate that minimises expected
# squared error (the Bayes estimate under that loss; under absolute error it would be the
# posterior median), so squared error is the loss on which "borrowing strength beats each
# service on its own" is a claim about this estimate; it is also how rate errors add up when
# the simulation turns rates into expected incident counts. The sums run over all six fleets:
# at two years the expected gain is small (about T / (beta + T) = 0.92 for this truth), and one
# fleet's ratio, dominated by its few busy services, varies by about +-0.075 between seeds
# (+-0.03 over six fleets).


@variants
def test_posterior_mean_rates_are_no_worse_than_maximum_likelihood(with_caused_by):
    table = pd.concat([rate_table(seed, LONG_DAYS, with_caused_by) for seed in SEEDS])
    ratio = squared_error_ratio(table)
    assert ratio <= 1.0, error_detail(table)


@variants
def test_posterior_mean_rates_clearly_beat_maximum_likelihood_on_a_short_history(with_caused_by):
    table = pd.concat([rate_table(seed, SHORT_DAYS, with_caused_by) for seed in SEEDS])
    ratio = squared_error_ratio(table)
    assert ratio <= 0.8, error_detail(table)
