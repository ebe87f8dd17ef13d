"""The words and patterns that state a time, shared by questions and article text
(`rag.temporal.time_query`): one time expression (`EXPR`, its named groups saying which kind), the
prepositions before it, and the word lists that tell the present, the future and events.

Invariants:
- Only constants: precompiled regexes and frozen word sets, built once at import; no state.
- `EXPR`'s group names are what `rag.temporal.time_query` reads: `iso`; `d1`/`m1`/`y1` ("3 March
2024"),
  `m2`/`d2`/`y2` ("March 3, 2024"), `m3`/`y3` ("March 2024"), `year`; the relative ones `rel`/
  `ru` ("last week", "yesterday"), `n`/`ago` ("3 weeks ago"), `pn`/`pu` ("the past 3 weeks"),
  `wmod`/`weekday` ("last Thursday"). `QUESTION` repeats them with the prefix `s_` for the
  second end of a range ("between X and Y").
"""

from __future__ import annotations

import re

from rag.ingest.article_dates import MONTHS

_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_UNIT = r"(?:day|week|month|year)"
_NUM = r"(?:\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
WORD_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# One time expression; the named group says which kind it is.
EXPR = (
    r"(?P<iso>\d{4}-\d\d-\d\d)"
    rf"|(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m1>{_MONTH})\b\.?(?:,?\s+(?P<y1>(?:19|20)\d\d))?"
    rf"|(?P<m2>{_MONTH})\b\.?\s+(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<y2>(?:19|20)\d\d))?"
    rf"|(?P<m3>{_MONTH})\b\.?(?:,?\s+(?:of\s+)?(?P<y3>(?:19|20)\d\d))?"
    r"|(?P<year>(?:19|20)\d\d)(?!\d|-\d)"
    r"|(?P<rel>yesterday|(?:last|this|past)\s+(?P<ru>week|month|year))"
    rf"|(?P<n>{_NUM})\s+(?P<ago>{_UNIT})s?\s+ago"
    rf"|(?:the\s+)?(?:past|last)\s+(?P<pn>{_NUM})\s+(?P<pu>{_UNIT})s"
    rf"|(?P<wmod>last\s+)?(?P<weekday>{'|'.join(WEEKDAYS)})"
)
_PREP = (
    r"(?P<prep>in|during|throughout|within|on|since|from|after|before|prior\s+to|until|till|"
    r"through|by|as\s+of|between)"
)
# A time expression in a question, with its preposition and the second end of a range.
QUESTION = re.compile(
    rf"\b(?:{_PREP}\s+(?:the\s+)?(?:(?:early|mid|late)[\s-]+)?)?(?:{EXPR})\b"
    rf"(?:\s*(?:and|to|until|till|through|-|–)\s*(?P<second>(?:{EXPR.replace('?P<', '?P<s_')})))?",
    re.IGNORECASE,
)
# An event a question times itself by: "before the 2024 parliamentary election".
EVENT = re.compile(
    r"\b(?P<rel>before|after|since|prior\s+to)\s+(?:the|a|an|his|her|their|its)\s+"
    r"(?P<words>[^?.,;!]{1,80})",
    re.IGNORECASE,
)
WORD = re.compile(r"[A-Za-z][A-Za-z'’-]+")
EVENT_STOP = frozenset(
    {"the", "a", "an", "of", "in", "on", "at", "to", "for", "and", "or", "his", "her", "their"}
    | {"its", "this", "that", "was", "were", "is", "are", "be", "been", "by", "with", "from"}
    | {"new", "first", "last", "next"}
)
DATE_PARTS = frozenset(("end", "start", "beginning", "middle", "close", "turn", "half"))
# A time expression in article text ("since 2017" spans to the article's date).
TEXT = re.compile(rf"\b(?:(?P<prep>since|from)\s+)?(?:{EXPR})\b", re.IGNORECASE)
EXPLICIT = re.compile(
    r"\b(?:now|nowadays|current|currently|latest|newest|most\s+recent|recent|recently|still|"
    r"today|at\s+present|presently|these\s+days|yet|any\s*more|so\s+far|to\s+date|as\s+of\s+now)\b",
    re.IGNORECASE,
)
FUTURE = re.compile(r"\b(?:will|won't|going\s+to|upcoming|next)\b", re.IGNORECASE)
PRESENT = re.compile(
    r"^\W*(?:(?:who|what|which|where|how\s+many|how\s+much)\b(?:\s+[\w'’-]+){0,4}?\s+"
    r"(?P<verb>is|are|does|do|has|have|heads|leads|chairs|runs|holds|governs|controls|"
    r"was|were|did|had|will|would|could|can|should)\b"
    r"|(?:who|what)(?:'s|’s)\b|(?:is|are|does|do|has|have)\s)",
    re.IGNORECASE,
)
PRESENT_VERBS = frozenset(
    {"is", "are", "does", "do", "has", "have", "heads", "leads", "chairs", "runs", "holds"}
    | {"governs", "controls"}
)
AS_OF = re.compile(r"\bas\s+of\b", re.IGNORECASE)
CLAUSE_END = re.compile(r"[;!?]\s+|\.\s+(?=[A-Z])")
# A bare month name in text is a month after one of these, else perhaps a verb ("may").
MONTH_WORDS = frozenset(("in", "of", "until", "till", "by", "early", "late", "mid"))
