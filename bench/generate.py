"""The generating part of the benchmarks: their inputs, drawn with whatif.synthetic (seeded, so
every run measures the same inputs) and written as files into a folder. Each benchmark runs it
as a child process (common.generate): Linux carries a parent's RSS high-water mark into a
forked child's, so a parent that held the inputs would inflate every figure.

- simulate: a layered DAG (pickled), a history with known rates on it and the model fitted from
  it (model.json): bench_simulate.py's inputs;
- fit:      the topology as a contract CSV (soft edges, created_at) and about --rows incidents
  in the clean validated format (incidents.parquet): bench_fit.py's;
- validate: the topology CSV and about --rows incidents as a user's export (incidents.csv):
  spelling variants, mixed timestamp formats and vocabularies, ~2 % bad rows: bench_validate's;
- fleet:    a fleet of --services with shared infrastructure hubs (topology.csv) and about --rows
  incidents as a user's export (incidents.csv): bench_commands.py's, for the CLI end to end;
- imports:  the same fleet as the importers' sources hold it: a Backstage catalog (catalog/,
  entities.json), trace traffic (traffic.csv, jaeger_links.json) and about --rows incidents
  (incidents.parquet): bench_imports.py's.

    PYTHONPATH=plugins .venv/bin/python bench/generate.py {simulate,fit,validate,fleet,imports}
        --dir DIR
        [--rows N] [--services N] [--dependencies D] [--named-zone-share S]

It prints a JSON object of facts about what it wrote (counts, seconds, a "summary" line).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from whatif import ingest, synthetic
from whatif.synthetic import FleetProcess
from whatif.topology import Topology

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import AS_OF, HISTORY_DAYS, quantiles

WINDOW_START = AS_OF - timedelta(days=HISTORY_DAYS)
WINDOW = FleetProcess(days=HISTORY_DAYS, as_of=AS_OF)  # every history below: common's window

# --------------------------------------------------------------------------- simulate

SIMULATE_SEED = 42
# Root rates Gamma(0.7) with a mean of one failure per 100 days per service, hidden edge
# probabilities Beta(2, 8), every generation, 70 % of the cascaded incidents with caused_by.
SIMULATE = dataclasses.replace(
    WINDOW,
    mean_rate=0.01,
    rate_shape=0.7,
    edge_beta=(2.0, 8.0),
    caused_by_share=0.7,
)


def reachable_counts(topology: Topology) -> np.ndarray:
    """How many services a failure of each service can reach (itself included): the
    descendants along dependency -> dependent edges, whatever the edge probabilities."""
    from scipy import sparse
    from scipy.sparse.csgraph import breadth_first_order

    n = topology.size
    graph = sparse.csr_matrix(
        (
            np.ones(len(topology.edge_dependency)),
            (topology.edge_dependency, topology.edge_dependent),
        ),
        shape=(n, n),
    )
    return np.array(
        [len(breadth_first_order(graph, i, return_predecessors=False)) for i in range(n)]
    )


def simulate_inputs(folder: Path, n: int, dependencies: float) -> dict:
    """Topology, history and fitted model, written as topology.pkl and model.json."""
    from whatif import model, simulate

    began = time.perf_counter()
    rng = np.random.default_rng(SIMULATE_SEED)
    frame = synthetic.layered_topology(n, dependencies, rng)
    topology = Topology.from_frame(frame)
    history = synthetic.fleet_history(topology, SIMULATE, rng)
    generate_s = time.perf_counter() - began
    began = time.perf_counter()
    document = model.fit(history.incidents, topology, AS_OF, HISTORY_DAYS)
    fit_s = time.perf_counter() - began
    frame.to_pickle(folder / "topology.pkl")
    (folder / "model.json").write_text(document.model_dump_json())
    arrays = simulate.model_arrays(document, topology)
    rate = arrays["shape"] / arrays["rate"]  # posterior mean root failures per day
    reach = reachable_counts(topology)
    edges = len(topology.edge_dependency)
    facts = history.facts
    return {
        "stage": "generate",
        "services": topology.size,
        "edges": edges,
        "foundations": int(frame["depends_on"].map(len).eq(0).sum()),
        "max_dependents": int(np.bincount(topology.edge_dependency).max()),
        **facts,
        "generate_s": generate_s,
        "fit_s": fit_s,
        "rate_mean": float(rate.mean()),
        "days_between": quantiles(1.0 / rate, (10, 50, 90)),
        "edge_p_mean": float(arrays["edge_p"].mean()),
        "edge_p": quantiles(arrays["edge_p"], (10, 50, 90)),
        "reach_mean": float(reach.mean()),
        "reach": quantiles(reach, (90,)) | {"max": int(reach.max())},
        "process": dataclasses.asdict(SIMULATE),
        "summary": f"{edges:,} edges, {facts['incidents']:,} incidents, fit {fit_s:.1f} s",
    }


# --------------------------------------------------------------------------- fit

FIT_SEED = 11
SOFT_EDGE_SHARE = 0.25  # of edges: named in soft_depends_on too
LAUNCHED_SHARE = 0.03  # of services: created_at inside the window, no incidents before it
CREATED_BEFORE_SHARE = 0.02  # of services: created_at before the window (no effect on exposure)
# About --rows incidents (fit and validate), 30 % of them cascades (hidden edge probabilities
# Beta(1, 6)), roots Gamma(0.8) over the services.
SIZED = dataclasses.replace(WINDOW, cascade_share=0.30, rate_shape=0.8, edge_beta=(1.0, 6.0))
# x0.25 on soft edges, up to 3 generations, half of the cascades with caused_by;
# detected/acknowledged missing on 30 % of rows, load_factor on 40 %.
FIT = dataclasses.replace(
    SIZED,
    soft_factor=0.25,
    max_generations=3,
    caused_by_share=0.50,
    dependency_share=0.6,
    mode_concentration=0.7,
    missing_severity_share=0.02,
    missing_response_share=0.30,
    load_factor_share=0.40,
)


def fit_inputs(folder: Path, n: int, services: int) -> dict:
    """topology.csv (~2 dependencies per service) and incidents.parquet."""
    began = time.perf_counter()
    rng = np.random.default_rng(FIT_SEED)
    topology_path = folder / "topology.csv"
    synthetic.contract_topology(
        synthetic.layered_topology(services, 2.0, rng),
        rng,
        soft_share=SOFT_EDGE_SHARE,
        launched_share=LAUNCHED_SHARE,
        created_before_share=CREATED_BEFORE_SHARE,
        window_start=WINDOW_START,
        window_days=HISTORY_DAYS,
    ).to_csv(topology_path, index=False)
    topology = Topology.from_frame(ingest.load_topology(topology_path).frame)
    process = dataclasses.replace(FIT, incidents=n)
    history = synthetic.fleet_history(topology, process, np.random.default_rng(FIT_SEED + n))
    history.incidents.to_parquet(folder / "incidents.parquet", index=False)
    created = topology.attributes["created_at"]
    rows = len(history.incidents)
    size = (folder / "incidents.parquet").stat().st_size
    return {
        "rows": rows,
        "services": topology.size,
        "edges": len(topology.edge_dependency),
        "soft_edges": int((topology.criticality == "soft").sum()),
        "launched": int((created > pd.Timestamp(WINDOW_START)).sum()),
        "created_before": int((created <= pd.Timestamp(WINDOW_START)).sum()),
        "bytes": size,
        "generate_s": time.perf_counter() - began,
        **history.facts,
        "process": dataclasses.asdict(process),
        "shares": {
            "soft_edges": SOFT_EDGE_SHARE,
            "launched": LAUNCHED_SHARE,
            "created_before": CREATED_BEFORE_SHARE,
        },
        "summary": f"{rows:,} rows, {size / 2**20:.0f} MiB",
    }


# --------------------------------------------------------------------------- validate

VALIDATE_SEED = 7
VALIDATE_SERVICES = 300
# 70 % of the cascades with caused_by, detected/acknowledged missing on 10 % of rows.
VALIDATE = dataclasses.replace(SIZED, caused_by_share=0.70, missing_response_share=0.10)
# Shares of the rows (of the size asked for) turned bad, by kind. ~2 % in all.
BAD = {
    "unknown_service": 0.005,  # a service name the topology does not have
    "bad_timestamp": 0.005,  # started_at or resolved_at not a timestamp (or impossible)
    "resolved_before_started": 0.005,  # end before start
    "duplicate": 0.005,  # the same (incident_id, service) twice
}
SEVERITY_SPELLINGS = (
    ["SEV1"] * 4
    + ["SEV2"] * 15
    + ["SEV3"] * 35
    + ["SEV4"] * 25
    + ["sev2", "Sev3", "P2", "P3", "p4", "S3", "critical", "major", "minor", "low", "High"]
    + ["Degraded performance", "informational", "SEV-3", "sev 2"]
)
UNKNOWN_SEVERITIES = ("urgent-ish", "tbd", "see ticket", "??")
CATEGORY_SPELLINGS = (
    ["capacity", "database", "deployment", "config", "network", "hardware", "security", "data"] * 4
    + ["other", "Capacity", "DB", "Bad deploy", "Config change", "Network / DNS", "disk full"]
    + ["Database deadlock", "certificate expired", "traffic spike", "", "misc"]
)
BAD_TIMESTAMPS = (
    "31/02/2025 10:00",
    "2025-02-30T10:00:00Z",
    "yesterday",
    "N/A",
    "2025-13-01T00:00:00Z",
    "TBD",
    "",
)
NAMED_ZONES = ("Europe/Paris", "America/New_York", "PDT", "[Asia/Tokyo]", "CET", "Europe/Berlin")


def _iso(
    times: pd.Series,
    offset_share: float,
    naive_share: float,
    named_share: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """ISO text: mostly `...Z`, a share with a `+02:00` or `-05:00` offset, a share naive (in
    UTC), and an optional share with a trailing zone name (`2025-01-02 10:00:00 Europe/Paris`);
    empty where the time is missing."""
    stamps = pd.DatetimeIndex(times)
    n = len(stamps)
    out = np.asarray(stamps.strftime("%Y-%m-%dT%H:%M:%SZ"), dtype=object)
    kind = rng.random(n)
    offset = kind < offset_share
    east = rng.random(n) < 0.5
    for pick, hours, suffix in ((offset & east, 2, "+02:00"), (offset & ~east, -5, "-05:00")):
        local = (stamps[pick] + pd.Timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S")
        out[pick] = [text + suffix for text in local]
    naive = (kind >= offset_share) & (kind < offset_share + naive_share)
    out[naive] = list(stamps[naive].strftime("%Y-%m-%d %H:%M:%S"))
    if named_share > 0:
        from whatif.ingest import ZONE_ABBREVIATIONS

        named = kind >= 1 - named_share
        zones = rng.choice(len(NAMED_ZONES), size=int(named.sum()))
        texts = []
        for stamp, z in zip(stamps[named], zones, strict=True):
            zone = NAMED_ZONES[z]
            name = zone.strip("[]")
            if name in ZONE_ABBREVIATIONS:
                sign = -1 if ZONE_ABBREVIATIONS[name].startswith("-") else 1
                hh, mm = ZONE_ABBREVIATIONS[name][1:].split(":")
                local = stamp + sign * pd.Timedelta(hours=int(hh), minutes=int(mm))
            else:
                local = stamp.tz_convert(name)
            texts.append(
                local.strftime("%Y-%m-%d %H:%M:%S") + ("" if zone[0] == "[" else " ") + zone
            )
        out[named] = texts
    out[stamps.isna()] = ""
    return out


def contract_incidents(
    clean: pd.DataFrame, n: int, rng: np.random.Generator, named_share: float
) -> tuple[pd.DataFrame, dict[str, int]]:
    """A clean history as a user's export of n rows: service spelling variants, mixed
    timestamp formats, severity and category vocabularies, then bad rows of each kind of BAD
    (and duplicates) injected; the rows and how many bad ones of each kind."""
    m = len(clean)
    n_dup = int(n * BAD["duplicate"])
    # Spelling variants that _match_service_names resolves: case, '_' for '-', spaces.
    names = clean["service"].to_numpy(dtype=object).copy()
    variant = rng.random(m)
    names[variant < 0.01] = np.char.upper(names[variant < 0.01].astype(str))
    sel = (variant >= 0.01) & (variant < 0.02)
    names[sel] = np.char.replace(names[sel].astype(str), "-", "_")
    sel = (variant >= 0.02) & (variant < 0.025)
    names[sel] = np.char.add(names[sel].astype(str), " ")
    category = rng.choice(np.array(CATEGORY_SPELLINGS, dtype=object), size=m)
    frame = pd.DataFrame(
        {
            "incident_id": clean["incident_id"].to_numpy(dtype=object),
            "service": names,
            "started_at": _iso(clean["started_at"], 0.10, 0.05, named_share, rng),
            "resolved_at": _iso(clean["resolved_at"], 0.10, 0.05, named_share, rng),
            "severity": rng.choice(np.array(SEVERITY_SPELLINGS, dtype=object), size=m),
            "category": np.where(clean["category"] == "dependency", "dependency", category),
            "title": clean["title"].to_numpy(dtype=object),
            "description": clean["description"].fillna("").to_numpy(dtype=object),
            "detected_at": _iso(clean["detected_at"], 0.0, 0.0, 0.0, rng),
            "acknowledged_at": _iso(clean["acknowledged_at"], 0.0, 0.0, 0.0, rng),
            "caused_by": clean["caused_by"].fillna("").to_numpy(dtype=object),
            "team": clean["team"].to_numpy(dtype=object),
        }
    )
    frame.loc[rng.random(m) < 0.002, "severity"] = rng.choice(UNKNOWN_SEVERITIES)
    frame.loc[rng.random(m) < 0.001, "caused_by"] = "INC-9999999"  # names no incident
    # Bad rows: distinct random rows for each kind.
    order = rng.permutation(m)
    counts = {k: int(n * share) for k, share in BAD.items()}
    at = 0
    picks = {}
    for kind in ("unknown_service", "bad_timestamp", "resolved_before_started"):
        picks[kind] = order[at : at + counts[kind]]
        at += counts[kind]
    frame.loc[picks["unknown_service"], "service"] = rng.choice(
        np.array(["legacy-billing", "svc-99999", "unknown", "payments-v0"], dtype=object),
        size=counts["unknown_service"],
    )
    bad = picks["bad_timestamp"]
    column = np.where(rng.random(len(bad)) < 0.5, "started_at", "resolved_at")
    for name in ("started_at", "resolved_at"):
        rows = bad[column == name]
        frame.loc[rows, name] = rng.choice(np.array(BAD_TIMESTAMPS, dtype=object), len(rows))
    rows = picks["resolved_before_started"]
    before = pd.to_timedelta(rng.integers(60, 7200, len(rows)), unit="s")
    started = pd.DatetimeIndex(clean["started_at"])
    frame.loc[rows, "resolved_at"] = (started[rows] - before).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Duplicates: a copy of a good row, inserted further down the file.
    good = order[at:]
    copies = frame.iloc[rng.choice(good, size=n_dup, replace=False)]
    frame = pd.concat([frame, copies], ignore_index=True)
    frame = frame.iloc[
        np.argsort(np.concatenate([np.arange(m), rng.integers(0, m, n_dup) + 0.5]), kind="stable")
    ].reset_index(drop=True)
    counts["duplicate"] = n_dup
    return frame, counts


def validate_inputs(folder: Path, n: int, named_share: float) -> dict:
    """topology.csv (VALIDATE_SERVICES services) and incidents.csv of about n rows."""
    rng = np.random.default_rng(VALIDATE_SEED)
    frame = synthetic.layered_topology(VALIDATE_SERVICES, 2.0, rng)
    synthetic.contract_topology(frame).to_csv(folder / "topology.csv", index=False)
    process = dataclasses.replace(VALIDATE, incidents=n - int(n * BAD["duplicate"]))
    history = synthetic.fleet_history(Topology.from_frame(frame), process, rng)
    incidents, injected = contract_incidents(history.incidents, n, rng, named_share)
    incidents.to_csv(folder / "incidents.csv", index=False)
    size = (folder / "incidents.csv").stat().st_size
    return {
        "rows": len(incidents),
        "services": VALIDATE_SERVICES,
        "bytes": size,
        "injected": injected,
        "caused_by": int((incidents["caused_by"] != "").sum()),
        "summary": f"{len(incidents):,} rows, {size / 2**20:.0f} MiB",
    }


# --------------------------------------------------------------------------- fleet

FLEET_SEED = 23
FLEET_HUBS = 5  # shared infrastructure services (DNS, identity, ...) many services depend on
FLEET_HUB_SHARE = 0.1  # of the services above the foundations, on each hub
INCIDENTS_PER_SERVICE = 15  # 75,000 incidents at 5,000 services: two years of a busy fleet


def fleet_topology(services: int, dependencies: float) -> tuple[np.random.Generator, pd.DataFrame]:
    """The fleet of `services` (seeded by its size): a layered DAG with FLEET_HUBS shared
    infrastructure hubs, a quarter of the edges soft, as a contract topology frame; and the
    generator, to draw the fleet's history next (fleet and imports draw the same fleet)."""
    rng = np.random.default_rng(FLEET_SEED + services)
    frame = synthetic.layered_topology(
        services, dependencies, rng, hubs=FLEET_HUBS, hub_share=FLEET_HUB_SHARE
    )
    return rng, synthetic.contract_topology(frame, rng, soft_share=SOFT_EDGE_SHARE)


