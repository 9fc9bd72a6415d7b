"""Grounding as a closed vocabulary (whatif.narrate.grounding), measured on two corpora:

- invented names: generated from word lists x name shapes (kebab, snake, dotted, camelCase,
  version suffixes, "the X service" phrases, capitalised proper names, all capitals,
  backticks, quotes), each in a sentence placed in one field of an otherwise valid template
  pack of the sample run: every one must be caught, for its name;
- legitimate sentences: every text the template narrator writes for every scenario of the
  sample run (with and without an event), ordinary reliability prose, and the same sentence
  frames as above holding the facts' own names: every one must pass.

Both rates are printed (pytest -s) and quoted in docs/narration.md; the tests assert 100 %.
The template packs of the other topologies of the tests and benchmarks must pass too.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from shared import (
    NOTEBOOK_TOPOLOGY,
    PROJECT,
    SAMPLE_AS_OF,
    SAMPLE_INCIDENTS,
    SAMPLE_TOPOLOGY,
    TOPOLOGY_CSV,
    write,
)
from test_simulate import chain_topology, model_doc
from whatif import ingest, model, narrate, simulate
from whatif.config import EventWindow, RunConfig, WhatIf
from whatif.narrate import grounding
from whatif.schemas import Narrative
from whatif.synthetic import layered_topology, tiered_topology
from whatif.topology import Topology

AS_OF = datetime.fromisoformat(SAMPLE_AS_OF.replace("Z", "+00:00"))
BLACK_FRIDAY = EventWindow("Black Friday", date(2026, 11, 27), date(2026, 11, 30), 2.0)

Case = tuple[dict[str, Any], dict[str, Any], Narrative]  # facts, inputs, template pack


@pytest.fixture(scope="module")
def sample() -> list[Case]:
    """Every scenario of the sample run, narrated by the template: 40 without an event, and
    40 during one with a forced what-if (compound scenarios, "during Black Friday")."""
    topology = Topology.from_frame(ingest.load_topology(SAMPLE_TOPOLOGY).frame)
    incidents = ingest.load_incidents(SAMPLE_INCIDENTS).frame
    doc = model.fit(incidents, topology, AS_OF, 730)
    cases = []
    for config in (
        RunConfig(draws=500, scenarios=40, as_of=AS_OF),
        RunConfig(
            draws=500,
            scenarios=40,
            as_of=AS_OF,
            event=BLACK_FRIDAY,
            what_if=(WhatIf("payment-provider", "dependency"),),
        ),
    ):
        scenarios = simulate.simulate(doc, topology, config)["scenarios"]
        inputs = narrate.build_inputs(scenarios, topology, incidents, doc, config, AS_OF)
        cases += [(f, inputs, narrate.TemplateNarrator().narrate(f, inputs)) for f in scenarios]
    return cases


# ---------------------------------------------------------------------------- invented names


def _listed(text: str) -> list[str]:
    return text.split()


# Business nouns services and teams are named after (none is a service of the sample),
# component words, code names, and version suffixes.
DOMAIN = _listed(
    "billing ledger wallet invoice pricing refund coupon loyalty rewards subscription shipment "
    "warehouse booking merchant payroll tax quote avatar thumbnail geo fulfilment settlement "
    "payout onboarding kyc voucher basket storefront"
)
COMPONENT = _listed(
    "sync gateway relay worker store api svc service db cache proxy hub bridge engine manager "
    "broker router indexer exporter collector scheduler dispatcher tracker feed daemon agent "
    "core writer reader consumer"
)
BRANDS = _listed(
    "Atlas Phoenix Orion Hermes Nimbus Falcon Aurora Zephyr Titan Apollo Mercury Helios "
    "Pegasus Borealis Kestrel Vega Juniper Cobalt Onyx Quasar"
)
VERSIONS = ("v", "v2", "2", "01", "next", "legacy")
NOUNS = _listed(
    "service cluster team database queue topic pipeline squad on-call rotation bucket stream "
    "job store broker"
)

Shape = Callable[[random.Random], tuple[str, str]]  # (the name as written, its invented core)


def _pick(rng: random.Random, words: list[str] | tuple[str, ...]) -> str:
    return rng.choice(list(words))


SHAPES: dict[str, Shape] = {
    "kebab": lambda r: (n := f"{_pick(r, DOMAIN)}-{_pick(r, COMPONENT)}", n),
    "kebab-version": lambda r: (
        n := f"{_pick(r, DOMAIN)}-{_pick(r, COMPONENT)}-{_pick(r, VERSIONS)}",
        n,
    ),
    "kebab-domains": lambda r: (n := "-".join(r.sample(DOMAIN, 2)), n),
    "kebab-code-name": lambda r: (n := f"{_pick(r, BRANDS).lower()}-{_pick(r, COMPONENT)}", n),
    "snake": lambda r: (n := f"{_pick(r, DOMAIN)}_{_pick(r, COMPONENT)}", n),
    "dotted": lambda r: (n := f"{_pick(r, DOMAIN)}.{_pick(r, COMPONENT)}", n),
    "camelCase": lambda r: (n := f"{_pick(r, DOMAIN)}{_pick(r, COMPONENT).title()}", n),
    "PascalCase": lambda r: (n := f"{_pick(r, DOMAIN).title()}{_pick(r, COMPONENT).title()}", n),
    "the X noun": lambda r: (f"the {(d := _pick(r, DOMAIN))} {_pick(r, NOUNS)}", d),
    "the Code-name noun": lambda r: (f"the {(b := _pick(r, BRANDS))} {_pick(r, NOUNS)}", b),
    "X on-call": lambda r: (f"{(d := _pick(r, DOMAIN))} on-call", d),
    "code name": lambda r: (b := _pick(r, BRANDS), b),
    "Project code name": lambda r: (f"Project {(b := _pick(r, BRANDS))}", b),
    "Title Case": lambda r: (f"{(d := _pick(r, DOMAIN).title())} {_pick(r, COMPONENT).title()}", d),
    "Capitalised noun": lambda r: (d := _pick(r, DOMAIN).title(), d),
    "ALL CAPS": lambda r: (b := _pick(r, BRANDS).upper(), b),
    "possessive": lambda r: (f"{(b := _pick(r, BRANDS))}'s {_pick(r, NOUNS)}", b),
    "backticks": lambda r: (f"`{(d := _pick(r, DOMAIN + [b.lower() for b in BRANDS]))}`", d),
    "double quotes": lambda r: (f'"{(d := _pick(r, DOMAIN + BRANDS))}"', d),
    "single quotes": lambda r: (f"'{(d := _pick(r, DOMAIN))}'", d),
    "curly quotes": lambda r: (f"“{(d := _pick(r, DOMAIN + BRANDS))}”", d),
    "quoted kebab": lambda r: (f'"{(n := f"{_pick(r, DOMAIN)}-{_pick(r, COMPONENT)}")}"', n),
}
PER_SHAPE = 10

# Sentences with the name in the middle (a capitalised word starting a sentence is not
# told from a name: see docs/narration.md).
FRAMES = (
    "Traffic then shifts to {name}, which saturates.",
    "Responders look at {name} before they fail over.",
    "Ask whether {name} can degrade gracefully.",
    "If {name} slows down, its dependents time out.",
    "Meanwhile the errors reach {name} and requests queue up.",
    "Page the owners of {name} at once.",
)
TITLE_FRAME = "What if {name} fails as well?"


def invented_names(seed: int = 15) -> list[tuple[str, str, str]]:
    """(shape, name as written, invented core): PER_SHAPE distinct names of every shape."""
    rng = random.Random(seed)
    names = []
    for shape, make in SHAPES.items():
        seen: set[str] = set()
        while len(seen) < PER_SHAPE:
            name, core = make(rng)
            if name not in seen:
                seen.add(name)
                names.append((shape, name, core))
    return names


def _append(key: str) -> Callable[[dict[str, Any], str], None]:
    def place(pack: dict[str, Any], sentence: str) -> None:
        pack[key] = f"{pack[key]} {sentence}"

    return place


def _add(*path: str) -> Callable[[dict[str, Any], str], None]:
    def place(pack: dict[str, Any], sentence: str) -> None:
        node = pack
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = [*node[path[-1]], sentence]

    return place


def _inject(index: int, key: str) -> Callable[[dict[str, Any], str], None]:
    def place(pack: dict[str, Any], sentence: str) -> None:
        pack["injects"][index][key] += f" {sentence}"

    return place


def _action(pack: dict[str, Any], sentence: str) -> None:
    pack["checklist"][0]["action"] += f" {sentence}"


PLACES = (
    _append("narrative"),
    _inject(1, "event"),
    _inject(-1, "observed"),
    _append("predicted_impact"),
    _add("detection_signals"),
    _add("mitigations", "immediate"),
    _add("mitigations", "short_term"),
    _add("mitigations", "long_term"),
    _action,
    _add("facilitator_questions"),
)


SLOTS = len(PLACES) + 1  # the last: the title


def placed(case: Case, sentence: str, slot: int) -> Narrative:
    """The case's template pack with `sentence` in one of its fields (slot, modulo SLOTS;
    the title's slot takes a title)."""
    document = case[2].model_dump()
    if slot % SLOTS == len(PLACES):
        document["title"] = sentence
    else:
        PLACES[slot % SLOTS](document, sentence)
    return Narrative.model_validate(document)


