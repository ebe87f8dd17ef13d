"""The OpenAI-compatible routes driven by the official `openai` client over real loopback HTTP.

A real uvicorn server (the app `rag serve` runs), the real model and index; the client is
`openai.OpenAI(base_url=..., api_key=...)` exactly as users would write it. Every citation is
checked against the article text the index holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from rag.assistant import Assistant
from rag.settings import Settings
from server.app import create_app
from server.testing import live_server
from tests import fake_openai
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.slow
fake_llm = fake_openai.fake_llm  # the fixture, made visible to pytest in this module

QUESTION = "Who chairs the Arab Parliament?"
UNANSWERABLE = "What is the boiling point of liquid nitrogen in Kelvin?"
MODEL = "rag-extractive"


@pytest.fixture(scope="module")
def base_url(seeds_settings: Settings, assistant: Assistant) -> Iterator[str]:
    with live_server(create_app(seeds_settings, assistant)) as base:
        yield base


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def extra(obj: Any, name: str) -> Any:
    """An extension field of a response or chunk (the SDK keeps unknown fields)."""
    return (obj.model_extra or {}).get(name)


def check_citations(assistant: Assistant, content: str, citations: list[dict[str, Any]]) -> None:
    for c in citations:
        doc = assistant.document(c["doc_id"])
        assert doc is not None
        assert doc.text[c["start"] : c["end"]] == c["quote"]
        assert doc.title == c["title"]
        assert f"[{c['n']}]" in content


def test_models_lists_the_extractive_answerer(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_chat_answers_with_exact_citations(client: openai.OpenAI, assistant: Assistant) -> None:
    done = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, user(QUESTION)],
        temperature=0.7,  # accepted and ignored, like top_p, max_tokens and user
        top_p=0.5,
        max_tokens=10,
        user="someone",
    )
    assert done.object == "chat.completion" and done.model == MODEL
    (choice,) = done.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    content = choice.message.content or ""
    assert "Al-Asoumi" in content
    assert "Sources:" in content and "000_2e40f42646a43cae.txt" in content
    citations = extra(done, "citations")
    assert citations and citations[0]["doc_id"] == "000_2e40f42646a43cae.txt"
    check_citations(assistant, content, citations)
    assert extra(done, "abstained") is False
    assert done.usage is not None and done.usage.completion_tokens > 0
    # The same question on the native API gives the same answer and citations.
    native = assistant.ask(QUESTION)
    assert content.startswith(native.answer)
    assert [c["quote"] for c in citations] == [c.quote for c in native.citations]


def test_chat_streams_openai_chunks(client: openai.OpenAI, assistant: Assistant) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=[user(QUESTION)])
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[user(QUESTION)],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    with_choice = [c for c in chunks if c.choices]
    assert with_choice[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in with_choice)
    assert text == whole.choices[0].message.content
    last = with_choice[-1]
    assert last.choices[0].finish_reason == "stop"
    assert extra(last, "citations") == extra(whole, "citations")
    check_citations(assistant, text, extra(last, "citations"))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # include_usage


def test_stream_ends_with_done(base_url: str) -> None:
    body = {"model": MODEL, "messages": [user(QUESTION)], "stream": True}
    r = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [b for b in r.text.split("\n\n") if b]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


def test_unanswerable_is_an_ordinary_message(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(model=MODEL, messages=[user(UNANSWERABLE)])
    content = done.choices[0].message.content or ""
    assert "don't contain" in content and "Sources:" not in content
    assert done.choices[0].finish_reason == "stop"
    assert extra(done, "citations") == [] and extra(done, "abstained") is True


def test_follow_up_without_llm_uses_the_last_two_turns(
    client: openai.OpenAI, assistant: Assistant
) -> None:
    follow_up = "Who did he call?"
    minister_doc = "001_d02ccc4d9c9c05cf.txt"
    alone = assistant.ask(follow_up)  # alone, "he" has no referent: another article answers
    assert {c.doc_id for c in alone.citations} != {minister_doc}, alone.answer
    done = client.chat.completions.create(
        model=MODEL,
        messages=[
            user("Who is the Iranian foreign minister?"),
            {"role": "assistant", "content": "Hossein Amirabdollahian [1]."},
            user(follow_up),
        ],
    )
    content = done.choices[0].message.content or ""
    assert "foreign minister of Iran called" in content or "Bayramov" in content, content
    citations = extra(done, "citations")
    assert minister_doc in {c["doc_id"] for c in citations}
    check_citations(assistant, content, citations)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"messages": [{"role": "bot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
        ({"messages": [user("   ")]}, "messages"),
        ({"messages": [user("x" * 2001)]}, "messages"),
        ({"messages": [user(QUESTION)], "n": 2}, "n"),
        (
            {
                "messages": [user(QUESTION)],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            "tools",
        ),
        (
            {"messages": [user(QUESTION)], "response_format": {"type": "json_object"}},
            "response_format",
        ),
        ({"messages": [user(QUESTION)], "logprobs": True}, "logprobs"),
    ],
)
def test_bad_requests_name_the_param(
    client: openai.OpenAI, kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, **kwargs)
    err = info.value
    assert err.status_code == 400
    assert err.param == param
    assert err.type == "invalid_request_error"
    assert err.message


def test_as_of_from_metadata(client: openai.OpenAI) -> None:
    """OpenAI's `metadata.as_of` stands for the `as_of` body field when that is absent; a bad
    one is a 400 naming `as_of`, as the body field's is."""
    asked = {"model": MODEL, "messages": [user(QUESTION)]}
    done = client.chat.completions.create(**asked, metadata={"as_of": "2024-06-01"})
    assert extra(done, "as_of") == "2024-06-01"
    both = client.chat.completions.create(
        **asked, metadata={"as_of": "2024-06-01", "run": "x"}, extra_body={"as_of": "2024-05-01"}
    )
    assert extra(both, "as_of") == "2024-05-01"  # the body field wins
    for bad in ({"metadata": {"as_of": "soon"}}, {"extra_body": {"as_of": "2024-02-30"}}):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(**asked, **bad)
        assert info.value.param == "as_of" and info.value.type == "invalid_request_error"
    streamed = client.chat.completions.create(
        **asked, metadata={"as_of": "2024-06-01"}, stream=True
    )
    assert [extra(c, "as_of") for c in streamed if extra(c, "as_of")][-1] == "2024-06-01"


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[user(QUESTION)])
    assert info.value.code == "model_not_found" and info.value.param == "model"


