"""The dependency graph's arrays: built vectorised from a topology frame, they must say what a
plain reading of the rows says (edges, implicit services, criticality, neighbours)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from whatif import ingest, synthetic
from whatif.topology import Topology


def plain_edges(frame: pd.DataFrame) -> tuple[tuple[str, ...], list[tuple[str, str]], tuple]:
    """Services, (dependency, dependent) pairs and implicit names, read row by row."""
    declared = [str(s) for s in frame["service"]]
    implicit: list[str] = []
    for deps in frame["depends_on"]:
        implicit += [d for d in deps if d not in declared and d not in implicit]
    services = tuple(sorted(set(declared) | set(implicit)))
    pairs = sorted(
        (dep, svc)
        for svc, deps in zip(declared, frame["depends_on"], strict=True)
        for dep in deps
        if dep != svc
    )
    return services, pairs, tuple(implicit)


def small_frame() -> pd.DataFrame:
    """Rows in no particular order, a self-reference, an implicit (undeclared) dependency,
    soft edges (one naming a service that is no dependency, one a self-reference)."""
    return pd.DataFrame(
        {
            "service": ["web", "api", "db", "cache"],
            "depends_on": [["api", "cdn"], ["db", "cache", "api"], [], ["db"]],
            "soft_depends_on": [["cdn"], ["cache", "api"], [], ["queue"]],
            "tier": ["edge", "core", "data", "data"],
            "owner_team": ["web-team", "api-team", None, "data-team"],
            "runbook_url": [None] * 4,
            "oncall": [None] * 4,
            "slo_target": [0.999, None, None, None],
            "traffic_weight": [1.0, None, None, None],
            "user_facing": [None, None, None, False],
        }
    )


def test_small_graph_reads_as_its_rows() -> None:
    topology = Topology.from_frame(small_frame())
    assert topology.services == ("api", "cache", "cdn", "db", "web")
    assert topology.implicit == ("cdn",)
    edges = [
        (topology.services[u], topology.services[v])
        for u, v in zip(topology.edge_dependency, topology.edge_dependent, strict=True)
    ]
    assert edges == [
        ("api", "web"),
        ("cache", "api"),
        ("cdn", "web"),
        ("db", "api"),
        ("db", "cache"),
    ]
    assert dict(zip(edges, topology.criticality, strict=True)) == {
        ("api", "web"): "hard",
        ("cache", "api"): "soft",
        ("cdn", "web"): "soft",
        ("db", "api"): "hard",
        ("db", "cache"): "hard",
    }
    assert topology.dependencies_of("api") == ["cache", "db"]
    assert topology.dependents_of("db") == ["api", "cache"]
    assert topology.dependents_of("web") == [] and topology.dependencies_of("db") == []
    assert topology.attribute("db", "owner_team") is None
    assert topology.attribute("web", "owner_team") == "web-team"
    assert topology.attribute("web", "slo_target") == 0.999
    assert topology.attribute("api", "slo_target") is None
    # Entry points (nothing depends on them) are user facing unless the row says otherwise.
    facing = dict(zip(topology.services, topology.attributes["user_facing"], strict=True))
    assert facing == {"api": False, "cache": False, "cdn": False, "db": False, "web": True}


def test_to_frame_lists_each_service_dependencies() -> None:
    rows = Topology.from_frame(small_frame()).to_frame().set_index("service")
    assert rows.loc["api", "depends_on"] == "cache;db"
    assert rows.loc["web", "depends_on"] == "api;cdn"
    assert rows.loc["db", "depends_on"] == ""
    assert rows.loc["web", "soft_depends_on"] == "cdn"
    assert rows.loc["api", "soft_depends_on"] == "cache"
    assert rows.loc["cache", "soft_depends_on"] == ""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fleet_graph_matches_a_plain_reading(seed: int) -> None:
    """A generated fleet with hubs, shuffled rows and a few undeclared dependencies: the
    same services, edges and neighbours as reading the rows one by one."""
    rng = np.random.default_rng(seed)
    frame = synthetic.layered_topology(400, 3.0, rng, hubs=3, hub_share=0.2)
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    frame.loc[:4, "depends_on"] = frame.loc[:4, "depends_on"].map(lambda d: [*d, "saas-x"])
    topology = Topology.from_frame(frame)
    services, pairs, implicit = plain_edges(frame)
    assert topology.services == services
    assert topology.implicit == implicit
    names = np.array(services, dtype=object)
    got = list(zip(names[topology.edge_dependency], names[topology.edge_dependent], strict=True))
    assert got == pairs
    for service in rng.choice(np.array(services), size=40, replace=False):
        assert topology.dependents_of(service) == sorted(v for u, v in pairs if u == service)
        assert topology.dependencies_of(service) == sorted(u for u, v in pairs if v == service)


def test_hubs_are_shared_by_many() -> None:
    """The benchmark fleet's shared infrastructure: each hub has about hub_share of the
    services above the foundations as dependents; without hubs the graph is unchanged."""
    plain = synthetic.layered_topology(2000, 3.0, np.random.default_rng(5))
    again = synthetic.layered_topology(2000, 3.0, np.random.default_rng(5), hubs=0)
    assert plain["depends_on"].map(tuple).equals(again["depends_on"].map(tuple))
    hubbed = Topology.from_frame(
        synthetic.layered_topology(2000, 3.0, np.random.default_rng(5), hubs=4, hub_share=0.3)
    )
    dependents = np.bincount(hubbed.edge_dependency, minlength=hubbed.size)
    hubs = [hubbed.index[f"svc-{i:05d}"] for i in range(4)]
    upper = int((hubbed.attributes["tier"] != "data").sum())
    assert all(dependents[h] > 0.25 * upper for h in hubs)
    others = np.delete(dependents, hubs)
    assert dependents[hubs].min() > 3 * np.percentile(others, 99)


PUBLIC = Path(__file__).parents[1] / "data" / "public"


@pytest.mark.parametrize("history", sorted(p.parent.name for p in PUBLIC.glob("*/topology.csv")))
def test_real_topologies_read_as_their_rows(history: str) -> None:
    """The public systems' topologies (tests/data/public, from ../shared/data): the same
    services, edges and neighbours as reading their rows one by one."""
    frame = ingest.load_topology(PUBLIC / history / "topology.csv").frame
    topology = Topology.from_frame(frame)
    services, pairs, implicit = plain_edges(frame)
    assert topology.services == services and topology.implicit == implicit
    names = np.array(services, dtype=object)
    got = list(zip(names[topology.edge_dependency], names[topology.edge_dependent], strict=True))
    assert got == pairs
    for service in services:
        assert topology.dependencies_of(service) == sorted(u for u, v in pairs if v == service)


TRACED_TOPOLOGY = """\
service,depends_on,soft_depends_on,observed_requests,observed_calls,observed_errors
web,api;cdn,,,api=100;cdn=50,api=2
api,db;cache,cache,100,db=80;cache=200,db=1
db,,,80,,
cache,,,,,
cdn,,,,cdn=3,
"""


def test_trace_counts_land_on_their_edges_and_survive_the_staged_copy(tmp_path: Path) -> None:
    path = tmp_path / "topology.csv"
    path.write_text(TRACED_TOPOLOGY)
    table = ingest.load_topology(path)
    # cdn names itself, which is no dependency of its row: ignored and flagged, row kept.
    assert table.frame["bad_observed_counts"].tolist() == [False, False, False, False, True]
    topology = Topology.from_frame(table.frame)
    edges = {
        (topology.services[u], topology.services[v]): k
        for k, (u, v) in enumerate(
            zip(topology.edge_dependency, topology.edge_dependent, strict=True)
        )
    }
    calls, errors, coverage = topology.edge_calls, topology.edge_errors, topology.coverage()
    assert calls[edges["db", "api"]] == 80 and errors[edges["db", "api"]] == 1
    assert calls[edges["cache", "api"]] == 200 and np.isnan(errors[edges["cache", "api"]])
    # api served 100 requests: db on 80 % of them, cache more than once each (capped at 1);
    # web's requests are unknown (an entry point): its busiest dependency counts as 1.
    assert coverage[edges["db", "api"]] == pytest.approx(0.8)
    assert coverage[edges["cache", "api"]] == 1.0
    assert coverage[edges["api", "web"]] == 1.0
    assert coverage[edges["cdn", "web"]] == pytest.approx(0.5)
    staged = tmp_path / "staged.csv"
    topology.to_frame().to_csv(staged, index=False)
    again = Topology.from_frame(ingest.load_topology(staged).frame)
    np.testing.assert_array_equal(again.edge_calls, calls)
    np.testing.assert_array_equal(again.edge_errors, errors)
    np.testing.assert_array_equal(again.coverage(), coverage)


def test_a_topology_without_trace_counts_has_no_coverage() -> None:
    topology = Topology.from_frame(small_frame())
    assert topology.edge_calls is None and np.isnan(topology.coverage()).all()
