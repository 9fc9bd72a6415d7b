"""Narrating scenarios in memory: one (the template narrator, or the LLM narrator with the
template as its fallback), a run's all at once (up to `max_concurrency`), the narration
summed up, and the scenarios.json document (the contract) they make."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from whatif.config import RunConfig
from whatif.llm import ChatClient
from whatif.narrate.llm_narrator import LLMNarrator, make_client
from whatif.narrate.template import TemplateNarrator
from whatif.schemas import RunInfo, ScenariosDoc


def narrate_one(
    facts: dict[str, Any], inputs: dict[str, Any], client: ChatClient | None
) -> dict[str, Any]:
    """One scenario's facts plus its prose, the narrator that wrote it and how."""
    if client is None:
        text = TemplateNarrator().narrate(facts, inputs)
        return facts | text.model_dump() | {"narrator": TemplateNarrator.name}
    text, narrator, stats = LLMNarrator(client).narrate(facts, inputs)
    return facts | text.model_dump() | {"narrator": narrator, "narration": stats}


def narrate(
    scenarios: list[dict[str, Any]],
    inputs: dict[str, Any],
    config: RunConfig,
    client: ChatClient | None = None,
) -> list[dict[str, Any]]:
    """Every scenario narrated, up to `max_concurrency` at once, in the scenarios' order."""
    client = client if client is not None else make_client(config)
    if client is None or len(scenarios) <= 1:
        return [narrate_one(facts, inputs, client) for facts in scenarios]
    workers = max(1, min(config.llm.max_concurrency, len(scenarios)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="narrate") as pool:
        return list(pool.map(lambda facts: narrate_one(facts, inputs, client), scenarios))


def summary(narrated: list[dict[str, Any]], config: RunConfig) -> dict[str, Any]:
    """The run's narration summed over the scenarios (for scenarios.json and the report)."""
    stats = [s.get("narration") or {} for s in narrated]
    fallbacks = Counter(_reason_kind(s["fallback"]) for s in stats if s.get("fallback") is not None)
    return {
        "narrator": (
            "template" if config.narrator == "template" else f"{config.narrator}:{config.llm.model}"
        ),
        "scenarios": len(narrated),
        "llm_scenarios": sum(1 for s in narrated if not s["narrator"].startswith("template")),
        "fallbacks": sum(fallbacks.values()),
        "fallback_reasons": dict(sorted(fallbacks.items())),
        "calls": sum(s.get("calls", 0) for s in stats),
        "cached": sum(s.get("cached", 0) for s in stats),
        "prompt_tokens": sum(s.get("prompt_tokens", 0) for s in stats),
        "completion_tokens": sum(s.get("completion_tokens", 0) for s in stats),
        "latency_s": round(sum(s.get("latency_s", 0.0) for s in stats), 3),
        "circuit_opened": any(s.get("fallback") == "circuit open" for s in stats),
    }


def _reason_kind(reason: str) -> str:
    """A fallback reason without its details, to count alike ones together."""
    return reason.split(":")[0] if reason.startswith(("schema", "not grounded")) else reason


def scenarios_document(
    narrated: list[dict[str, Any]],
    simulation: dict[str, Any],
    model_inputs: dict[str, Any],
    config: RunConfig,
    as_of: datetime,
    run: RunInfo | None = None,
) -> ScenariosDoc:
    """The scenarios.json contract of a run; `run` is its identity (None: `whatif simulate`,
    which makes no run folder)."""
    return ScenariosDoc.model_validate(
        {
            "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "seed": config.seed,
            "horizon_days": config.effective_horizon_days,
            "draws": config.draws,
            "simulation": simulation,
            "as_of": as_of.isoformat(),
            "event": config.event.as_dict() if config.event else None,
            "inputs": {
                key: model_inputs[key] for key in ("incidents", "incident_rows", "services")
            },
            "scenarios": narrated,
            "narration": summary(narrated, config),
            "focus_services": list(config.focus_services),
            "run": run.model_dump() if run else None,
        }
    )
