"""Simulate: exact trigger probabilities, cascades that follow the graph, honest selection."""

from __future__ import annotations

import numpy as np
import pytest
from test_model import topology_frame
from whatif import simulate
from whatif.config import EventWindow, RunConfig, WhatIf
from whatif.errors import UserError
from whatif.schemas import FAILURE_MODES, SEVERITIES, ModelDoc
from whatif.topology import Topology


def model_doc(
    services: list[str],
    edges: dict[tuple[str, str], tuple[float, float]],
    rates: dict[str, tuple[float, float]] | None = None,
) -> ModelDoc:
    """A hand-made model: edges map (dependency, dependent) to a Beta(alpha, beta) posterior."""
    rates = rates or {}
    interval = {"mean": 0.01, "p05": 0.0, "p95": 0.02}
    modes = {m: (0.55 if m == "database" else 0.05) for m in FAILURE_MODES}
    return ModelDoc.model_validate(
        {
            "window": {
                "start": "2025-01-01T00:00:00+00:00",
                "end": "2026-01-01T00:00:00+00:00",
                "days": 365,
            },
            "inputs": {"incidents": 10, "incident_rows": 10, "services": len(services)},
            "priors": {},
            "services": [
                {
                    "service": s,
                    "incidents": 1,
                    "root_incidents": 1,
                    "incident_rate_per_day": interval,
                    "root_rate_per_day": interval,
                    "root_rate_posterior": dict(
                        zip(("shape", "rate"), rates.get(s, (2.0, 200.0)), strict=True)
                    ),
                    "mttr_minutes": {"p50": 60, "p90": 120},
                    "mttr_source": "data",
                    "duration_minutes_lognormal": {"mu": float(np.log(60)), "sigma": 0.5},
                    "severity_probabilities": {k: 0.25 for k in SEVERITIES},
                    "failure_modes": modes,
                }
                for s in services
            ],
            "edges": [
                {
                    "service": dependent,
                    "depends_on": dependency,
                    "propagation_probability": {"mean": a / (a + b), "p05": 0.0, "p95": 1.0},
                    "posterior": {"alpha": a, "beta": b},
                    "evidence": {"exposures": 0, "hits": 0},
                }
                for (dependency, dependent), (a, b) in edges.items()
            ],
        }
    )


CHAIN = ["web", "api", "db", "cache"]
CHAIN_DEPENDS = {"web": ["api"], "api": ["db", "cache"]}


def chain_topology() -> Topology:
    return Topology.from_frame(topology_frame(CHAIN, CHAIN_DEPENDS))


def stats_for(doc: ModelDoc, topology: Topology, trigger: str, draws: int = 4000):
    stats = simulate.simulate_cascades(doc, topology, draws, np.random.default_rng(0))
    return stats[topology.index[trigger]]


def shares(stats: simulate.CascadeStats, topology: Topology) -> dict[str, float]:
    """Share of draws in which each service is affected (0 for those it cannot reach)."""
    reached = {
        topology.services[i]: float(p)
        for i, p in zip(stats.services, stats.affected_probability, strict=True)
    }
    return {name: reached.get(name, 0.0) for name in topology.services}


def test_trigger_probability_is_the_gamma_poisson_predictive():
    rng = np.random.default_rng(1)
    shape, rate, exposure = 2.0, 150.0, 7.0 * 0.4
    lam = rng.gamma(shape, 1 / rate, size=400_000)
    monte_carlo = np.mean(rng.poisson(lam * exposure) > 0)
    exact = simulate.trigger_probability(np.array(shape), np.array(rate), np.array(exposure))
    assert float(exact) == pytest.approx(monte_carlo, abs=0.002)


def test_certain_edges_take_down_every_dependent_and_nothing_upstream():
    doc = model_doc(
        CHAIN,
        {("api", "web"): (1e6, 1e-3), ("db", "api"): (1e6, 1e-3), ("cache", "api"): (1e6, 1e-3)},
    )
    topology = chain_topology()
    stats = stats_for(doc, topology, "db")
    affected = shares(stats, topology)
    assert affected == {"web": 1.0, "api": 1.0, "db": 1.0, "cache": 0.0}
    assert set(stats.blast_radius) == {3}


