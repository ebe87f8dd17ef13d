"""Split documents into chunks of whole sentences that fit the embedding model exactly.

The embedding model silently truncates anything past `max_seq_length` tokens, so a chunk that
is one token too long loses text from the index without any error. The invariant here is
therefore exact: every chunk's real token count (special tokens included) is at most the limit,
and `document.text[chunk.start:chunk.end] == chunk.text`, so citations can quote offsets.

Speed comes from counting cheaply and verifying once: all sentences of a document are counted
in one batched tokenizer call, chunks are packed from those counts (the count of a run of
sentences is close to the sum of their counts minus the special tokens), and only the finished
chunks are counted for real, again in one batch. The rare chunk whose estimate was too low is
shrunk and the rest of the document re-packed after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rag.ingest.sentences import split_sentences, strip_span
from rag.ingest.tokens import TokenCounter, count_cl100k
from rag.models import Chunk, Document

__all__ = ["ChunkerConfig", "chunk_document", "chunk_with_sentences"]

# Below this many content tokens per chunk, chunks would be fragments of words; and one
# character can need up to 3 tokens (a Hangul syllable), so tiny limits could not be honoured.
_MIN_CONTENT_TOKENS = 8


@dataclass(frozen=True, slots=True)
class ChunkerConfig:
    """How to chunk: the requested size and how many whole sentences consecutive chunks share."""

    max_tokens: int  # requested size, in embedding tokens incl. special tokens
    overlap: int  # whole sentences repeated between consecutive chunks

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")
        if self.overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {self.overlap}")


@dataclass(frozen=True, slots=True)
class _Unit:
    """A packable piece: a whole sentence, or part of one that alone exceeds the limit."""

    start: int
    end: int
    paragraph: int
    ntok: int  # real token count of text[start:end] without special tokens
    sentence: int  # index of the sentence it is (part of)


SentenceSpans = list[tuple[int, int]]  # absolute (start, end) of a chunk's sentences


def chunk_document(doc: Document, counter: TokenCounter, config: ChunkerConfig) -> list[Chunk]:
    """Chunk one document into runs of whole sentences of at most the effective token limit.

    The effective limit is `min(config.max_tokens, counter.max_length)`: a larger request would
    only be truncated by the model.
    """
    return chunk_with_sentences(doc, counter, config)[0]


def chunk_with_sentences(
    doc: Document, counter: TokenCounter, config: ChunkerConfig
) -> tuple[list[Chunk], list[SentenceSpans]]:
    """`chunk_document`'s chunks, and for each chunk the sentences (or, for a sentence longer
    than a chunk, the part of it inside the chunk) that no earlier chunk already holds — the
    spans that get their own vectors. Sentences are split once, here."""
    limit = min(config.max_tokens, counter.max_length)
    special = counter.special_tokens
    if limit - special < _MIN_CONTENT_TOKENS:
        raise ValueError(
            f"chunk limit {limit} leaves fewer than {_MIN_CONTENT_TOKENS} tokens for text "
            f"({special} are special tokens); raise max_tokens"
        )
    text = doc.text
    units = _units(text, counter, limit)
    if not units:
        return [], []
    spans, n_tokens = _pack_verified(text, units, counter, limit, config.overlap)
    texts = [text[units[f].start : units[last].end] for f, last in spans]
    n_tiktoken = count_cl100k(texts)
    chunks = [
        Chunk(
            id=f"{doc.id}#{ordinal}",
            doc_id=doc.id,
            ordinal=ordinal,
            start=units[f].start,
            end=units[last].end,
            text=chunk_text,
            n_tokens=ntok,
            n_tiktoken=ntik,
        )
        for ordinal, ((f, last), chunk_text, ntok, ntik) in enumerate(
            zip(spans, texts, n_tokens, n_tiktoken, strict=True)
        )
    ]
    return chunks, _new_sentences(units, spans)


def _new_sentences(units: list[_Unit], spans: list[tuple[int, int]]) -> list[SentenceSpans]:
    """Per chunk, the union of each sentence's units inside it, minus spans already seen."""
    seen: set[tuple[int, int]] = set()
    out: list[SentenceSpans] = []
    for first, last in spans:
        merged: dict[int, tuple[int, int]] = {}
        for u in units[first : last + 1]:
            s, e = merged.get(u.sentence, (u.start, u.end))
            merged[u.sentence] = (min(s, u.start), max(e, u.end))
        fresh = [span for span in merged.values() if span not in seen]
        seen.update(fresh)
        out.append(fresh)
    return out


