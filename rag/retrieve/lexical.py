"""The one word tokenizer used for BM25 (index and query) and for lexical evidence in answers.

Lowercased Unicode words, English stopwords dropped, Snowball-stemmed, so "talks" matches
"talked". Changing it changes the index: bump LEXICAL_VERSION.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rag.memory import register_lru

LEXICAL_VERSION = 1
# Stems memoised (LRU). ~240 bytes an entry, so at most ~12 MiB; it covers the vocabulary of
# a large corpus, and words only ever seen in questions cannot grow it past the bound.
STEM_CACHE = 50_000

_WORD = re.compile(r"\w+(?:['’]\w+)*", re.UNICODE)

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each few for from further had hadn't has hasn't
    have haven't having he he'd he'll he's her here here's hers herself him himself his how
    how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most
    mustn't my myself no nor not of off on once only or other ought our ours ourselves out
    over own same shan't she she'd she'll she's should shouldn't so some such than that
    that's the their theirs them themselves then there there's these they they'd they'll
    they're they've this those through to too under until up very was wasn't we we'd we'll
    we're we've were weren't what what's when when's where where's which while who who's
    whom why why's with won't would wouldn't you you'd you'll you're you've your yours
    yourself yourselves s t also said says say did does
    """.split()  # noqa: SIM905
)


@register_lru("lexical.stemmer")
@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@register_lru("lexical.stem")
@lru_cache(maxsize=STEM_CACHE)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


def words(text: str) -> list[str]:
    """Lowercased words with apostrophes normalised, stopwords kept."""
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def tokenize(text: str) -> list[str]:
    """Stemmed content words: the terms BM25 indexes and matches."""
    return [_stem(w) for w in words(text) if w not in STOPWORDS]