def test_impossible_edges_keep_the_failure_contained():
    doc = model_doc(
        CHAIN,
        {("api", "web"): (1e-3, 1e6), ("db", "api"): (1e-3, 1e6), ("cache", "api"): (1e-3, 1e6)},
    )
    stats = stats_for(doc, chain_topology(), "db")
    assert set(stats.blast_radius) == {1}


def test_cascade_frequencies_follow_the_edge_posteriors():
    # db->api has mean 0.5, api->web mean 0.2: web falls in 0.5 * 0.2 of draws.
    doc = model_doc(
        CHAIN,
        {("api", "web"): (20.0, 80.0), ("db", "api"): (50.0, 50.0), ("cache", "api"): (1.0, 1.0)},
    )
    topology = chain_topology()
    stats = stats_for(doc, topology, "db", draws=20000)
    affected = shares(stats, topology)
    assert affected["api"] == pytest.approx(0.5, abs=0.02)
    assert affected["web"] == pytest.approx(0.1, abs=0.01)


def test_cycles_terminate_and_count_each_service_once():
    topology = Topology.from_frame(topology_frame(["a", "b"], {"a": ["b"], "b": ["a"]}))
    doc = model_doc(["a", "b"], {("b", "a"): (1e6, 1e-3), ("a", "b"): (1e6, 1e-3)})
    stats = stats_for(doc, topology, "a", draws=500)
    assert set(stats.blast_radius) == {2}


def test_durations_and_severities_are_drawn_for_the_affected_services():
    doc = model_doc(
        CHAIN, {("api", "web"): (1.0, 1.0), ("db", "api"): (1.0, 1.0), ("cache", "api"): (1.0, 1.0)}
    )
    stats = stats_for(doc, chain_topology(), "db", draws=5000)
    assert np.median(stats.duration_minutes) >= 60 * 0.9  # at least the trigger's own outage
    assert set(np.unique(stats.severity_index)) <= set(range(len(SEVERITIES)))
    assert (stats.impact > 0).all()


def test_same_seed_same_scenarios_other_seed_other_draws():
    doc = model_doc(
        CHAIN, {("api", "web"): (2.0, 3.0), ("db", "api"): (2.0, 3.0), ("cache", "api"): (2.0, 3.0)}
    )
    topology = chain_topology()
    first = simulate.simulate(doc, topology, RunConfig(seed=5, draws=500))["scenarios"]
    again = simulate.simulate(doc, topology, RunConfig(seed=5, draws=500))["scenarios"]
    other = simulate.simulate(doc, topology, RunConfig(seed=6, draws=500))["scenarios"]
    assert first == again
    assert first != other


def test_forced_what_if_is_always_reported_and_says_why():
    doc = model_doc(
        CHAIN,
        {("api", "web"): (2.0, 3.0), ("db", "api"): (2.0, 3.0), ("cache", "api"): (2.0, 3.0)},
        rates={"cache": (0.1, 1e5)},
    )
    config = RunConfig(scenarios=2, draws=200, what_if=(WhatIf("CACHE", "hardware"),))
    chosen = simulate.simulate(doc, chain_topology(), config)["scenarios"]
    assert chosen[0]["id"] == "cache--hardware"
    assert chosen[0]["forced"] is True and "forced" in chosen[0]["selection_reason"]
    assert len(chosen) == 2


def test_forced_what_if_without_mode_takes_the_most_likely_mode():
    doc = model_doc(
        CHAIN, {("api", "web"): (2.0, 3.0), ("db", "api"): (2.0, 3.0), ("cache", "api"): (2.0, 3.0)}
    )
    config = RunConfig(scenarios=1, draws=200, what_if=(WhatIf("db"),))
    chosen = simulate.simulate(doc, chain_topology(), config)["scenarios"]
    assert [c["id"] for c in chosen] == ["db--database"]


