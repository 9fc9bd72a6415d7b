"""The service dependency graph: who calls whom, and therefore where failure flows.

An edge (dependency -> dependent) means "the dependent calls the dependency"; failure flows
along it, from the dependency to its dependents. Arrays, not objects, so that simulation can
vectorise over edges.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components


@dataclasses.dataclass(frozen=True)
class Topology:
    services: tuple[str, ...]
    edge_dependency: np.ndarray  # int index of the called service (where failure starts)
    edge_dependent: np.ndarray  # int index of the calling service (where failure arrives)
    attributes: pd.DataFrame  # one row per service, indexed by service name
    implicit: tuple[str, ...] = ()  # named only in depends_on, given no row of their own
    # Per edge: "hard", "soft", or "unknown" when the topology does not say (no soft_depends_on).
    edge_criticality: np.ndarray | None = None

    @property
    def criticality(self) -> np.ndarray:
        if self.edge_criticality is None:
            return np.full(len(self.edge_dependency), "unknown", dtype=object)
        return self.edge_criticality

    @property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.services)}

    @property
    def size(self) -> int:
        return len(self.services)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Topology:
        """Build from a normalised topology frame (service, depends_on as lists, attributes)."""
        declared = [str(s) for s in frame["service"]]
        named = [dep for deps in frame["depends_on"] for dep in deps]
        implicit = tuple(dict.fromkeys(d for d in named if d not in set(declared)))
        # Sorted, so that results do not depend on the order rows arrive in (a file and a
        # database query of the same topology give the same scenarios).
        services = tuple(sorted(set(declared) | set(implicit)))
        index = {name: i for i, name in enumerate(services)}
        pairs = sorted(
            (index[dep], index[svc])
            for svc, deps in zip(declared, frame["depends_on"], strict=True)
            for dep in deps
            if dep != svc
        )
        dependency = np.array([p[0] for p in pairs], dtype=np.int64)
        dependent = np.array([p[1] for p in pairs], dtype=np.int64)
        attributes = _attributes(frame, services, dependency)
        return cls(
            services, dependency, dependent, attributes, implicit, _criticality(frame, pairs, index)
        )

    def dependents_of(self, service: str) -> list[str]:
        i = self.index[service]
        return [self.services[j] for j in self.edge_dependent[self.edge_dependency == i]]

    def dependencies_of(self, service: str) -> list[str]:
        i = self.index[service]
        return [self.services[j] for j in self.edge_dependency[self.edge_dependent == i]]

    def cycles(self) -> list[list[str]]:
        """Groups of services that depend on each other in a loop (strongly connected)."""
        n = self.size
        graph = csr_matrix(
            (np.ones(len(self.edge_dependency)), (self.edge_dependency, self.edge_dependent)),
            shape=(n, n),
        )
        _, labels = connected_components(graph, directed=True, connection="strong")
        groups: dict[int, list[str]] = {}
        for name, label in zip(self.services, labels, strict=True):
            groups.setdefault(int(label), []).append(name)
        return [sorted(g) for g in groups.values() if len(g) > 1]

    def attribute(self, service: str, name: str) -> object:
        value = self.attributes.at[service, name]
        if isinstance(value, float) and math.isnan(value):
            return None
        return value or None

    def to_frame(self) -> pd.DataFrame:
        """The normalised topology as a contract-format table (for staging and reports)."""
        rows = self.attributes.copy()
        rows.insert(0, "depends_on", [";".join(self.dependencies_of(s)) for s in self.services])
        rows["user_facing"] = rows["user_facing"].map(lambda v: "true" if v else "false")
        rows["created_at"] = rows["created_at"].map(lambda t: t.isoformat() if pd.notna(t) else "")
        if self.edge_criticality is not None:
            soft = self.edge_criticality == "soft"
            rows["soft_depends_on"] = [
                ";".join(
                    self.services[u]
                    for u in self.edge_dependency[soft & (self.edge_dependent == i)]
                )
                for i in range(self.size)
            ]
        return rows.reset_index(names="service")


def _criticality(
    frame: pd.DataFrame, pairs: list[tuple[int, int]], index: dict[str, int]
) -> np.ndarray | None:
    """Each edge's criticality from the rows' soft_depends_on lists (None when not given)."""
    if "soft_depends_on" not in frame or not frame["soft_depends_on"].map(bool).any():
        return None
    soft = {
        (index[dep], index[str(svc)])
        for svc, deps in zip(frame["service"], frame["soft_depends_on"], strict=True)
        for dep in (deps or [])
        if dep != svc and dep in index
    }
    return np.array(["soft" if pair in soft else "hard" for pair in pairs], dtype=object)


def _attributes(
    frame: pd.DataFrame, services: tuple[str, ...], dependency: np.ndarray
) -> pd.DataFrame:
    """Per-service attributes; user_facing is inferred for entry points when not given."""
    columns = ["tier", "owner_team", "runbook_url", "oncall", "slo_target", "traffic_weight"]
    if "created_at" not in frame:
        frame = frame.assign(created_at=pd.NaT)
    table = frame.set_index("service")[[*columns, "user_facing", "created_at"]].reindex(
        list(services)
    )
    table["created_at"] = pd.to_datetime(table["created_at"], utc=True)
    for column in ("tier", "owner_team", "runbook_url", "oncall"):
        table[column] = table[column].fillna("").astype(str)
    has_dependents = np.zeros(len(services), dtype=bool)
    has_dependents[np.unique(dependency)] = True
    inferred = pd.Series(~has_dependents, index=table.index)
    given = table["user_facing"].map(lambda v: v if isinstance(v, bool) else None)
    table["user_facing"] = [
        bool(g) if g is not None else bool(i) for g, i in zip(given, inferred, strict=True)
    ]
    return table
