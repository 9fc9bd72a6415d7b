"""whatif.synthetic does what it says: the sample script reproduces the committed sample byte
for byte, and the known-truth and fleet-scale histories hold the truth they are drawn from
(the recovery tests and the benchmarks rely on it)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from shared import PROJECT
from whatif import ingest
from whatif.schemas import FAILURE_MODES, SEVERITIES
from whatif.synthetic import (
    FleetProcess,
    contract_topology,
    fleet_history,
    histories,
    known_history,
    layered_topology,
    sample,
    sample_history,
    tiered_topology,
)
from whatif.synthetic.fleets import LAYERS, MAX_DEPENDENCIES
from whatif.synthetic.histories import (
    AS_OF,
    CASCADE_DELAY_MINUTES,
    CLEAN_COLUMNS,
    simulate_failures,
)
from whatif.synthetic.sample import SAMPLE_AS_OF
from whatif.topology import Topology

LONG_DAYS = 730


def with_parents(incidents: pd.DataFrame) -> pd.DataFrame:
    """The incidents with a caused_by, each with its parent's service and start (`_parent`)."""
    return incidents[incidents["caused_by"].notna()].merge(
        incidents[["incident_id", "service", "started_at"]],
        left_on="caused_by",
        right_on="incident_id",
        suffixes=("", "_parent"),
        validate="many_to_one",
    )


# --- the project's sample ----------------------------------------------------------------------


def test_the_sample_script_writes_the_committed_sample_byte_for_byte(tmp_path):
    script = PROJECT / "include" / "data" / "generate_sample.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "incidents: 664  rows: 677  services: 28" in done.stdout
    # exercises.csv is written by hand (a readiness log), not generated.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["incidents.csv", "topology.csv"]
    for name in ("incidents.csv", "topology.csv"):
        committed = (PROJECT / "include" / "data" / name).read_bytes()
        assert (tmp_path / name).read_bytes() == committed, name


def test_the_sample_catalogue_is_data_and_consistent():
    catalogue = sample.catalogue()  # checked as it is read: known dependencies, no cycle, wording
    assert len(catalogue.services) == 28
    assert len(sample.truth()) == 47
    assert {
        t.only for family in catalogue.templates.values() for ts in family.values() for t in ts
    } == {"", "user_facing", "calls_datastore"}
    for service in catalogue.services:
        mix = sample.category_mix(catalogue, service)
        assert abs(sum(mix.values()) - 1.0) < 1e-12 and set(mix) <= set(sample.CATEGORIES)


def test_known_history_topology_is_a_layered_dag():
    history = known_history(0, LONG_DAYS)
    frame = history.topology
    assert len(frame) == sum(size for _, size in LAYERS) == 120
    layer = dict(
        zip(frame["service"], frame["tier"].map([t for t, _ in LAYERS].index), strict=True)
    )
    for name, depends_on in zip(frame["service"], frame["depends_on"], strict=True):
        if layer[name] == 0:
            assert depends_on == []
        else:
            assert 1 <= len(depends_on) <= MAX_DEPENDENCIES
            assert all(layer[d] < layer[name] for d in depends_on)
    topology = Topology.from_frame(frame)
    assert topology.cycles() == []
    assert topology.size == 120 and not topology.implicit
    assert len(topology.edge_dependency) == len(history.propagation)
    # Popular dependencies: some service is called by many others.
    assert np.bincount(topology.edge_dependency).max() >= 8


def test_known_history_has_the_production_shape():
    history = known_history(0, LONG_DAYS)
    incidents = history.incidents
    assert tuple(incidents.columns) == CLEAN_COLUMNS
    for column in ("started_at", "resolved_at", "detected_at", "acknowledged_at"):
        assert incidents[column].dtype == "datetime64[ns, UTC]"
    assert incidents["caused_by"].dtype == "str"  # as the validated Parquet reads back
    assert incidents["incident_id"].is_unique
    assert set(incidents["category"]) <= set(FAILURE_MODES)
    assert set(incidents["severity"]) <= set(SEVERITIES)
    assert (incidents["resolved_at"] > incidents["started_at"]).all()
    start = pd.Timestamp(history.data_start)
    assert start == pd.Timestamp(AS_OF) - pd.Timedelta(days=LONG_DAYS)
    assert incidents["started_at"].min() >= start
    assert incidents["started_at"].max() < pd.Timestamp(AS_OF)
    counts = incidents["service"].value_counts().reindex(history.failures.index, fill_value=0)
    assert (counts == history.failures).all()

    blank = known_history(0, LONG_DAYS, with_caused_by=False).incidents
    assert blank["caused_by"].isna().all() and blank["caused_by"].dtype == "str"
    pd.testing.assert_frame_equal(
        blank.drop(columns="caused_by"), incidents.drop(columns="caused_by")
    )


def test_caused_by_names_an_incident_of_a_dependency_1_to_10_minutes_earlier():
    history = known_history(0, LONG_DAYS)
    incidents = history.incidents
    children = incidents[incidents["caused_by"].notna()]
    parents = with_parents(incidents)
    assert len(parents) == len(children)  # every caused_by names an incident in the history
    edges = set(history.propagation.index)
    assert all(
        pair in edges for pair in zip(parents["service_parent"], parents["service"], strict=True)
    )
    lag = (parents["started_at"] - parents["started_at_parent"]).dt.total_seconds()
    low, high = CASCADE_DELAY_MINUTES
    assert lag.between(low * 60 - 1, high * 60 + 1).all()  # whole seconds: 1 s either way

    # Each service fails at most once per cascade: follow caused_by to the root incident.
    position = pd.Series(np.arange(len(incidents)), index=incidents["incident_id"])
    parent = incidents["caused_by"].map(position).fillna(-1).to_numpy(np.int64)
    root = np.arange(len(incidents))
    while (parent[root] >= 0).any():
        root = np.where(parent[root] >= 0, parent[root], root)
    assert not pd.DataFrame({"root": root, "service": incidents["service"]}).duplicated().any()


def test_roots_are_poisson_and_failure_spreads_with_the_edge_probability():
    history = known_history(0, LONG_DAYS)
    incidents = history.incidents
    roots = incidents["caused_by"].isna().sum()
    expected = history.root_rate.sum() * LONG_DAYS
    assert abs(roots - expected) <= 4 * np.sqrt(expected)
    assert incidents["caused_by"].notna().mean() >= 0.2  # enough cascades to learn edges from

    # A service with a single dependency can only be reached through it, and is never failing
    # already when it fails: every failure of the dependency is a Binomial trial of the edge.
    edges = history.propagation
    dependent = edges.index.get_level_values("service")
    single = edges[~dependent.duplicated(keep=False)]
    trials = history.failures.loc[single.index.get_level_values("depends_on")].to_numpy()
    cascaded = incidents.loc[incidents["caused_by"].notna(), "service"].value_counts()
    hits = cascaded.reindex(single.index.get_level_values("service"), fill_value=0).to_numpy()
    assert len(single) >= 20
    mean = float((single.to_numpy() * trials).sum())
    sd = float(np.sqrt((single.to_numpy() * (1 - single.to_numpy()) * trials).sum()))
    assert abs(hits.sum() - mean) <= 4 * sd, (hits.sum(), mean, sd)


def test_the_sample_history_is_the_sample_generators_truth_inside_the_window():
    history = sample_history(0, 365)
    topology = history.topology
    names = np.array(topology.services)
    edges = list(zip(names[topology.edge_dependency], names[topology.edge_dependent], strict=True))
    assert sorted(edges) == list(history.propagation.index)  # a truth for every edge
    # Hard and soft as the platform teams declare them: soft when p is at most 0.15.
    soft = history.propagation.loc[edges].to_numpy() <= sample.SOFT_AT_MOST
    assert (topology.criticality == np.where(soft, "soft", "hard")).all()
    assert (soft.sum(), (~soft).sum()) == (15, 32)
    started = history.incidents["started_at"]
    assert started.min() > pd.Timestamp(SAMPLE_AS_OF) - pd.Timedelta(days=365)
    assert started.max() <= pd.Timestamp(SAMPLE_AS_OF)
    assert pd.Timestamp(history.data_start) < started.min()  # the export began earlier
    linked = history.incidents["caused_by"].notna().sum()
    assert 0.15 * len(started) < linked < 0.35 * len(started)  # 75 % of cascades carry it