def fleet_inputs(folder: Path, n: int, services: int, dependencies: float) -> dict:
    """A fleet as a user hands it to `whatif`: topology.csv (a layered DAG with shared
    infrastructure hubs, a quarter of the edges soft) and incidents.csv of about n rows as a
    user's export (spelling variants, mixed timestamps and vocabularies, ~2 % bad rows):
    bench_commands' inputs."""
    began = time.perf_counter()
    rng, topology_frame = fleet_topology(services, dependencies)
    topology_frame.to_csv(folder / "topology.csv", index=False)
    topology = Topology.from_frame(ingest.load_topology(folder / "topology.csv").frame)
    process = dataclasses.replace(SIZED, incidents=n - int(n * BAD["duplicate"]))
    history = synthetic.fleet_history(topology, process, rng)
    incidents, injected = contract_incidents(history.incidents, n, rng, 0.0)
    incidents.to_csv(folder / "incidents.csv", index=False)
    size = (folder / "incidents.csv").stat().st_size
    edges = len(topology.edge_dependency)
    dependents = np.bincount(topology.edge_dependency, minlength=topology.size)
    return {
        "rows": len(incidents),
        "services": topology.size,
        "edges": edges,
        "hubs": FLEET_HUBS,
        "max_dependents": int(dependents.max()),
        "bytes": size,
        "injected": injected,
        "generate_s": time.perf_counter() - began,
        "summary": f"{topology.size:,} services, {edges:,} edges, {len(incidents):,} incidents "
        f"({size / 2**20:.0f} MiB)",
    }


