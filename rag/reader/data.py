"""Training data for the reader: SQuAD-format articles → sentence windows → token features.

A window is a run of whole sentences of one paragraph, the way the answerer reads retrieved
passages. Every example is deterministic given the seed and the epoch:

- `answer`: the sentences holding a gold answer, widened by 0–2 neighbours on each side;
- `impossible`: a SQuAD 2.0 unanswerable question with a window of its paragraph (the sentence
  sharing most words with the question, widened the same way);
- `elsewhere`: an answerable question with the window of another paragraph of its article that
  shares most words with it and does not contain the answer text (what retrieval hands the
  reader when it misses);
- `beside`: an answerable question with a window of its own paragraph without the answer;
- `swapped` (training only, `swapped` > 0): an answerable question with a name, year or number
  its answer window states swapped for another of its article (`rag.reader.swaps`), over that
  window.

Validation articles are split off by title (never by question). The labels point at token
positions; the `[CLS]` token (position 0) is the label of "no answer".
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.ingest.sentences import split_sentences
from rag.reader import swaps

KINDS = ("answer", "impossible", "elsewhere", "beside", "swapped")
_WORD = re.compile(r"\w+")
_STOPWORDS = (
    "a an the of in on at to for by with from and or is was were are be been what which who "
    "whom whose when where why how did does do that this these those it its as his her their"
)
_STOP = frozenset(_STOPWORDS.split())


@dataclass(frozen=True, slots=True)
class Paragraph:
    context: str
    sentences: tuple[tuple[int, int], ...]  # (start, end) character spans


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    paragraph: int  # index into Article.paragraphs
    answers: tuple[tuple[int, str], ...]  # (answer_start, text); empty when unanswerable


@dataclass(frozen=True, slots=True)
class Article:
    title: str
    paragraphs: tuple[Paragraph, ...]
    questions: tuple[Question, ...]


@dataclass(frozen=True, slots=True)
class Example:
    """One reader input: a question, a window of text, and the answer's character span in it."""

    question: str
    context: str
    answer: tuple[int, int] | None  # (start, end) in `context`; None = no answer
    kind: str
    answers: tuple[str, ...] = ()  # every gold text (validation scoring)


