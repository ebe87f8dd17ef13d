"""Days named relative to an article's date ("on Thursday", "yesterday", "last week"), resolved.

    resolve_relative(text, date) → [(start, end, iso), …]

Invariants:
- Only against a full date (`YYYY-MM-DD`): with a partial (`--MM-DD`), missing or bad date
  there is nothing to count from, and the result is empty — never a guess.
- `text[start:end]` is exactly the expression that names the time, without a preposition:
  "Thursday" in "on Thursday", "last Thursday", "yesterday", "three days ago", "last week".
  Spans are in text order and never overlap. Case-insensitive (the BBC set is lower-cased).
- What each resolves to, as ISO 8601 at the expression's own precision:
  - a weekday, alone or with "on": the most recent such day on or before the article's date
    (news reports what happened); "last Thursday": the most recent one strictly before it;
    "this Thursday": the one in the date's ISO week; "next Thursday": the first strictly after;
  - "today"/"tonight" the date, "yesterday" −1 day, "the day before yesterday" −2,
    "tomorrow" +1; "N days ago" −N, "N weeks ago" −7N days (`YYYY-MM-DD`);
  - "last/this/next week" the ISO week (`YYYY-Www`), "… month" (`YYYY-MM`), "… year" (`YYYY`);
    "N months ago" (`YYYY-MM`), "N years ago" (`YYYY`).
- Weekdays are full names only ("Sat" is too often something else). Pure: no I/O, no state.
"""

from __future__ import annotations

import datetime as dt
import re

from rag.ingest.article_dates import full_date

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_DAYS = {"today": 0, "tonight": 0, "yesterday": -1, "tomorrow": 1}

_RELATIVE = re.compile(
    r"\b(?:"
    r"(?P<before>the\s+day\s+before\s+yesterday)"
    r"|(?P<day>today|tonight|yesterday|tomorrow)"
    rf"|(?:(?P<wmod>last|this|next)\s+)?(?P<weekday>{'|'.join(WEEKDAYS)})"
    rf"|(?P<n>\d{{1,3}}|{'|'.join(_NUMBERS)})\s+(?P<ago>day|week|month|year)s?\s+ago"
    r"|(?P<umod>last|this|next)\s+(?P<unit>week|month|year)"
    r")\b",
    re.IGNORECASE,
)

Span = tuple[int, int, str]


def resolve_relative(text: str, date: str | dt.date | None) -> list[Span]:
    """Each relative day, week, month or year in `text` with the date it names (see above)."""
    base = date if isinstance(date, dt.date) else full_date(date)
    if base is None:
        return []
    out: list[Span] = []
    for match in _RELATIVE.finditer(text):
        try:
            iso = _resolve(match, base)
        except OverflowError:  # before year 1 or after 9999
            iso = None
        if iso is not None:
            out.append((match.start(), match.end(), iso))
    return out


def _resolve(m: re.Match[str], base: dt.date) -> str | None:
    if m["before"]:
        return (base - dt.timedelta(days=2)).isoformat()
    if m["day"]:
        return (base + dt.timedelta(days=_DAYS[m["day"].lower()])).isoformat()
    if m["weekday"]:
        return _weekday(base, WEEKDAYS.index(m["weekday"].lower()), (m["wmod"] or "").lower())
    if m["ago"]:
        n = int(m["n"]) if m["n"].isdigit() else _NUMBERS[m["n"].lower()]
        return _ago(base, n, m["ago"].lower())
    step = {"last": -1, "this": 0, "next": 1}[m["umod"].lower()]
    return _shift(base, step, m["unit"].lower())


def _weekday(base: dt.date, weekday: int, modifier: str) -> str:
    back = (base.weekday() - weekday) % 7  # 0: the date itself is that weekday
    if modifier == "last":
        back = back or 7
    elif modifier == "next":
        back = -((weekday - base.weekday()) % 7 or 7)
    elif modifier == "this":
        back = base.weekday() - weekday  # within the same Monday-to-Sunday week
    return (base - dt.timedelta(days=back)).isoformat()


def _ago(base: dt.date, n: int, unit: str) -> str | None:
    if unit in ("day", "week"):
        return (base - dt.timedelta(days=n * (7 if unit == "week" else 1))).isoformat()
    if unit == "month":
        months = base.year * 12 + base.month - 1 - n
        return f"{months // 12:04d}-{months % 12 + 1:02d}" if months >= 12 else None
    return f"{base.year - n:04d}" if base.year - n >= 1 else None


def _shift(base: dt.date, step: int, unit: str) -> str | None:
    if unit == "week":
        year, week, _ = (base + dt.timedelta(days=7 * step)).isocalendar()
        return f"{year:04d}-W{week:02d}"
    if unit == "month":
        months = base.year * 12 + base.month - 1 + step
        return f"{months // 12:04d}-{months % 12 + 1:02d}" if 12 <= months < 120000 else None
    return f"{base.year + step:04d}" if 1 <= base.year + step <= 9999 else None