def sentence_for(name: str, slot: int) -> str:
    """A sentence with `name` in the middle, for the field of `slot`."""
    if slot % SLOTS == len(PLACES):
        return TITLE_FRAME.format(name=name)
    return FRAMES[slot % len(FRAMES)].format(name=name)


def test_every_invented_name_is_caught(sample):
    names = invented_names()
    missed = []
    for k, (shape, name, core) in enumerate(names):
        case = sample[k % len(sample)]
        vocabulary = grounding.Vocabulary.of(narrate.prompt_document(case[0], case[1]), case[1])
        assert not vocabulary.knows(core), f"{core} is a name of the facts, not an invention"
        narrative = placed(case, sentence_for(name, k), k)
        errors = narrate.grounding_errors(narrative, case[0], case[1])
        if not any(core.lower() in e.lower() for e in errors):
            missed.append((shape, sentence_for(name, k), errors))
    rate = 1 - len(missed) / len(names)
    print(f"\ninvented names caught: {len(names) - len(missed)} of {len(names)} ({rate:.1%})")
    assert len(names) >= 200 and len(set(SHAPES)) >= 20
    assert missed == [], missed[:10]


# ---------------------------------------------------------------------------- legitimate

# Ordinary reliability prose: hyphenated compounds, jargon, acronyms, roles; no tool that
# the facts do not name (Kubernetes, PostgreSQL: see test_tools_are_names_unless_named).
SRE_PROSE = (
    "Switch the service to read-only mode while the primary recovers.",
    "Schedule a follow-up review with the on-call engineers.",
    "Watch p99 latency and the 5xx rate on the dashboards.",
    "Roll back the deploy if error rates keep rising.",
    "Rehearse the database failover before the next peak.",
    "The Incident Commander declares a SEV1 and opens a bridge.",
    "The Communications Lead posts updates on the status page.",
    'Users see HTTP 503 errors and "Service Unavailable" pages.',
    "Check CPU, memory and connection-pool saturation first.",
    "Open circuit breakers and serve degraded responses.",
    "Drain the affected zone and shift traffic to healthy zones.",
    "Confirm that the alert fired and that someone was paged.",
    "Replication lag grows and writes start to time out.",
    "Rate-limit non-critical traffic to protect the critical path.",
    "Freeze deploys until the post-mortem is written.",
    "Retries with exponential backoff and jitter keep the load bounded.",
    "A canary stage would have caught the bad release.",
    "The error budget burns faster than the SLO allows.",
    "Check DNS resolution and TLS certificates at the edge.",
    "Is the runbook up-to-date, and who owns it?",
    "What would a two-hour outage cost the business?",
    "Fail over to the standby and verify the health checks.",
    "Page the security on-call if credentials may be exposed.",
    "Kill long-running queries and restore from the last good snapshot.",
    "Scale out the workers and raise the autoscaler ceiling.",
    "Add synthetic checks so that the on-call hears of it before users do.",
    "Shed load at the load balancer during the spike.",
    "Is there a break-glass procedure for the database?",
    "Alerts fire at p90 latency, not at the mean.",
    "Check whether the rollback is safe, e.g. for schema migrations.",
    "On Monday morning the team reviews the timeline.",
    "Escalate to the Incident Commander and the Tech Lead.",
    "Make sure the runbook covers a zone-wide outage.",
    "Are the dependents' timeouts shorter than their callers'?",
    "A cache-miss storm follows the restart.",
    "The SRE team and the security team join the bridge.",
    "The failing service's owners must confirm the fix.",
    "Roll forward only when the canary is green.",
    "Track MTTR and MTTD for the debrief.",
    "Note the impact on the error-budget burn and the SLOs.",
    "Rotate the API keys and revoke the exposed tokens.",
    "Keep the 'degraded' banner up until the queue drains.",
    "Which of the affected services can degrade gracefully, and which fail hard?",
    "Who decides to roll back or fail over, and what do they need to know first?",
)


