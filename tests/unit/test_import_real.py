"""The importers on real systems' graphs (tests/data/public: Online Boutique, Train Ticket,
DeathStarBench's social network, GAIA's MicroSS): each graph written the way its platform
team would have it (a Backstage catalog, a Jaeger dependencies answer) reads back as the same
services and dependencies, and the merged topology fits with the system's real incidents."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from whatif import ingest, report
from whatif.importers import backstage, merge, traces
from whatif.importers.common import topology_csv
from whatif.schemas import ModelDoc

PUBLIC = Path(__file__).parents[1] / "data" / "public"
SYSTEMS = {
    "onlineboutique": PUBLIC / "topologies" / "onlineboutique.csv",
    "trainticket": PUBLIC / "topologies" / "trainticket.csv",
    "dsb-socialnetwork": PUBLIC / "topologies" / "dsb-socialnetwork.csv",
    "gaia-micross": PUBLIC / "gaia-micross" / "topology.csv",
}


def _graph(path: Path) -> dict[str, list[str]]:
    """Service -> its dependencies, as the file says (every named service has a row)."""
    frame = ingest.load_topology(path).frame
    graph = {
        s: [d for d in deps if d != s]
        for s, deps in zip(frame["service"], frame["depends_on"], strict=True)
    }
    for deps in list(graph.values()):
        for name in deps:
            graph.setdefault(name, [])
    return graph


def _edges(records) -> set[tuple[str, str]]:
    return {(r.service, d) for r in records for d in r.dependencies()}


def _catalog(graph: dict[str, list[str]], folder: Path) -> None:
    """One catalog-info.yaml per service in a folder per first letter; data stores (names
    with db, redis, mongo, memcached, mysql) as Resources, the rest Components."""
    stores = ("db", "redis", "mongo", "memcached", "mysql", "cache")

    def kind(name: str) -> str:
        return "Resource" if any(word in name for word in stores) else "Component"

    for name, deps in graph.items():
        entity = {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": kind(name),
            "metadata": {"name": name},
            "spec": {
                "type": "database" if kind(name) == "Resource" else "service",
                "owner": "group:default/team-" + name[:1],
                "dependsOn": [f"{kind(d).lower()}:default/{d}" for d in deps],
            },
        }
        if kind(name) == "Component":
            entity["spec"]["lifecycle"] = "production"
        target = folder / name[:1] / name / "catalog-info.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(entity, sort_keys=False))


def _jaeger_answer(graph: dict[str, list[str]], seed: int) -> dict:
    rng = np.random.default_rng(seed)
    links = [
        {"parent": s, "child": d, "callCount": int(rng.integers(1, 5000))}
        for s, deps in graph.items()
        for d in deps
    ]
    return {"data": links, "total": 0, "limit": 0, "offset": 0, "errors": None}


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_a_real_graph_as_a_catalog_and_as_traces_reads_back_as_itself(system, tmp_path):
    graph = _graph(SYSTEMS[system])
    expected = {(s, d) for s, deps in graph.items() for d in deps}
    _catalog(graph, tmp_path / "catalog")
    declared = backstage.import_topology(str(tmp_path / "catalog"))
    assert sorted(r.service for r in declared) == sorted(graph)
    assert _edges(declared) == expected
    answer = _jaeger_answer(graph, seed=len(graph))
    saved = tmp_path / "dependencies.json"
    saved.write_text(json.dumps(answer))
    observed = traces.import_jaeger(str(saved), end=datetime(2026, 11, 1, tzinfo=UTC))
    # Jaeger knows only services that call or are called: isolated ones have no link.
    assert {r.service for r in observed} == {s for edge in expected for s in edge}
    assert _edges(observed) == expected
    calls = {(r.service, d): c for r in observed for d, c in r.observed_calls.items()}
    assert calls == {(link["parent"], link["child"]): link["callCount"] for link in answer["data"]}
    merged = merge.merge([declared, observed], ["catalog", "jaeger"])
    assert _edges(merged) == expected
    assert all(r.owner_team == "team-" + r.service[:1] for r in merged)
    path = tmp_path / "topology.csv"
    path.write_text(topology_csv(merged))
    assert _edges(merge.read_records(str(path))) == expected


def test_the_merged_real_topology_fits_with_the_real_history(run_cli, tmp_path):
    """GAIA's MicroSS: its graph imported as a catalog and as traces, merged, then fitted with
    GAIA's own incidents: every edge the traces saw carries its coverage into model.json. The
    call counts here are random, unrelated to GAIA's cascades (192 inferred from timing), and
    the marginal likelihood says so: the trace prior's exponent is 0, the counts ignored (the
    same for seeds 1 to 5)."""
    graph = _graph(SYSTEMS["gaia-micross"])
    _catalog(graph, tmp_path / "catalog")
    saved = tmp_path / "dependencies.json"
    saved.write_text(json.dumps(_jaeger_answer(graph, seed=7)))
    for kind, source, out in (
        ("backstage", tmp_path / "catalog", tmp_path / "catalog.csv"),
        ("jaeger", saved, tmp_path / "traces.csv"),
    ):
        code, _, err = run_cli("topology", "import", kind, source, "--out", out)
        assert code == 0, err
    topology = tmp_path / "topology.csv"
    code, _, err = run_cli(
        "topology", "merge", tmp_path / "catalog.csv", tmp_path / "traces.csv", "--out", topology
    )
    assert code == 0, err
    model_path = tmp_path / "model.json"
    code, _, err = run_cli(
        "fit",
        "--incidents",
        PUBLIC / "gaia-micross" / "incidents.csv",
        "--topology",
        topology,
        "--out",
        model_path,
        "--as-of",
        "2021-09-01",  # the day after GAIA's newest incident
    )
    assert code == 0, err
    model = json.loads(model_path.read_text())
    edges = model["edges"]
    assert len(edges) == sum(len(deps) for deps in graph.values())
    assert all(e["observed"] is not None and 0 < e["observed"]["coverage"] <= 1 for e in edges)
    prior = model["priors"]["propagation_unknown"]
    assert model["attribution"]["inferred"] > 0 and prior["source"] == "data"
    assert prior["traced_edges"] == len(edges) and prior["trace_exponent"] == 0.0
    card = report.model_card(ModelDoc.model_validate(model))
    assert card["propagation_priors"][0]["source"].endswith(
        "call coverage ignored, it did not predict this history's cascades"
    )
