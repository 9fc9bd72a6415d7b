"""Model: empirical-Bayes rates that are calibrated, cascade evidence from caused_by, durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from whatif import model
from whatif.schemas import FAILURE_MODES
from whatif.topology import Topology

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def topology_frame(services: list[str], depends_on: dict[str, list[str]] | None = None):
    depends_on = depends_on or {}
    return pd.DataFrame(
        {
            "service": services,
            "depends_on": [depends_on.get(s, []) for s in services],
            "tier": "",
            "owner_team": "",
            "user_facing": None,
            "runbook_url": "",
            "oncall": "",
            "slo_target": np.nan,
            "traffic_weight": np.nan,
        }
    )


def incidents_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column, default in (
        ("severity", "SEV3"),
        ("category", "other"),
        ("caused_by", None),
        ("minutes", 30.0),
    ):
        if column not in frame:
            frame[column] = default
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    frame["resolved_at"] = frame["started_at"] + pd.to_timedelta(frame["minutes"], unit="min")
    return frame.drop(columns=["minutes"])


def poisson_history(rng: np.random.Generator, rates: np.ndarray, days: int) -> pd.DataFrame:
    rows, counter = [], 0
    start = AS_OF - timedelta(days=days)
    for i, rate in enumerate(rates):
        for _ in range(rng.poisson(rate * days)):
            counter += 1
            offset = timedelta(days=float(rng.uniform(0, days)))
            rows.append(
                {"incident_id": f"I{counter}", "service": f"s{i}", "started_at": start + offset}
            )
    # Anchor the window's start so exposure is the full window for every service.
    rows.append({"incident_id": "anchor", "service": "s0", "started_at": start})
    return incidents_frame(rows)


def test_gamma_prior_is_recovered_from_many_services():
    rng = np.random.default_rng(7)
    true_alpha, true_beta = 2.0, 100.0  # mean 0.02 per day
    rates = rng.gamma(true_alpha, 1 / true_beta, size=400)
    counts = rng.poisson(rates * 730)
    alpha, beta = model.fit_gamma_prior(counts, np.full(400, 730.0))
    assert alpha / beta == pytest.approx(rates.mean(), rel=0.05)  # the realised fleet mean
    assert alpha == pytest.approx(true_alpha, rel=0.25)  # the spread between services


def test_rate_intervals_are_calibrated_and_no_rate_is_zero():
    rng = np.random.default_rng(11)
    rates = rng.gamma(1.5, 1 / 150.0, size=150)
    history = poisson_history(rng, rates, 730)
    services = [f"s{i}" for i in range(150)]
    doc = model.fit(history, Topology.from_frame(topology_frame(services)), AS_OF, 730)
    true_rate = {f"s{i}": rate for i, rate in enumerate(rates)}
    inside = [
        s.root_rate_per_day.p05 <= true_rate[s.service] <= s.root_rate_per_day.p95
        for s in doc.services
    ]
    assert 0.8 <= np.mean(inside) <= 0.98  # nominal 90 %
    assert min(s.root_rate_per_day.mean for s in doc.services) > 0
    silent = [s for s in doc.services if s.incidents == 0]
    busiest = max(doc.services, key=lambda s: s.incidents)
    if silent:
        assert silent[0].root_rate_per_day.mean < busiest.root_rate_per_day.mean


def test_cascade_evidence_counts_caused_by_links_per_edge():
    topology = Topology.from_frame(
        topology_frame(["web", "api", "db"], {"web": ["api"], "api": ["db"]})
    )
    rows = []
    for k in range(10):  # 10 db incidents, 6 of which took api down, 2 of those also web
        day = AS_OF - timedelta(days=300 - 20 * k)
        rows.append({"incident_id": f"D{k}", "service": "db", "started_at": day})
        if k < 6:
            rows.append(
                {
                    "incident_id": f"A{k}",
                    "service": "api",
                    "caused_by": f"D{k}",
                    "started_at": day + timedelta(minutes=5),
                }
            )
        if k < 2:
            rows.append(
                {
                    "incident_id": f"W{k}",
                    "service": "web",
                    "caused_by": f"A{k}",
                    "started_at": day + timedelta(minutes=7),
                }
            )
    doc = model.fit(incidents_frame(rows), topology, AS_OF, 730)
    edges = {(e.depends_on, e.service): e for e in doc.edges}
    assert edges[("db", "api")].evidence.model_dump() == {"exposures": 10, "hits": 6}
    assert edges[("api", "web")].evidence.model_dump() == {"exposures": 6, "hits": 2}
    assert (
        edges[("db", "api")].propagation_probability.mean
        > edges[("api", "web")].propagation_probability.mean
    )
    api = next(s for s in doc.services if s.service == "api")
    assert (api.incidents, api.root_incidents) == (6, 0)
    assert doc.priors["propagation"]["source"] == "data"


def test_without_any_caused_by_edges_keep_the_default_prior():
    topology = Topology.from_frame(topology_frame(["api", "db"], {"api": ["db"]}))
    rows = [
        {"incident_id": f"I{k}", "service": s, "started_at": AS_OF - timedelta(days=k + 1)}
        for k, s in enumerate(["db", "api", "db", "api"])
    ]
    doc = model.fit(incidents_frame(rows), topology, AS_OF, 730)
    edge = doc.edges[0]
    assert edge.evidence.exposures == 0
    assert edge.propagation_probability.mean == pytest.approx(0.2)
    assert doc.priors["propagation"]["source"] == "default"


def test_durations_are_partially_pooled_towards_the_fleet():
    rng = np.random.default_rng(3)
    rows = []
    for k in range(200):  # "slow": many long incidents; "rare": one short incident
        rows.append(
            {
                "incident_id": f"S{k}",
                "service": "slow",
                "started_at": AS_OF - timedelta(days=k + 1),
                "minutes": float(np.exp(rng.normal(np.log(240), 0.5))),
            }
        )
    rows.append(
        {
            "incident_id": "R1",
            "service": "rare",
            "started_at": AS_OF - timedelta(days=3),
            "minutes": 5.0,
        }
    )
    doc = model.fit(
        incidents_frame(rows), Topology.from_frame(topology_frame(["slow", "rare"])), AS_OF, 730
    )
    by_name = {s.service: s for s in doc.services}
    slow, rare = by_name["slow"], by_name["rare"]
    assert slow.mttr_minutes.p50 == pytest.approx(240, rel=0.1)
    assert slow.mttr_minutes.p90 > slow.mttr_minutes.p50
    # One 5-minute incident is weak evidence: the estimate moves towards the fleet, not to 5.
    assert 5.0 < rare.mttr_minutes.p50 < slow.mttr_minutes.p50
    assert rare.mttr_source == "data"


def test_mixes_are_probabilities_shrunk_towards_the_fleet():
    rows = [
        {
            "incident_id": f"I{k}",
            "service": "db",
            "category": "database",
            "severity": "SEV2",
            "started_at": AS_OF - timedelta(days=k + 1),
        }
        for k in range(30)
    ]
    rows.append(
        {
            "incident_id": "X",
            "service": "api",
            "category": "deployment",
            "severity": "SEV4",
            "started_at": AS_OF - timedelta(days=2),
        }
    )
    doc = model.fit(
        incidents_frame(rows), Topology.from_frame(topology_frame(["db", "api"])), AS_OF, 730
    )
    for service in doc.services:
        assert sum(service.failure_modes.values()) == pytest.approx(1.0, abs=1e-5)
        assert sum(service.severity_probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert set(service.failure_modes) == set(FAILURE_MODES)
    by_name = {s.service: s for s in doc.services}
    db, api = by_name["db"], by_name["api"]
    assert max(db.failure_modes, key=db.failure_modes.get) == "database"
    assert db.failure_modes["database"] > 0.8
    # api saw one deployment failure; the fleet's database-heavy mix still weighs in.
    assert api.failure_modes["deployment"] > api.failure_modes["network"]
    assert api.failure_modes["database"] > 0.3


def test_notebook_history_without_end_times_uses_the_documented_duration_prior():
    rows = incidents_frame(
        [{"incident_id": "A", "service": "db", "started_at": AS_OF - timedelta(days=5)}]
    )
    rows["resolved_at"] = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns, UTC]")
    doc = model.fit(rows, Topology.from_frame(topology_frame(["db"])), AS_OF, 730)
    assert doc.services[0].mttr_source == "prior"
    assert doc.services[0].mttr_minutes.p50 == pytest.approx(60.0)


def test_window_starts_no_earlier_than_the_history():
    rows = incidents_frame(
        [{"incident_id": "A", "service": "db", "started_at": AS_OF - timedelta(days=100)}]
    )
    start, end = model.observation_window(rows, AS_OF, 730)
    assert (end - start).days == 100
