"""The MCP tools driven by the official `mcp` client: over stdio (`rag mcp` as a subprocess, as
a desktop agent starts it) and over streamable HTTP at `/mcp` of a real uvicorn server.

Every citation, passage and span a tool returns is checked against the article text the index
holds; tool input schemas are checked against the HTTP API's request models.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from rag.assistant import Assistant
from rag.settings import Settings
from server.answering import Answering
from server.app import create_app
from server.mcp import at_once, build_mcp
from server.runtime import Runtime
from server.schemas import AskRequest, SearchRequest
from server.testing import live_server
from tests import test_timeline
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

QUESTION = "Who chairs the Arab Parliament?"
TOOLS = {"search_articles", "ask", "get_document", "list_documents", "timeline"}


@pytest.fixture(scope="module")
def base_url(seeds_settings: Settings, assistant: Assistant) -> Iterator[str]:
    with live_server(create_app(seeds_settings, assistant)) as base:
        yield base


def stdio_params(settings: Settings) -> StdioServerParameters:
    env = {
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "server.cli", "mcp", "--index", str(settings.index_dir)],
        env=env,
        cwd=str(ROOT),
    )


@asynccontextmanager
async def connect(transport: str, settings: Settings, base_url: str) -> AsyncIterator[Client]:
    server: Any = stdio_params(settings) if transport == "stdio" else f"{base_url}/mcp"
    async with Client(server, read_timeout_seconds=120) as client:
        yield client


def exact(assistant: Assistant, doc_id: str, start: int, end: int, text: str) -> bool:
    doc = assistant.document(doc_id)
    return doc is not None and doc.text[start:end] == text


async def exercise(client: Client, assistant: Assistant) -> None:
    """List the tools and call each, checking every span against the articles."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    # Input schemas come from the HTTP request models.
    assert set(tools["search_articles"].input_schema["properties"]) == set(
        SearchRequest.model_fields
    )
    assert set(tools["ask"].input_schema["properties"]) == set(AskRequest.model_fields) - {"stream"}
    assert tools["ask"].input_schema["required"] == ["question"]
    assert all(tools[name].output_schema for name in TOOLS)

    asked = await client.call_tool("ask", {"question": QUESTION})
    assert not asked.is_error
    answer = asked.structured_content
    assert not answer["abstained"] and "Al-Asoumi" in answer["answer"]
    assert answer["citations"]
    for c in answer["citations"]:
        assert exact(assistant, c["doc_id"], c["start"], c["end"], c["quote"])
    text = asked.content[0].text
    assert "Al-Asoumi" in text and "Sources:" in text

    found = await client.call_tool(
        "search_articles", {"question": QUESTION, "top_k": 2, "mode": "bm25"}
    )
    assert not found.is_error
    passages = found.structured_content["passages"]
    assert 1 <= len(passages) <= 2 and passages[0]["doc_id"] == "000_2e40f42646a43cae.txt"
    for p in passages:
        assert exact(assistant, p["doc_id"], p["start"], p["end"], p["text"])

    cite = answer["citations"][0]
    span = await client.call_tool(
        "get_document", {"doc_id": cite["doc_id"], "start": cite["start"], "end": cite["end"]}
    )
    assert not span.is_error and span.structured_content["text"] == cite["quote"]
    whole = await client.call_tool("get_document", {"doc_id": cite["doc_id"]})
    doc = assistant.document(cite["doc_id"])
    assert doc is not None and whole.structured_content["text"] == doc.text

    listed = await client.call_tool("list_documents", {"source": "tasnim"})
    page = listed.structured_content
    assert page["total"] == 1 and page["items"][0]["id"] == "001_d02ccc4d9c9c05cf.txt"
    titled = await client.call_tool("list_documents", {"title_contains": "ARAB PARLIAMENT"})
    assert [d["id"] for d in titled.structured_content["items"]] == ["000_2e40f42646a43cae.txt"]
    paged = await client.call_tool("list_documents", {"offset": 1, "limit": 1})
    assert paged.structured_content["total"] == 3 and len(paged.structured_content["items"]) == 1
    dated = await client.call_tool("list_documents", {"date_from": "1990-01-01"})
    expected = sum(1 for d in assistant.documents() if d.date and d.date >= "1990-01-01")
    assert dated.structured_content["total"] == expected


async def bad_arguments(client: Client) -> None:
    """Bad arguments are tool errors (isError) naming the problem, not protocol failures."""
    cases = [
        ("ask", {"question": QUESTION, "top_k": 0}, "top_k"),
        ("ask", {"question": "   "}, "question"),
        ("search_articles", {"question": "x" * 2001}, "question"),
        ("search_articles", {"question": QUESTION, "mode": "fuzzy"}, "mode"),
        ("get_document", {"doc_id": "no-such.txt"}, "doc_id"),
        ("get_document", {"doc_id": "000_2e40f42646a43cae.txt", "start": 5, "end": 2}, "span"),
        ("list_documents", {"limit": 0}, "limit"),
    ]
    for tool, args, field in cases:
        result = await client.call_tool(tool, args)
        assert result.is_error, (tool, args)
        assert field in result.content[0].text, result.content[0].text


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_mcp_tools(
    transport: str, seeds_settings: Settings, assistant: Assistant, base_url: str
) -> None:
    async def run() -> None:
        async with connect(transport, seeds_settings, base_url) as client:
            await exercise(client, assistant)
            await bad_arguments(client)
            unanswerable = "What is the boiling point of liquid nitrogen in Kelvin?"
            result = await client.call_tool("ask", {"question": unanswerable})
            assert not result.is_error and result.structured_content["abstained"]

    anyio.run(run)


def test_rag_mcp_without_an_index_fails_in_one_line(tmp_path: Any) -> None:
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "mcp",
            "--index",
            str(tmp_path / "none"),
            "--seeds",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: no index at") and len(proc.stderr.splitlines()) == 1
    assert proc.stdout == ""


def test_get_document_gives_dates_and_copies(dated_settings: Settings, dated: Assistant) -> None:
    """`get_document` carries the article's date, date_source, canonical and copies, as
    `GET /v1/documents/{id}` does, also for a span."""
    copy_id, original_id = test_timeline.MENAFN_2022, test_timeline.MNA_2022
    snap = dated.snapshot

    async def run() -> None:
        mcp = build_mcp(at_once(Answering(Runtime(dated_settings, dated))))
        async with Client(mcp) as client:
            got = await client.call_tool("get_document", {"doc_id": copy_id, "start": 0, "end": 40})
            assert not got.is_error
            span = got.structured_content
            doc = snap.docs[copy_id]
            assert span["text"] == doc.text[:40]
            assert (span["date"], span["date_source"]) == (doc.date, doc.date_source)
            assert span["date_source"] == "dateline" and span["date"] == "--03-14"
            assert span["canonical"] == original_id
            assert [c["doc_id"] for c in span["copies"]] == [original_id]
            mna = snap.docs[original_id]
            assert span["copies"][0] == {
                "doc_id": original_id,
                "title": mna.title,
                "source": mna.source,
                "date": mna.date,
                "date_source": mna.date_source,
            }
            assert f"republished copy of: {original_id}" in got.content[0].text
            whole = (await client.call_tool("get_document", {"doc_id": original_id})).content
            assert f"also published as: {copy_id}" in whole[0].text
            alone = await client.call_tool("get_document", {"doc_id": test_timeline.POLL})
            assert alone.structured_content["canonical"] is None
            assert alone.structured_content["copies"] == []

    anyio.run(run)
