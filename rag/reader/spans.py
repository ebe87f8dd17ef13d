"""The reader's span decoder: start/end logits → the best answer span and its no-answer margin.

One function for validation (torch logits as numpy) and serving (ONNX Runtime), so the scores
calibrated on the validation articles are the scores served. A span starts and ends on context
tokens, ends at or after its start, and is at most `max_tokens` long. The margin is
`best span score − no-answer score` (start[0] + end[0], the `[CLS]` position): above the
calibrated threshold the span is the short answer; below it the reader says "no answer".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_ANSWER_TOKENS = 30


@dataclass(frozen=True, slots=True)
class Span:
    start_token: int
    end_token: int
    score: float  # start + end logit of the span
    null: float  # start + end logit of [CLS]
    prob: float  # softmax probability of the span among all spans and "no answer"

    @property
    def margin(self) -> float:
        return self.score - self.null


def best_span(
    start: np.ndarray, end: np.ndarray, mask: np.ndarray, max_tokens: int = MAX_ANSWER_TOKENS
) -> Span | None:
    """The best span of one sequence (None when it has no context token)."""
    ctx = np.nonzero(mask)[0]
    ctx = ctx[ctx > 0]
    if not len(ctx):
        return None
    s = start[ctx].astype(np.float64)
    e = end[ctx].astype(np.float64)
    pair = s[:, None] + e[None, :]
    n = len(ctx)
    i, j = np.indices((n, n))
    valid = (j >= i) & (ctx[j] - ctx[i] < max_tokens)
    pair = np.where(valid, pair, -np.inf)
    flat = int(np.argmax(pair))
    bi, bj = divmod(flat, n)
    null = float(start[0]) + float(end[0])
    # P(span) under independent start/end softmaxes over [CLS] + context positions
    ls = np.logaddexp.reduce(np.append(s, start[0]))
    le = np.logaddexp.reduce(np.append(e, end[0]))
    prob = float(np.exp(pair[bi, bj] - ls - le))
    return Span(int(ctx[bi]), int(ctx[bj]), float(pair[bi, bj]), null, prob)
