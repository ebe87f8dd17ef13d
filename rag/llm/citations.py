"""Streaming clean-up of LLM answer text: reasoning blocks out, citation markers validated.

Both filters take text in arbitrary pieces (a token stream) and hold back only what may still
change meaning (a partial `<think>` tag, a `[` that may start a marker), so the pieces they emit
concatenate to exactly the text a single call on the whole answer would give.

- `ReasoningFilter` drops `<think>…</think>` blocks (any case), also one split across pieces and
  an unterminated one (the model ran out of tokens while reasoning): everything after it is
  reasoning and dropped.
- `CitationRewriter` renumbers valid markers `[n]` (also `[1, 2]`, `[1-3]`, `[1][2]`) 1..m in
  order of first appearance and removes markers naming no passage, counting them.
- `final_draft` turns the cleaned text into an `AnswerDraft` whose every citation quotes the
  exact span that was sent (`document.text[start:end] == quote`), or says why it cannot be used.
"""

from __future__ import annotations

import re

from rag.answer.answering import ABSTAIN_TEXT
from rag.llm.prompt import PackedPassage
from rag.models import AnswerDraft, Citation

_MARKER_RE = re.compile(r"\[\s*\d{1,4}(?:\s*[,;\-–]\s*\d{1,4})*\s*\]")
_MARKER_CHARS = frozenset("0123456789 ,;-–\t")
_MARKER_MAX_CHARS = 40  # a longer "[..." run is prose, not a marker
_MAX_RANGE = 20  # "[1-3]" expands; "[1-2000]" is not a citation

_OPEN, _CLOSE = "<think>", "</think>"
_TAG_RE = {tag: re.compile(re.escape(tag), re.IGNORECASE) for tag in (_OPEN, _CLOSE)}


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest proper prefix of `tag` that `text` ends with (case-insensitive)."""
    for k in range(min(len(text), len(tag) - 1), 0, -1):
        if text[-k:].lower() == tag[:k]:
            return k
    return 0


class ReasoningFilter:
    """Removes `<think>…</think>` reasoning from streamed text (see the module docstring)."""

    def __init__(self) -> None:
        self._held = ""  # text not yet decided: a possible partial tag
        self._inside = False
        self.stripped = False  # whether any reasoning was removed

    def feed(self, piece: str) -> str:
        text = self._held + piece
        self._held = ""
        out: list[str] = []
        while text:
            tag = _CLOSE if self._inside else _OPEN
            found = _TAG_RE[tag].search(text)
            if found:
                if not self._inside:
                    out.append(text[: found.start()])
                self._inside = not self._inside
                self.stripped = True
                text = text[found.end() :]
                continue
            keep = _partial_tag_suffix(text, tag)
            if not self._inside:
                out.append(text[: len(text) - keep])
            self._held = text[len(text) - keep :] if keep else ""
            break
        return "".join(out)

    def flush(self) -> str:
        """End of text: a held partial tag is prose, unless inside an unterminated block."""
        held, self._held = self._held, ""
        return "" if self._inside else held


class CitationRewriter:
    """Rewrites citation markers in text that arrives in pieces (a token stream).

    Valid markers are renumbered 1..m in order of first appearance and written as `[1][2]`;
    markers naming no passage are removed together with the whitespace before them, and counted.
    A `[` that may start a marker is held back until it is resolved, so the streamed pieces
    concatenate to exactly the final answer text (before stripping).
    """

    def __init__(self, n_passages: int) -> None:
        self.n_passages = n_passages
        self.mapping: dict[int, int] = {}  # passage number sent -> citation number shown
        self.dropped = 0
        self._text: list[str] = []
        self._space = ""  # whitespace held back: dropped with a following invalid marker
        self._marker: str | None = None  # a possible marker being read

    def feed(self, piece: str) -> str:
        out: list[str] = []
        for ch in piece:
            self._step(ch, out)
        return self._emit(out)

    def flush(self) -> str:
        """End of text: an unfinished `[...` is prose; trailing whitespace is dropped."""
        out: list[str] = []
        if self._marker is not None:
            out.append(self._space + self._marker)
            self._marker = None
        self._space = ""
        return self._emit(out)

    @property
    def text(self) -> str:
        return "".join(self._text)

    def _emit(self, out: list[str]) -> str:
        s = "".join(out)
        if s:
            self._text.append(s)
        return s

    def _step(self, ch: str, out: list[str]) -> None:
        if self._marker is not None:
            if ch == "]":
                self._resolve(self._marker + ch, out)
                self._marker = None
                return
            if ch in _MARKER_CHARS and len(self._marker) < _MARKER_MAX_CHARS:
                self._marker += ch
                return
            out.append(self._space + self._marker)  # not a marker after all
            self._space = ""
            self._marker = None
        if ch == "[":
            self._marker = ch
        elif ch.isspace():
            self._space += ch
        else:
            out.append(self._space + ch)
            self._space = ""

    def _resolve(self, marker: str, out: list[str]) -> None:
        if not _MARKER_RE.fullmatch(marker):
            out.append(self._space + marker)
            self._space = ""
            return
        shown: list[int] = []
        for n in _marker_numbers(marker):
            if not 1 <= n <= self.n_passages:
                self.dropped += 1
                continue
            m = self.mapping.setdefault(n, len(self.mapping) + 1)
            if m not in shown:
                shown.append(m)
        if shown:
            out.append(self._space + "".join(f"[{m}]" for m in shown))
        self._space = ""  # an all-invalid marker takes the space before it along


def _marker_numbers(marker: str) -> list[int]:
    numbers: list[int] = []
    for part in re.split(r"\s*[,;]\s*", marker[1:-1].strip()):
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 2 and 0 <= int(bounds[1]) - int(bounds[0]) < _MAX_RANGE:
            numbers.extend(range(int(bounds[0]), int(bounds[1]) + 1))
        else:
            numbers.extend(int(b) for b in bounds)
    return numbers


def _normalise(text: str) -> str:
    text = _MARKER_RE.sub(" ", text).replace("’", "'").replace("‘", "'")
    return " ".join(text.split()).strip(" .\"'").lower()


_ABSTAIN = _normalise(ABSTAIN_TEXT)


def final_draft(
    text: str, rewriter: CitationRewriter, packed: list[PackedPassage]
) -> AnswerDraft | str:
    """The LLM's final answer, or a fallback reason when it cannot be trusted."""
    text = text.strip()
    if not text:
        return "LLM returned an empty answer"
    plain = _normalise(text)
    if plain == _ABSTAIN or (not rewriter.mapping and _ABSTAIN in plain):
        return AnswerDraft(
            ABSTAIN_TEXT,
            [],
            abstained=True,
            answerer="llm",
            dropped_citations=rewriter.dropped,
        )
    if not rewriter.mapping:
        return "LLM answer cited no passage"
    by_n = {p.n: p for p in packed}
    citations = [
        Citation(
            n=shown,
            doc_id=by_n[sent].passage.doc_id,
            title=by_n[sent].passage.title,
            source=by_n[sent].passage.source,
            start=by_n[sent].start,
            end=by_n[sent].end,
            quote=by_n[sent].text,
            score=by_n[sent].passage.score,
        )
        for sent, shown in sorted(rewriter.mapping.items(), key=lambda kv: kv[1])
    ]
    return AnswerDraft(
        text,
        citations,
        abstained=False,
        answerer="llm",
        dropped_citations=rewriter.dropped,
    )
