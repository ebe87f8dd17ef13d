"""Synthetic unanswerable questions for training the reader's no-answer score.

An answerable question whose name, year or number also stands in its answer's window is
rewritten with another name, year or number of the same article that the window does not state:
"When did England declare war on France?" over "… England formally declared war on France …"
becomes "When did England declare war on Spain?" over the same window, labelled "no answer".
That is SQuAD 2.0's "entity swap" kind of unanswerable question (about a fifth of them): the
window still holds a plausible answer, so only reading the question against it tells them apart.

Invariants: deterministic given the `random.Random` passed in; the swapped-in text never occurs
in the window (case-folded), is of the same kind as what it replaces (a year for a year, a
number for a number, a capitalised name for a name) and comes from the same article; the
question's first word (usually "Who", "What") is never swapped. Training only: validation
windows are never rewritten.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

_YEAR = r"\b(?:1[0-9]{3}|20[0-9]{2})\b"
_NUMBER = r"\b\d[\d,.]*\d\b|\b\d\b"
_NAME = r"\b[A-Z][\w'\-]*(?: [A-Z][\w'\-]*)*"
_ENTITY = re.compile(f"(?P<year>{_YEAR})|(?P<number>{_NUMBER})|(?P<name>{_NAME})")
# Capitalised words that are not names: sentence openers, pronouns, question words.
_NOT_NAME_WORDS = (
    "a an the in on at to for by with from and or but as of after before during since while "
    "although however it its he she they his her their this that these those there here what "
    "which who whom whose when where why how i we you our one some many most other another "
    "if is was were are be did does do has have had not no also"
)
_NOT_NAMES = frozenset(_NOT_NAME_WORDS.split())

Entities = dict[str, list[str]]  # kind ("year", "number", "name") → distinct texts, in order


def _entities(text: str) -> Iterable[tuple[str, str, int, int]]:
    """(kind, text, start, end) of each year, number and name in `text`; a name loses a leading
    capitalised non-name ("The", "In") and is dropped when nothing is left."""
    for m in _ENTITY.finditer(text):
        kind = m.lastgroup or ""
        start, s = m.start(), m.group()
        if kind == "name":
            words = s.split(" ")
            while words and words[0].lower() in _NOT_NAMES:
                start += len(words[0]) + 1
                words = words[1:]
            if not words:
                continue
            s = " ".join(words)
        yield kind, s, start, start + len(s)


def article_entities(paragraphs: Iterable[str]) -> Entities:
    """The years, numbers and names of an article's paragraphs; a name only when it also
    stands capitalised inside a sentence (so "Meanwhile" or "Using", capitalised only at a
    sentence's start, are not names) and is not an abbreviation ("Mr.")."""
    found: Entities = {"year": [], "number": [], "name": []}
    seen: set[str] = set()
    for text in paragraphs:
        for kind, s, a, b in _entities(text):
            if s in seen:
                continue
            abbreviation = text[b : b + 1] == "." and len(s) <= 3
            opens_sentence = text[max(0, a - 2) : a].strip() in ("", ".", "?", "!")
            if kind == "name" and (abbreviation or opens_sentence):
                continue
            seen.add(s)
            found[kind].append(s)
    return found


def swap_question(question: str, window: str, entities: Entities,
                  rng: random.Random) -> str | None:
    """`question` with one of its years, numbers or names that `window` states replaced by
    another of the same kind from `entities` that `window` does not state; None when the
    question has nothing to swap."""
    folded = window.lower()
    spots = [(kind, s, a, b) for kind, s, a, b in _entities(question)
             if a > 0 and s in window]
    rng.shuffle(spots)
    for kind, s, a, b in spots:
        pool = [e for e in entities[kind]
                if e.lower() not in folded and s.lower() not in e.lower()
                and e.lower() not in s.lower() and e.lower() not in question.lower()]
        alike = [e for e in pool if e.count(" ") == s.count(" ")]  # as many words: likelier
        if pool:                                                     # the same kind of name
            return question[:a] + rng.choice(alike or pool) + question[b:]
    return None
