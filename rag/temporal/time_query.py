"""Time in a question: the period it asks about and whether it wants the newest news.

    time_intent(question, as_of) → TimeIntent(period, prefer_newest, reason, future)
    time_mentions(text, anchor) → [Mention(start, end, since, until), …]   (article text)

Invariants:
- Pure and fast: precompiled regexes (`rag.temporal.time_vocab`), no I/O, no state; a question costs
  tens of microseconds.
- Every bound is a `datetime.date` and both ends of a period are inclusive; an open end is None.
  Relative words count from `as_of` (the day the question is asked): "last week" is the ISO
  week (Monday–Sunday) before as_of's, "last month" and "last year" the calendar month and year
  before its own, "in February" / "since June" the most recent such month that began on or
  before as_of, "on March 3" the most recent March 3 on or before it, "the past 3 weeks"
  `[as_of − 21 days, as_of]`.
- What makes a period: a year, a month (with or without its year), a day, or a relative span,
  after `in`/`during`/`throughout`/`on`/`from` (that span), `since` (from its start), `after`
  (from the day after its end), `before`/`prior to` (to the day before its start), `until`/
  `till`/`through`/`by`/`as of` (to its end), `between X and Y` / `from X to Y` (X's start to
  Y's end); "last week", "this month", "yesterday", "3 years ago" need no preposition. A bare
  year or month in a question ("the 2024 election", "may") never makes a period on its own,
  except inside an event after `before`/`after`/`since`: "before the 2024 election" is before
  2024 and "before the new government of March 2024" before March 2024 here; the event
  (`TimeIntent.event`: its words, noun and stated date) is dated from the articles by
  `rag.temporal.time_events` when they give it a day. Several periods intersect. Only the clause
  that asks
  counts: a statement before it ("… inaugurated in 2021; at which assembly …?") names none.
- `prefer_newest` is set by words about the present ("now", "current", "currently", "latest",
  "still", "today", "at present", "these days", "yet", "any more", "so far", "to date",
  "recent"), by a question about the future ("will", "next", "upcoming": `future`), by "as of
  <date>", and — when `present` is true and the question names no period — by a present-tense
  question ("Who is the …", "What are …", "Is the crossing open?", "Which … does … chair?").
  `reason` says which: "explicit", "future" or "present".
- In article text (`time_mentions`), bare years and "Month YEAR" count too, a month or a day
  without its year is placed at or before the article's date (`anchor`), and "since 2017" spans
  from 2017 to the anchor; relative days are `rag.temporal.relative_dates`' business.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from rag.ingest.article_dates import MONTHS
from rag.temporal.time_vocab import (
    AS_OF,
    CLAUSE_END,
    DATE_PARTS,
    EVENT,
    EVENT_STOP,
    EXPLICIT,
    FUTURE,
    MONTH_WORDS,
    PRESENT,
    PRESENT_VERBS,
    QUESTION,
    TEXT,
    WEEKDAYS,
    WORD,
    WORD_NUMBERS,
)

Reason = Literal["explicit", "future", "present"]


@dataclass(frozen=True, slots=True)
class Period:
    """Inclusive `[since, until]`; either end may be open (None)."""

    since: dt.date | None
    until: dt.date | None

    def overlaps(self, lo: dt.date, hi: dt.date) -> bool:
        return (self.since is None or hi >= self.since) and (self.until is None or lo <= self.until)

    def contains(self, day: dt.date) -> bool:
        return self.overlaps(day, day)

    def describe(self) -> str:
        """For people: "2023-08-01 to 2023-08-31", "since 2024-01-01", "until 2023-12-31"."""
        if self.since and self.until:
            return f"from {self.since} to {self.until}"
        return f"since {self.since}" if self.since else f"until {self.until}"


@dataclass(frozen=True, slots=True)
class Event:
    """An event the question times itself by: "before the 2024 parliamentary election"."""

    before: bool  # before (or prior to) it; else after or since it
    words: tuple[str, ...]  # its content words: ("parliamentary", "election")
    span: tuple[dt.date, dt.date] | None  # the date stated with it, if any ("of March 2024")
    head: str = ""  # its noun: the last word before "of", else the last ("election")

    def period(self, day: dt.date) -> Period:
        """The period before (to the day before) or after (from) the event on `day`."""
        return Period(None, day - dt.timedelta(days=1)) if self.before else Period(day, None)


@dataclass(frozen=True, slots=True)
class TimeIntent:
    period: Period | None
    prefer_newest: bool
    reason: Reason | None  # why newest is preferred
    future: bool  # the question asks about what will happen
    event: Event | None = None  # named after before/after/since: dated by
    # `rag.temporal.time_events`
    fixed: Period | None = None  # the period without the event's


@dataclass(frozen=True, slots=True)
class Mention:
    """A time stated in article text: `text[start:end]`, spanning `[since, until]`."""

    start: int
    end: int
    since: dt.date
    until: dt.date


NO_INTENT = TimeIntent(None, False, None, False)


def time_intent(question: str, as_of: dt.date, *, present: bool = True) -> TimeIntent:
    """The period `question` names and whether it prefers the newest articles (see above)."""
    periods, event = _question_periods(_asked(question), as_of)
    period = intersect(periods)
    fixed = intersect(periods[:-1]) if event is not None and event.span is not None else period
    explicit = EXPLICIT.search(question) is not None or AS_OF.search(question) is not None
    future = FUTURE.search(question) is not None
    reason: Reason | None = None
    if explicit:
        reason = "explicit"
    elif future:
        reason = "future"
    elif present and period is None and _present(question):
        reason = "present"
    return TimeIntent(period, reason is not None, reason, future, event, fixed)


def _present(question: str) -> bool:
    """A present-tense question: its first verb after the wh-word is in the present."""
    m = PRESENT.search(question)
    return m is not None and (m["verb"] or "is").lower() in PRESENT_VERBS


def time_mentions(text: str, anchor: dt.date | None) -> list[Mention]:
    """Years, months and days stated in `text` (an article dated `anchor`, None when its date
    is unknown: then only what states its year counts), in text order."""
    out = []
    for m in TEXT.finditer(text):
        if m["weekday"] or m["rel"] or m["ago"] or m["pn"]:
            continue  # relative days: resolved by rag.temporal.relative_dates
        if m["m3"] and not m["y3"] and not m["prep"] and not _month_context(text, m.start()):
            continue  # "may", "march": a verb unless something says it is a month
        has_year = m["iso"] or m["y1"] or m["y2"] or m["y3"] or m["year"]
        span = _span(m, anchor, "") if anchor is not None or has_year else None
        if span is None:
            continue
        lo, hi = span
        if m["prep"] and m["prep"].lower() == "since" and anchor is not None:
            hi = max(hi, anchor)
        out.append(Mention(m.start(), m.end(), lo, hi))
    return out


# ------------------------------------------------------------------------------ internals


def _asked(question: str) -> str:
    """The clause that asks: what follows the last `;` or sentence end ("The network was
    inaugurated in 2021; at which assembly …?" asks about no period)."""
    ends = [m.end() for m in CLAUSE_END.finditer(question.rstrip(" ?!"))]
    return question[ends[-1] :] if ends else question


Span = tuple[dt.date, dt.date]


def _question_periods(question: str, as_of: dt.date) -> tuple[list[Period], Event | None]:
    """The periods the question's expressions name (its event's, by the event's stated date,
    last), and the first event named after before/after/since."""
    periods: list[Period] = []
    taken: list[tuple[int, int]] = []
    event = None
    for e in EVENT.finditer(question):
        words = _event_words(e["words"])
        if not words:
            continue  # "before the end of 2023", "after 2020": a date, read below
        inner = (_event_span(m, as_of) for m in QUESTION.finditer(e["words"]))
        span = next(filter(None, inner), None)
        before = e["rel"].lower().startswith(("before", "prior"))
        head = (_event_words(e["words"].lower().split(" of ")[0]) or words)[-1]
        event = event or Event(before, words, span, head)
        taken.append((e.start(), e.end()))
    for m in QUESTION.finditer(question):
        if any(a < m.end() and m.start() < b for a, b in taken):
            continue
        prep = (m["prep"] or "").lower().split()[0] if m["prep"] else ""
        first = _span(m, as_of, "")
        if first is None or (not prep and not _standalone(m, "")):
            continue
        second = _span(m, as_of, "s_") if m["second"] else None
        if second is not None and prep in ("between", "from"):
            periods.append(Period(first[0], second[1]))
        else:
            periods.append(_with_prep(prep, first))
        taken.append((m.start(), m.end()))
    if event is not None and event.span is not None:
        periods.append(event.period(event.span[0]))
    return periods, event


def _event_words(words: str) -> tuple[str, ...]:
    """The content words naming an event ("2024 parliamentary election" → parliamentary,
    election), without dates; () when they name a date's part ("the end of 2023")."""
    text = QUESTION.sub(" ", words)
    found = tuple(w.lower() for w in WORD.findall(text) if w.lower() not in EVENT_STOP)
    return () if not found or found[0] in DATE_PARTS else found


def _event_span(m: re.Match[str], as_of: dt.date) -> Span | None:
    """When an event named after before/after/since took place: a year, or a date or month
    stated with its year or a preposition ("the new government of March 2024")."""
    if not (m["prep"] or m["iso"] or m["y1"] or m["y2"] or m["y3"] or m["year"]):
        return None
    return _span(m, as_of, "")


def _standalone(m: re.Match[str], p: str) -> bool:
    """Expressions that make a period without a preposition: relative spans."""
    return bool(m[p + "rel"] or m[p + "ago"] or m[p + "pn"] or m[p + "wmod"])


_DAY = dt.timedelta(days=1)


def _with_prep(prep: str, span: Span) -> Period:
    lo, hi = span
    if prep == "since":
        return Period(lo, None)
    if prep == "after":
        return Period(hi + _DAY, None)
    if prep in ("before", "prior"):
        return Period(None, lo - _DAY)
    if prep in ("until", "till", "through", "by", "as"):
        return Period(None, hi)
    return Period(lo, hi)


def intersect(periods: list[Period]) -> Period | None:
    if not periods:
        return None
    since = max((p.since for p in periods if p.since), default=None)
    until = min((p.until for p in periods if p.until), default=None)
    return Period(since, until)


def _month_context(text: str, at: int) -> bool:
    """A bare month name in text is a month after in/of/until/…, else perhaps a verb ("may")."""
    before = text[max(0, at - 12) : at].lower().split()
    return bool(before) and before[-1] in MONTH_WORDS


def _span(m: re.Match[str], anchor: dt.date, p: str) -> Span | None:
    """The days an expression names (group prefix `p`: "" or "s_"), None when it names none."""
    try:
        return _span_of(m, anchor, p)
    except (ValueError, OverflowError):  # Feb 30, year 0, …
        return None


def _span_of(m: re.Match[str], anchor: dt.date, p: str) -> Span | None:
    g = m.group
    if g(p + "iso"):
        day = dt.date.fromisoformat(g(p + "iso"))
        return day, day
    for d, mo, y in (("d1", "m1", "y1"), ("d2", "m2", "y2")):
        if g(p + d):
            month, day_n = MONTHS[g(p + mo).lower()], int(g(p + d))
            if g(p + y):
                day = dt.date(int(g(p + y)), month, day_n)
            else:
                day = _on_or_before(anchor, month, day_n)
            return day, day
    if g(p + "m3"):
        month = MONTHS[g(p + "m3").lower()]
        year = int(g(p + "y3")) if g(p + "y3") else _year_of_month(anchor, month)
        return _month(year, month)
    if g(p + "year"):
        year = int(g(p + "year"))
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    return _relative(m, anchor, p)


def _relative(m: re.Match[str], anchor: dt.date, p: str) -> Span | None:
    g = m.group
    if g(p + "rel"):
        unit = (g(p + "ru") or "").lower()
        back = g(p + "rel").lower().startswith(("last", "past"))
        if not unit:  # yesterday
            return anchor - _DAY, anchor - _DAY
        return _unit_span(anchor, unit, -1 if back else 0)
    if g(p + "ago"):
        n = _number(g(p + "n"))
        unit = g(p + "ago").lower()
        if unit == "day":
            return anchor - n * _DAY, anchor - n * _DAY
        return _unit_span(anchor, unit, -n)
    if g(p + "pn"):
        n, unit = _number(g(p + "pn")), g(p + "pu").lower()
        if unit in ("day", "week"):
            return anchor - n * (7 if unit == "week" else 1) * _DAY, anchor
        return _add_months(anchor, -n * (1 if unit == "month" else 12)), anchor
    if g(p + "weekday"):
        back = (anchor.weekday() - WEEKDAYS.index(g(p + "weekday").lower())) % 7
        if g(p + "wmod"):
            back = back or 7
        day = anchor - back * _DAY
        return day, day
    return None


def _unit_span(anchor: dt.date, unit: str, step: int) -> Span:
    if unit == "week":
        monday = anchor - anchor.weekday() * _DAY + 7 * step * _DAY
        return monday, monday + 6 * _DAY
    if unit == "month":
        first = _add_months(anchor.replace(day=1), step)
        return _month(first.year, first.month)
    return dt.date(anchor.year + step, 1, 1), dt.date(anchor.year + step, 12, 31)


def _add_months(day: dt.date, n: int) -> dt.date:
    months = day.year * 12 + day.month - 1 + n
    year, month = divmod(months, 12)
    return day.replace(year=year, month=month + 1, day=min(day.day, _last_day(year, month + 1)))


def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _month(year: int, month: int) -> Span:
    return dt.date(year, month, 1), dt.date(year, month, _last_day(year, month))


def _year_of_month(anchor: dt.date, month: int) -> int:
    """The year of the most recent `month` that began on or before `anchor`."""
    return anchor.year if month <= anchor.month else anchor.year - 1


def _on_or_before(anchor: dt.date, month: int, day: int) -> dt.date:
    this_year = dt.date(anchor.year, month, day) if _valid(anchor.year, month, day) else None
    if this_year is not None and this_year <= anchor:
        return this_year
    return dt.date(anchor.year - 1, month, day)


def _valid(year: int, month: int, day: int) -> bool:
    return 1 <= day <= _last_day(year, month)


def _number(text: str) -> int:
    return int(text) if text.isdigit() else WORD_NUMBERS[text.lower()]
