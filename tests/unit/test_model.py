"""Model: empirical-Bayes rates that are calibrated, cascade evidence from caused_by, durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import special
from whatif import model
from whatif.config import ModelSettings
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
    no_inference = {"inferred_hits": 0, "censored": 0, "gameday_trials": 0, "gameday_hits": 0}
    assert edges[("db", "api")].evidence.model_dump() == {"exposures": 10, "hits": 6} | no_inference
    assert edges[("api", "web")].evidence.model_dump() == {"exposures": 6, "hits": 2} | no_inference
    assert (
        edges[("db", "api")].propagation_probability.mean
        > edges[("api", "web")].propagation_probability.mean
    )
    api = next(s for s in doc.services if s.service == "api")
    assert (api.incidents, api.root_incidents) == (6, 0)
    assert (doc.attribution.caused_by, doc.attribution.inferred) == (8, 0)
    # Two observed edges are too few to fit a prior on: the documented default is used.
    assert doc.priors["propagation"]["source"] == "default"


def test_without_caused_by_or_inference_edges_keep_the_default_prior():
    topology = Topology.from_frame(topology_frame(["api", "db"], {"api": ["db"]}))
    rows = [
        {"incident_id": f"I{k}", "service": s, "started_at": AS_OF - timedelta(days=k + 1)}
        for k, s in enumerate(["db", "api", "db", "api"])
    ]
    no_inference = ModelSettings(cascade_window_minutes=0)
    doc = model.fit(incidents_frame(rows), topology, AS_OF, 730, settings=no_inference)
    assert doc.attribution.inference == "off: cascade window set to 0"
    edge = doc.edges[0]
    assert edge.evidence.exposures == 0
    assert edge.propagation_probability.mean == pytest.approx(0.2)
    assert doc.priors["propagation"]["source"] == "default"


def test_game_day_trials_are_cascade_evidence_of_the_edges_they_watched():
    """A journal's injection into db, with api deviating and web not, is a hit of db -> api;
    web (reached through api, no edge from db) is no trial of any edge."""
    topology = Topology.from_frame(
        topology_frame(["web", "api", "db"], {"web": ["api"], "api": ["db"]})
    )
    rows = [
        {"incident_id": f"I{k}", "service": s, "started_at": AS_OF - timedelta(days=k + 1)}
        for k, s in enumerate(["db", "api", "web", "db"])
    ]
    no_inference = ModelSettings(cascade_window_minutes=0)
    trials = [("db", "api", True), ("db", "api", True), ("db", "api", False), ("db", "web", True)]
    without = model.fit(incidents_frame(rows), topology, AS_OF, 730, settings=no_inference)
    with_days = model.fit(
        incidents_frame(rows), topology, AS_OF, 730, settings=no_inference, gameday_trials=trials
    )
    edges = {(e.depends_on, e.service): e for e in with_days.edges}
    db_api = edges[("db", "api")].evidence
    assert (db_api.exposures, db_api.hits, db_api.gameday_trials, db_api.gameday_hits) == (
        3,
        2,
        3,
        2,
    )
    assert edges[("api", "web")].evidence.gameday_trials == 0
    assert with_days.inputs["gameday_trials"] == 3
    before = {(e.depends_on, e.service): e for e in without.edges}[("db", "api")]
    # Beta(1, 4) (unknown criticality, no cascade evidence) updated by 2 hits in 3 trials.
    assert before.propagation_probability.mean == pytest.approx(0.2)
    assert edges[("db", "api")].propagation_probability.mean == pytest.approx(3 / 8)


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


# --- root attribution ------------------------------------------------------------------------


def chain_topology(soft: dict[str, list[str]] | None = None) -> Topology:
    """web calls api and auth; both call db. Failure flows db -> api/auth -> web."""
    frame = topology_frame(
        ["web", "api", "auth", "db"], {"web": ["api", "auth"], "api": ["db"], "auth": ["db"]}
    )
    if soft is not None:
        frame["soft_depends_on"] = [soft.get(s, []) for s in frame["service"]]
    return Topology.from_frame(frame)


def at(minutes: float) -> datetime:
    return AS_OF - timedelta(days=50) + timedelta(minutes=minutes)


def test_incidents_without_caused_by_are_attributed_to_a_recent_dependency_failure():
    rows = incidents_frame(
        [
            {"incident_id": "D1", "service": "db", "started_at": at(0)},
            {"incident_id": "A1", "service": "api", "started_at": at(10)},  # inferred: db
            {"incident_id": "W1", "service": "web", "started_at": at(12)},  # inferred: api
            {"incident_id": "A2", "service": "api", "started_at": at(200)},  # too late: root
            {"incident_id": "D2", "service": "db", "started_at": at(400)},
            {"incident_id": "U2", "service": "auth", "started_at": at(400)},  # same instant
        ]
    )
    attributed = model.attribute(rows, chain_topology(), window_minutes=30).set_index("incident_id")
    how = attributed["how"].to_dict()
    assert how == {
        "D1": "root",
        "A1": "inferred",
        "W1": "inferred",
        "A2": "root",
        "D2": "root",
        "U2": "inferred",  # D2 sorts first at the same instant, so only it can be the parent
    }
    parent_id = attributed["incident_id"].iloc[attributed["parent"]] if False else None
    assert parent_id is None
    positions = model.attribute(rows, chain_topology(), 30)
    by_pos = positions.set_index("pos")["incident_id"]
    parents = {r.incident_id: by_pos[r.parent] for r in positions.itertuples() if r.parent >= 0}
    assert parents == {"A1": "D1", "W1": "A1", "U2": "D2"}
    off = model.attribute(rows, chain_topology(), window_minutes=0)
    assert set(off["how"]) == {"root"}


def test_caused_by_wins_over_timing_and_a_failure_that_was_already_happening_is_censored():
    # db fails; api and auth both go down with it; web's caused_by names api. Whether auth's
    # failure would have taken web down is unseen (web was already down): censored, not a miss.
    rows = incidents_frame(
        [
            {"incident_id": "D1", "service": "db", "started_at": at(0)},
            {"incident_id": "A1", "service": "api", "started_at": at(3), "caused_by": "D1"},
            {"incident_id": "U1", "service": "auth", "started_at": at(4), "caused_by": "D1"},
            {"incident_id": "W1", "service": "web", "started_at": at(6), "caused_by": "A1"},
            {"incident_id": "U2", "service": "auth", "started_at": at(5000)},  # a lone miss
        ]
    )
    doc = model.fit(rows, chain_topology(), AS_OF, 730)
    edges = {(e.depends_on, e.service): e.evidence for e in doc.edges}
    assert (edges[("api", "web")].exposures, edges[("api", "web")].hits) == (1, 1)
    assert edges[("auth", "web")].censored == 1
    assert (edges[("auth", "web")].exposures, edges[("auth", "web")].hits) == (1, 0)
    assert (edges[("db", "auth")].exposures, edges[("db", "auth")].hits) == (1, 1)
    assert doc.attribution.model_dump() | {"inference": "on"} == {
        "window_minutes": 30.0,
        "inference": "on",
        "rows": 5,
        "roots": 2,
        "caused_by": 3,
        "inferred": 0,
    }


def test_date_only_timestamps_turn_inference_off():
    rows = incidents_frame(
        [
            {"incident_id": "D1", "service": "db", "started_at": AS_OF - timedelta(days=3)},
            {"incident_id": "A1", "service": "api", "started_at": AS_OF - timedelta(days=3)},
        ]
    )
    doc = model.fit(rows, chain_topology(), AS_OF, 730)
    assert doc.attribution.inference == "off: the start times are dates only"
    assert doc.attribution.roots == 2
    assert all(e.evidence.exposures == 0 for e in doc.edges)  # no evidence either way


# --- exposure, recency, criticality ------------------------------------------------------------


def test_a_service_created_recently_is_exposed_only_since_then():
    frame = topology_frame(["old", "new"])
    frame["created_at"] = [pd.NaT, pd.Timestamp(AS_OF - timedelta(days=100))]
    topology = Topology.from_frame(frame)
    rows = [
        {"incident_id": f"{s}{k}", "service": s, "started_at": AS_OF - timedelta(days=5 + k)}
        for s in ("old", "new")
        for k in range(5)
    ]
    # The window-average rates (half-life off): all ten incidents fell in the last ten days,
    # which the automatic choice rightly reads as drift, and a 14-day memory forgets exposure.
    off = ModelSettings(half_life_days="off")
    doc = model.fit(
        incidents_frame(rows), topology, AS_OF, 730, data_start="2024-01-01", settings=off
    )
    by_name = {s.service: s for s in doc.services}
    assert by_name["new"].exposure_days == pytest.approx(100)
    assert by_name["old"].exposure_days == pytest.approx(730)
    assert by_name["new"].root_rate_per_day.mean > 3 * by_name["old"].root_rate_per_day.mean


def test_an_incident_before_created_at_extends_the_exposure_to_it():
    frame = topology_frame(["svc"])
    frame["created_at"] = [pd.Timestamp(AS_OF - timedelta(days=10))]
    rows = incidents_frame(
        [{"incident_id": "X", "service": "svc", "started_at": AS_OF - timedelta(days=40)}]
    )
    doc = model.fit(rows, Topology.from_frame(frame), AS_OF, 730, data_start="2024-01-01")
    assert doc.services[0].exposure_days == pytest.approx(40)


def test_a_half_life_weighs_recent_incidents_more():
    topology = Topology.from_frame(topology_frame(["past", "recent", "steady"]))
    rows = []
    for k in range(12):
        rows.append(
            {"incident_id": f"P{k}", "service": "past", "started_at": AS_OF - timedelta(600 + k)}
        )
        rows.append(
            {"incident_id": f"R{k}", "service": "recent", "started_at": AS_OF - timedelta(10 + k)}
        )
        rows.append(
            {
                "incident_id": f"S{k}",
                "service": "steady",
                "started_at": AS_OF - timedelta(60 * k + 5),
            }
        )
    history = incidents_frame(rows)
    off = ModelSettings(half_life_days="off")
    plain_doc = model.fit(history, topology, AS_OF, 730, "2024-01-01", off)
    plain = {s.service: s for s in plain_doc.services}
    weighted_doc = model.fit(
        history, topology, AS_OF, 730, "2024-01-01", ModelSettings(half_life_days=90)
    )
    weighted = {s.service: s for s in weighted_doc.services}
    assert plain["past"].root_rate_per_day.mean == pytest.approx(
        plain["recent"].root_rate_per_day.mean, rel=1e-6
    )
    assert weighted["recent"].root_rate_per_day.mean > 5 * weighted["past"].root_rate_per_day.mean
    assert weighted_doc.settings["half_life_days"] == 90
    assert weighted["recent"].root_incidents == 12  # counts stay counts; the rates are weighted


def test_hard_and_soft_dependencies_get_their_own_priors():
    rng = np.random.default_rng(5)
    services = [f"db{i}" for i in range(8)] + [f"app{i}" for i in range(8)]
    frame = topology_frame(services, {f"app{i}": [f"db{i}", f"db{(i + 1) % 8}"] for i in range(8)})
    frame["soft_depends_on"] = [
        [f"db{(int(s[3:]) + 1) % 8}"] if s.startswith("app") else [] for s in services
    ]
    topology = Topology.from_frame(frame)
    truth = {"hard": 0.7, "soft": 0.05}
    rows, counter = [], 0
    for i in range(8):
        for _ in range(25):
            counter += 1
            start = AS_OF - timedelta(days=float(rng.uniform(1, 700)))
            parent = f"D{counter}"
            rows.append({"incident_id": parent, "service": f"db{i}", "started_at": start})
            for app, kind in ((f"app{i}", "hard"), (f"app{(i - 1) % 8}", "soft")):
                if rng.random() < truth[kind]:
                    counter += 1
                    rows.append(
                        {
                            "incident_id": f"C{counter}",
                            "service": app,
                            "started_at": start + timedelta(minutes=float(rng.uniform(1, 60))),
                            "caused_by": parent,
                        }
                    )
    doc = model.fit(incidents_frame(rows), topology, AS_OF, 730)
    by_kind: dict[str, list[float]] = {"hard": [], "soft": []}
    for edge in doc.edges:
        by_kind[edge.criticality].append(edge.propagation_probability.mean)
    assert len(by_kind["hard"]) == len(by_kind["soft"]) == 8
    assert doc.priors["propagation_hard"]["source"] == "data"
    assert doc.priors["propagation_soft"]["source"] == "data"
    hard_prior = doc.priors["propagation_hard"]
    soft_prior = doc.priors["propagation_soft"]
    assert hard_prior["alpha"] / (hard_prior["alpha"] + hard_prior["beta"]) == pytest.approx(
        0.7, abs=0.1
    )
    assert soft_prior["alpha"] / (soft_prior["alpha"] + soft_prior["beta"]) == pytest.approx(
        0.05, abs=0.05
    )
    assert min(by_kind["hard"]) > max(by_kind["soft"])


def test_a_class_with_too_few_edges_uses_its_documented_default():
    doc = model.fit(
        incidents_frame(
            [
                {"incident_id": "D1", "service": "db", "started_at": at(0)},
                {"incident_id": "A1", "service": "api", "started_at": at(5), "caused_by": "D1"},
            ]
        ),
        chain_topology(soft={"web": ["auth"]}),
        AS_OF,
        730,
    )
    criticality = {(e.depends_on, e.service): e.criticality for e in doc.edges}
    assert criticality == {
        ("api", "web"): "hard",
        ("auth", "web"): "soft",
        ("db", "api"): "hard",
        ("db", "auth"): "hard",
    }
    assert doc.priors["propagation_soft"] == {"alpha": 1.0, "beta": 9.0, "source": "default"}
    assert doc.priors["propagation_hard"] == {"alpha": 2.0, "beta": 3.0, "source": "default"}


def test_a_learned_class_prior_averages_the_edge_posteriors_over_its_mean_and_concentration():
    # Eight observed edges of one class, spread wider than their trials can tell apart, and an
    # edge with no evidence (its posterior is the class prior).
    hits = np.array([2.0, 5, 9, 14, 3, 12, 7, 1, 0])
    trials = np.array([20.0, 25, 22, 24, 6, 30, 15, 3, 0])
    prior, source = model.fit_beta_prior(hits, trials, (2.0, 3.0))
    a, b = prior.posterior_beta(hits, trials)

    # The same posterior by brute force: a fine grid over logit(mean) and log(a + b) with the
    # documented hyper-prior (mean (1 - mean)) ** -0.5 (a + b) ** -1.5, 0.1 <= a + b <= 100.
    u, s = np.meshgrid(np.linspace(-6.0, 4.0, 401), np.linspace(np.log(0.1), np.log(100), 401))
    mean, concentration = special.expit(u.ravel()), np.exp(s.ravel())
    alpha, beta = mean * concentration, (1 - mean) * concentration
    observed = trials > 0
    log_likelihood = (
        special.betaln(hits[observed, None] + alpha, (trials - hits)[observed, None] + beta)
        - special.betaln(alpha, beta)
    ).sum(axis=0)
    log_density = log_likelihood + 0.5 * np.log(mean * (1 - mean)) - 0.5 * np.log(concentration)
    weight = np.exp(log_density - log_density.max())
    weight /= weight.sum()
    posterior_a, posterior_n = alpha + hits[:, None], alpha + beta + trials[:, None]
    expected = (posterior_a / posterior_n) @ weight
    second = (posterior_a * (posterior_a + 1) / (posterior_n * (posterior_n + 1))) @ weight

    assert source == "data"
    assert a / (a + b) == pytest.approx(expected, abs=2e-3)
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert sd == pytest.approx(np.sqrt(second - expected**2), rel=0.02)
    # Each observed edge's posterior is narrower than the class prior it started from.
    assert (sd[observed] < sd[~observed]).all()


# --- response times, time of week, load ---------------------------------------------------------


def test_time_to_detect_and_acknowledge_are_fitted_when_the_timestamps_exist():
    rng = np.random.default_rng(9)
    rows = []
    for k in range(60):
        start = AS_OF - timedelta(days=k + 1)
        rows.append({"incident_id": f"I{k}", "service": "db", "started_at": start})
    history = incidents_frame(rows)
    detect = np.exp(rng.normal(np.log(8), 0.4, len(history)))
    ack = np.exp(rng.normal(np.log(3), 0.4, len(history)))
    history["detected_at"] = history["started_at"] + pd.to_timedelta(detect, unit="min")
    history["acknowledged_at"] = history["detected_at"] + pd.to_timedelta(ack, unit="min")
    doc = model.fit(history, Topology.from_frame(topology_frame(["db"])), AS_OF, 730)
    db = doc.services[0]
    assert db.mttd_minutes.p50 == pytest.approx(8, rel=0.2)
    assert db.mtta_minutes.p50 == pytest.approx(3, rel=0.2)
    without = model.fit(
        incidents_frame(rows), Topology.from_frame(topology_frame(["db"])), AS_OF, 730
    )
    assert without.services[0].mttd_minutes is None


def test_day_of_week_multipliers_follow_the_data_and_stay_flat_when_it_is_thin():
    rng = np.random.default_rng(13)
    topology = Topology.from_frame(topology_frame(["svc"]))
    days = pd.date_range(AS_OF - timedelta(days=728), AS_OF - timedelta(days=1), freq="D")
    weekdays = [d for d in days if d.weekday() < 5]
    busy = rng.choice(len(weekdays), 600)
    rows = [
        {"incident_id": f"I{k}", "service": "svc", "started_at": weekdays[i] + timedelta(hours=14)}
        for k, i in enumerate(busy)
    ]
    doc = model.fit(incidents_frame(rows), topology, AS_OF, 730, "2024-01-01")
    week = doc.time_multipliers.day_of_week
    assert min(week[d] for d in ("Mon", "Tue", "Wed", "Thu", "Fri")) > 1.2
    assert max(week["Sat"], week["Sun"]) < 0.3
    assert sum(week.values()) == pytest.approx(7, rel=0.01)
    assert max(doc.time_multipliers.hour_of_day, key=doc.time_multipliers.hour_of_day.get) == "14"
    thin = model.fit(incidents_frame(rows[:5]), topology, AS_OF, 730, "2024-01-01")
    assert all(0.7 < m < 1.4 for m in thin.time_multipliers.day_of_week.values())


def test_expected_exposure_weights_each_day_of_the_horizon_by_its_weekday():
    week = {"Mon": 1.0, "Tue": 1.0, "Wed": 1.0, "Thu": 1.0, "Fri": 2.0, "Sat": 0.5, "Sun": 0.5}
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    assert model.expected_exposure_days(monday, 7, week) == pytest.approx(7.0)
    friday = datetime(2026, 11, 27, tzinfo=UTC)
    assert model.expected_exposure_days(friday, 1, week) == pytest.approx(2.0)
    assert model.expected_exposure_days(friday + timedelta(hours=12), 1, week) == pytest.approx(
        1.25
    )
    assert model.expected_exposure_days(friday, 3, None) == 3


def load_history(rng: np.random.Generator, elasticity: float, n: int) -> pd.DataFrame:
    """Root incidents with the traffic at their start: other modes happen at any load (log load
    ~ Normal(0, 0.4)); load-sensitive ones at a load tilted by load ** elasticity."""
    sigma = 0.4
    control = rng.normal(0.0, sigma, n)
    sensitive = rng.normal(elasticity * sigma**2, sigma, n)  # exponential tilt of a normal
    rows = [
        {
            "incident_id": f"I{k}",
            "service": "svc",
            "category": category,
            "started_at": AS_OF - timedelta(hours=3 * k + 1),
            "load_factor": float(np.exp(x)),
        }
        for k, (category, x) in enumerate(
            [("deployment", x) for x in control] + [("capacity", x) for x in sensitive]
        )
    ]
    return incidents_frame(rows)


def test_traffic_elasticity_is_learned_from_load_factors():
    rng = np.random.default_rng(21)
    topology = Topology.from_frame(topology_frame(["svc"]))
    doc = model.fit(load_history(rng, 2.0, 800), topology, AS_OF, 730)
    elasticity = doc.load.elasticity
    assert doc.load.source == "data"
    assert doc.load.incidents_with_load == 1600
    assert elasticity.p05 < 2.0 < elasticity.p95
    assert elasticity.p95 - elasticity.p05 < 1.0
    thin = model.fit(load_history(rng, 2.0, 5), topology, AS_OF, 730)
    assert thin.load.source == "default"
    assert thin.load.elasticity.mean == 1.0
    assert model.traffic_factor(2.0, {"mean": 1.0, "sd": 0.0}) == pytest.approx(2.0)
    assert model.traffic_factor(2.0, {"mean": 1.0, "sd": 0.5}) > 2.0  # uncertainty costs


def test_a_tie_at_the_same_instant_does_not_hide_an_earlier_parent():
    rows = incidents_frame(
        [
            {"incident_id": "D1", "service": "db", "started_at": at(0)},
            {"incident_id": "Z9", "service": "db", "started_at": at(10)},  # sorts after A1
            {"incident_id": "A1", "service": "api", "started_at": at(10)},
        ]
    )
    attributed = model.attribute(rows, chain_topology(), 30)
    by_pos = attributed.set_index("pos")["incident_id"]
    parents = {r.incident_id: by_pos[r.parent] for r in attributed.itertuples() if r.parent >= 0}
    assert parents == {"A1": "D1"}


def test_failures_of_a_dependency_before_the_dependent_existed_are_not_trials():
    frame = topology_frame(["api", "db"], {"api": ["db"]})
    frame["created_at"] = [pd.Timestamp(AS_OF - timedelta(days=100)), pd.NaT]
    rows = incidents_frame(
        [
            {"incident_id": f"D{k}", "service": "db", "started_at": AS_OF - timedelta(d, hours=3)}
            for k, d in enumerate((300, 200, 50, 20))
        ]
    )
    doc = model.fit(rows, Topology.from_frame(frame), AS_OF, 730, "2024-01-01")
    assert doc.edges[0].evidence.exposures == 2  # db's failures at 300 and 200 days: no api yet


# --- censored durations ------------------------------------------------------------------------

TRUE_LOG_DURATION = (np.log(600.0), 1.0)  # LogNormal: median 10 hours


def history_with_open_incidents(seed: int, n: int = 400, days: float = 2.0) -> pd.DataFrame:
    """Incidents starting uniformly over the last `days`, lasting LogNormal(TRUE_LOG_DURATION)
    minutes; those still going at AS_OF are open (no resolved_at): the longest ones, each
    censored at its own time since its start, as in a real export."""
    rng = np.random.default_rng(seed)
    started = pd.Timestamp(AS_OF) - pd.to_timedelta(rng.uniform(0, days * 1440, n), unit="min")
    minutes = np.exp(rng.normal(*TRUE_LOG_DURATION, n))
    ended = started + pd.to_timedelta(minutes, unit="min")
    still_open = ended > pd.Timestamp(AS_OF)
    return incidents_frame(
        [{"incident_id": f"I{k}", "service": "db", "started_at": t} for k, t in enumerate(started)]
    ).assign(
        resolved_at=ended.where(~still_open),
        duration_source=np.where(still_open, "open", "resolved_at"),
    )


def test_censored_durations_recover_the_true_log_normal_where_dropping_them_cannot():
    history = history_with_open_incidents(seed=0)
    assert (history["duration_source"] == "open").mean() > 0.25  # the longest quarter
    topology = Topology.from_frame(topology_frame(["db"]))
    censored = model.fit(history, topology, AS_OF, 730)
    naive = model.fit(history.drop(columns="duration_source"), topology, AS_OF, 730)
    mu, sigma = TRUE_LOG_DURATION
    fitted = censored.services[0].duration_minutes_lognormal
    dropped = naive.services[0].duration_minutes_lognormal
    assert fitted.mu == pytest.approx(mu, abs=0.15)
    assert fitted.sigma == pytest.approx(sigma, abs=0.15)
    assert abs(dropped.mu - mu) > 0.25  # the naive fit only sees incidents that closed in time
    assert (
        censored.priors["duration_log_minutes"]["censored"]
        == (history["duration_source"] == "open").sum()
    )
    assert censored.services[0].mttr_minutes.p50 == pytest.approx(600, rel=0.15)


def test_without_censored_rows_the_duration_fit_is_exactly_the_uncensored_one():
    rng = np.random.default_rng(4)
    minutes = pd.Series(np.exp(rng.normal(4, 1, 50)))
    service = pd.Series(rng.choice(["a", "b", "c"], 50))
    plain = model.fit_durations(minutes, service, ("a", "b", "c", "d"))
    with_none = model.fit_durations(
        minutes, service, ("a", "b", "c", "d"), pd.Series(np.nan, index=minutes.index)
    )
    assert np.array_equal(plain[0], with_none[0]) and plain[1] == with_none[1]
    assert plain[3] == with_none[3]


def test_rows_whose_end_is_not_recorded_add_nothing_to_durations():
    history = history_with_open_incidents(seed=1).query("duration_source == 'resolved_at'")
    unknown = incidents_frame(
        [
            {"incident_id": f"U{k}", "service": "db", "started_at": AS_OF - timedelta(days=k + 1)}
            for k in range(30)
        ]
    ).assign(resolved_at=pd.NaT, duration_source="not_recorded")
    topology = Topology.from_frame(topology_frame(["db"]))
    alone = model.fit(history, topology, AS_OF, 730).services[0]
    with_unknown = model.fit(pd.concat([history, unknown]), topology, AS_OF, 730).services[0]
    assert with_unknown.duration_minutes_lognormal == alone.duration_minutes_lognormal
    assert with_unknown.incidents == alone.incidents + 30  # while the rates count them


def test_a_service_whose_incidents_are_all_open_gets_longer_durations_than_the_fleet():
    rng = np.random.default_rng(8)
    rows = [
        {
            "incident_id": f"D{k}",
            "service": "db",
            "started_at": AS_OF - timedelta(days=k + 1),
            "minutes": float(np.exp(rng.normal(np.log(60), 0.5))),
        }
        for k in range(100)
    ]
    history = incidents_frame(rows).assign(duration_source="resolved_at")
    still_open = incidents_frame(
        [
            {"incident_id": f"A{k}", "service": "api", "started_at": AS_OF - timedelta(hours=5)}
            for k in range(3)
        ]
    ).assign(resolved_at=pd.NaT, duration_source="open")
    topology = Topology.from_frame(topology_frame(["db", "api"]))
    doc = model.fit(pd.concat([history, still_open]), topology, AS_OF, 730)
    by_name = {s.service: s for s in doc.services}
    # Three incidents open for five hours already: api's incidents last longer than db's hour.
    assert by_name["api"].mttr_minutes.p50 > 2 * by_name["db"].mttr_minutes.p50
    assert by_name["api"].mttr_source == "data"


def test_for_one_service_the_censored_fit_is_the_censored_normal_maximum_likelihood():
    from scipy import optimize, stats

    history = history_with_open_incidents(seed=3)
    still_open = (history["duration_source"] == "open").to_numpy()
    elapsed = (pd.Timestamp(AS_OF) - history["started_at"]).dt.total_seconds() / 60.0
    lasted = (history["resolved_at"] - history["started_at"]).dt.total_seconds() / 60.0
    observed = np.log(np.maximum(lasted[~still_open].to_numpy(), 1.0))
    bounds = np.log(np.maximum(elapsed[still_open].to_numpy(), 1.0))

    def negative_log_likelihood(theta: np.ndarray) -> float:
        mu, sigma = theta[0], np.exp(theta[1])
        return -(
            stats.norm.logpdf(observed, mu, sigma).sum() + stats.norm.logsf(bounds, mu, sigma).sum()
        )

    best = optimize.minimize(negative_log_likelihood, [5.0, 0.0], method="Nelder-Mead").x
    mu, sigma, _, prior = model.fit_durations(
        lasted.where(~still_open), history["service"], ("db",), elapsed.where(still_open)
    )
    assert mu[0] == pytest.approx(best[0], abs=1e-3)
    assert sigma == pytest.approx(np.exp(best[1]), rel=0.01)
    assert prior["censored"] == still_open.sum() and prior["iterations"] < 100


def test_label_counts_count_known_labels_of_known_services() -> None:
    """Rows per (service, label): missing labels or services, labels outside the vocabulary
    and services outside the topology are not counted (as pandas' crosstab would have it)."""
    rng = np.random.default_rng(3)
    services, vocabulary = ("a", "b", "c"), ("x", "y")
    labels = pd.Series(rng.choice(["x", "y", "z", None], size=500), dtype=str)
    groups = pd.Series(rng.choice(["a", "b", "c", "ghost", None], size=500), dtype=str)
    expected = (
        pd.crosstab(groups[labels.isin(vocabulary)], labels[labels.isin(vocabulary)])
        .reindex(index=list(services), columns=list(vocabulary), fill_value=0)
        .to_numpy()
    )
    got = model.label_counts(labels, groups, services, vocabulary)
    assert got.shape == (3, 2) and got.sum() > 100
    assert (got == expected).all()
