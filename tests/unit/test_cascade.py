"""Cascade engine: analytic checks of the independent cascade on small graphs.

Every probability below is known in closed form; Monte Carlo estimates from N cascades must
land within 4 standard errors, sqrt(p (1 - p) / N), of it (fixed seeds, so the checks are
deterministic). Edges are (dependency -> dependent): failure flows from a dependency to its
dependents. Also checked: reachability on a random DAG, batches of mixed roots, determinism,
the output contract of `cascade.spread`, and edge cases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_model import topology_frame
from test_simulate import model_doc, shares
from whatif import cascade, simulate
from whatif.topology import Topology

N = 40_000  # cascades per Monte Carlo estimate
Z = 4.0  # tolerance in standard errors


def graph(edges: list[tuple[int, int, float]], n: int) -> cascade.Graph:
    """A graph from (dependency, dependent, probability) triples."""
    dependency = np.array([e[0] for e in edges], dtype=np.int64)
    dependent = np.array([e[1] for e in edges], dtype=np.int64)
    p = np.array([e[2] for e in edges], dtype=float)
    return cascade.Graph.from_edges(dependency, dependent, p, n)


def run(g: cascade.Graph, roots, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return cascade.spread(g, np.asarray(roots, dtype=np.int64), np.random.default_rng(seed))


def assert_share(observed: float, p: float, n: int, what: str = "") -> None:
    """observed is a frequency over n trials of an event of probability p."""
    tolerance = Z * math.sqrt(p * (1 - p) / n)
    assert abs(observed - p) <= tolerance, (
        f"{what}: observed {observed:.5f}, exact {p:.5f}, tolerance {tolerance:.5f} (n={n})"
    )


def hit_share(which: np.ndarray, service: np.ndarray, target: int, count: int) -> float:
    """Share of the `count` cascades in which `target` fails (pairs are unique)."""
    return np.count_nonzero(service == target) / count


def reach_matrix(g: cascade.Graph) -> np.ndarray:
    """reach[r, s]: s is among the transitive dependents of r (r included)."""
    reach = np.zeros((g.size, g.size), dtype=bool)
    for r in range(g.size):
        reach[r, g.descendants(r)] = True
    return reach


def random_dag(seed: int, n: int = 60, density: float = 0.08):
    """Edges of a random DAG on n services (random topological order), no probabilities."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    i, j = np.triu_indices(n, 1)
    keep = rng.random(len(i)) < density
    return order[i[keep]], order[j[keep]], rng


# --- 1. chain a -> b -> c -> d ------------------------------------------------------------

P1, P2, P3 = 0.8, 0.5, 0.6
# Blast radius of a cascade from a: k services fail when the first k-1 edges fire and the
# k-th does not: P(1) = 1-p1, P(2) = p1(1-p2), P(3) = p1 p2 (1-p3), P(4) = p1 p2 p3.
CHAIN_SIZES = {
    1: 1 - P1,
    2: P1 * (1 - P2),
    3: P1 * P2 * (1 - P3),
    4: P1 * P2 * P3,
}


def test_chain_hit_probabilities_are_products_of_the_edge_probabilities():
    # Edges given out of order: from_edges must sort them into CSR itself.
    g = graph([(2, 3, P3), (0, 1, P1), (1, 2, P2)], 4)
    which, service = run(g, np.zeros(N), seed=1)
    for target, exact in ((1, P1), (2, P1 * P2), (3, P1 * P2 * P3)):
        assert_share(hit_share(which, service, target, N), exact, N, f"P(hit {target})")


def test_chain_blast_radius_distribution_is_exact():
    g = graph([(0, 1, P1), (1, 2, P2), (2, 3, P3)], 4)
    which, _ = run(g, np.zeros(N), seed=2)
    sizes = np.bincount(which, minlength=N)
    assert set(np.unique(sizes)) <= set(CHAIN_SIZES)
    for k, exact in CHAIN_SIZES.items():
        assert_share(np.mean(sizes == k), exact, N, f"P(size={k})")


def test_chain_failure_never_flows_upstream():
    # From b only c and d can fail (P(c) = p2, P(d) = p2 p3); a never.
    g = graph([(0, 1, P1), (1, 2, P2), (2, 3, P3)], 4)
    which, service = run(g, np.ones(N), seed=3)
    assert not np.any(service == 0)
    assert_share(hit_share(which, service, 2, N), P2, N, "P(c | b)")
    assert_share(hit_share(which, service, 3, N), P2 * P3, N, "P(d | b)")