def test_a_cascade_reaches_each_service_once_by_the_first_parent_to_arrive():
    rng = np.random.default_rng(5)
    frame, dependency, dependent = tiered_topology(rng)
    n_services, days = len(frame), 100
    cascade, service, start, parent_row = simulate_failures(
        rng, np.full(n_services, 0.01), np.ones(len(dependency)), dependency, dependent, days
    )
    failures = pd.DataFrame({"cascade": cascade, "service": service, "start": start})
    assert not failures.duplicated(["cascade", "service"]).any()
    is_root = parent_row < 0
    assert (failures[is_root].groupby("cascade").size() == 1).all()

    # With every edge live, a cascade reaches exactly what its root's failure can flow to.
    reach = np.eye(n_services, dtype=bool)
    for v in range(n_services):  # dependencies have smaller numbers than their dependents
        for u in dependency[dependent == v]:
            reach[:, v] |= reach[:, u]
    origin = failures[is_root].set_index("cascade")["service"]
    first = failures.groupby("cascade")["start"].min()
    complete = origin.index[first.loc[origin.index] < (days - 1) * 1440.0]  # not cut at the end
    for c in complete[:50]:
        got = set(failures.loc[failures["cascade"] == c, "service"])
        assert got == set(np.flatnonzero(reach[origin[c]]))

    # The parent is a dependency that started 1-10 minutes before; and no other failed
    # dependency could have arrived first (each arrives within 10 minutes of its own start).
    child = ~is_root
    lag = start[child] - start[parent_row[child]]
    assert ((lag >= 1.0) & (lag <= 10.0)).all()
    edge_set = set(zip(dependency, dependent, strict=True))
    assert all(
        (u, v) in edge_set for u, v in zip(service[parent_row[child]], service[child], strict=True)
    )
    pairs = failures.merge(
        pd.DataFrame({"service": dependency, "dependent": dependent}), on="service"
    ).merge(failures, left_on=["cascade", "dependent"], right_on=["cascade", "service"])
    assert (pairs["start_y"] <= pairs["start_x"] + CASCADE_DELAY_MINUTES[1] + 1e-9).all()


# --- fleet-scale histories (the benchmarks') -------------------------------------------------


def test_layered_topology_is_a_dag_with_the_dependencies_asked_for():
    topology = Topology.from_frame(layered_topology(2000, 4.0, np.random.default_rng(1)))
    assert topology.size == 2000 and topology.cycles() == [] and not topology.implicit
    # Services are numbered by layer and depend only on lower layers.
    assert (topology.edge_dependency < topology.edge_dependent).all()
    assert 3.5 <= len(topology.edge_dependency) / topology.size <= 4.5


def test_a_spread_reaches_what_a_root_can_flow_to_once_along_edges():
    topology = Topology.from_frame(layered_topology(60, 2.0, np.random.default_rng(2)))
    n, dependency, dependent = topology.size, topology.edge_dependency, topology.edge_dependent
    roots = np.arange(n)
    failures = histories.spread(
        np.random.default_rng(3), roots, np.zeros(n, dtype=np.int64), np.ones(len(dependency)),
        dependency, dependent, launch=np.zeros(n),
    )  # fmt: skip
    reach = np.eye(n, dtype=bool)
    for v in range(n):  # dependencies have smaller numbers than their dependents
        for u in dependency[dependent == v]:
            reach[:, v] |= reach[:, u]
    tree = np.arange(len(failures.service))
    while (failures.parent[tree] >= 0).any():
        tree = np.where(failures.parent[tree] >= 0, failures.parent[tree], tree)
    for root in roots:
        assert sorted(failures.service[tree == root]) == list(np.flatnonzero(reach[root]))
    child = failures.parent >= 0
    parent = failures.parent[child]
    assert (failures.via[child] >= 0).all()
    assert (dependency[failures.via[child]] == failures.service[parent]).all()
    assert (dependent[failures.via[child]] == failures.service[child]).all()
    lag = failures.second[child] - failures.second[parent]
    assert ((lag >= 60) & (lag <= 1200)).all()
    assert sum(failures.generations) == len(failures.service)


@pytest.fixture(scope="module")
def poisson_fleet():
    rng = np.random.default_rng(4)
    topology = Topology.from_frame(layered_topology(500, 3.0, rng))
    return topology, fleet_history(topology, FleetProcess(mean_rate=0.02), rng)


