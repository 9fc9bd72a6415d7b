"""Backtest: rolling-origin forecasts scored honestly against naive baselines."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from test_model import AS_OF, incidents_frame, topology_frame
from whatif import backtest, model, rates
from whatif.config import ModelSettings
from whatif.synthetic import known_history
from whatif.topology import Topology


@pytest.fixture(scope="module")
def fleet_doc():
    history = known_history(seed=3, days=730, with_caused_by=True)
    topology = Topology.from_frame(history.topology)
    return model.fit(history.incidents, topology, AS_OF, 730, history.data_start)


def test_the_model_beats_every_baseline_on_a_heterogeneous_fleet(fleet_doc):
    result = fleet_doc.backtest
    assert result.status == "done"
    assert result.folds == 6 and len(result.origins) == 6
    assert result.evaluations == 6 * result.services
    scores = result.scores
    assert set(scores) == {"hierarchical", "global_rate", "per_service_ml", "recent_rate"}
    assert result.winner == "hierarchical"
    for name in ("global_rate", "per_service_ml", "recent_rate"):
        assert scores["hierarchical"].log_score > scores[name].log_score, name
    assert 0.85 <= scores["hierarchical"].coverage_90 <= 0.99
    assert 0.80 <= scores["hierarchical"].pit_coverage_90 <= 0.95
    # Maximum likelihood calls a failure of a service that had none before impossible.
    assert scores["per_service_ml"].zero_probability_outcomes > 0
    assert scores["hierarchical"].zero_probability_outcomes == 0
    for comparison in result.comparison.values():
        assert comparison.log_score_difference > 0
    assert result.verdict.startswith("The model predicted held-out root-incident counts better")
    observed = {s.observed_total for s in scores.values()}
    assert len(observed) == 1  # every model is scored on the same outcomes
    assert len(result.choices) == 6  # what each fold chose, from its own past


def test_on_a_drifting_fleet_the_model_follows_and_beats_the_recent_rate():
    # Every service's rate triples 300 days before the end (130 days before the first fold):
    # the window average is far too low, the last 90 days' rate is noisy; the model follows.
    rng = np.random.default_rng(9)
    services = [f"s{i}" for i in range(40)]
    base = rng.gamma(2.0, 0.015, len(services))
    rows = []
    for name, rate in zip(services, base, strict=True):
        for offset in np.concatenate(
            [
                rng.uniform(300, 730, rng.poisson(rate * 430)),
                rng.uniform(0, 300, rng.poisson(3 * rate * 300)),
            ]
        ):
            rows.append(
                {
                    "incident_id": f"{name}-{offset:.6f}",
                    "service": name,
                    "started_at": AS_OF - timedelta(days=float(offset)),
                }
            )
    topology = Topology.from_frame(topology_frame(services))
    doc = model.fit(incidents_frame(rows), topology, AS_OF, 730, "2024-01-01")
    scores = doc.backtest.scores
    ours = scores["hierarchical"]
    assert abs(ours.predicted_total / ours.observed_total - 1) <= 0.15
    assert scores["global_rate"].predicted_total < 0.75 * ours.observed_total
    for name in ("global_rate", "per_service_ml", "recent_rate"):
        assert doc.backtest.comparison[name].log_score_difference > 0, name
    assert doc.rates.half_life_days is not None
    assert doc.rates.drift.detected and doc.rates.drift.ratio > 1.5


def test_a_fold_sees_only_the_history_before_its_origin():
    rng = np.random.default_rng(2)
    n = 2000
    t = np.sort(rng.uniform(0, 700, n))
    svc = rng.integers(0, 40, n)
    begins = np.zeros(40)
    settings = ModelSettings()
    lattice_points = rates.build_lattice(rates.Events(t, svc, begins), 700.0, 28.0).points
    point = int(np.flatnonzero(lattice_points == 700.0 - 4 * 28.0)[0])
    origin = lattice_points[point]
    later = t >= origin
    shuffled = svc.copy()
    shuffled[later] = rng.integers(0, 40, later.sum())  # a different future

    def fold(services: np.ndarray) -> dict:
        events = rates.Events(t, services, begins)
        fit = rates.fit_rates(events, events, 700.0, 28.0)
        return backtest._fold(fit.lattice, events, point, settings.fixed_half_life)

    before, after = fold(svc), fold(shuffled)
    for name in backtest.MODELS:  # the same predictions (column 2: predicted mean)...
        np.testing.assert_array_equal(before[name][:, 2], after[name][:, 2])
    assert before["choice"] == after["choice"]
    assert not np.array_equal(before["observed"], after["observed"])  # ...of other outcomes


def test_a_short_history_or_zero_folds_skip_the_backtest_with_a_reason():
    rows = incidents_frame(
        [
            {"incident_id": f"I{k}", "service": "db", "started_at": AS_OF - timedelta(days=k + 1)}
            for k in range(50)
        ]
    )
    topology = Topology.from_frame(topology_frame(["db"]))
    short = model.fit(rows, topology, AS_OF, 730)  # the data covers 50 days
    assert short.backtest.status == "skipped"
    assert "the history covers 50 days" in short.backtest.reason
    off = model.fit(rows, topology, AS_OF, 730, "2024-01-01", ModelSettings(backtest_folds=0))
    assert off.backtest.model_dump(exclude_defaults=True) == {
        "status": "skipped",
        "reason": "turned off (backtest folds = 0)",
    }


def test_when_a_baseline_wins_the_verdict_says_so():
    # Every service fails at the same rate: one global rate is the true model, and a
    # hierarchical model can at best tie with it.
    rng = np.random.default_rng(4)
    services = [f"s{i}" for i in range(60)]
    rows = [
        {
            "incident_id": f"{s}-{k}",
            "service": s,
            "started_at": AS_OF - timedelta(days=float(d)),
        }
        for s in services
        for k, d in enumerate(rng.uniform(0, 730, rng.poisson(0.03 * 730)))
    ]
    doc = model.fit(
        incidents_frame(rows),
        Topology.from_frame(topology_frame(services)),
        AS_OF,
        730,
        "2024-01-01",
    )
    result = doc.backtest
    difference = result.comparison["global_rate"].log_score_difference
    assert abs(difference) < 0.01  # the fitted prior is (nearly) the global rate
    assert result.winner == "global_rate"  # by a hair, on this seed: and the report says so
    assert result.verdict.startswith("The model did not beat one global rate on this history")
    assert "read its probabilities with that in mind" in result.verdict
    verdict = backtest._verdict(
        {
            "global_rate": {"log_score_difference": -0.02, "standard_error": 0.01},
            "per_service_ml": {"log_score_difference": 0.3, "standard_error": 0.05},
            "recent_rate": {"log_score_difference": 0.0, "standard_error": 0.02},
        },
        28.0,
    )
    assert verdict.startswith(
        "The model did not beat one global rate or each service's rate over the last 90 days"
    )
    assert "-0.020 ± 0.010 against one global rate" in verdict
    close = backtest._verdict(
        {
            "global_rate": {"log_score_difference": 0.01, "standard_error": 0.02},
            "per_service_ml": {"log_score_difference": 0.3, "standard_error": 0.05},
        },
        28.0,
    )
    assert close.startswith("The model predicted held-out root-incident counts better than")
    assert close.endswith(
        "Its lead over one global rate is within one standard error: a lean, not proof."
    )


def test_a_fixed_half_life_is_used_inside_each_fold():
    history = known_history(seed=3, days=730, with_caused_by=True)
    topology = Topology.from_frame(history.topology)
    doc = model.fit(
        history.incidents,
        topology,
        AS_OF,
        730,
        history.data_start,
        ModelSettings(half_life_days=100),
    )
    assert {c["half_life_days"] for c in doc.backtest.choices} == {100.0}
    assert doc.rates.half_life_days == 100.0 and doc.rates.chosen_by == "fixed"