def test_chain_through_simulate_cascades_uses_the_posterior_means():
    # db -> api -> web -> cdn with Beta posteriors of means 0.8, 0.5, 0.6 (= P1, P2, P3);
    # the topology sorts services by name, so indices do not follow the chain.
    names = ["db", "api", "web", "cdn"]
    topology = Topology.from_frame(
        topology_frame(names, {"api": ["db"], "web": ["api"], "cdn": ["web"]})
    )
    doc = model_doc(
        names,
        {("db", "api"): (4.0, 1.0), ("api", "web"): (1.0, 1.0), ("web", "cdn"): (3.0, 2.0)},
    )
    stats = simulate.simulate_cascades(doc, topology, N, np.random.default_rng(4))
    from_db = stats[topology.index["db"]]
    affected = shares(from_db, topology)
    assert affected["db"] == 1.0
    for name, exact in (("api", P1), ("web", P1 * P2), ("cdn", P1 * P2 * P3)):
        assert_share(affected[name], exact, N, f"P({name} | db)")
    assert len(from_db.blast_radius) == N
    for k, exact in CHAIN_SIZES.items():
        assert_share(np.mean(from_db.blast_radius == k), exact, N, f"P(size={k})")
    # From web: only cdn, with probability p3; nothing upstream.
    from_web = shares(stats[topology.index["web"]], topology)
    assert from_web["db"] == from_web["api"] == 0.0
    assert_share(from_web["cdn"], P3, N, "P(cdn | web)")
    # The end of the chain reaches nothing.
    assert set(stats[topology.index["cdn"]].blast_radius) == {1}


# --- 2. star: hub -> 5 leaves ---------------------------------------------------------------


def test_star_blast_radius_minus_one_is_binomial():
    # Leaves fail independently with probability p: size - 1 ~ Binomial(5, p).
    leaves, p = 5, 0.3
    g = graph([(0, leaf, p) for leaf in range(1, leaves + 1)], leaves + 1)
    which, _ = run(g, np.zeros(N), seed=5)
    k = np.bincount(which, minlength=N) - 1
    mean, var = leaves * p, leaves * p * (1 - p)
    # Mean: standard error sqrt(var / N).
    assert abs(k.mean() - mean) <= Z * math.sqrt(var / N), (k.mean(), mean)
    # Variance: standard error sqrt((mu4 - var^2) / N), with the binomial's fourth central
    # moment mu4 = n p q (1 + 3 (n - 2) p q).
    mu4 = var * (1 + 3 * (leaves - 2) * p * (1 - p))
    assert abs(k.var() - var) <= Z * math.sqrt((mu4 - var**2) / N), (k.var(), var)
    # P(0) = (1 - p)^5, and the whole pmf C(5, j) p^j (1 - p)^(5 - j).
    assert_share(np.mean(k == 0), (1 - p) ** leaves, N, "P(no leaf)")
    for j in range(leaves + 1):
        exact = math.comb(leaves, j) * p**j * (1 - p) ** (leaves - j)
        assert_share(np.mean(k == j), exact, N, f"P({j} leaves)")


# --- 3. diamond a -> {b, c} -> d ------------------------------------------------------------

P_AB, P_AC, P_BD, P_CD = 0.6, 0.5, 0.7, 0.4


def diamond() -> cascade.Graph:
    return graph([(0, 1, P_AB), (0, 2, P_AC), (1, 3, P_BD), (2, 3, P_CD)], 4)


def test_diamond_two_independent_paths():
    # d fails unless both paths fail: P(d) = 1 - (1 - p_ab p_bd)(1 - p_ac p_cd).
    which, service = run(diamond(), np.zeros(N), seed=6)
    exact = 1 - (1 - P_AB * P_BD) * (1 - P_AC * P_CD)
    assert_share(hit_share(which, service, 3, N), exact, N, "P(d)")
    assert_share(hit_share(which, service, 1, N), P_AB, N, "P(b)")
    assert_share(hit_share(which, service, 2, N), P_AC, N, "P(c)")
    # Both b and c fail: p_ab p_ac (edges out of a are independent).
    both = np.zeros(N, dtype=bool)
    both[which[service == 1]] = True
    both &= np.isin(np.arange(N), which[service == 2])
    assert_share(both.mean(), P_AB * P_AC, N, "P(b and c)")


def test_paths_of_different_lengths_combine_independently():
    # a -> d directly and a -> b -> d: P(d) = 1 - (1 - p_ad)(1 - p_ab p_bd); d counted once.
    p_ad, p_ab, p_bd = 0.3, 0.6, 0.5
    g = graph([(0, 2, p_ad), (0, 1, p_ab), (1, 2, p_bd)], 3)
    which, service = run(g, np.zeros(N), seed=7)
    assert len(np.unique(which * 3 + service)) == len(which)
    assert_share(hit_share(which, service, 2, N), 1 - (1 - p_ad) * (1 - p_ab * p_bd), N, "P(d)")


