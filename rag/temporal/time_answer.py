"""Answers in time: from the newest article when a question asks about the present, older claims
marked earlier, stale dates for the future refused, relative days resolved in every citation.

    answer_in_time(asked: InScope, answer) → AnswerDraft                          (extractive)
    with_days(snap, draft) → AnswerDraft                                          (any answerer)

Invariants:
- Quotes are never edited: `document.text[c.start:c.end] == c.quote` for every citation and
  the short answer stays the slice of its citation it was; a resolved day
  (`Citation.resolved_dates`) is a span of the document inside its citation, with the day it
  names counted from its story's first publication (`rag.retrieve.date_table.DateTable.anchor`).
  Only
  an extractive answer's text (its quotes joined with their markers) is rewritten: "As of
  <date>:" before it, " (2024-02-08)" after a relative day, "Earlier (<date>):" before an
  earlier claim. Other answer texts (an LLM's) are left as written.
- Nothing usable (every article published after as_of, or none in the period) → an abstention
  that says so.
- Prefer newest (`scope.intent.prefer_newest`): when the sentences scoring within
  `NEWEST_MARGIN` of the best (`rag.answer.answering.score_sentences`) and holding at least
  `CLAIM_LEXICAL` of the best coverage of the question's terms come from articles published on
  two or more different known days, the answer is first sought among the passages published on
  or after the newest of those days (and undated ones); if that abstains, among all of them.
- Earlier claims: a cited sentence of an older article of another story that does not contain
  the short answer is marked `earlier`; when none is cited, the best such sentence within
  `EARLIER_MARGIN` of the best sentence (and `CLAIM_LEXICAL` of its coverage) is added.
  Earlier citations come last (renumbered, the short answer's `n` follows its citation). No two
  citations quote the same words.
- "As of <date>" (the lead article's publication day) when an earlier claim is cited or the
  question itself says now, current, latest, …
- A question about when something will happen whose answer's sentence names only days before
  as_of is stale: abstain, naming the day the articles give.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from rag.answer.answering import (
    ABSTAIN_TEXT,
    ScoredSentence,
    answer_type,
    cite_one,
    score_sentences,
    sentence_key,
)
from rag.models import AnswerDraft, Citation, Passage, ResolvedDate, ShortAnswer
from rag.retrieve.date_table import dates_of, iso_span
from rag.temporal.relative_dates import resolve_relative
from rag.temporal.time_query import time_mentions

if TYPE_CHECKING:
    import datetime as dt

    from rag.retrieve.date_table import DateTable
    from rag.retrieve.retrieval import Snapshot
    from rag.temporal.time_scope import InScope, TimeScope

NEWEST_MARGIN = 0.15  # sentences this close to the best one compete on their article's date
EARLIER_MARGIN = 0.25  # an older claim this close to the best sentence is cited as earlier
CLAIM_LEXICAL = 0.6  # either holds this share of the best sentence's coverage of the question
_SPACES = re.compile(r"\s+")
_NON_ALNUM = re.compile(r"[\W_]+")

Answerer = Callable[[list[Passage]], AnswerDraft]


def refusal(reason: str) -> str:
    """The abstention's text when nothing in the scope may be used."""
    return f"{ABSTAIN_TEXT.rstrip('.')}: {reason}."


def answer_in_time(asked: InScope, answer: Answerer) -> AnswerDraft:
    """The extractive answer from the passages (`answer` writes it) shaped by the scope."""
    snap, scope, question, qvec = asked.snap, asked.scope, asked.question, asked.qvec
    passages = asked.usable()
    if isinstance(passages, str):
        return AnswerDraft(refusal(passages), [], abstained=True)
    if not scope.intent.prefer_newest:
        return with_days(snap, answer(passages))
    table = dates_of(snap)
    scored = score_sentences(snap, question, qvec, passages)
    newer = _newest_passages(table, scored, passages)
    draft = answer(newer) if newer is not None else None
    if draft is None or draft.abstained:
        draft = answer(passages)
    if scope.intent.future and not draft.abstained and answer_type(question).kind == "date":
        stale = _stale(table, draft, scope)
        if stale is not None:
            return AnswerDraft(stale, [], abstained=True, confidence=draft.confidence)
    plain = _is_plain(draft)
    draft = _earlier(snap, table, draft, scored)
    as_of = scope.intent.reason == "explicit" or any(c.earlier for c in draft.citations)
    return with_days(snap, draft, as_of=as_of, plain=plain)


def _newest_passages(
    table: DateTable, scored: list[ScoredSentence], passages: list[Passage]
) -> list[Passage] | None:
    """The passages published on or after the newest day among the best sentences' articles
    (and undated ones); None when the best sentences do not span two known days."""
    newest = newest_day(table, scored)
    if newest is None:
        return None
    kept = [p for p in passages if (d := table.published.get(p.doc_id)) is None or d >= newest]
    return kept if len(kept) < len(passages) else None


def newest_day(table: DateTable, scored: list[ScoredSentence]) -> dt.date | None:
    """The newest publication day of the articles of the best sentences (those within
    `NEWEST_MARGIN` of the best, holding `CLAIM_LEXICAL` of its coverage of the question's
    terms), when they span two or more known days; else None."""
    if not scored:
        return None
    floor, terms = scored[0].score - NEWEST_MARGIN, _claim_lexical(scored)
    near = [s for s in scored if s.score >= floor and s.lexical >= terms]
    days = {d for s in near if (d := table.published.get(s.doc_id)) is not None}
    return max(days) if len(days) >= 2 else None


def _earlier(
    snap: Snapshot, table: DateTable, draft: AnswerDraft, scored: list[ScoredSentence]
) -> AnswerDraft:
    """The draft with older claims marked earlier (one added when none is cited)."""
    if draft.abstained or not draft.citations:
        return draft
    lead = draft.citations[0]
    lead_day = table.published.get(lead.doc_id)
    if lead_day is None:
        return draft
    story = snap.canonical_of(lead.doc_id)
    short = _norm(draft.short_answer.text) if draft.short_answer is not None else ""

    def older_claim(doc_id: str, text: str) -> bool:
        day = table.published.get(doc_id)
        return (
            day is not None
            and day < lead_day
            and snap.canonical_of(doc_id) != story
            and not (short and short in _norm(text))
        )

    cites = [
        c.model_copy(update={"earlier": True}) if older_claim(c.doc_id, c.quote) else c
        for c in draft.citations
    ]
    if not any(c.earlier for c in cites) and scored:
        floor, terms = scored[0].score - EARLIER_MARGIN, _claim_lexical(scored)
        quoted = {_SPACES.sub(" ", c.quote).strip().casefold() for c in cites}
        for s in scored:
            if s.score < floor:
                break
            if s.lexical < terms:
                continue
            text = snap.docs[s.doc_id].text[s.start : s.end]
            if older_claim(s.doc_id, text) and sentence_key(snap, s) not in quoted:
                cites.append(cite_one(snap, len(cites) + 1, s, earlier=True))
                break
    return replace_draft(draft, citations=cites)


def _claim_lexical(scored: list[ScoredSentence]) -> float:
    """How much of the question's terms a sentence must hold to be a claim about it."""
    return CLAIM_LEXICAL * max(s.lexical for s in scored)


def _stale(table: DateTable, draft: AnswerDraft, scope: TimeScope) -> str | None:
    """Why a "when will …" answer is out of date, or None when it is not (or cannot tell)."""
    lead = draft.citations[0]
    anchor = table.anchor.get(lead.doc_id)
    spans = [(m.until, lead.quote[m.start : m.end]) for m in time_mentions(lead.quote, anchor)]
    for start, end, iso in resolve_relative(lead.quote, anchor):
        days = iso_span(iso)
        if days is not None:
            spans.append((days[1], lead.quote[start:end]))
    if not spans or any(until >= scope.as_of for until, _ in spans):
        return None
    until, text = max(spans)
    return (
        f"{ABSTAIN_TEXT.rstrip('.')}: the latest day the articles give, {text} ({until}), "
        f"is before {scope.as_of}."
    )


# ---------------------------------------------------------------------------- days and text


def with_days(
    snap: Snapshot, draft: AnswerDraft, *, as_of: bool = False, plain: bool | None = None
) -> AnswerDraft:
    """The draft with each citation's relative days resolved, and an extractive answer's
    earlier citations last and its text written from its quotes (`plain`: whether its text is
    its quotes joined with their markers, as `rag.answer.answering.cite` writes it; default:
    checked here)."""
    if not draft.citations:
        return draft
    table = dates_of(snap)
    plain = _is_plain(draft) if plain is None else plain
    cites = draft.citations
    if plain:  # an extractive text is rewritten from them: earlier claims go last
        cites = [c for c in cites if not c.earlier] + [c for c in cites if c.earlier]
    renumber = {c.n: n for n, c in enumerate(cites, start=1)}
    cites = [
        c.model_copy(update={"n": renumber[c.n], "resolved_dates": _resolved(table, c)})
        for c in cites
    ]
    short = draft.short_answer
    if short is not None:
        short = short.model_copy(update={"n": renumber.get(short.n, short.n)})
        short = short.model_copy(update={"resolved_date": _short_day(cites, short)})
    text = draft.answer
    if plain:
        lead_day = table.published.get(cites[0].doc_id) if as_of else None
        text = (f"As of {lead_day}: " if lead_day else "") + _text(cites, table)
    return replace_draft(draft, citations=cites, short_answer=short, answer=text)


def _is_plain(draft: AnswerDraft) -> bool:
    return draft.answer == _text(draft.citations)


def _short_day(cites: list[Citation], short: ShortAnswer) -> str | None:
    """The day a short answer names when it is (or holds) a resolved relative day."""
    for c in cites:
        if c.n == short.n:
            for r in c.resolved_dates:
                if r.start < short.end and short.start < r.end:
                    return r.date
    return None


def _resolved(table: DateTable, c: Citation) -> list[ResolvedDate]:
    anchor = table.anchor.get(c.doc_id)
    return [
        ResolvedDate(start=c.start + a, end=c.start + b, text=c.quote[a:b], date=iso)
        for a, b, iso in resolve_relative(c.quote, anchor)
    ]


def _text(cites: list[Citation], table: DateTable | None = None) -> str:
    """The extractive answer's text: each quote (whitespace folded) and its marker; with the
    date `table`, relative days resolved and earlier claims dated."""
    parts = []
    for c in cites:
        quote, earlier = c.quote, ""
        if table is not None:
            quote = _render(c)
            day = table.published.get(c.doc_id)
            earlier = (f"Earlier ({day}): " if day else "Earlier: ") if c.earlier else ""
        parts.append(f"{earlier}{_SPACES.sub(' ', quote)} [{c.n}]")
    return " ".join(parts)


def _render(c: Citation) -> str:
    """The quote with each resolved relative day followed by its date in brackets."""
    out, at = [], 0
    for r in c.resolved_dates:
        end = r.end - c.start
        if c.quote[end : end + 2] in ("'s", "’s"):  # "Sunday's (2024-01-28) election"
            end += 2
        out += [c.quote[at:end], f" ({_human(r.date)})"]
        at = end
    return "".join(out) + c.quote[at:]


def _human(iso: str) -> str:
    if "W" in iso:
        days = iso_span(iso)
        return f"the week of {days[0]}" if days else iso
    return iso


def _norm(text: str) -> str:
    return f" {_NON_ALNUM.sub(' ', text.casefold()).strip()} "


def replace_draft(draft: AnswerDraft, **changes: object) -> AnswerDraft:
    """A copy of `draft` with `changes`."""
    fields = {f: getattr(draft, f) for f in draft.__dataclass_fields__}
    return AnswerDraft(**{**fields, **changes})  # type: ignore[arg-type]