def test_a_fleet_history_has_the_clean_format_and_its_truth(poisson_fleet):
    topology, history = poisson_fleet
    incidents = history.incidents
    for column in ("started_at", "resolved_at", "detected_at", "acknowledged_at"):
        assert incidents[column].dtype == "datetime64[ns, UTC]"
    for column in ("incident_id", "service", "severity", "category", "caused_by", "team"):
        assert incidents[column].dtype == "str"
    assert incidents["incident_id"].is_unique and incidents["started_at"].is_monotonic_increasing
    assert set(incidents["category"]) <= set(FAILURE_MODES)
    assert set(incidents["severity"]) <= set(SEVERITIES)
    start = pd.Timestamp(FleetProcess().as_of) - pd.Timedelta(days=FleetProcess().days)
    assert incidents["started_at"].min() >= start
    assert incidents["started_at"].max() < pd.Timestamp(FleetProcess().as_of)
    assert len(history.root_rate) == topology.size
    assert len(history.propagation) == len(topology.edge_dependency)
    facts = history.facts
    assert facts["incidents"] == len(incidents) == facts["roots"] + facts["cascaded"]
    expected = history.root_rate.sum() * FleetProcess().days  # Poisson roots at the true rates
    assert abs(facts["roots"] - expected) <= 4 * np.sqrt(expected)
    # Cascaded incidents are all labelled dependency (dependency_share 1) and 70 % linked.
    cascaded = facts["cascaded"]
    assert facts["caused_by"] == pytest.approx(0.7 * cascaded, abs=4 * np.sqrt(cascaded))


def test_caused_by_names_an_incident_of_a_dependency_1_to_20_minutes_earlier(poisson_fleet):
    topology, history = poisson_fleet
    incidents = history.incidents
    children = incidents[incidents["caused_by"].notna()]
    parents = with_parents(incidents)
    assert len(parents) == len(children) > 100
    assert (parents["category"] == "dependency").all()
    names = np.array(topology.services)
    edges = set(zip(names[topology.edge_dependency], names[topology.edge_dependent], strict=True))
    assert all(
        pair in edges for pair in zip(parents["service_parent"], parents["service"], strict=True)
    )
    lag = (parents["started_at"] - parents["started_at_parent"]).dt.total_seconds()
    assert lag.between(60, 1200).all()


def test_a_sized_fleet_history_with_soft_edges_and_launches(tmp_path):
    rng = np.random.default_rng(5)
    start = FleetProcess().as_of - pd.Timedelta(days=730)
    csv = contract_topology(
        layered_topology(800, 2.0, rng), rng, soft_share=0.25, launched_share=0.05,
        created_before_share=0.02, window_start=start, window_days=730,
    )  # fmt: skip
    csv.to_csv(tmp_path / "topology.csv", index=False)
    topology = Topology.from_frame(ingest.load_topology(tmp_path / "topology.csv").frame)
    soft = topology.criticality == "soft"
    assert 0.2 < soft.mean() < 0.3
    process = FleetProcess(
        incidents=20_000, rate_shape=0.8, edge_beta=(1.0, 6.0), soft_factor=0.25,
        max_generations=3, caused_by_share=0.5, dependency_share=0.6,
        missing_response_share=0.3, load_factor_share=0.4,
    )  # fmt: skip
    history = fleet_history(topology, process, np.random.default_rng(6))
    facts, incidents = history.facts, history.incidents
    assert 0.95 * 20_000 <= facts["incidents"] <= 20_000
    assert 0.25 <= facts["cascaded"] / facts["incidents"] <= 0.31
    assert len(facts["generations"]) <= 4  # roots and at most three generations
    assert 0 < facts["via_soft"] < 0.2 * facts["cascaded"]  # soft edges spread 4x less often
    assert incidents["detected_at"].isna().mean() == pytest.approx(0.3, abs=0.02)
    assert incidents["load_factor"].notna().mean() == pytest.approx(0.4, abs=0.02)
    created = topology.attributes["created_at"]
    launched = created[created > pd.Timestamp(start)]
    assert len(launched) > 20 and facts["at_launched"] > 0
    first = incidents.groupby("service")["started_at"].min()
    assert (first.reindex(launched.index).dropna() >= launched.reindex(first.index).dropna()).all()