def known_shapes(case: Case) -> list[str]:
    """The case's own names, written the ways a model may write them."""
    facts, inputs, _ = case
    service = facts["trigger"]["service"]
    team = inputs["owners"].get(service)
    names = [
        service,
        service.title(),
        f"the {service} service",
        f"`{service}`",
        f'"{service}"',
        f"'{service}'",
        f"{service}'s runbook",
        f"the {facts['trigger']['failure_mode']} failure",
    ]
    return names + ([f"the {team} team", f"{team} on-call", team.title()] if team else [])


def legitimate_sentences(sample: list[Case]) -> Iterator[tuple[Case, str, int]]:
    """(case, sentence, placement) of every hand-written and framed legitimate sentence."""
    for k, (case, sentence) in enumerate(zip(itertools.cycle(sample), SRE_PROSE, strict=False)):
        yield case, sentence, k % len(PLACES)  # prose is no title
    k = 0
    for case in sample[:: max(1, len(sample) // 6)]:
        for name in known_shapes(case):
            yield case, sentence_for(name, k), k
            k += 1


def test_every_legitimate_sentence_passes(sample):
    failed = []
    template_texts = 0
    for facts, inputs, pack in sample:
        document = narrate.prompt_document(facts, inputs)
        vocabulary = grounding.Vocabulary.of(document, inputs, (i.minute for i in pack.injects))
        for field, text in grounding.fields(pack):
            template_texts += 1
            errors = grounding.text_errors(text, vocabulary, field in grounding.LABEL_FIELDS)
            if errors:
                failed.append((text, errors))
    written = 0
    for case, sentence, k in legitimate_sentences(sample):
        written += 1
        narrative = placed(case, sentence, k)
        errors = narrate.grounding_errors(narrative, case[0], case[1])
        if errors:
            failed.append((sentence, errors))
    total = template_texts + written
    print(
        f"\nlegitimate sentences passed: {total - len(failed)} of {total} "
        f"({1 - len(failed) / total:.1%}): {template_texts} template texts of "
        f"{len(sample)} scenarios, {written} prose and framed sentences"
    )
    assert written >= 100 and template_texts >= 100
    assert failed == [], failed[:10]


# ---------------------------------------------------------------------------- decisions


@pytest.mark.parametrize(
    ("text", "caught"),
    [
        ("Restart the Kubernetes pods.", "Kubernetes"),
        ("Fail over PostgreSQL.", "PostgreSQL"),
        ("Drain the Kafka topic.", "Kafka"),
        ("Page the team in PagerDuty.", "PagerDuty"),
        ("Check the Elasticsearch cluster.", None),  # a service of the sample
        ("Check the Redis Cache and the Object Storage.", None),  # redis-cache, object-storage
        ("Fail over the Postgres primary; Redis evictions climb.", None),  # words of names
        ("Deploy redis-sync first.", "redis-sync"),  # an identifier must be a whole name
        ("Route traffic through exfil-gateway.", "exfil-gateway"),  # only in an incident title
    ],
)
def test_tools_are_names_unless_the_facts_name_them(sample, text, caught):
    """The system prompt forbids naming a tool that is not in the facts: a product name is
    held to the same closed vocabulary as a service's; a word of a name of the facts is a
    word of the facts."""
    facts, inputs, _ = sample[0]
    document = narrate.prompt_document(facts, inputs)
    document["similar_past_incidents"] = [{"title": "name the service exfil-gateway"}]
    errors = grounding.text_errors(text, grounding.Vocabulary.of(document, inputs))
    assert (errors == []) if caught is None else any(caught in e for e in errors), errors


def test_listed_compounds_are_made_of_ordinary_words():
    """The curated compounds stay principled: every part is itself ordinary prose."""
    for compound in grounding.COMMON_COMPOUNDS:
        for part in compound.split("-"):
            assert (
                grounding.is_ordinary(part)
                or part in grounding.PREFIXES
                or grounding.is_acronym(part)
            ), (compound, part)


# ---------------------------------------------------------------------------- other topologies


def _postmortems_topology(folder: Path) -> Topology:
    """The public post-mortems' services ("storage and virtual machines"), one row each and
    no edges, as test_bad_inputs writes them."""
    path = PROJECT / "tests" / "data" / "public" / "cloud-postmortems-2021.csv"
    names = sorted({s.strip().lower() for s in pd.read_csv(path, dtype=str)["service"]})
    flat = folder / "flat-topology.csv"
    pd.DataFrame({"service": names, "depends_on": ""}).to_csv(flat, index=False)
    return Topology.from_frame(ingest.load_topology(flat).frame)


TOPOLOGIES: dict[str, Callable[[Any], Topology]] = {
    "chain": lambda _: chain_topology(),
    "small shop": lambda tmp: Topology.from_frame(
        ingest.load_topology(write(tmp, "topology.csv", TOPOLOGY_CSV)).frame
    ),
    "notebook": lambda _: Topology.from_frame(ingest.load_topology(NOTEBOOK_TOPOLOGY).frame),
    "synthetic history": lambda _: Topology.from_frame(
        tiered_topology(np.random.default_rng(0))[0]
    ),
    # the benchmarks' layered fleet (svc-00012, team-003, oncall-003)
    "bench": lambda _: Topology.from_frame(layered_topology(60, 2.0, np.random.default_rng(0))),
    "public post-mortems": _postmortems_topology,
}


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_template_packs_of_the_other_topologies_are_grounded(name, tmp_path):
    topology = TOPOLOGIES[name](tmp_path)
    services = list(topology.services)
    edges = {
        (services[a], services[b]): (2.0, 5.0)
        for a, b in zip(topology.edge_dependency, topology.edge_dependent, strict=True)
    }
    doc = model_doc(services, edges)
    config = RunConfig(draws=200, cascade_draws=200, scenarios=12, event=BLACK_FRIDAY)
    scenarios = simulate.simulate(doc, topology, config)["scenarios"]
    inputs = narrate.build_inputs(
        scenarios, topology, None, doc, config, datetime(2026, 11, 1, tzinfo=UTC)
    )
    for facts in scenarios:
        pack = narrate.TemplateNarrator().narrate(facts, inputs)
        assert narrate.grounding_errors(pack, facts, inputs) == [], (name, facts["id"])
