"""The office a "who is" question asks about: "Who is Kestria's foreign minister?" asks about
"foreign minister", "Who was the first chair of the IPCC?" about "chair".

Like a name or a number of the question (`rag.answer.short_answer.key_terms`), an answer needs
the office in some retrieved passage: when none names it, the articles don't say
(`rag.answer.short_answer.missing_terms`). Only offices and titles from a closed list count;
kinship words, "leader", "head", "responsible" and the like are paraphrased too freely
("married", "led", "in charge") to be evidence by their absence. Checked on the reader's
training file: 1 of the 51 answerable questions with an office lacks it in its own paragraph.
"""

from __future__ import annotations

import re

from rag.retrieve.lexical import STOPWORDS

# "who is|was [now] [the] [Name's] ROLE [of|for|in|at|on …|now|?]": ROLE is 1 to 3 lower-case words
_ROLE = re.compile(
    r"^\W*(?i:who)\s+(?:is|was|are|were)\s+(?:now\s+|currently\s+)?(?:the\s+)?"
    r"(?:[A-Z][\w’'-]*(?:\s+[A-Z][\w’'-]*)*['’]s?\s+)?"
    r"((?:(?!(?:of|for|in|at|on|who|that|now|today|currently)\b)[a-z][a-z-]+\s*){1,3})"
    r"(?:\b(?:of|for|in|at|on|now|today|currently)\b|\?|$)"
)


def asked_role(question: str) -> str | None:
    """The office a "who is [X's] ROLE [of Y]" question asks about ("foreign minister",
    "chairman"): like a name, an answer needs it in some passage; None for other questions
    and for roles that are not offices."""
    m = _ROLE.search(question.strip())
    if m is None:
        return None
    role = [w for w in m.group(1).split() if w not in STOPWORDS and w not in _QUALIFIERS]
    return " ".join(role) if role and role[-1] in _OFFICES else None


# Offices and titles (the role's last word must be one): kinship, "responsible", "elected",
# "leader" or "head" and the like are paraphrased too freely ("married", "in charge", "led")
# to count as missing.
_OFFICES = frozenset([
    "minister", "secretary", "president", "chairman", "chairwoman", "chairperson", "chair",
    "speaker", "governor", "mayor", "ambassador", "envoy", "director", "ceo", "spokesman",
    "spokeswoman", "spokesperson", "commander", "judge", "editor", "coach", "treasurer",
    "chancellor", "premier", "senator", "commissioner", "attorney", "prosecutor",
])  # fmt: skip


_QUALIFIERS = frozenset([
    "current", "new", "former", "acting", "latest", "incumbent", "present", "first", "last",
])  # fmt: skip
