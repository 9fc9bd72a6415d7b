"""What changed since the previous run: the first thing a weekly review reads.

Compared with the previous run's scenarios.json and model.json (its published `latest/`, or
`--previous`):

- new and dropped scenarios (by id);
- scenarios whose probability moved beyond what the model could tell apart: the trigger
  service's root-failure rate now lies outside the previous run's 90 % interval, or the
  previous rate outside this run's (a probability is a function of that rate, so a move
  inside both intervals is noise, not news);
- services whose rate changed by the same rule, largest relative change first;
- teams whose readiness score moved by a point or more (readiness.json's own trend).
"""

from __future__ import annotations

from typing import Any

MOVED_LIMIT = 10  # rate changes listed (the largest first); the rest are counted


def rate_moved(before: dict[str, float], after: dict[str, float]) -> bool:
    """Each run's point estimate outside the other run's 90 % interval."""
    return not (before["p05"] <= after["mean"] <= before["p95"]) or not (
        after["p05"] <= before["mean"] <= after["p95"]
    )


def compare(
    previous: dict[str, Any],
    previous_model: dict[str, Any] | None,
    current: dict[str, Any],
    current_model: dict[str, Any],
    readiness: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The changes, machine-readable (scenarios.json `changes`, the reports' first section)."""
    before = {s["id"]: s for s in previous.get("scenarios", [])}
    after = {s["id"]: s for s in current["scenarios"]}
    rates_before = _rates(previous_model)
    rates_after = _rates(current_model)
    changed_rates = {
        service: (rates_before[service], rate)
        for service, rate in rates_after.items()
        if service in rates_before and rate_moved(rates_before[service], rate)
    }
    moved = [
        {
            "id": scenario_id,
            "title": scenario["title"],
            "before": before[scenario_id]["probability"],
            "after": scenario["probability"],
        }
        for scenario_id, scenario in after.items()
        if scenario_id in before and scenario["trigger"]["service"] in changed_rates
    ]
    rates = sorted(
        (
            {"service": service, "before": old["mean"], "after": new["mean"]}
            for service, (old, new) in changed_rates.items()
        ),
        key=lambda r: (-abs(_log_ratio(r["before"], r["after"])), r["service"]),
    )
    teams = [
        {"team": t["team"], "before": t["previous_score"], "after": t["score"]}
        for t in (readiness or {}).get("teams", [])
        if t.get("change") is not None and abs(t["change"]) >= 1
    ]
    run = previous.get("run") or {}
    return {
        "previous_run": {"id": run.get("id"), "date": run.get("date") or previous.get("as_of")},
        "new": [_brief(s) for i, s in after.items() if i not in before],
        "dropped": [_brief(s) for i, s in before.items() if i not in after],
        "moved": moved,
        "rates": rates[:MOVED_LIMIT],
        "rates_changed": len(rates),
        "readiness": teams,
    }


def nothing_changed(changes: dict[str, Any]) -> bool:
    return not any(changes[k] for k in ("new", "dropped", "moved", "rates", "readiness"))


def _rates(model: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    return {s["service"]: s["root_rate_per_day"] for s in (model or {}).get("services", [])}


def _brief(scenario: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": scenario["id"],
        "title": scenario["title"],
        "probability": scenario["probability"],
    }


def _log_ratio(before: float, after: float) -> float:
    import math

    return math.log((after + 1e-9) / (before + 1e-9))