def _units(text: str, counter: TokenCounter, limit: int) -> list[_Unit]:
    """Sentences with their token counts, over-long sentences split into pieces that fit.

    One batched tokenizer call counts every sentence; only sentences that do not fit on their
    own cost more work.
    """
    sentences = split_sentences(text)
    if not sentences:
        return []
    special = counter.special_tokens
    counts = counter.count_batch([text[s.start : s.end] for s in sentences])
    units: list[_Unit] = []
    for i, (s, count) in enumerate(zip(sentences, counts, strict=True)):
        if count <= limit:
            units.append(_Unit(s.start, s.end, s.paragraph, count - special, i))
        else:
            units.extend(
                _Unit(start, end, s.paragraph, ntok, i)
                for start, end, ntok in _split_span(text, s.start, s.end, counter, limit)
            )
    return units


def _split_span(
    text: str, start: int, end: int, counter: TokenCounter, limit: int
) -> list[tuple[int, int, int]]:
    """Split `text[start:end]` (stripped, too long) into pieces whose real count fits `limit`.

    Pieces end at word boundaries (whitespace) where possible; a word that alone exceeds the
    limit is cut between its tokens. Re-tokenising a piece can differ from its tokens inside
    the whole (a word-piece "##ing" becomes a word), so every piece is counted for real and
    split again if needed; each round works on strictly shorter spans, so this terminates.
    Returns (start, end, tokens without specials) per piece.
    """
    special = counter.special_tokens
    seg = text[start:end]
    offsets = counter.offsets(seg)
    # Cuts strictly inside the span, so that every piece is shorter than the span.
    starts = {offsets[t][0] for t in _piece_starts(seg, offsets, limit - special)}
    cuts = sorted(c for c in starts if 0 < c < len(seg))
    if not cuts:
        # The tokenizer's offsets gave no usable cut (should not happen): halve by characters.
        if len(seg) < 2:
            raise ValueError(f"cannot fit {seg!r} into {limit} tokens")
        cuts = [len(seg) // 2]
    pieces: list[tuple[int, int]] = []
    for a, b in zip([0, *cuts], [*cuts, len(seg)], strict=True):
        s, e = strip_span(text, start + a, start + b)
        if e > s:
            pieces.append((s, e))
    counts = counter.count_batch([text[s:e] for s, e in pieces])
    out: list[tuple[int, int, int]] = []
    for (s, e), count in zip(pieces, counts, strict=True):
        if count <= limit:
            out.append((s, e, count - special))
        else:
            out.extend(_split_span(text, s, e, counter, limit))
    return out


def _piece_starts(seg: str, offsets: Sequence[tuple[int, int]], budget: int) -> list[int]:
    """Indices of the tokens that start a new piece (never 0), packing words greedily.

    A token starts a new word when whitespace precedes it (or opens it, for tokenizers whose
    tokens carry their leading space).
    """
    word_starts: list[int] = []
    prev_end = 0
    for t, (s, e) in enumerate(offsets):
        if t == 0 or any(ch.isspace() for ch in seg[prev_end : s + 1]):
            word_starts.append(t)
        prev_end = max(prev_end, e)
    starts: list[int] = []
    used = 0  # tokens in the current piece
    for a, b in zip(word_starts, [*word_starts[1:], len(offsets)], strict=True):
        n = b - a
        if used + n <= budget:
            used += n
            continue
        if used:
            starts.append(a)
        while n > budget:  # a word longer than a whole piece: cut it between tokens
            a += budget
            n -= budget
            starts.append(a)
        used = n
    return [t for t in starts if 0 < t < len(offsets)]


def _pack_verified(
    text: str, units: list[_Unit], counter: TokenCounter, limit: int, overlap: int
) -> tuple[list[tuple[int, int]], list[int]]:
    """Pack units into chunks, count the chunks for real, and repair any that overflow.

    Returns the chunks as inclusive unit-index ranges and their real token counts. A chunk
    whose real count exceeds the limit loses its last new unit (to the next chunk), or its
    overlap, until it fits; the document is then re-packed from there. Every unit fits alone
    (see `_units`), so this always ends with every chunk holding at least one new unit.
    """
    packer = _Packer(units, limit, counter.special_tokens, overlap)
    done: list[tuple[int, int]] = []
    done_counts: list[int] = []
    pending = packer.pack(0, 0)
    while pending:
        counts = counter.count_batch([text[units[f].start : units[b].end] for f, b in pending])
        bad = next((k for k, c in enumerate(counts) if c > limit), None)
        if bad is None:
            done.extend(pending)
            done_counts.extend(counts)
            break
        done.extend(pending[:bad])
        done_counts.extend(counts[:bad])
        first, last = pending[bad]
        new_first = done[-1][1] + 1 if done else 0  # first unit not in the previous chunk
        count = counts[bad]
        while count > limit:
            if last > new_first:
                last -= 1  # hand the last sentence to the next chunk
            elif first < new_first:
                first += 1  # repeat fewer sentences of the previous chunk
            else:  # pragma: no cover - every unit was counted alone and fits
                raise AssertionError("a single unit exceeds the limit")
            count = counter.count(text[units[first].start : units[last].end])
        done.append((first, last))
        done_counts.append(count)
        pending = packer.pack(last + 1, last - first + 1)
    return done, done_counts


class _Packer:
    """Greedy packing of units by estimated counts, with paragraph preference and overlap."""

    def __init__(self, units: list[_Unit], limit: int, special: int, overlap: int) -> None:
        self.units = units
        self.limit = limit
        self.special = special
        self.budget = limit - special  # content tokens per chunk
        self.overlap = overlap
        # prefix[i] = sum of ntok of units[:i]: the estimate of any run is one subtraction.
        self.prefix = [0]
        for u in units:
            self.prefix.append(self.prefix[-1] + u.ntok)
        # paragraph_end[i] = index one past the last unit of units[i]'s paragraph.
        n = len(units)
        self.paragraph_end = [n] * n
        for i in range(n - 2, -1, -1):
            same = units[i + 1].paragraph == units[i].paragraph
            self.paragraph_end[i] = self.paragraph_end[i + 1] if same else i + 1

    def pack(self, i: int, prev_len: int) -> list[tuple[int, int]]:
        """Chunks (inclusive unit ranges) covering units[i:], after a chunk of `prev_len` units."""
        units, prefix, budget = self.units, self.prefix, self.budget
        n = len(units)
        out: list[tuple[int, int]] = []
        while i < n:
            k = min(self.overlap, prev_len)
            while k and prefix[i + 1] - prefix[i - k] > budget:
                k -= 1  # repeat fewer sentences so that at least one new one fits
            first = i - k
            used = prefix[i + 1] - prefix[first]
            j = i
            while j + 1 < n:
                ntok = units[j + 1].ntok
                if used + ntok > budget:
                    break
                if units[j + 1].paragraph != units[j].paragraph and self._prefer_break(j, used):
                    break
                used += ntok
                j += 1
            out.append((first, j))
            prev_len = j - first + 1
            i = j + 1
        return out

    def _prefer_break(self, j: int, used: int) -> bool:
        """End the chunk after units[j] (a paragraph's last unit) instead of spilling over?

        Yes when the next paragraph would not fit whole and the chunk is already at least half
        full: a chunk that is one topic embeds better than one with a stray half paragraph.
        """
        nxt = j + 1
        paragraph_tokens = self.prefix[self.paragraph_end[nxt]] - self.prefix[nxt]
        return used + paragraph_tokens > self.budget and 2 * (used + self.special) >= self.limit
