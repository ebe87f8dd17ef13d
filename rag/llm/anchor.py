"""Anchored answers for small local models (`RAG_LLM_ANCHOR`): the reader's sentence and short
answer go into the prompt, and a llama.cpp grammar forces a cited shape on the output.

A 135M-parameter model asked to cite `[n]` freely almost never does (43 of 43 fallbacks on the
held-out seed questions). Anchored, it is told which passage answers and what the reader's
short answer is, and its output is constrained (GBNF, llama.cpp's `grammar` request field):
the first claim must contain the reader's short answer (when it shows one) and end with the
marker of the passage holding it; at most one more claim may follow, each ending in a marker
of a packed passage. Markers are still validated by `citations.final_draft`.

Invariant: the grammar admits only markers `[1]..[n]` for the n packed passages, and never the
abstention sentence (the reader decided there is an answer; when it abstains, no LLM is asked).
"""

from __future__ import annotations

from rag.llm.prompt import PackedPassage
from rag.models import AnswerDraft

MAX_CLAIM_CHARS = 240
BEFORE, AFTER = 80, 40  # free characters around the short answer in the first claim


def _literal(text: str) -> str:
    """A GBNF string literal of `text` (one line)."""
    one_line = " ".join(text.split())
    return '"' + one_line.replace("\\", "\\\\").replace('"', '\\"') + '"'


def citation_grammar(n_passages: int, lead: int, short: str | None) -> str:
    """GBNF: a first claim holding `short` (when given) and ending in `[lead]`, then at most one
    more claim ending in a marker `[k]`, k ≤ n_passages."""
    numbers = " | ".join(f'"{k}"' for k in range(1, max(1, n_passages) + 1))
    free = "[^\\[\\]\\n<]"
    # the short answer as whole words: free text before it ends with a space, after it starts
    # with a space or punctuation
    body = (f'({free}{{0,{BEFORE}}} " ")? {_literal(short)} ([ ,.;:] {free}{{0,{AFTER}}})?'
            if short else f"{free}{{1,{MAX_CLAIM_CHARS}}}")
    return "\n".join([
        'root ::= first (" " claim)?',
        f'first ::= {body} " "? "[{lead}]" "."?',
        f"claim ::= [^\\[\\]\\n<]{{1,{MAX_CLAIM_CHARS}}} cite \".\"?",
        f'cite ::= " "? "[" ({numbers}) "]"',
    ])


def anchor(draft: AnswerDraft, packed: list[PackedPassage]) -> tuple[str, str] | None:
    """(the note added to the question, the grammar) for the reader's answer `draft`, or None
    when its first cited sentence is in no packed passage."""
    if draft.abstained or not draft.citations:
        return None
    lead = draft.citations[0]
    where = next((p.n for p in packed if p.passage.doc_id == lead.doc_id
                  and p.start <= lead.start < p.end), None)
    if where is None:
        return None
    short = draft.short_answer.text if draft.short_answer is not None else None
    note = f'\n\nPassage [{where}] says: "{" ".join(lead.quote.split())}"'
    if short:
        note += f'\nIn one sentence, answer with "{" ".join(short.split())}" and cite [{where}].'
    else:
        note += f"\nIn one sentence, answer from it and cite [{where}]."
    return note, citation_grammar(len(packed), where, short)