def test_unknown_what_if_service_suggests_close_names():
    doc = model_doc(
        CHAIN, {("api", "web"): (2.0, 3.0), ("db", "api"): (2.0, 3.0), ("cache", "api"): (2.0, 3.0)}
    )
    with pytest.raises(UserError, match=r"no such service.*did you mean cache"):
        simulate.simulate(doc, chain_topology(), RunConfig(what_if=(WhatIf("cach"),)))


def test_event_traffic_raises_only_load_sensitive_modes():
    doc = model_doc(
        CHAIN, {("api", "web"): (2.0, 3.0), ("db", "api"): (2.0, 3.0), ("cache", "api"): (2.0, 3.0)}
    )
    topology = chain_topology()
    plain = RunConfig(draws=200, horizon_days=7)
    event = EventWindow(
        "Black Friday",
        *[__import__("datetime").date(2026, 11, d) for d in (24, 30)],
        traffic_multiplier=3.0,
    )
    busy = RunConfig(draws=200, event=event)
    assert busy.effective_horizon_days == 7
    before = {c["id"]: c["probability"] for c in simulate.candidate_scenarios(doc, topology, plain)}
    after = {c["id"]: c["probability"] for c in simulate.candidate_scenarios(doc, topology, busy)}
    assert after["db--capacity"] > before["db--capacity"]
    assert after["db--database"] > before["db--database"]
    assert after["db--deployment"] == before["db--deployment"]


def test_selection_is_diverse_and_ranked():
    services = [f"s{i}" for i in range(12)]
    depends = {f"s{i}": [f"s{i + 1}"] for i in range(11)}
    topology = Topology.from_frame(topology_frame(services, depends))
    doc = model_doc(
        services,
        {(f"s{i + 1}", f"s{i}"): (2.0, 3.0) for i in range(11)},
        rates={"s11": (20.0, 200.0)},
    )
    chosen = simulate.simulate(doc, topology, RunConfig(scenarios=8, draws=300))["scenarios"]
    assert len(chosen) == 8
    assert len({c["id"] for c in chosen}) == 8
    top = [c for c in chosen if c["selection_reason"].startswith("top risk")]
    per_service = [c["trigger"]["service"] for c in top]
    assert max(per_service.count(s) for s in set(per_service)) <= 2
    assert any(c["selection_reason"].startswith("tail") for c in chosen)
    risks = [c["risk_score"] for c in chosen]
    assert risks == sorted(risks, reverse=True)


def test_progress_is_reported_up_to_every_trigger_service():
    doc = model_doc(
        CHAIN, {("api", "web"): (2.0, 3.0), ("db", "api"): (2.0, 3.0), ("cache", "api"): (2.0, 3.0)}
    )
    seen: list[tuple[int, int]] = []
    simulate.simulate(
        doc,
        chain_topology(),
        RunConfig(draws=200),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen and seen[-1] == (4, 4)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def with_time_and_load(doc: ModelDoc, elasticity: float, weekdays: dict[str, float]) -> ModelDoc:
    return ModelDoc.model_validate(
        doc.model_dump()
        | {
            "load": {
                "modes": ["capacity"],
                "incidents_with_load": 500,
                "elasticity": {"mean": elasticity, "sd": 0.0, "p05": elasticity, "p95": elasticity},
                "source": "data",
            },
            "time_multipliers": {
                "timezone": "UTC",
                "root_incidents": 500,
                "day_of_week": weekdays,
                "hour_of_day": {f"{h:02d}": 1.0 for h in range(24)},
                "concentration": {"day_of_week": 70.0, "hour_of_day": 120.0},
            },
        }
    )


def test_event_probabilities_use_the_fitted_elasticity_and_weekday_multipliers():
    flat = dict.fromkeys(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), 1.0)
    edges = {("api", "web"): (2.0, 3.0), ("db", "api"): (1.0, 1.0), ("cache", "api"): (1.0, 1.0)}
    doc = with_time_and_load(model_doc(CHAIN, edges), 2.0, flat | {"Fri": 3.0})
    topology = chain_topology()
    friday = __import__("datetime").date(2026, 11, 27)
    event = EventWindow("Black Friday", friday, friday, traffic_multiplier=2.0)
    candidates = {
        c["id"]: c["probability"]
        for c in simulate.candidate_scenarios(doc, topology, RunConfig(draws=100, event=event))
    }
    shape, rate = 2.0, 200.0  # model_doc's default posterior; capacity is 5 % of the failures
    for mode, factor in (("capacity", 2.0**2.0), ("database", 1.0), ("deployment", 1.0)):
        share = 0.55 if mode == "database" else 0.05
        expected = simulate.trigger_probability(
            np.array(shape),
            np.array(rate),
            np.array(share * 3.0 * factor),  # Friday: x3
        )
        assert candidates[f"db--{mode}"] == pytest.approx(float(expected), rel=1e-5)