def test_mixed_batch_of_roots_matches_each_roots_closed_form():
    # One batch, roots a, b, c, d shuffled together: each cascade follows its own root's law,
    # P(d | a) = 1 - (1 - p_ab p_bd)(1 - p_ac p_cd), P(d | b) = p_bd, P(d | c) = p_cd, d: 1.
    per_root = N // 2
    roots = np.random.default_rng(8).permutation(np.repeat(np.arange(4), per_root))
    which, service = run(diamond(), roots, seed=9)
    d_hit = np.zeros(len(roots), dtype=bool)
    d_hit[which[service == 3]] = True
    exact = {0: 1 - (1 - P_AB * P_BD) * (1 - P_AC * P_CD), 1: P_BD, 2: P_CD, 3: 1.0}
    for root, p in exact.items():
        assert_share(d_hit[roots == root].mean(), p, per_root, f"P(d | root {root})")
    # Upstream services never fail: b and c only from a (or as roots themselves).
    assert not np.any((service == 0) & (roots[which] != 0))
    assert not np.any((service == 1) & ~np.isin(roots[which], [0, 1]))


# --- 4. cycles ------------------------------------------------------------------------------


def test_certain_cycle_terminates_with_each_service_once():
    # a <-> b with probability 1 both ways: every cascade is exactly {a, b}.
    g = graph([(0, 1, 1.0), (1, 0, 1.0)], 2)
    which, service = run(g, np.array([0, 1] * 500), seed=10)
    assert np.array_equal(np.bincount(which, minlength=1000), np.full(1000, 2))
    assert len(np.unique(which * 2 + service)) == len(which)


def test_longer_cycle_and_self_loop_terminate():
    # a -> b -> c -> a (certain) plus a self-loop on a: {a, b, c} once each.
    g = graph([(0, 1, 1.0), (1, 2, 1.0), (2, 0, 1.0), (0, 0, 1.0)], 3)
    which, service = run(g, np.zeros(100), seed=11)
    assert np.array_equal(np.bincount(which, minlength=100), np.full(100, 3))
    assert len(np.unique(which * 3 + service)) == len(which)


def test_uncertain_cycle_back_edge_changes_nothing():
    # a <-> b with probability p each way, from a: size 2 with probability p (the edge back
    # to a can only hit an already failed service).
    p = 0.35
    which, _ = run(graph([(0, 1, p), (1, 0, p)], 2), np.zeros(N), seed=12)
    sizes = np.bincount(which, minlength=N)
    assert set(np.unique(sizes)) <= {1, 2}
    assert_share(np.mean(sizes == 2), p, N, "P(size=2)")


# --- 5. reachability on a random DAG -------------------------------------------------------


def test_certain_edges_reach_exactly_the_transitive_dependents():
    dependency, dependent, _ = random_dag(13)
    g = cascade.Graph.from_edges(dependency, dependent, np.ones(len(dependency)), 60)
    reach = reach_matrix(g)
    depth = reach.sum(axis=1)
    assert depth.max() >= 10 and depth.min() == 1 and depth.max() < 60  # not a vacuous graph
    roots = np.random.default_rng(14).permutation(np.repeat(np.arange(60), 5))
    which, service = run(g, roots, seed=15)
    # Each cascade = descendants(root): only those, no duplicates, and as many.
    assert reach[roots[which], service].all()
    assert len(np.unique(which * 60 + service)) == len(which)
    assert np.array_equal(np.bincount(which, minlength=len(roots)), depth[roots])


def test_failures_stay_among_the_roots_dependents_in_a_mixed_batch():
    dependency, dependent, rng = random_dag(16)
    p = rng.uniform(0.2, 0.9, len(dependency))
    g = cascade.Graph.from_edges(dependency, dependent, p, 60)
    reach = reach_matrix(g)
    roots = rng.permutation(np.repeat(np.arange(60), 200))
    which, service = run(g, roots, seed=17)
    assert reach[roots[which], service].all()  # never upstream, never unrelated
    keys = which * 60 + service
    assert np.isin(np.arange(len(roots)) * 60 + roots, keys).all()  # root always in
    assert 0 < (np.bincount(which, minlength=len(roots)) < reach.sum(1)[roots]).mean() < 1


