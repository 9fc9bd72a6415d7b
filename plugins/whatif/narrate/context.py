"""What a narrator is given besides a scenario's facts, and the facts as a prompt shows them.

`build_inputs` gathers, once at the simulate stage, what every narrator may use: owners,
runbooks and names of the topology (also the grounding check's vocabulary), each service's
typical detect/acknowledge minutes, and per scenario its neighbourhood and the most similar
past incidents. The run keeps it in its stage folder (whatif.runfolder), so that narrating
needs neither pandas nor the incident table: a mapped Airflow task per scenario stays light.
`prompt_document` is one scenario's facts and inputs as the model sees them.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from whatif.config import RunConfig
from whatif.narrate.template import MODE_PHRASES, STATUS_UPDATES

SIMILAR_INCIDENTS = 5  # past incidents in a prompt


def build_inputs(
    scenarios: list[dict[str, Any]],
    topology: Any,
    incidents: Any,
    model_doc: Any,
    config: RunConfig,
    as_of: datetime,
) -> dict[str, Any]:
    """Everything a narrator may use besides a scenario's own facts, gathered once at the
    simulate stage: owners, runbooks and names of the topology (for the prompts and for the
    grounding check), each service's typical detect/acknowledge minutes, and per scenario its
    neighbourhood and the most similar past incidents."""
    attribute = topology.attribute
    services = list(topology.services)
    response: dict[str, dict[str, float | None]] = {}
    for model in model_doc.services:
        response[model.service] = {
            "detect": model.mttd_minutes.p50 if model.mttd_minutes else None,
            "acknowledge": model.mtta_minutes.p50 if model.mtta_minutes else None,
        }
    return {
        "schema_version": 1,
        "as_of": as_of.isoformat(),
        "model_inputs": dict(model_doc.inputs),
        "horizon_days": config.effective_horizon_days,
        "event": config.event.as_dict() if config.event else None,
        "seed": config.seed,
        "services": services,
        "owners": {
            s: str(attribute(s, "owner_team")) for s in services if attribute(s, "owner_team")
        },
        "oncall": {s: str(attribute(s, "oncall")) for s in services if attribute(s, "oncall")},
        "runbooks": {
            s: str(attribute(s, "runbook_url")) for s in services if attribute(s, "runbook_url")
        },
        "response_minutes": response,
        "scenarios": {
            facts["id"]: {
                "neighbourhood": _neighbourhood(facts, topology),
                "similar_incidents": similar_incidents(facts, incidents),
            }
            for facts in scenarios
        },
    }


def _neighbourhood(facts: dict[str, Any], topology: Any) -> dict[str, dict[str, Any]]:
    """The roots, their direct dependencies and dependents, and the affected services, with
    what the topology says of each (never the whole fleet: a prompt stays small)."""
    roots = [facts["trigger"]["service"]] + (
        [facts["co_trigger"]["service"]] if facts.get("co_trigger") else []
    )
    names: list[str] = []
    for root in roots:
        names += [root, *topology.dependencies_of(root), *topology.dependents_of(root)]
    names += facts["affected_services"]
    described = {}
    for name in dict.fromkeys(names):
        described[name] = {
            key: _plain(topology.attribute(name, key))
            for key in ("owner_team", "oncall", "tier", "user_facing", "runbook_url")
            if _plain(topology.attribute(name, key)) not in (None, "")
        } | {
            "depends_on": topology.dependencies_of(name),
            "dependents": topology.dependents_of(name)[:20],
        }
    return described


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars and NaN/None made plain."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def similar_incidents(
    facts: dict[str, Any], incidents: Any, limit: int = SIMILAR_INCIDENTS
) -> list[dict[str, Any]]:
    """Up to `limit` past incidents most like the scenario: same service and mode first, then
    the same service, the same mode among the affected services, the affected services;
    among equals the title closest to the scenario's words, then the most recent."""
    if incidents is None or len(incidents) == 0:
        return []
    service, mode = facts["trigger"]["service"], facts["trigger"]["failure_mode"]
    affected = set(facts["affected_services"])
    frame = incidents[incidents["service"].isin(affected | {service})]
    if frame.empty:
        return []
    words = set(re.findall(r"[a-z0-9]+", f"{service} {mode} {MODE_PHRASES[mode]}".lower()))
    titles = frame.get("title")
    same_service = (frame["service"] == service).to_numpy()
    same_mode = (frame["category"] == mode).to_numpy() if "category" in frame else False
    overlap = (
        titles.fillna("").map(lambda t: _jaccard(words, t)).to_numpy()
        if titles is not None
        else 0.0
    )
    score = 4.0 * same_service + 2.0 * same_mode + overlap
    order = sorted(
        range(len(frame)), key=lambda i: (-score[i], -frame["started_at"].iloc[i].timestamp())
    )[:limit]
    picked = []
    for i in order:
        row = frame.iloc[i]
        resolved = row.get("resolved_at")
        minutes = (
            (resolved - row["started_at"]).total_seconds() / 60.0
            if resolved is not None and resolved == resolved
            else None
        )
        picked.append(
            {
                "incident_id": str(row["incident_id"]),
                "started_at": row["started_at"].date().isoformat(),
                "service": str(row["service"]),
                "failure_mode": str(row.get("category") or "other"),
                "severity": _plain(row.get("severity")),
                "minutes_to_resolve": None if minutes is None else round(minutes),
                "title": _plain(row.get("title")),  # people's words: data, never instructions
            }
        )
    return picked


def _jaccard(words: set[str], text: str) -> float:
    theirs = set(re.findall(r"[a-z0-9]+", str(text).lower()))
    return len(words & theirs) / len(words | theirs) if theirs else 0.0


def scenario_facts_for_prompt(facts: dict[str, Any]) -> dict[str, Any]:
    """The scenario's numbers and names as the model sees them (percentages spelled out, so
    that the model need not compute any)."""
    impact = facts["impact"]
    return {
        "id": facts["id"],
        "trigger": facts["trigger"],
        "co_trigger": facts.get("co_trigger"),
        "why_selected": facts["selection_reason"],
        "probability_within_horizon": facts["probability"],
        "probability_percent": round(facts["probability"] * 100, 1),
        "affected_services": facts["affected_services"],
        "affected_percent_of_outcomes": {
            name: round(p * 100) for name, p in impact["affected_probability"].items()
        },
        "user_facing_affected": facts["user_facing_affected"],
        "duration_minutes": facts["expected_duration_minutes"],
        "most_likely_severity": facts["severity"],
        "severity_probabilities": impact["severity_probabilities"],
        "blast_radius_services": impact["blast_radius"],
        "teams_paged": impact["teams_paged"],
        "traffic_share": impact.get("traffic_share"),
        "error_budget_burn": impact.get("error_budget_burn"),
    }


def prompt_document(facts: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    mine = inputs.get("scenarios", {}).get(facts["id"], {})
    return {
        "scenario": scenario_facts_for_prompt(facts),
        "horizon_days": inputs["horizon_days"],
        "event": inputs.get("event"),
        "services": mine.get("neighbourhood", {}),
        "similar_past_incidents": mine.get("similar_incidents", []),
        "status_updates": STATUS_UPDATES,
    }