def test_a_model_json_from_before_the_time_and_load_models_still_simulates():
    doc = model_doc(
        CHAIN,
        {("api", "web"): (2.0, 3.0)} | {("db", "api"): (1.0, 1.0)} | {("cache", "api"): (1.0, 1.0)},
    )
    assert doc.load is None and doc.time_multipliers is None and doc.backtest is None
    event = EventWindow(
        "launch", *[__import__("datetime").date(2026, 11, d) for d in (24, 30)], 3.0
    )
    scenarios = simulate.candidate_scenarios(
        doc, chain_topology(), RunConfig(draws=100, event=event)
    )
    capacity = next(c for c in scenarios if c["id"] == "db--capacity")
    expected = simulate.trigger_probability(np.array(2.0), np.array(200.0), np.array(0.05 * 7 * 3))
    assert capacity["probability"] == pytest.approx(float(expected), rel=1e-5)


def test_simulated_horizons_match_the_exact_probabilities():
    edges = {("api", "web"): (2.0, 3.0), ("db", "api"): (2.0, 3.0), ("cache", "api"): (2.0, 3.0)}
    doc = model_doc(CHAIN, edges, rates={"db": (3.0, 40.0), "web": (0.5, 100.0)})
    topology = chain_topology()
    config = RunConfig(draws=40_000, cascade_draws=500)
    rng = np.random.default_rng(3)
    cascades = simulate.simulate_cascades(doc, topology, config.cascade_draws, rng)
    candidates = simulate.candidate_scenarios(doc, topology, config, rng=rng, cascades=cascades)
    horizons = simulate.simulate_horizons(doc, topology, config, cascades, rng, record=True)
    summary = simulate.horizon_summary(horizons, candidates)
    for candidate in candidates:
        p, simulated = candidate["probability"], candidate["probability_simulated"]
        assert simulated == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / 40_000) + 1e-4)
    # Per horizon, root failures are the sum of the services' negative binomials.
    expected_roots = sum(2.0 / 200.0 for s in CHAIN if s not in ("db", "web")) * 7
    expected_roots += (3.0 / 40.0 + 0.5 / 100.0) * 7
    assert summary["root_failures"]["mean"] == pytest.approx(expected_roots, rel=0.03)
    assert summary["horizons"] == 40_000
    assert 0 < summary["probability_any"]["SEV1"] <= summary["probability_any"]["SEV4"] < 1
    # Every root failure cascades: services hit per horizon at least the roots.
    assert summary["service_outages"]["mean"] > summary["root_failures"]["mean"]
    # Each root failure's outcome is one of its trigger's simulated cascades.
    db = topology.index["db"]
    failures = horizons.root_failures
    bank = np.concatenate([c.blast_radius for c in cascades])
    from_db = bank[failures["row"][failures["service"] == db]]
    assert from_db.mean() == pytest.approx(cascades[db].blast_radius.mean(), rel=0.05)
    # The recorded root failures add up to the totals the summary was made from.
    assert len(failures["horizon"]) == horizons.roots.sum()
    np.testing.assert_array_equal(
        np.bincount(failures["horizon"], weights=bank[failures["row"]], minlength=40_000),
        horizons.hit,
    )
    assert (failures["row"] // config.cascade_draws == failures["service"]).all()


def test_the_horizons_are_the_same_for_a_seed_whatever_the_number_of_threads(monkeypatch):
    edges = {("api", "web"): (2.0, 3.0), ("db", "api"): (2.0, 3.0), ("cache", "api"): (2.0, 3.0)}
    doc = model_doc(CHAIN, edges, rates={"db": (3.0, 40.0), "web": (0.5, 100.0)})
    topology, config = chain_topology(), RunConfig(draws=5_000, cascade_draws=100)
    cascades = simulate.simulate_cascades(doc, topology, 100, np.random.default_rng(1))

    def run() -> simulate.Horizons:
        rng = np.random.default_rng(9)
        return simulate.simulate_horizons(doc, topology, config, cascades, rng)

    first = run()
    monkeypatch.setattr(simulate.os, "cpu_count", lambda: 1)
    again = run()
    for name in ("roots", "hit", "worst", "frequency"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert first.repeated == again.repeated and first.roots.sum() > 0


def test_impact_reports_traffic_share_and_error_budget_burn_where_the_topology_gives_them():
    frame = topology_frame(CHAIN, CHAIN_DEPENDS)
    frame["traffic_weight"] = [1.0, 0.5, np.nan, np.nan]  # web, api, db, cache
    frame["slo_target"] = [0.999, np.nan, np.nan, np.nan]
    topology = Topology.from_frame(frame)
    doc = model_doc(
        CHAIN,
        {("api", "web"): (1e6, 1e-3), ("db", "api"): (1e6, 1e-3), ("cache", "api"): (1e-3, 1e6)},
    )
    candidates = {
        c["trigger"]["service"]: c["impact"]
        for c in simulate.candidate_scenarios(
            doc, topology, RunConfig(draws=100, cascade_draws=400)
        )
    }
    assert candidates["db"]["traffic_share"] == {"p50": 1.0, "p90": 1.0}  # web always hit
    budget = 0.001 * 30 * 24 * 60  # 43.2 minutes of a 30-day 99.9 % budget
    burn = candidates["db"]["error_budget_burn"]
    assert burn["p50"] == pytest.approx(60 / budget, rel=0.2)  # web's median outage: 60 min
    assert candidates["cache"]["traffic_share"] is None  # reaches nothing with a weight
    assert candidates["cache"]["error_budget_burn"] is None


def test_selection_spreads_over_teams_and_modes_and_includes_shared_infrastructure():
    # A platform: "db" is called by 3 cores, each called by 2 frontends (9 depend on db);
    # team "shop" owns every core and frontend and fails often, so without caps it fills the
    # report; "db" itself fails rarely.
    cores = ["c0", "c1", "c2"]
    fronts = [f"f{i}" for i in range(6)]
    services = ["db", *cores, *fronts]
    depends = {c: ["db"] for c in cores} | {f: [cores[i // 2]] for i, f in enumerate(fronts)}
    frame = topology_frame(services, depends)
    frame["owner_team"] = ["data", "core-a", "core-b", "core-c"] + ["shop"] * 6
    topology = Topology.from_frame(frame)
    edges = {(d, s): (3.0, 2.0) for s, ds in depends.items() for d in ds}
    busy = {f: (20.0, 200.0) for f in fronts}  # the frontends fail 20 times as often
    doc = model_doc(services, edges, rates={"db": (0.2, 2000.0)} | busy)
    chosen = simulate.simulate(doc, topology, RunConfig(scenarios=9, draws=200))["scenarios"]
    top = [c for c in chosen if c["selection_reason"].startswith("top risk (")]
    teams = [topology.attribute(c["trigger"]["service"], "owner_team") for c in top]
    # Teams are covered before a team gets a second scenario: the cores' database failures
    # (3.8 %, the only ones of theirs above the bar) come in despite the busy frontends.
    assert {"core-a", "core-b"} <= set(teams) and len(set(teams)) >= 3
    spread_out = [c for c in top if "ran out" not in c["selection_reason"]]
    spread_teams = [topology.attribute(c["trigger"]["service"], "owner_team") for c in spread_out]
    assert spread_teams.count("shop") <= 3
    # At most a third per mode among the busy team's picks; the teams still missing come in
    # after them whatever their mode (coverage before mode diversity).
    shop_modes = [
        c["trigger"]["failure_mode"]
        for c, owner in zip(spread_out, spread_teams, strict=True)
        if owner == "shop"
    ]
    assert max(shop_modes.count(m) for m in set(shop_modes)) <= 3
    assert all(c["probability"] >= simulate.MEANINGFUL_PROBABILITY for c in top)
    shared = [c for c in chosen if c["selection_reason"].startswith("common mode")]
    widest = next(c for c in shared if c["trigger"]["service"] == "db")
    assert "9 services depend on it" in widest["selection_reason"]
    tails = [c for c in chosen if c["selection_reason"].startswith("tail")]
    assert all(
        simulate.TAIL_PROBABILITY <= c["probability"] < simulate.MEANINGFUL_PROBABILITY
        and "wide (reaches" in c["selection_reason"]
        for c in tails
    )
    assert len(chosen) == 9 and len({c["id"] for c in chosen}) == 9
    # One scenario per service before a second mode of any: no service twice among the picks
    # made before the spread-out ones ran out.
    first_picks = [
        c["trigger"]["service"] for c in chosen if "ran out" not in c["selection_reason"]
    ]
    assert len(first_picks) == len(set(first_picks))


def test_an_event_window_adds_two_independent_root_failures_at_once():
    edges = {("api", "web"): (2.0, 3.0), ("db", "api"): (2.0, 3.0), ("cache", "api"): (2.0, 3.0)}
    doc = model_doc(CHAIN, edges)
    day = __import__("datetime").date(2026, 11, 27)
    config = RunConfig(
        scenarios=6, draws=200, cascade_draws=2000, event=EventWindow("launch", day, day, 2.0)
    )
    result = simulate.simulate(doc, chain_topology(), config)
    pairs = [s for s in result["scenarios"] if s.get("co_trigger")]
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair["selection_reason"].startswith("common mode: two independent root failures")
    single = {c["id"]: c for c in simulate.candidate_scenarios(doc, chain_topology(), config)}
    first, second = pair["id"].split("+")
    assert pair["trigger"]["service"] != pair["co_trigger"]["service"]
    # Both fail within the one-day window, and their outages (mean 60 e^(0.5^2 / 2) minutes
    # each) overlap, starting uniformly: (d1 + d2) / W - (d1^2 + d2^2) / (2 W^2).
    d, window = 60 * np.exp(0.125), 24 * 60
    overlap = 2 * d / window - 2 * d**2 / (2 * window**2)
    both = single[first]["probability"] * single[second]["probability"]
    assert pair["probability"] == pytest.approx(both * overlap, rel=1e-3)
    roots = {pair["trigger"]["service"], pair["co_trigger"]["service"]}
    assert roots <= set(pair["affected_services"])
    assert pair["impact"]["affected_probability"][pair["co_trigger"]["service"]] == 1.0
    # Two failures at once hit at least as much as either alone.
    assert pair["impact"]["blast_radius"]["p50"] >= max(
        single[first]["impact"]["blast_radius"]["p50"],
        single[second]["impact"]["blast_radius"]["p50"],
    )
    plain = simulate.simulate(doc, chain_topology(), RunConfig(scenarios=6, draws=200))
    assert not any(s.get("co_trigger") for s in plain["scenarios"])  # only in event windows


def test_the_compound_scenario_never_takes_the_report_past_its_size():
    edges = {("api", "web"): (2.0, 3.0), ("db", "api"): (2.0, 3.0), ("cache", "api"): (2.0, 3.0)}
    day = __import__("datetime").date(2026, 11, 27)
    forced = (*(WhatIf(s) for s in CHAIN), WhatIf("db", "network"))
    config = RunConfig(
        scenarios=5, draws=200, event=EventWindow("launch", day, day, 2.0), what_if=forced
    )
    chosen = simulate.simulate(model_doc(CHAIN, edges), chain_topology(), config)["scenarios"]
    assert len(chosen) == 5 and all(c["forced"] for c in chosen)


def test_the_horizons_kernel_draws_the_right_distributions():
    """Per service: horizons with a failure ~ Binomial(horizons, p_any); the count in such a
    horizon ~ zero-truncated NB; modes ~ the service's mix; bank rows uniform in its block."""
    from scipy import stats as st
    from whatif import kernels

    horizons, bank_size = 50_000, 4
    p_nb = np.array([0.5, 0.998, 0.7, 0.4])
    shape = np.array([1.0, 2.0, 1.5, 1.5])
    p_any = 1 - p_nb**shape
    p_any[0] = 0.0  # a service that never fails
    mix = np.array([[1, 0, 0], [0.5, 0.5, 0], [0.1, 0.2, 0.7], [0, 0, 1]], dtype=float)
    blast = np.arange(4 * bank_size, dtype=np.int32)
    severity = np.zeros(4 * bank_size, dtype=np.int8)
    roots, hit, worst, frequency, repeated, log = kernels.horizons_chunk_recorded(
        0, 4, p_any, shape, p_nb, np.cumsum(mix, axis=1), blast, severity, bank_size,
        horizons, np.random.default_rng(17), np.random.default_rng(18),
    )  # fmt: skip
    unrecorded = kernels.horizons_chunk(
        0, 4, p_any, shape, p_nb, np.cumsum(mix, axis=1), blast, severity, bank_size,
        horizons, np.random.default_rng(17), np.random.default_rng(18),
    )  # fmt: skip
    for same, other in zip((roots, hit, worst, frequency, repeated), unrecorded, strict=False):
        np.testing.assert_array_equal(same, other)  # keeping them changes no draw
    assert len(unrecorded[-1]) == 0
    h, s, m, row = log.T
    assert roots.sum() == len(log) and (np.bincount(h, minlength=horizons) == roots).all()
    assert (np.bincount(h, weights=blast[row], minlength=horizons) == hit).all()
    pairs = np.unique(h * 4 + s)
    for i in (1, 2, 3):  # Binomial(horizons, p) horizons with a failure, all in range
        failed = (pairs % 4 == i).sum()
        assert failed == pytest.approx(horizons * p_any[i], abs=5 * np.sqrt(horizons * p_any[i]))
    assert not (s == 0).any() and h.min() >= 0 and h.max() < horizons
    sizes = np.unique(h * 4 + s, return_counts=True)[1]  # root failures per (horizon, service)
    mine = sizes[pairs % 4 == 3]
    truncated = st.nbinom.pmf(np.arange(1, 6), 1.5, 0.4) / (1 - st.nbinom.pmf(0, 1.5, 0.4))
    np.testing.assert_allclose(np.bincount(mine)[1:6] / len(mine), truncated, atol=0.01)
    assert repeated == sizes[sizes > 1].sum() > 0
    for i in (2, 3):
        drawn = np.bincount(m[s == i], minlength=3) / (s == i).sum()
        np.testing.assert_allclose(drawn, mix[i], atol=0.01)
        picked = np.bincount(row[s == i] - i * bank_size, minlength=bank_size) / (s == i).sum()
        assert picked.min() >= 0 and np.allclose(picked, 1 / bank_size, atol=0.01)
    # Horizons with several failures draw each one's mode; the single ones get a multinomial
    # split: both follow the mix.
    sizes_of = dict(zip(*np.unique(h * 4 + s, return_counts=True), strict=True))
    several = np.array([sizes_of[k] > 1 for k in h * 4 + s])
    mine = several & (s == 2)
    np.testing.assert_allclose(np.bincount(m[mine], minlength=3) / mine.sum(), mix[2], atol=0.03)
    # A (service, mode) counts once per horizon, however often it failed in it.
    pairs_seen = np.unique((h * 4 + s) * 3 + m) % 12  # service * 3 + mode
    np.testing.assert_array_equal(frequency, np.bincount(pairs_seen, minlength=12))
    assert (worst[roots == 0] == kernels.NO_SEVERITY).all() and (worst[roots > 0] == 0).all()


def test_services_in_focus_decide_the_picks_until_they_run_out():
    """Two independent chains: with b1 in focus every pick starts at or reaches b1 (only
    b1's own modes here: b0 depends on b1, not the other way) as long as one clears the bar,
    and the report is filled from the rest only after those ran out, saying so."""
    services = [f"a{i}" for i in range(6)] + ["b0", "b1"]
    depends = {f"a{i}": [f"a{i + 1}"] for i in range(5)} | {"b0": ["b1"]}
    topology = Topology.from_frame(topology_frame(services, depends))
    edges = {(f"a{i + 1}", f"a{i}"): (2.0, 3.0) for i in range(5)} | {("b1", "b0"): (2.0, 3.0)}
    doc = model_doc(services, edges, rates={"a5": (20.0, 200.0)})
    config = RunConfig(scenarios=5, draws=300, focus_services=("B1",))
    candidates = simulate.candidate_scenarios(doc, topology, config)
    in_focus = {
        c["id"]
        for c in candidates
        if "b1" in c["affected_services"] and c["probability"] >= simulate.MEANINGFUL_PROBABILITY
    }
    assert in_focus == {"b1--database"}  # b1's other modes are below the bar
    chosen = simulate.simulate(doc, topology, config)["scenarios"]
    assert {c["id"] for c in chosen if "b1" in c["affected_services"]} == in_focus
    others = [c for c in chosen if c["id"] not in in_focus]
    assert len(others) == 4
    assert all("outside the services in focus" in c["selection_reason"] for c in others)
    unfocused = simulate.simulate(doc, topology, RunConfig(scenarios=4, draws=300))["scenarios"]
    # Without focus, coverage of services comes first: a5 fails most, yet four services.
    assert len({c["trigger"]["service"] for c in unfocused}) == 4
    with pytest.raises(UserError, match="--focus-service 'bb1': no such service"):
        simulate.simulate(doc, topology, RunConfig(draws=300, focus_services=("bb1",)))


def test_a_rare_scenario_is_listed_as_a_tail_only_when_it_is_wide_or_severe():
    """A SEV4 failure that stays with its service is no "rare but severe" tail however large
    its duration makes its impact; one that reaches others, or is mostly SEV1 in a history
    that records severities, is."""
    services = ["lonely", "hub", "spoke1", "spoke2", "busy"]
    depends = {"spoke1": ["hub"], "spoke2": ["hub"]}
    topology = Topology.from_frame(topology_frame(services, depends))
    edges = {("hub", "spoke1"): (9.0, 1.0), ("hub", "spoke2"): (9.0, 1.0)}
    rare = (2.0, 2000.0)  # about 0.04 % a week per mode: between the floor and the bar
    doc = model_doc(services, edges, rates={"lonely": rare, "hub": rare, "busy": (40.0, 200.0)})
    lonely = {"severity_probabilities": {"SEV1": 0.0, "SEV2": 0.0, "SEV3": 0.0, "SEV4": 1.0}}
    doc = doc.model_copy(
        update={
            "services": [
                s.model_copy(update=lonely) if s.service == "lonely" else s for s in doc.services
            ]
        }
    )
    candidates = {c["id"]: c for c in simulate.candidate_scenarios(doc, topology, RunConfig())}
    assert simulate.tail_justification(candidates["lonely--database"], True) is None
    assert "wide (reaches 3 services" in simulate.tail_justification(
        candidates["hub--database"], True
    )
    chosen = simulate.simulate(doc, topology, RunConfig(scenarios=4, draws=300))["scenarios"]
    reasons = {c["trigger"]["service"]: c["selection_reason"] for c in chosen}
    assert "lonely" not in reasons
    assert reasons.get("hub", "").startswith("tail: rare but wide") or reasons.get(
        "hub", ""
    ).startswith("common mode")