def test_batch_equals_per_root_runs_in_distribution():
    # Hit frequencies of each service from a root: in a mixed batch and alone, the same law
    # (two-sample difference within 4 standard errors).
    dependency, dependent, rng = random_dag(18)
    p = rng.uniform(0.2, 0.9, len(dependency))
    g = cascade.Graph.from_edges(dependency, dependent, p, 60)
    per_root = 4000
    roots = rng.permutation(np.repeat(np.arange(60), per_root))
    which, service = run(g, roots, seed=19)
    batch = np.zeros((60, 60))
    np.add.at(batch, (roots[which], service), 1.0)
    batch /= per_root
    deepest = np.argsort(-reach_matrix(g).sum(1))[:3]
    for root in deepest:
        _, alone_service = run(g, np.full(per_root, root), seed=20 + int(root))
        alone = np.bincount(alone_service, minlength=60) / per_root
        pooled = (batch[root] + alone) / 2
        tolerance = Z * np.sqrt(pooled * (1 - pooled) * 2 / per_root) + 1e-12
        assert (np.abs(batch[root] - alone) <= tolerance).all(), (root, batch[root], alone)


# --- 6. determinism -------------------------------------------------------------------------


def test_same_seed_same_arrays_other_seed_other_arrays():
    dependency, dependent, rng = random_dag(21)
    g = cascade.Graph.from_edges(dependency, dependent, rng.uniform(0.2, 0.9, len(dependency)), 60)
    roots = np.repeat(np.arange(60), 50)
    first, again, other = run(g, roots, seed=3), run(g, roots, seed=3), run(g, roots, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(
        len(x) == len(y) and np.array_equal(x, y) for x, y in zip(first, other, strict=True)
    )


# --- 7. output contract ---------------------------------------------------------------------


def test_output_is_sorted_by_cascade_unique_and_contains_every_root():
    dependency, dependent, rng = random_dag(22)
    g = cascade.Graph.from_edges(dependency, dependent, rng.uniform(0.2, 0.9, len(dependency)), 60)
    roots = rng.integers(0, 60, 5000)
    which, service = run(g, roots, seed=23)
    assert len(which) == len(service)
    assert np.issubdtype(which.dtype, np.integer) and np.issubdtype(service.dtype, np.integer)
    assert (np.diff(which) >= 0).all()  # sorted by cascade index
    assert which.min() == 0 and which.max() == len(roots) - 1
    assert ((service >= 0) & (service < 60)).all()
    keys = which * 60 + service
    assert len(np.unique(keys)) == len(keys)  # no duplicate (cascade, service) pair
    assert np.isin(np.arange(len(roots)) * 60 + roots, keys).all()  # every root in its cascade


# --- 8. edge cases --------------------------------------------------------------------------


def test_empty_roots_give_empty_arrays():
    which, service = run(diamond(), np.array([], dtype=np.int64))
    assert len(which) == 0 and len(service) == 0


def test_graph_without_edges_fails_only_the_roots():
    empty = np.array([], dtype=np.int64)
    g = cascade.Graph.from_edges(empty, empty, np.array([], dtype=float), 5)
    assert g.size == 5
    assert list(g.descendants(3)) == [3]
    roots = np.array([4, 0, 0, 2, 3])
    which, service = run(g, roots)
    assert list(which) == [0, 1, 2, 3, 4]
    assert list(service) == list(roots)


@pytest.mark.parametrize("leaf", [3, 4])
def test_service_without_out_edges_fails_alone(leaf):
    # d (3) ends the diamond; 4 is an isolated service of the same graph.
    g = graph([(0, 1, 1.0), (0, 2, 1.0), (1, 3, 1.0), (2, 3, 1.0)], 5)
    which, service = run(g, np.array([leaf, 0, leaf]))
    assert list(service[which == 0]) == [leaf] == list(service[which == 2])
    assert sorted(service[which == 1]) == [0, 1, 2, 3]


def test_impossible_edges_never_fire():
    # p = 0 never fires, p = 1 always does: from a, b always, c never.
    g = graph([(0, 1, 1.0), (0, 2, 0.0)], 3)
    which, service = run(g, np.zeros(1000), seed=24)
    assert hit_share(which, service, 1, 1000) == 1.0
    assert hit_share(which, service, 2, 1000) == 0.0


def test_a_cascade_with_two_roots_tries_each_edge_once():
    # a -> c and b -> c always fire; c -> d with 0.5. From a and b failing together, d falls
    # in half of the cascades (c's edge is tried once), not 1 - 0.5^2 as two separate
    # cascades merged afterwards would give.
    graph = cascade.Graph.from_edges(
        np.array([0, 1, 2]), np.array([2, 2, 3]), np.array([1.0, 1.0, 0.5]), 4
    )
    n = 40_000
    which, service = cascade.spread(
        graph,
        np.repeat([0, 1], n),
        np.random.default_rng(8),
        cascade=np.tile(np.arange(n), 2),
    )
    assert np.array_equal(np.unique(which), np.arange(n))
    hit_d = np.mean(np.isin(np.arange(n), which[service == 3]))
    assert hit_d == pytest.approx(0.5, abs=4 * np.sqrt(0.25 / n))
    assert np.bincount(which).min() >= 3  # both roots and c in every cascade
