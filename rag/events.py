"""The events of a streamed answer (`Assistant.stream_ask`), in the order they come.

    PassagesEvent(passages)   once retrieval is done
    DeltaEvent(text)          pieces of the answer text (one from the extractive answerer,
                              many from an LLM)
    DoneEvent(answer)         last: the same `Answer` that `Assistant.ask` returns

Consumers match on the type (`isinstance`, `match`); `kind` is the event's name where a wire
format needs one (the Server-Sent Events of `/v1/ask`), and `data()` its JSON payload there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rag.models import Answer, Passage


@dataclass(frozen=True, slots=True)
class PassagesEvent:
    """The passages the answer is drawn from, best first."""

    passages: list[Passage]
    kind: ClassVar[str] = "passages"

    def data(self) -> dict[str, Any]:
        return {"passages": [p.model_dump(mode="json") for p in self.passages]}


@dataclass(frozen=True, slots=True)
class DeltaEvent:
    """A piece of the answer text, in order."""

    text: str
    kind: ClassVar[str] = "delta"

    def data(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(frozen=True, slots=True)
class DoneEvent:
    """The whole answer, with its citations and timings."""

    answer: Answer
    kind: ClassVar[str] = "done"

    def data(self) -> dict[str, Any]:
        return self.answer.model_dump(mode="json")


StreamEvent = PassagesEvent | DeltaEvent | DoneEvent