def test_malformed_json_is_an_openai_error(base_url: str) -> None:
    r = httpx.post(
        f"{base_url}/v1/chat/completions",
        content=b'{"model": "rag-extractive", "messages": [',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == "body" and "malformed JSON" in error["message"]
    # The native routes keep their own error shape.
    native = httpx.post(f"{base_url}/v1/ask", json={"question": ""})
    assert native.status_code == 422 and native.json()["error"]["type"] == "validation_error"


def test_api_key_is_required_when_configured(
    seeds_settings: Settings, assistant: Assistant
) -> None:
    settings = seeds_settings.with_overrides(api_key="s3cret")
    with live_server(create_app(settings, assistant)) as base:
        wrong = openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            wrong.chat.completions.create(model=MODEL, messages=[user(QUESTION)])
        assert info.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        missing = httpx.post(
            f"{base}/v1/chat/completions", json={"model": MODEL, "messages": [user(QUESTION)]}
        )
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["code"] == "invalid_api_key"
        good = openai.OpenAI(base_url=f"{base}/v1", api_key="s3cret", max_retries=0)
        done = good.chat.completions.create(model=MODEL, messages=[user(QUESTION)])
        assert "Al-Asoumi" in (done.choices[0].message.content or "")
        # The native API is unaffected by the key.
        assert httpx.post(f"{base}/v1/ask", json={"question": QUESTION}).status_code == 200


def test_follow_up_with_llm_is_rewritten_first(
    seeds_settings: Settings, assistant: Assistant, fake_llm: FakeOpenAI
) -> None:
    fake_llm.answer("Who did Hossein Amirabdollahian talk to on the phone?")
    settings = seeds_settings.with_overrides(llm_base_url=fake_llm.base_url, llm_model="fake")
    # the server and its assistant share one configuration (as `rag serve` builds them)
    with_llm = Assistant(settings, assistant.snapshot, assistant.embedder)
    with live_server(create_app(settings, with_llm)) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == [MODEL, "rag-llm"]
        done = client.chat.completions.create(
            model=MODEL,
            messages=[
                user("Who is the Iranian foreign minister?"),
                {"role": "assistant", "content": "Hossein Amirabdollahian [1]."},
                user("Who did he talk to on the phone?"),
            ],
        )
    (rewrite,) = fake_llm.requests  # one LLM call: the rewrite (the answerer is extractive)
    assert "Who did he talk to on the phone?" in rewrite.message("user")
    assert "Iranian foreign minister" in rewrite.message("user")
    content = done.choices[0].message.content or ""
    assert "Bayramov" in content
    check_citations(assistant, content, extra(done, "citations"))


def test_llm_model_streams_the_llm_answer(
    seeds_settings: Settings, assistant: Assistant, fake_llm: FakeOpenAI
) -> None:
    fake_llm.answer("The Arab Parliament is chaired by Adel Al-Asoumi [1].")
    settings = seeds_settings.with_overrides(llm_base_url=fake_llm.base_url, llm_model="fake")
    llm_assistant = Assistant(settings, assistant.snapshot, assistant.embedder)
    with live_server(create_app(settings, llm_assistant)) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        chunks = list(
            client.chat.completions.create(model="rag-llm", messages=[user(QUESTION)], stream=True)
        )
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 2  # the LLM's tokens arrive as they are written
    text = "".join(pieces)
    assert text.startswith("The Arab Parliament is chaired by Adel Al-Asoumi [1].")
    (citation,) = extra(chunks[-1], "citations")
    check_citations(assistant, text, [citation])
    assert fake_llm.requests[0].body["stream"] is True
