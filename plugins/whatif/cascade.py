"""Independent cascades on the dependency graph, many at once, touching only what fails.

A cascade starts at a root service; every service that fails tries each of its dependents
once, succeeding with that edge's probability (the independent cascade model); a service fails
at most once per cascade. All cascades of a batch advance together, one step per wave of newly
failed services, so the cost follows the failures (their out-edges), not the graph: no
per-draw Python loop and no per-draw pass over every edge.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import sparse

from whatif.topology import Topology


@dataclasses.dataclass(frozen=True)
class Graph:
    """Out-edges in CSR form: the dependents of service u are dependent[start[u]:start[u+1]],
    reached with probability p[...] (failure flows from a dependency to its dependents)."""

    start: np.ndarray
    dependent: np.ndarray
    p: np.ndarray

    @property
    def size(self) -> int:
        return len(self.start) - 1

    @classmethod
    def from_edges(
        cls, dependency: np.ndarray, dependent: np.ndarray, p: np.ndarray, n: int
    ) -> Graph:
        order = np.lexsort((dependent, dependency))
        counts = np.bincount(dependency, minlength=n)
        start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(start, dependent[order].astype(np.int64), p[order].astype(float))

    @classmethod
    def from_topology(cls, topology: Topology, p: np.ndarray) -> Graph:
        """The topology's edges with propagation probabilities `p` (in the topology's edge
        order)."""
        return cls.from_edges(topology.edge_dependency, topology.edge_dependent, p, topology.size)

    @functools.cached_property
    def matrix(self) -> sparse.csr_matrix:
        return sparse.csr_matrix(
            (np.ones(len(self.dependent)), self.dependent, self.start), shape=(self.size,) * 2
        )

    def descendants(self, root: int) -> np.ndarray:
        """Every service a failure of `root` can reach (root included)."""
        matrix = self.matrix
        reached = np.zeros(self.size, dtype=bool)
        frontier = np.array([root])
        while len(frontier):
            reached[frontier] = True
            nxt = np.unique(matrix[frontier].indices)
            frontier = nxt[~reached[nxt]]
        return np.flatnonzero(reached)


def spread(
    graph: Graph,
    roots: np.ndarray,
    rng: np.random.Generator,
    cascade: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """Run one independent cascade from each entry of `roots`, or, with `cascade` (the
    cascade of each root), cascades with several roots failing at once.

    Returns (cascade, service): one pair per failed service, roots included, sorted by cascade
    (cascade = the index into `roots`, or the given number)."""
    n = np.int64(max(graph.size, 1))
    service = np.asarray(roots, dtype=np.int64)
    if cascade is None:  # one root per cascade, in cascade order: already sorted and unique
        cascade = np.arange(len(roots), dtype=np.int64)
        keys = cascade * n + service
    else:
        keys = sorted_unique(np.asarray(cascade, dtype=np.int64) * n + service)
        cascade, service = keys // n, keys % n
    waves = [keys]  # each wave sorted: cascade * n + service
    while len(service):
        degree = graph.start[service + 1] - graph.start[service]
        total = int(degree.sum())
        if total == 0:
            break
        offsets = np.repeat(graph.start[service] - np.cumsum(degree) + degree, degree)
        edge = offsets + np.arange(total)
        fired = rng.random(total) < graph.p[edge]
        keys = sorted_unique(np.repeat(cascade, degree)[fired] * n + graph.dependent[edge[fired]])
        for wave in waves:
            keys = keys[~_contains(wave, keys)]
        waves.append(keys)
        cascade, service = keys // n, keys % n
    keys = np.sort(np.concatenate(waves), kind="stable")  # merges the sorted waves
    return keys // n, keys % n


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy's hash-based unique is several times slower on the tens of
    millions of int64 keys a large batch has)."""
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def sorted_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(keys, return_counts=True), by sorting (see sorted_unique)."""
    keys = np.sort(keys)
    if not len(keys):
        return keys, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.diff(np.r_[starts, len(keys)])


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which of `keys` are in `sorted_keys` (binary search: no hashing, no Python loop)."""
    if not len(sorted_keys) or not len(keys):
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys
