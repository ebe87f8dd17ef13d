"""Short answers: the minimal phrase of a retrieved sentence that answers the question.

No model: the question's wh-word and head noun say what kind of phrase it asks for (a person or
organisation, a date, a number, a place, or any noun phrase); candidate phrases are cut from the
best sentences (capitalised name sequences, dates, numbers with units, noun-phrase runs between
function words) and scored by how well their kind fits, how close they sit to the question's
terms in the sentence (idf-weighted), and how good their sentence is. A phrase made only of the
question's own words never answers it.

The same step is evidence for abstaining: `missing_terms` lists the question's names and numbers
that no retrieved passage contains, and a typed question (who, when, how many, where) whose best
candidate of that type lies far from the question's terms has no short answer.

Invariant: every candidate is a span of its sentence's document text, so
`document.text[start:end] == text` for the short answer.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from rag.answer.phrases import DEMONYM, TOKEN, Candidate, Kind, candidates, tokens
from rag.answer.roles import asked_role
from rag.memory import register_lru
from rag.retrieve.lexical import STOPWORDS, _stem, words

# question analysis: the first rule that matches decides the kind
_KIND_RULES: tuple[tuple[re.Pattern[str], Kind], ...] = (
    (re.compile(r"\bhow (many|much|long|old|far|big|large|tall|high|often|few)\b", re.I), "number"),
    (re.compile(r"^\W*when\b|\bwhen (did|was|were|is|are|does|do|will|had|has|could|would)\b",
                re.I), "date"),
    (re.compile(r"^\W*where\b|\bwhere (did|was|were|is|are|does|do|will|had|has|could|would)\b",
                re.I), "place"),
    (re.compile(r"^\W*(?:\w+\s+){0,2}(who|whom|whose)\b", re.I), "person"),
)  # fmt: skip
# "what/which [is the] [name of the] HEAD": the head noun says the kind
_HEAD = re.compile(
    r"\b(?:what|which)\s+(?:(?:is|was|are|were)\s+)?(?:the\s+)?"
    r"(?:(?:name|names|kind|type|sort)\s+of\s+(?:the\s+|a\s+)?)?([a-z]+)",
    re.I,
)
_HEAD_WORDS: dict[Kind, str] = {
    "number": "number numbers percentage percent amount proportion size population total count "
    "cost price rate",
    "date": "year years date day month time decade century period era",
    "place": "city cities country countries town place region state states continent island "
    "river capital location area province nation county",
    "person": "person man woman king queen leader president minister company organization "
    "organisation team party university author emperor ruler duke",
}
_HEAD_KINDS: dict[str, Kind] = {w: k for k, ws in _HEAD_WORDS.items() for w in ws.split()}

# how well a candidate of one kind (columns) answers a question of another (rows)
_FIT: dict[Kind, dict[Kind, float]] = {
    "person": {"name": 1.0, "place": 0.6, "thing": 0.1, "number": 0.0, "date": 0.0},
    "place": {"name": 0.7, "place": 1.0, "thing": 0.2, "number": 0.0, "date": 0.0},
    "date": {"date": 1.0, "number": 0.3, "name": 0.0, "thing": 0.0, "place": 0.0},
    "number": {"number": 1.0, "date": 0.4, "name": 0.0, "thing": 0.0, "place": 0.0},
    "thing": {"thing": 0.8, "name": 0.8, "place": 0.6, "number": 0.4, "date": 0.4},
}
TYPED = frozenset({"person", "date", "number", "place"})
FIT_WEIGHT = 1.0
NEAR_WEIGHT = 1.2
SENTENCE_WEIGHT = 1.0
LENGTH_PENALTY = 0.04  # per token beyond three
NEAR_DECAY = 0.5  # a question term d tokens away counts 1 / (1 + NEAR_DECAY * d)
MIN_TYPED_NEAR = 0.1  # a how-many / when answer this far from the question's terms is none


@dataclass(frozen=True, slots=True)
class QuestionInfo:
    """What a question asks for and which of its words are evidence."""

    kind: Kind
    stems: frozenset[str]  # stemmed content words
    words: frozenset[str]  # lowercased words, stopwords kept
    key_terms: tuple[str, ...]  # names and numbers the question states, as written
    wants_year: bool = False  # "what year", "which month and year": a date needs a year
    # The first four letters of each stem that has four or more: a word can extend a stem (or
    # be extended by one, `_question_term`) only if it starts with one of these.
    heads: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        heads = frozenset(q[:4] for q in self.stems if len(q) >= 4)
        object.__setattr__(self, "heads", heads)


def question_kind(question: str) -> Kind:
    for pattern, kind in _KIND_RULES:
        if pattern.search(question):
            return kind
    head = _HEAD.search(question)
    return _HEAD_KINDS.get(head.group(1).lower(), "thing") if head else "thing"


_POSSESSIVE = re.compile(r"['’]s?$")
_WANTS_YEAR = re.compile(r"\b(year|decade|century)\b", re.I)
_YEAR = re.compile(r"\b(1[0-9]|20)\d\d|\d(st|nd|rd|th)|century")

# words that say what kind of answer is wanted, not where it is: no evidence of nearness
_TYPE_WORDS = frozenset(
    "year date day week month time decade century many much number percentage amount city "  # noqa: SIM905
    "country place name kind type sort".split()
)


def analyse(question: str) -> QuestionInfo:
    lowered = words(question)
    stems = frozenset(_stem(w) for w in lowered if w not in STOPWORDS and w not in _TYPE_WORDS)
    kind = question_kind(question)
    wants_year = kind == "date" and bool(_WANTS_YEAR.search(question))
    terms = key_terms(question)
    role = asked_role(question) if kind == "person" else None
    if role is not None:
        terms = (*terms, role)
    return QuestionInfo(kind, stems, frozenset(lowered), terms, wants_year)


def key_terms(question: str) -> tuple[str, ...]:
    """The names and numbers a question states: capitalised words past the first, and digits."""
    out = []
    for i, m in enumerate(TOKEN.finditer(question)):
        tok = m.group(0)
        low = tok.lower()
        if low in STOPWORDS or len(tok) < 2:
            continue
        if tok[0].isdigit() or (i > 0 and tok[0].isupper() and not DEMONYM.search(tok)):
            out.append(_POSSESSIVE.sub("", tok))
    return tuple(dict.fromkeys(out))


def _term_present(term: str, stems: set[str], text_lower: str, text: str) -> bool:
    if term.isupper() and term.isalpha() and len(term) <= 5:  # "UN" for "United Nations"
        initials = r"\s+".join(rf"{c}\w*" for c in term)
        if re.search(rf"\b{initials}\b", text) or term.lower() in stems:
            return True
    if term[0].isdigit():
        return re.search(rf"(?<![\d,.]){re.escape(term)}(?![\d])", text_lower) is not None
    return all(_word_present(w, stems) for w in words(term) if w not in STOPWORDS)


def _word_present(word: str, stems: set[str]) -> bool:
    stem = _stem(word)
    if stem in stems:
        return True
    # "Iranian" / "Iran", "Norse" / "Norsemen": a shared start of five letters counts
    prefix = stem[:5]
    if len(prefix) == 5 and any(s.startswith(prefix) for s in stems):
        return True
    return any(len(s) >= 4 and stem.startswith(s) for s in stems)  # "israel" / "isra(eli)"


def missing_terms(info: QuestionInfo, texts: Sequence[str]) -> list[str]:
    """The question's names and numbers that none of `texts` contains."""
    if not info.key_terms:
        return []
    text = "\n".join(texts)
    lowered = text.lower()
    stems = set().union(*map(_text_stems, texts))  # a word never spans the joining newline
    return [t for t in info.key_terms if not _term_present(t, stems, lowered, text)]


STEMS_CACHE = 2048  # passages whose word stems are kept (LRU, ≈ 4 KB each: ≈ 8 MiB at the bound)


@register_lru("short_answer.stems")
@lru_cache(maxsize=STEMS_CACHE)
def _text_stems(text: str) -> frozenset[str]:
    """The stems of every word of `text`, stopwords included (a passage recurs across questions:
    stemming it again was ≈ 12 % of an extractive answer's Python time)."""
    return frozenset(map(_stem, set(words(text))))


LAYOUT_CACHE = 8192  # sentences whose layout is kept (LRU, ≈ 1 KB each: ≈ 8 MiB at the bound)
_KIND_CODES: tuple[Kind, ...] = ("name", "place", "date", "number", "thing")


@register_lru("short_answer.layout")
@lru_cache(maxsize=LAYOUT_CACHE)
def _packed(text: str) -> array:
    """A sentence's tokens and candidate phrases as one flat int array (one object per cached
    sentence, not hundreds: small, and it leaves no holes in the heap when evicted):
    `[n_tokens, n_candidates, starts…, ends…, content flags…, (start, end, kind)…]`."""
    toks = tokens(text)
    out = array("i", (len(toks), 0))
    out.extend(t[0] for t in toks)
    out.extend(t[1] for t in toks)
    out.extend(t[2][0].isalnum() and t[2].lower() not in STOPWORDS for t in toks)
    cands = candidates(text, 0, toks)
    out[1] = len(cands)
    for c in cands:
        out.extend((c.start, c.end, _KIND_CODES.index(c.kind)))
    return out


Span = tuple[int, int, Kind]  # a candidate phrase of a sentence: (start, end, kind)


def _layout(text: str) -> tuple[tuple[Span, ...], tuple[int, ...], tuple[int, ...],
                                tuple[str, ...], tuple[bool, ...]]:  # fmt: skip
    """A sentence's candidate spans, token starts and ends, lowercased tokens and content-word
    flags (offsets within `text`), unpacked from the cached `_packed` form."""
    packed = _packed(text)
    n, m = packed[0], packed[1]
    starts, ends = tuple(packed[2 : 2 + n]), tuple(packed[2 + n : 2 + 2 * n])
    content = tuple(map(bool, packed[2 + 2 * n : 2 + 3 * n]))
    lows = tuple(text[s:e].lower() for s, e in zip(starts, ends, strict=True))
    base = 2 + 3 * n
    kinds = map(_KIND_CODES.__getitem__, packed[base + 2 : base + 3 * m : 3])
    cands = tuple(
        zip(
            packed[base : base + 3 * m : 3], packed[base + 1 : base + 3 * m : 3], kinds, strict=True
        )
    )
    return cands, starts, ends, lows, content


@dataclass(slots=True)
class _Sentence:
    """One sentence's candidates and tokens (offsets within the sentence) and which tokens are
    the question's words."""

    candidates: tuple[Span, ...]  # (start, end, kind) within the sentence
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    asked: list[bool]  # the token is one of the question's own words
    content: tuple[bool, ...]  # a content word (not a stopword, not punctuation)
    matches: list[tuple[int, str]]  # (token index, question stem) of the question's terms


def _sentence(text: str, info: QuestionInfo, memo: dict[str, str | None]) -> _Sentence:
    cands, starts, ends, lows, content = _layout(text)
    matches = []
    for k, w in enumerate(lows):
        if content[k]:
            if w not in memo:
                memo[w] = _question_term(_stem(w.replace("’", "'")), info)
            if memo[w] is not None:
                matches.append((k, memo[w]))
    asked = []
    for w in lows:
        key = "\0" + w  # the memo also holds "is this word the question's own?"
        if key not in memo:
            memo[key] = w if _in_question(w, info) else None
        asked.append(memo[key] is not None)
    return _Sentence(cands, starts, ends, asked, content, matches)  # type: ignore[arg-type]


def _trim(c: Span, sent: _Sentence, text: str) -> tuple[Candidate, int, int] | None:
    """The candidate span without the question's own words (or function words) at its edges, and its
    token range; None if nothing new is left or it does not start and end on word boundaries."""
    start, end, kind = c
    lo, hi = bisect_left(sent.starts, start), bisect_left(sent.ends, end)
    n = len(sent.ends)
    if lo >= n or hi >= n or sent.starts[lo] != start or sent.ends[hi] != end:
        return None  # e.g. "19" inside "COVID-19"
    new = [k for k in range(lo, hi + 1) if not sent.asked[k]]
    if not any(sent.content[k] for k in new):
        return None
    lo, hi = new[0], new[-1]
    while lo < hi and not sent.content[lo]:
        lo += 1
    while hi > lo and not sent.content[hi]:
        hi -= 1
    s, e = sent.starts[lo], sent.ends[hi]
    return Candidate(s, e, text[s:e], kind), lo, hi


def _in_question(word: str, info: QuestionInfo) -> bool:
    # an alphanumeric token is one word of its own (`\w` is exactly alphanumeric or "_"),
    # so the regex of `words` is needed only for tokens with apostrophes or symbols
    parts = [word] if word.isalnum() else words(word)
    return bool(parts) and all(p in info.words or _stem(p) in info.stems for p in parts)


def _question_term(stem: str, info: QuestionInfo) -> str | None:
    """The question stem a sentence word stands for: equal, or one extends the other ("chair" /
    "chairman", "israel" / "isra(eli)") when the shorter has at least four letters (so both
    start with the same four: most words are ruled out by `info.heads` alone)."""
    if stem in info.stems:
        return stem
    if stem[:4] not in info.heads:
        return None
    n = len(stem)
    for q in info.stems:
        if len(q) <= n:
            if len(q) >= 4 and stem.startswith(q):
                return q
        elif n >= 4 and q.startswith(stem):
            return q
    return None


def _nearness(
    lo: int, hi: int, matches: list[tuple[int, str]], weights: dict[str, float], total: float
) -> float:
    """idf-weighted (`weights`: each question stem's idf) closeness of the question's terms to
    tokens lo..hi (0..1)."""
    best: dict[str, float] = {}
    for k, q in matches:
        if lo <= k <= hi:
            continue
        near = 1.0 / (1.0 + NEAR_DECAY * (lo - k if k < lo else k - hi))
        if near > best.get(q, 0.0):
            best[q] = near
    return sum(weights[q] * w for q, w in best.items()) / total if total else 0.0


@dataclass(frozen=True, slots=True)
class Reading:
    """The best phrase, the index of its sentence, and how near the question's terms the
    nearest phrase of the asked type lies (0 when there is none)."""

    sentence: int
    candidate: Candidate
    typed_near: float


def best_candidate(
    sentences: Sequence[tuple[int, str, float]],
    info: QuestionInfo,
    idf: Callable[[str], float],
) -> Reading | None:
    """The best short answer among `(start, text, score)` sentences, best sentence first."""
    if not sentences:
        return None
    top = sentences[0][2]
    best: tuple[int, Candidate] | None = None
    typed_near = 0.0
    fit = _FIT[info.kind]
    weights = {q: idf(q) for q in info.stems}
    total = sum(weights.values())
    memo: dict[str, str | None] = {}
    for idx, (start, text, sent_score) in enumerate(sentences):
        sent = _sentence(text, info, memo)
        for raw in sent.candidates:
            trimmed = _trim(raw, sent, text)
            if trimmed is None:
                continue
            c, lo, hi = trimmed
            near = _nearness(lo, hi, sent.matches, weights, total)
            kind_fit = fit.get(c.kind, 0.0)
            if info.wants_year and c.kind == "date" and not _YEAR.search(c.text):
                kind_fit = 0.2  # "what year" is not answered by "Friday"
            if c.kind in ("name", "place") and " " not in c.text and DEMONYM.search(c.text):
                kind_fit = fit["thing"]  # "Azeri", "Iranian": an adjective, not who or where
            if kind_fit >= 0.6:
                typed_near = max(typed_near, near)
            n_tokens = hi - lo + 1
            score = (
                FIT_WEIGHT * kind_fit
                + NEAR_WEIGHT * near
                - SENTENCE_WEIGHT * (top - sent_score)
                - LENGTH_PENALTY * max(0, n_tokens - 3)
            )
            if best is None or score > best[1].score:
                kind = c.kind if kind_fit >= 0.6 else "thing"
                found = Candidate(
                    start + c.start, start + c.end, c.text, kind, round(score, 4), near
                )
                best = (idx, found)
    return None if best is None else Reading(best[0], best[1], typed_near)


def answers_type(info: QuestionInfo, reading: Reading | None) -> bool:
    """Whether a typed question has a phrase of its type (for how many / when questions, near
    the question's terms: a number or date elsewhere in the sentence answers nothing)."""
    if info.kind not in TYPED:
        return True
    if reading is None:
        return False
    if info.kind in ("number", "date"):
        return reading.typed_near >= MIN_TYPED_NEAR
    return reading.typed_near > 0 or _FIT[info.kind].get(reading.candidate.kind, 0.0) >= 0.6