def load_articles(path: str | Path) -> list[Article]:
    """SQuAD-format JSON (optionally gzipped) → articles with sentence-split paragraphs."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as fh:
        data = json.load(fh)["data"]
    articles = []
    for art in data:
        paragraphs, questions = [], []
        for pi, para in enumerate(art["paragraphs"]):
            ctx = para["context"]
            spans = tuple((s.start, s.end) for s in split_sentences(ctx))
            paragraphs.append(Paragraph(ctx, spans))
            for qa in para["qas"]:
                answers = () if qa.get("is_impossible") else tuple(
                    (a["answer_start"], a["text"]) for a in qa["answers"]
                )
                questions.append(Question(qa["question"].strip(), pi, answers))
        articles.append(Article(art["title"], tuple(paragraphs), tuple(questions)))
    return articles


def split_by_title(
    articles: Sequence[Article], n_val: int
) -> tuple[list[Article], list[Article]]:
    """(train, validation): the validation articles are the n_val whose title hashes lowest."""
    order = sorted(articles, key=lambda a: hashlib.sha256(a.title.encode()).hexdigest())
    val = {a.title for a in order[:n_val]}
    return [a for a in articles if a.title not in val], [a for a in articles if a.title in val]


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def _widen(
    para: Paragraph, first: int, last: int, rng: random.Random | None, budget: int
) -> tuple[int, int]:
    """Sentence range [first, last] widened by 0–2 neighbours a side (1 a side without rng),
    within a character budget."""
    before = rng.randint(0, 2) if rng else 1
    after = rng.randint(0, 2) if rng else 1
    lo, hi = first, last
    for _ in range(before):
        if lo > 0 and para.sentences[last][1] - para.sentences[lo - 1][0] <= budget:
            lo -= 1
    for _ in range(after):
        nxt = hi + 1
        if nxt < len(para.sentences) and para.sentences[nxt][1] - para.sentences[lo][0] <= budget:
            hi = nxt
    return lo, hi


def _window(para: Paragraph, lo: int, hi: int) -> tuple[int, str]:
    start, end = para.sentences[lo][0], para.sentences[hi][1]
    return start, para.context[start:end]


def _overlap(qwords: set[str], para: Paragraph, k: int) -> int:
    s, e = para.sentences[k]
    return len(qwords & _words(para.context[s:e]))


def _best_sentence(para: Paragraph, qwords: set[str]) -> int:
    scores = [len(qwords & _words(para.context[s:e])) for s, e in para.sentences]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def _answer_example(q: Question, para: Paragraph, rng, budget: int) -> Example | None:
    start, text = q.answers[0]
    end = start + len(text)
    hits = [i for i, (s, e) in enumerate(para.sentences) if s < end and e > start]
    if not hits:
        return None
    lo, hi = _widen(para, hits[0], hits[-1], rng, budget)
    offset, window = _window(para, lo, hi)
    if not (offset <= start and end <= offset + len(window)):
        return None
    golds = tuple(dict.fromkeys(t for _, t in q.answers))
    return Example(q.text, window, (start - offset, end - offset), "answer", golds)


def _without_answer(para: Paragraph, lo: int, hi: int, golds: Iterable[str]) -> bool:
    window = para.context[para.sentences[lo][0] : para.sentences[hi][1]].lower()
    return not any(g.lower() in window for g in golds)


def _elsewhere(art: Article, q: Question, qwords: set[str], golds: tuple[str, ...],
               rng: random.Random | None, budget: int) -> list[Example]:
    """The `elsewhere` window of an answerable question: the best-matching sentence (widened)
    of the other paragraph of its article sharing most words with it, without the answer."""
    cands = [
        (len(qwords & _words(p.context)), -i, i)
        for i, p in enumerate(art.paragraphs)
        if i != q.paragraph and p.sentences
        and not any(g.lower() in p.context.lower() for g in golds)
    ]
    if not cands:
        return []
    other = art.paragraphs[max(cands)[2]]
    first = _best_sentence(other, qwords)
    lo, hi = _widen(other, first, first, rng, budget)
    return [Example(q.text, _window(other, lo, hi)[1], None, "elsewhere", golds)]


def article_examples(
    art: Article,
    rng: random.Random | None,
    budget: int = 700,
    elsewhere: float = 0.4,
    beside: float = 0.2,
    impossible: int = 1,
    swapped: float = 0.0,
) -> list[Example]:
    """The examples of one article. rng=None gives the fixed validation windows (one neighbour a
    side, every negative kind for every question). `impossible` > 1 (training only) adds, for
    each unanswerable question, its paragraph's next best sentences alone, as the answerer
    reads them; `swapped` (training only) is the share of answerable questions that also come
    rewritten as unanswerable over their answer's window."""
    out: list[Example] = []
    entities = (swaps.article_entities(p.context for p in art.paragraphs)
                if rng is not None and swapped > 0 else None)
    for q in art.questions:
        para = art.paragraphs[q.paragraph]
        if not para.sentences:
            continue
        qwords = _words(q.text)
        if not q.answers:
            first = _best_sentence(para, qwords)
            lo, hi = _widen(para, first, first, rng, budget)
            out.append(Example(q.text, _window(para, lo, hi)[1], None, "impossible"))
            if rng is not None and impossible > 1:
                ranked = sorted(range(len(para.sentences)),
                                key=lambda k: (-_overlap(qwords, para, k), k))
                for k in ranked[1:impossible]:
                    out.append(Example(q.text, _window(para, k, k)[1], None, "impossible"))
            continue
        ex = _answer_example(q, para, rng, budget)
        if ex is None:
            continue
        out.append(ex)
        golds = ex.answers
        if entities is not None and rng is not None and rng.random() < swapped:
            other_q = swaps.swap_question(q.text, ex.context, entities, rng)
            if other_q is not None:
                out.append(Example(other_q, ex.context, None, "swapped"))
        if len(art.paragraphs) > 1 and (rng is None or rng.random() < elsewhere):
            out += _elsewhere(art, q, qwords, golds, rng, budget)
        if len(para.sentences) > 2 and (rng is None or rng.random() < beside):
            start = q.answers[0][0]
            keep = [i for i, (s, e) in enumerate(para.sentences) if e <= start or s > start]
            keep = [i for i in keep if _without_answer(para, i, i, golds)]
            if keep:
                i = max(keep, key=lambda k: (_overlap(qwords, para, k), -k))
                out.append(Example(q.text, _window(para, i, i)[1], None, "beside", golds))
    return out