# --------------------------------------------------------------------------- imports

IMPORTS_SEED = 5
IMPORTS_LOOKBACK_HOURS = 7 * 24  # the importers' default trace lookback (7d)
# Calls per hour on an edge: 1 + LogNormal(log 20, 1.2) rounded (a few to thousands); failed
# calls per hour: that x Beta(1, 99) rounded (most edges fail less than once an hour).
CALLS_PER_HOUR = (math.log(20.0), 1.2)
FAILED_SHARE = (1.0, 99.0)
ENTRY_CLIENT = "user"  # Tempo's name for callers that are not traced: the outside world
MESSAGING = "messaging_system"  # Tempo's connection_type of calls through a queue


def _yaml(value, indent: int = 0) -> list[str]:
    """A catalog entity (dicts, lists, strings, booleans) as block YAML lines, as a person
    writes them (plain scalars; double-quoted, as JSON writes them, where a plain one would
    read as another type): fast enough for tens of thousands of files, and read back as the
    same document as entities.json holds (checked by the benchmark's smoke run)."""
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines += _yaml(item, indent + 1)
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    else:
        for item in value:
            if isinstance(item, dict):
                inner = _yaml(item, indent + 1)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return lines


PLAIN = re.compile(r"[A-Za-z][\w./:@ (),-]*")  # a YAML plain scalar, unless a keyword below
YAML_WORDS = ("true", "false", "yes", "no", "on", "off", "y", "n", "null", "~")


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    text = str(value)
    plain = (
        PLAIN.fullmatch(text)
        and not text.endswith((":", " "))
        and ": " not in text
        and text.lower() not in YAML_WORDS
    )
    return text if plain else json.dumps(text)


def catalog_entities(frame: pd.DataFrame) -> tuple[list[dict], list[str]]:
    """The fleet as a Backstage catalog: one Group per owner team, a Resource (type
    database) per data-tier service and a Component (type service) per other service, with
    spec.owner, spec.dependsOn refs of every dependency (hard and soft), the soft ones also
    in the whatif.io/soft-depends-on annotation, the PagerDuty service id, on-call and tier
    annotations, the user_facing label when known and a runbook link; and each entity's
    file under catalog/ (team folders: catalog/TEAM/group.yaml and
    catalog/TEAM/SERVICE/catalog-info.yaml)."""
    resource = (frame["tier"] == "data").to_numpy()
    kinds = dict(zip(frame["service"], np.where(resource, "Resource", "Component"), strict=True))
    entities, paths = [], []
    for team in sorted(frame["owner_team"].unique()):
        entities.append(
            {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Group",
                "metadata": {"name": team, "description": f"The {team} team"},
                "spec": {"type": "team", "children": []},
            }
        )
        paths.append(f"{team}/group.yaml")
    for index, row in enumerate(frame.itertuples(index=False)):
        kind = kinds[row.service]
        depends = [d for d in row.depends_on.split(";") if d]
        soft = [d for d in str(row.soft_depends_on or "").split(";") if d]
        annotations = {
            "pagerduty.com/service-id": pagerduty_id(index),
            "whatif.io/oncall": row.oncall,
        }
        if soft:
            annotations["whatif.io/soft-depends-on"] = ",".join(
                f"{kinds[d].lower()}:{d}" for d in soft
            )
        labels = {"whatif.io/tier": row.tier}
        if row.user_facing in ("true", "false"):
            labels["whatif.io/user-facing"] = row.user_facing
        spec = {
            "type": "database" if kind == "Resource" else "service",
            "owner": f"group:{row.owner_team}",
        }
        if kind == "Component":
            spec["lifecycle"] = "production"
        if depends:
            spec["dependsOn"] = [f"{kinds[d].lower()}:{d}" for d in depends]
        entities.append(
            {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": kind,
                "metadata": {
                    "name": row.service,
                    "description": f"{row.service} ({row.tier})",
                    "annotations": annotations,
                    "labels": labels,
                    "links": [{"url": row.runbook_url, "title": "Runbook"}],
                },
                "spec": spec,
            }
        )
        paths.append(f"{row.owner_team}/{row.service}/catalog-info.yaml")
    return entities, paths


