"""The trace prior (docs/model.md): coverage from the traces moves each traced edge's prior
mean, when the cascade evidence says it should, and is ignored when it says it should not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from whatif import model

EDGES = 300
TRUE_CONCENTRATION = 20.0
CLASS_MEAN = 0.35


def _fleet(seed: int, informative: bool, trials_per_edge: float):
    """Edges whose true propagation follows their coverage (or not), with a few cascade
    trials each: (coverage, true p, evidence)."""
    rng = np.random.default_rng(seed)
    coverage = rng.uniform(0.02, 1.0, EDGES)
    mean = np.full(EDGES, CLASS_MEAN)
    if informative:
        mean = np.clip(CLASS_MEAN * coverage / coverage.mean(), 0.01, 0.95)
    p = rng.beta(mean * TRUE_CONCENTRATION, (1 - mean) * TRUE_CONCENTRATION)
    exposures = rng.poisson(trials_per_edge, EDGES).astype(float)
    hits = rng.binomial(exposures.astype(int), p).astype(float)
    return coverage, p, {"hits": hits, "exposures": exposures}


def _posterior(evidence, coverage=None, learn=True):
    hard = np.full(EDGES, "hard", dtype=object)
    a, b, priors = model.propagation_posteriors(evidence, hard, learn, coverage)
    return a, b, priors["propagation_hard"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_coverage_that_predicts_propagation_is_used_and_recovers_it_better(seed):
    coverage, truth, evidence = _fleet(seed, informative=True, trials_per_edge=2.0)
    a0, b0, _ = _posterior(evidence)
    a1, b1, prior = _posterior(evidence, coverage)
    error_without = np.abs(a0 / (a0 + b0) - truth).mean()
    error_with = np.abs(a1 / (a1 + b1) - truth).mean()
    assert prior["trace_exponent"] == 1.0
    assert prior["traced_edges"] == EDGES
    assert error_with < 0.8 * error_without
    # Still honest about uncertainty: at least 90 % of true values in the 90 % intervals.
    inside = (truth >= stats.beta.ppf(0.05, a1, b1)) & (truth <= stats.beta.ppf(0.95, a1, b1))
    assert inside.mean() >= 0.9


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_coverage_that_says_nothing_is_ignored_when_the_evidence_shows_it(seed):
    coverage, _, evidence = _fleet(seed, informative=False, trials_per_edge=4.0)
    a0, b0, _ = _posterior(evidence)
    a1, b1, prior = _posterior(evidence, coverage)
    assert prior["trace_exponent"] == 0.0
    np.testing.assert_allclose(a1, a0)
    np.testing.assert_allclose(b1, b0)


def test_without_cascade_evidence_the_prior_follows_coverage_and_keeps_the_class_mean():
    coverage, _, evidence = _fleet(4, informative=True, trials_per_edge=2.0)
    empty = {key: np.zeros(EDGES) for key in evidence}
    a0, b0, class_prior = _posterior(empty, learn=False)
    a1, b1, prior = _posterior(empty, coverage, learn=False)
    mean = a1 / (a1 + b1)
    assert prior["trace_exponent"] == 1.0
    assert np.corrcoef(mean, coverage)[0, 1] > 0.999
    class_mean = class_prior["alpha"] / (class_prior["alpha"] + class_prior["beta"])
    assert mean.mean() == pytest.approx(class_mean, rel=1e-6)
    np.testing.assert_allclose(a1 + b1, a0 + b0)  # the class's concentration, not more certain


def test_untraced_edges_keep_the_class_prior():
    coverage, _, evidence = _fleet(5, informative=True, trials_per_edge=2.0)
    coverage[::2] = np.nan
    a0, _, _ = _posterior(evidence)
    a1, _, prior = _posterior(evidence, coverage)
    np.testing.assert_allclose(a1[::2], a0[::2])
    assert prior["traced_edges"] == EDGES // 2
    assert not np.allclose(a1[1::2], a0[1::2])
