"""Narrate: the template narrator, and LLM narrators over the real HTTP APIs with fallback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_model import topology_frame
from test_simulate import CHAIN, CHAIN_DEPENDS, model_doc
from whatif import narrate, simulate
from whatif.config import LLMSettings, RunConfig, WhatIf
from whatif.schemas import Narrative
from whatif.topology import Topology

GOOD = {
    "title": "What if db fails?",
    "narrative": "db fails and api follows.",
    "predicted_impact": "api errors for an hour.",
    "mitigations": ["Fail over db."],
    "checklist": [{"role": "Incident commander", "action": "Open the channel."}],
}


class FakeLLM:
    """A loopback server speaking Ollama's /api/chat and OpenAI's /v1/chat/completions."""

    def __init__(self, content: str, status: int = 200) -> None:
        self.content, self.status, self.requests = content, status, []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                if self.path == "/api/chat":
                    answer = {
                        "model": body["model"],
                        "done": True,
                        "message": {"role": "assistant", "content": fake.content},
                    }
                else:
                    answer = {
                        "id": "x",
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": fake.content},
                            }
                        ],
                    }
                data = json.dumps(answer).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scenario_facts() -> tuple[list[dict], Topology]:
    frame = topology_frame(CHAIN, CHAIN_DEPENDS)
    frame["owner_team"] = ["web-team", "api-team", "data-team", "data-team"]
    frame["runbook_url"] = ["", "", "https://runbooks.example.com/db", ""]
    topology = Topology.from_frame(frame)
    doc = model_doc(
        CHAIN, {("api", "web"): (5.0, 5.0), ("db", "api"): (5.0, 5.0), ("cache", "api"): (1.0, 9.0)}
    )
    config = RunConfig(scenarios=3, draws=500, what_if=(WhatIf("db"),))
    return simulate.simulate(doc, topology, config)["scenarios"], topology


@pytest.fixture
def fake_llm(request) -> Iterator[FakeLLM]:
    server = FakeLLM(**getattr(request, "param", {"content": json.dumps(GOOD)}))
    yield server
    server.close()


def test_template_narration_is_grounded_and_deterministic(scenario_facts):
    facts, topology = scenario_facts
    config = RunConfig(scenarios=3, draws=500)
    first = narrate.narrate(facts, topology, config)
    assert first == narrate.narrate(facts, topology, config)
    for scenario in first:
        Narrative.model_validate({k: scenario[k] for k in Narrative.model_fields})
        assert scenario["title"].startswith("What if " + scenario["trigger"]["service"])
        assert scenario["narrator"] == "template"
        assert f"{scenario['probability'] * 100:.1f}%" in scenario["narrative"] or (
            f"{scenario['probability'] * 100:.0f}%" in scenario["narrative"]
        )
    db = next(s for s in first if s["trigger"]["service"] == "db")
    assert "https://runbooks.example.com/db" in " ".join(db["mitigations"])
    roles = [item["role"] for item in db["checklist"]]
    assert "data-team on-call" in roles and "api-team on-call" in roles


@pytest.mark.parametrize("provider", ["ollama", "openai"])
def test_llm_narrator_speaks_the_provider_api(provider, fake_llm, scenario_facts):
    facts, topology = scenario_facts
    url = fake_llm.url if provider == "ollama" else f"{fake_llm.url}/v1"
    config = RunConfig(
        scenarios=3,
        draws=500,
        narrator=provider,
        llm=LLMSettings(url=url, model="tiny", api_key="sk-test"),
    )
    narrated = narrate.narrate(facts[:1], topology, config)
    assert narrated[0]["narrator"] == f"{provider}:tiny"
    assert narrated[0]["title"] == GOOD["title"]
    assert narrated[0]["probability"] == facts[0]["probability"]  # the LLM writes, never decides
    request = fake_llm.requests[0]
    assert request["auth"] == "Bearer sk-test"
    if provider == "ollama":
        assert request["path"] == "/api/chat"
        assert request["body"]["format"]["type"] == "object"
        assert request["body"]["options"]["seed"] == config.seed
    else:
        assert request["path"] == "/v1/chat/completions"
        assert request["body"]["response_format"]["type"] == "json_schema"
    user = json.loads(request["body"]["messages"][1]["content"])
    assert user["scenario"]["trigger"] == facts[0]["trigger"]


@pytest.mark.parametrize(
    ("fake_llm", "reason"),
    [
        ({"content": "not json at all"}, "ValidationError"),
        ({"content": json.dumps(GOOD | {"title": "Imagine db fails"})}, "ValidationError"),
        ({"content": json.dumps(GOOD), "status": 503}, "HTTPError"),
    ],
    indirect=["fake_llm"],
)
def test_llm_failures_fall_back_to_the_template_and_say_why(fake_llm, reason, scenario_facts):
    facts, topology = scenario_facts
    config = RunConfig(
        scenarios=3, draws=500, narrator="openai", llm=LLMSettings(url=fake_llm.url, model="tiny")
    )
    narrated = narrate.narrate(facts[:1], topology, config)
    assert narrated[0]["narrator"].startswith(f"template (fallback: {reason}")
    assert narrated[0]["title"].startswith("What if")


def test_unreachable_llm_falls_back(scenario_facts):
    facts, topology = scenario_facts
    config = RunConfig(
        scenarios=3,
        draws=500,
        narrator="ollama",
        llm=LLMSettings(url="http://127.0.0.1:9", model="tiny", timeout_s=2),
    )
    narrated = narrate.narrate(facts[:1], topology, config)
    assert narrated[0]["narrator"].startswith("template (fallback: ConnectionError")


def test_the_template_names_both_roots_of_a_compound_scenario(scenario_facts):
    facts, topology = scenario_facts
    config = RunConfig(scenarios=3, draws=500)
    db = next(f for f in facts if f["trigger"]["service"] == "db")
    pair = db | {
        "id": "db--database+web--config",
        "co_trigger": {"service": "web", "failure_mode": "config"},
        "affected_services": ["db", "web", "api"],
    }
    text = narrate.TemplateNarrator().narrate(pair, narrate.narration_context(topology, config))
    assert text.title.startswith(
        f"What if db {narrate.MODE_PHRASES[db['trigger']['failure_mode']]}"
    )
    assert " and web receives a bad configuration change?" in text.title
    assert "both db" in text.narrative and "independently, web" in text.narrative
    assert any("configuration" in m for m in text.mitigations)
