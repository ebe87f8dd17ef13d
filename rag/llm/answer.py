"""One generative answer: prompt → streamed LLM text → validated citations, or the fallback.

Never worse than extractive: not configured, unreachable, timed out, HTTP errors, malformed
responses, empty answers (also one that was only `<think>` reasoning), or an answer that claims
something but cites nothing — the extractive answer is returned instead, with `fallback=True`
and a short reason. Nothing raises out of `stream_answer` for an LLM failure, and no reason
carries the API key (reasons are fixed strings or pass through `LlmClient.redact`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from rag.answer.answering import ABSTAIN_TEXT
from rag.llm.anchor import anchor
from rag.llm.citations import CitationRewriter, ReasoningFilter, final_draft
from rag.llm.client import LlmClient, LLMFailure
from rag.llm.prompt import PackedPassage, PromptTooLong, pack_prompt, prompt_tokens
from rag.models import AnswerDraft, Passage
from rag.settings import Settings

logger = logging.getLogger(__name__)

Extractive = Callable[[], AnswerDraft]


def _fallback(extractive: Extractive, reason: str) -> AnswerDraft:
    logger.warning("LLM answer unavailable, using the extractive answer: %s", reason)
    draft = extractive()
    draft.fallback = True
    draft.fallback_reason = reason
    return draft


def _prompt(
    client: LlmClient, question: str, passages: list[Passage], note: str = ""
) -> tuple[list[dict[str, str]], list[PackedPassage]] | str:
    """The messages and packed passages (`note` ends the question's message), or the reason no
    prompt can be sent."""
    cfg = client.config
    try:
        messages, packed = pack_prompt(
            question, passages, context_window=cfg.context_window,
            max_tokens=cfg.max_tokens, note=note,
        )
    except PromptTooLong:
        return "question does not fit the LLM context window"
    if not packed:
        return "no passage fits the LLM context window"
    logger.debug(
        "LLM prompt: %d of %d passages (%d cut), %d tokens + %d reserved of %d",
        len(packed),
        len(passages),
        sum(p.truncated for p in packed),
        prompt_tokens(messages),
        cfg.max_tokens,
        cfg.context_window,
    )
    return messages, packed


def _anchor(
    messages: list[dict[str, str]], packed: list[PackedPassage], extractive: Extractive
) -> tuple[list[dict[str, str]], str | None] | AnswerDraft:
    """The anchored prompt and its grammar, or the answer itself when the reader abstains (the
    model is not asked to contradict it)."""
    draft = extractive()
    if draft.abstained:
        return AnswerDraft(ABSTAIN_TEXT, [], abstained=True, answerer="llm",
                           confidence=draft.confidence)
    found = anchor(draft, packed)
    if found is None:
        return messages, None
    note, grammar = found
    last = {**messages[-1], "content": messages[-1]["content"] + note}
    return [*messages[:-1], last], grammar


def stream_answer(
    client: LlmClient,
    question: str,
    passages: list[Passage],
    extractive: Extractive,
    *,
    note: str = "",
) -> Iterator[str | AnswerDraft]:
    """Answer text pieces as the LLM streams them, then the final AnswerDraft (always last).

    `note` is appended to the question's message (`rag.temporal.time_llm`: which passages are
    the newest). The pieces have reasoning blocks and invalid markers removed and valid ones
    renumbered; the final draft's `answer` is their concatenation, stripped. If the LLM fails —
    before or after some text was streamed — the final draft is the extractive one with
    `fallback=True`, and it is the answer.
    """
    if not client.config.configured:
        yield _fallback(extractive, "LLM not configured")
        return
    if not passages:
        yield AnswerDraft(ABSTAIN_TEXT, [], abstained=True, answerer="llm")
        return
    prompt = _prompt(client, question, passages, note)
    if isinstance(prompt, str):
        yield _fallback(extractive, prompt)
        return
    messages, packed = prompt
    grammar = None
    if client.config.anchor:  # small local model: the reader's answer anchors it
        anchored = _anchor(messages, packed, extractive)
        if isinstance(anchored, AnswerDraft):
            yield anchored
            return
        messages, grammar = anchored
    reasoning = ReasoningFilter()
    rewriter = CitationRewriter(len(packed))
    try:
        for piece in client.generate(messages, grammar=grammar):
            out = rewriter.feed(reasoning.feed(piece))
            if out:
                yield out
    except LLMFailure as exc:
        yield _fallback(extractive, client.redact(exc.reason))
        return
    except Exception as exc:  # a bug or an unexpected library error: still never raise
        logger.warning("LLM call failed unexpectedly: %s", client.redact(repr(exc)))
        yield _fallback(extractive, f"LLM call failed ({type(exc).__name__})")
        return
    tail = rewriter.feed(reasoning.flush()) + rewriter.flush()
    if tail:
        yield tail
    result = final_draft(rewriter.text, rewriter, packed)
    if isinstance(result, str):
        if reasoning.stripped and not rewriter.text.strip():
            result = "LLM answer was only reasoning, no answer"
        yield _fallback(extractive, result)
        return
    if rewriter.dropped:
        logger.info("LLM answer: dropped %d citation(s) to no passage", rewriter.dropped)
    yield result


def stream_llm_answer(
    settings: Settings,
    question: str,
    passages: list[Passage],
    extractive: Extractive,
) -> Iterator[str | AnswerDraft]:
    """`stream_answer` with a client built from `settings` for this one answer (scripts,
    tests); long-lived callers build one `LlmClient` and reuse it, as `Assistant` does."""
    with LlmClient.from_settings(settings) as client:
        yield from stream_answer(client, question, passages, extractive)
