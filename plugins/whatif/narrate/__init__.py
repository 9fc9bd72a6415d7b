"""Narrate: turn each scenario's facts into a tabletop pack (title, narrative, injects,
predicted impact, detection signals, mitigations, checklist, facilitator questions).

Statistics decide, the narrator writes. The template narrator is deterministic and offline;
an LLM narrator gets the scenario's facts, its neighbourhood in the topology, the most
similar past incidents and the event, and its answer is checked against the schema and the
facts, corrected, or replaced by the template's (docs/narration.md). A module a concern:

- `template`: the template narrator and the wording of each failure mode;
- `context`: what narrators get besides the facts (`build_inputs`, gathered at the simulate
  stage) and a scenario's prompt document;
- `grounding`: what a pack may name, link, count and date (the facts' closed vocabulary);
- `llm_narrator`: the LLM loop: prompt, schema and grounding checks, corrections, fallback;
  the configured client;
- `scenarios`: narrating scenarios in memory, the narration's summary, scenarios.json;
- `files`: the narration's files in the run folder: reset, one file a scenario, assemble.

The names below are the package's API (for the pipeline, the CLI, the DAG, tests, benchmarks).
"""

from whatif.narrate.context import build_inputs, prompt_document, similar_incidents
from whatif.narrate.files import assemble, narrate_all, narrate_scenario_file, reset, scenario_ids
from whatif.narrate.llm_narrator import (
    MAX_CORRECTIONS,
    LLMNarrator,
    grounding_errors,
    llm_schema,
    make_client,
    messages_for,
    parse_answer,
)
from whatif.narrate.scenarios import narrate, narrate_one, scenarios_document, summary
from whatif.narrate.template import MODE_PHRASES, TemplateNarrator

__all__ = [
    "MAX_CORRECTIONS",
    "MODE_PHRASES",
    "LLMNarrator",
    "TemplateNarrator",
    "assemble",
    "build_inputs",
    "grounding_errors",
    "llm_schema",
    "make_client",
    "messages_for",
    "narrate",
    "narrate_all",
    "narrate_one",
    "narrate_scenario_file",
    "parse_answer",
    "prompt_document",
    "reset",
    "scenario_ids",
    "scenarios_document",
    "similar_incidents",
    "summary",
]
