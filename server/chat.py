"""From an OpenAI-style conversation to one question, and from an `Answer` to a chat message.

Which question is answered (the rule docs/http-api.md documents):

* The last **user** message is the question; system, developer, tool and earlier assistant
  messages are context only (the articles, not the prompt, decide what the answer says).
* A follow-up (an earlier user message exists) **with an LLM configured** is first rewritten
  into a standalone question by one LLM call (`rewrite_question`); that question is retrieved
  and answered. If the call fails, the rule below applies instead.
* A follow-up **without an LLM**: the last two user turns are joined and embedded together
  (`Plan.context`); that vector drives dense retrieval and the semantic half of sentence
  scoring, while the words and the answer type (who, when, where…) come from the last turn
  alone. So "Who did he talk to on the phone?" after "Who is the Iranian foreign minister?"
  finds the minister's call, and a new topic is still answered as asked.

The message content is the answer with its `[n]` markers followed by a short source list; the
citations themselves travel as structured data beside the message (exact spans, never edited).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rag.models import Answer, Citation
from server.openai_schemas import ChatCitation, ChatMessage, OpenAIError

if TYPE_CHECKING:
    from rag.llm import LlmClient

logger = logging.getLogger("server")

REWRITE_TURNS = 6  # conversation messages shown to the LLM when rewriting a follow-up
REWRITE_PROMPT = (
    "You rewrite the user's last message of a conversation into one standalone question that "
    "can be understood without the conversation (resolve pronouns and references). Do not "
    "answer it. Reply with the question only, on one line."
)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to retrieve and answer: `question` is answered; when `context` is set (the last
    two user turns joined), it is what gets embedded instead of the question."""

    question: str
    context: str | None = None
    rewritten: bool = False


def message_text(message: ChatMessage, index: int) -> str:
    """The text of a message; a user message with non-text parts (images, audio) is refused."""
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for part in content:
        if part.type == "text" and part.text is not None:
            texts.append(part.text)
        elif message.role == "user":
            raise OpenAIError(
                400,
                f"content parts of type {part.type!r} are not supported; send text",
                param=f"messages[{index}].content",
            )
    return "\n".join(texts)


def user_turns(messages: list[ChatMessage]) -> list[str]:
    """The non-blank user messages, oldest first; at least one, else a 400 naming `messages`."""
    turns = [message_text(m, i) for i, m in enumerate(messages) if m.role == "user"]
    turns = [t.strip() for t in turns if t.strip()]
    if not turns:
        raise OpenAIError(400, "messages must contain a non-empty user message", param="messages")
    return turns


def rule_plan(turns: list[str], max_chars: int) -> Plan:
    """Without an LLM: answer the last turn, embedding it joined with the one before."""
    question = turns[-1]
    if len(turns) < 2:
        return Plan(question)
    room = max_chars - len(question) - 1
    if room <= 0:
        return Plan(question)
    previous = turns[-2][-room:]
    return Plan(question, context=f"{previous} {question}")


def rewrite_question(client: LlmClient, messages: list[ChatMessage], max_chars: int) -> str | None:
    """One LLM call turning the conversation's last question into a standalone one; None when
    the LLM fails or answers nothing usable. The only use of `rag.llm` here: its client."""
    lines = []
    for m in messages[-REWRITE_TURNS:]:
        if m.role in ("user", "assistant"):
            text = _plain(m.content)
            lines.append(f"{m.role}: {' '.join(text.split())[:1000]}")
    prompt = [
        {"role": "system", "content": REWRITE_PROMPT},
        {"role": "user", "content": "\n".join(lines)},
    ]
    try:
        text = "".join(client.generate(prompt)).strip()
    except Exception as exc:  # LLMFailure (reason already safe) or anything unexpected
        logger.warning("follow-up rewrite failed, using the two-turn rule: %s", exc)
        return None
    line = text.splitlines()[0].strip().strip('"') if text else ""
    return line[:max_chars] or None


def _plain(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.text for p in content if getattr(p, "text", None))
    return ""


def short_answer_of(answer: Answer) -> str | None:
    """The Answer's short answer when it has one (a string, or a span with `text`)."""
    value = getattr(answer, "short_answer", None)
    if value is None or isinstance(value, str):
        return value or None
    text = getattr(value, "text", None) or getattr(value, "quote", None)
    return str(text) if text else None


def chat_citations(answer: Answer) -> list[ChatCitation]:
    """The answer's citations in the chat response's shape (the same fields, less `score`)."""
    return [ChatCitation(**c.model_dump(exclude={"score"})) for c in answer.citations]


def sources_text(answer: Answer) -> str:
    """The source list appended to the message: one line per document, with its markers."""
    if answer.abstained or not answer.citations:
        return ""
    by_doc: dict[str, list[Citation]] = {}
    for c in answer.citations:
        by_doc.setdefault(c.doc_id, []).append(c)
    lines = []
    for doc_id, cites in by_doc.items():
        markers = "".join(f"[{c.n}]" for c in cites)
        source = f", {cites[0].source}" if cites[0].source else ""
        lines.append(f"{markers} {cites[0].title}{source} ({doc_id})")
    return "\n\nSources:\n" + "\n".join(lines)


def message_content(answer: Answer) -> str:
    return answer.answer + sources_text(answer)