def make_examples(
    articles: Sequence[Article], seed: int | None, **kw
) -> list[Example]:
    """All examples, in a shuffled order fixed by the seed (None: validation, unshuffled)."""
    rng = random.Random(seed) if seed is not None else None
    out = [ex for art in articles for ex in article_examples(art, rng, **kw)]
    if rng is not None:
        rng.shuffle(out)
    return out


@dataclass(frozen=True, slots=True)
class Features:
    """Token features of a list of examples, unpadded (one array per example)."""

    input_ids: list[np.ndarray]
    type_ids: list[np.ndarray]
    context_mask: list[np.ndarray]  # True where a token may start or end an answer (+ [CLS])
    offsets: list[np.ndarray]  # (n, 2) character offsets into the context (question: -1)
    start: np.ndarray  # label token index (0 = no answer)
    end: np.ndarray


def encode_pair(tokenizer, question: str, context: str, max_len: int):
    """(ids, type_ids, context_mask, offsets) for `[CLS] q [SEP] context [SEP]`, the context cut
    at max_len tokens. offsets are context character offsets, (-1, -1) outside the context."""
    enc = tokenizer.encode(question, context)
    ids = np.asarray(enc.ids, dtype=np.int64)
    seq = np.asarray([-1 if s is None else s for s in enc.sequence_ids], dtype=np.int64)
    special = np.asarray(enc.special_tokens_mask, dtype=bool)
    offs = np.asarray(enc.offsets, dtype=np.int64)
    in_ctx = (seq == 1) & ~special
    offs[~in_ctx] = -1
    if len(ids) > max_len:  # cut the context's tail; keep the final [SEP]
        ids = np.concatenate([ids[: max_len - 1], ids[-1:]])
        seq = np.concatenate([seq[: max_len - 1], seq[-1:]])
        in_ctx = np.concatenate([in_ctx[: max_len - 1], [False]])
        offs = np.concatenate([offs[: max_len - 1], [[-1, -1]]])
    types = (seq == 1).astype(np.int64)
    mask = in_ctx.copy()
    mask[0] = True
    return ids, types, mask, offs


def featurize(examples: Sequence[Example], tokenizer, max_len: int) -> Features:
    """Token features and span labels; an answer cut off by max_len becomes "no answer"."""
    ids_l, types_l, mask_l, offs_l, starts, ends = [], [], [], [], [], []
    for ex in examples:
        ids, types, mask, offs = encode_pair(tokenizer, ex.question, ex.context, max_len)
        s_tok = e_tok = 0
        if ex.answer is not None:
            a, b = ex.answer
            inside = np.nonzero((offs[:, 0] >= 0) & (offs[:, 1] > a) & (offs[:, 0] < b))[0]
            if len(inside) and offs[inside[-1], 1] >= b:
                s_tok, e_tok = int(inside[0]), int(inside[-1])
        ids_l.append(ids)
        types_l.append(types)
        mask_l.append(mask)
        offs_l.append(offs)
        starts.append(s_tok)
        ends.append(e_tok)
    return Features(ids_l, types_l, mask_l, offs_l, np.asarray(starts), np.asarray(ends))


def load_tokenizer(model_path: str):
    """The base model's fast tokenizer, without its own truncation or padding."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok
