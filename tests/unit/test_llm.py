"""The LLM transport (whatif.llm) against a loopback server speaking the real Ollama and
OpenAI APIs: request shapes, retries, Retry-After, timeouts, the circuit breaker, the cache
and the API key's whereabouts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from fakes.llm_servers import llm_server
from whatif.llm import ChatClient, CircuitBreaker, LLMError, ResponseCache, RetryPolicy

MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "{}"}]
SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
ANSWER = ("answer", '{"a": "b"}')
KEY = "sk-canary-7f3a9c1e"


def fixed_server(**options):
    """The loopback server, answering ANSWER's content unless scripted otherwise."""
    return llm_server(responder=lambda _: ANSWER[1], **options)


def client(server, provider="openai", **options) -> tuple[ChatClient, list[float]]:
    waits: list[float] = []
    url = server.url if provider == "ollama" else f"{server.url}/v1"
    made = ChatClient(provider, url, "test-model", sleep=waits.append, **options)
    return made, waits


@pytest.mark.parametrize("provider", ["ollama", "openai"])
def test_the_request_is_the_providers_own_and_carries_the_key_only_in_a_header(provider):
    with fixed_server() as server:
        server.script.append(ANSWER)
        made, _ = client(server, provider, api_key=KEY, temperature=0.2, seed=7)
        answer = made.complete(MESSAGES, SCHEMA, 2)
    request = server.requests[0]
    body = request["body"]
    assert answer.content == '{"a": "b"}' and answer.calls == 1 and not answer.cached
    assert (answer.prompt_tokens, answer.completion_tokens) == (120, 80)
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in json.dumps(body) and KEY not in repr(made)
    assert body["messages"] == MESSAGES and body["model"] == "test-model"
    if provider == "ollama":
        assert request["path"] == "/api/chat" and body["stream"] is False
        assert body["format"] == SCHEMA
        assert body["options"] == {
            "temperature": 0.2, "seed": 7, "num_ctx": 8192, "num_predict": 3072
        }  # fmt: skip
    else:
        assert request["path"] == "/v1/chat/completions"
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == SCHEMA
        assert body["temperature"] == 0.2 and body["seed"] == 7
        assert body["max_tokens"] == 3072  # a runaway answer stops before the context is full


@pytest.mark.parametrize("status", [400, 422, 500])  # 500: llama-cpp-python's server
def test_a_server_without_json_schema_gets_json_object_with_the_schema_from_then_on(status):
    with fixed_server(json_schema_supported=False, unsupported_status=status) as server:
        made, _ = client(server)
        assert made.complete(MESSAGES, SCHEMA, 2).calls == 2  # both requests counted
        made.complete([*MESSAGES, {"role": "user", "content": "again"}], SCHEMA, 2)
    formats = [r["body"]["response_format"] for r in server.requests]
    assert [f["type"] for f in formats] == ["json_schema", "json_object", "json_object"]
    assert formats[1]["schema"] == SCHEMA  # llama.cpp's server reads it from there


@pytest.mark.parametrize("header", ["2", "http-date"])
def test_429_and_503_wait_as_long_as_retry_after_says(header):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    value = "2" if header == "2" else when
    with fixed_server() as server:
        server.script.extend(
            [("status", 429, {"Retry-After": value}, {}), ("status", 503, {"Retry-After": "1"}, {})]
        )
        made, waits = client(server)
        answer = made.complete(MESSAGES, SCHEMA, 2)
    assert answer.calls == 3 and len(server.requests) == 3
    assert waits[1] == 1.0
    assert waits[0] == 2.0 if header == "2" else 25 <= waits[0] <= 30


def test_a_retry_after_longer_than_the_limit_gives_up_at_once():
    with fixed_server() as server:
        server.script.append(("status", 429, {"Retry-After": "3600"}, {}))
        made, waits = client(server, retry=RetryPolicy(max_retry_after_s=120))
        with pytest.raises(LLMError, match="HTTP 429"):
            made.complete(MESSAGES, SCHEMA, 2)
    assert waits == [] and len(server.requests) == 1


def test_server_errors_are_retried_with_jittered_exponential_backoff():
    with fixed_server() as server:
        server.script.extend([("status", 500, {}, {})] * 3)
        made, waits = client(server, retry=RetryPolicy(retries=3, base_s=1.0, cap_s=30.0))
        answer = made.complete(MESSAGES, SCHEMA, 2)
    assert answer.calls == 4
    assert [0 <= w <= 2**k for k, w in enumerate(waits)] == [True, True, True]


def test_a_hung_server_times_out_and_the_error_says_so():
    with fixed_server() as server:
        server.script.extend([("hang", 3.0), ("hang", 3.0)])
        made, waits = client(server, timeout_s=0.3, retry=RetryPolicy(retries=1))
        with pytest.raises(LLMError, match=r"timeout after 0.3 s"):
            made.complete(MESSAGES, SCHEMA, 2)
    assert len(server.requests) == 2 and len(waits) == 1


def test_refused_credentials_are_not_retried_and_the_error_never_holds_the_key():
    with fixed_server() as server:
        server.script.append(("status", 401, {}, {"error": f"bad key {KEY[:4]}"}))
        made, waits = client(server, api_key=KEY)
        with pytest.raises(LLMError, match="check the API key") as caught:
            made.complete(MESSAGES, SCHEMA, 2)
    assert KEY not in str(caught.value) and waits == [] and len(server.requests) == 1


def test_the_breaker_opens_after_consecutive_failures_and_stops_calling(tmp_path):
    state = str(tmp_path / "breaker.json")
    with fixed_server() as server:
        server.script.extend([("status", 500, {}, {})] * 4)
        made, _ = client(
            server, retry=RetryPolicy(retries=1), breaker=CircuitBreaker(2, state=state)
        )
        for _ in range(2):
            with pytest.raises(LLMError, match="HTTP 500"):
                made.complete(MESSAGES, SCHEMA, 2)
        with pytest.raises(LLMError, match="circuit open"):
            made.complete(MESSAGES, SCHEMA, 2)
        assert len(server.requests) == 4  # no call once open
        # Another process (a mapped task) reading the same state sees it open too.
        assert CircuitBreaker(2, state=state).is_open
    # A success closes the count again.
    breaker = CircuitBreaker(2)
    breaker.failure("x")
    breaker.success()
    breaker.failure("x")
    assert not breaker.is_open


def test_answers_are_cached_by_prompt_and_model_never_by_key(tmp_path):
    with fixed_server() as server:
        server.script.extend([ANSWER, ANSWER])
        cache = ResponseCache(str(tmp_path / "cache"))
        first, _ = client(server, api_key=KEY, cache=cache)
        assert not first.complete(MESSAGES, SCHEMA, 2).cached
        other_key, _ = client(server, api_key="another-key", cache=cache)
        again = other_key.complete(MESSAGES, SCHEMA, 2)
        assert again.cached and again.calls == 0 and again.content == '{"a": "b"}'
        assert len(server.requests) == 1
        other_model = ChatClient("openai", f"{server.url}/v1", "other-model", cache=cache)
        assert not other_model.complete(MESSAGES, SCHEMA, 2).cached  # the model is in the key
        assert not first.complete(MESSAGES, SCHEMA, 3).cached  # and the schema version
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 3
    assert all(KEY not in f.name and KEY not in f.read_text() for f in files)


def test_an_unknown_provider_is_a_user_error():
    from whatif.errors import UserError

    with pytest.raises(UserError, match="provider 'claude'"):
        ChatClient("claude", "http://127.0.0.1:9", "m")