def pagerduty_id(index: int) -> str:
    """The PagerDuty service id of the fleet's index-th service (the catalog's annotation)."""
    return f"PS{index:05d}"


def trace_traffic(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Calls and failed calls per hour on every edge (client: the dependent, server: its
    dependency; connection_type messaging_system on the soft edges, as calls through a
    queue), and from the outside world (client `user`) to each user-facing service; with
    each counter's value at the first sample (counters that ran before the window)."""
    rows = []
    for row in frame.itertuples(index=False):
        soft = set(str(row.soft_depends_on or "").split(";"))
        for dependency in (d for d in row.depends_on.split(";") if d):
            rows.append((row.service, dependency, MESSAGING if dependency in soft else ""))
        if row.user_facing == "true":
            rows.append((ENTRY_CLIENT, row.service, ""))
    traffic = pd.DataFrame(rows, columns=["client", "server", "connection_type"])
    m = len(traffic)
    calls = 1 + np.rint(rng.lognormal(*CALLS_PER_HOUR, size=m)).astype(np.int64)
    traffic["per_hour"] = calls
    traffic["failed_per_hour"] = np.rint(calls * rng.beta(*FAILED_SHARE, size=m)).astype(np.int64)
    traffic["first"] = rng.integers(0, 1_000_000, size=m)
    traffic["failed_first"] = (traffic["first"] * 0.01).astype(np.int64)
    return traffic


def imports_inputs(folder: Path, n: int, services: int, dependencies: float) -> dict:
    """The fleet of `fleet` (same seed, same DAG and hubs: topology.csv) as the importers'
    sources hold it: a Backstage catalog (catalog/: team folders of catalog-info.yaml files;
    entities.json: the same entities, for the fake catalog API), the trace traffic of every
    edge over the lookback (traffic.csv: per-hour calls and failures, the Tempo service-graph
    counters; jaeger_links.json: Jaeger's dependency links with the lookback's callCount)
    and about n incidents over two years (incidents.parquet, the clean history drawn on the
    fleet, for the fake PagerDuty and incident.io APIs)."""
    began = time.perf_counter()
    rng, frame = fleet_topology(services, dependencies)
    frame.to_csv(folder / "topology.csv", index=False)
    topology = Topology.from_frame(ingest.load_topology(folder / "topology.csv").frame)
    history = synthetic.fleet_history(topology, dataclasses.replace(SIZED, incidents=n), rng)
    incidents = history.incidents[
        ["incident_id", "service", "started_at", "resolved_at", "severity", "title", "team"]
    ]
    incidents.to_parquet(folder / "incidents.parquet", index=False)

    entities, paths = catalog_entities(frame)
    catalog = folder / "catalog"
    size = 0
    for entity, path in zip(entities, paths, strict=True):
        file = catalog / path
        file.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join(_yaml(entity)) + "\n"
        file.write_text(text, encoding="utf-8")
        size += len(text)
    (folder / "entities.json").write_text(json.dumps(entities))

    traffic = trace_traffic(frame, np.random.default_rng(IMPORTS_SEED + services))
    traffic.to_csv(folder / "traffic.csv", index=False)
    inner = traffic[traffic["client"] != ENTRY_CLIENT]
    links = [
        {"parent": c, "child": s, "callCount": int(k) * IMPORTS_LOOKBACK_HOURS}
        for c, s, k in zip(inner["client"], inner["server"], inner["per_hour"], strict=True)
    ]
    (folder / "jaeger_links.json").write_text(json.dumps(links))

    depends = frame["depends_on"].map(lambda t: len([d for d in t.split(";") if d]))
    soft = frame["soft_depends_on"].fillna("").map(lambda t: len([d for d in t.split(";") if d]))
    kinds = pd.Series([e["kind"] for e in entities]).value_counts().to_dict()
    traced = set(inner["client"]) | set(inner["server"])
    entry = set(traffic.loc[traffic["client"] == ENTRY_CLIENT, "server"])
    edges = int(depends.sum())
    return {
        "services": len(frame),
        "edges": edges,
        "soft_edges": int(soft.sum()),
        "kinds": kinds,
        "catalog_files": len(paths),
        "catalog_bytes": size,
        "links": len(links),
        "traced_services": len(traced),
        "entry_services": len(entry),
        "tempo_series": 2 * len(traffic),
        "incidents": len(incidents),
        "history": history.facts,
        "generate_s": time.perf_counter() - began,
        "summary": f"{len(frame):,} services, {edges:,} edges, {len(paths):,} catalog files "
        f"({size / 2**20:.0f} MiB), {len(incidents):,} incidents",
    }


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("simulate", "fit", "validate", "fleet", "imports"))
    parser.add_argument("--dir", type=Path, required=True, help="where to write the inputs")
    parser.add_argument("--rows", type=int, default=100_000, help="incidents (fit, validate)")
    parser.add_argument("--services", type=int, default=5000, help="(simulate, fit)")
    parser.add_argument(
        "--dependencies", type=float, default=4.0, help="per service (simulate, fleet)"
    )
    parser.add_argument("--named-zone-share", type=float, default=0.0, help="(validate)")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    facts = {
        "simulate": lambda: simulate_inputs(args.dir, args.services, args.dependencies),
        "fit": lambda: fit_inputs(args.dir, args.rows, args.services),
        "validate": lambda: validate_inputs(args.dir, args.rows, args.named_zone_share),
        "fleet": lambda: fleet_inputs(args.dir, args.rows, args.services, args.dependencies),
        "imports": lambda: imports_inputs(args.dir, args.rows, args.services, args.dependencies),
    }[args.kind]()
    print(json.dumps(facts, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
