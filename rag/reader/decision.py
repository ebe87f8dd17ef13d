"""Whether to show the reader's span as the short answer: a calibrated probability that it is
right, from what the reader says about it across the sentences it read.

The reader's no-answer margin alone ranks spans poorly across questions: its precision stalls
near .8 however high the margin (a long span, a span another window contradicts, a span outside
the best sentence are wrong more often than their margin says). So
the show decision is a logistic model over a few features of the best span (`FEATURES`),
fitted on the validation articles' questions asked through the whole pipeline
(`bench/reader_calibrate.py`, never an evaluation article) and stored in the model's
`reader.json` under `decision`. `probability` is P(the span is right, SQuAD F1 ≥ .5); the span
is shown when it reaches `threshold`, chosen there to maximise right − 2 × wrong shown answers
(a wrong short answer undoes two right ones; docs/reader.md has the trade-off at other costs).

Invariants: the features are computed by this module only, from the same reading in serving
and in calibration, so the fitted weights see what they were fitted on; a `reader.json` without
`decision` falls back to the margin threshold `thresholds.show`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class SpanLike(Protocol):
    """A window's best span as the reader returns it (`rag.reader.runtime.WindowSpan`)."""

    @property
    def window(self) -> int: ...
    @property
    def margin(self) -> float: ...
    @property
    def prob(self) -> float: ...

# Only what the reader itself says about the span and its sentence: retrieval's scores
# (passage rank, the sentence's share of the question's terms) depend on the corpus — a
# 936-article validation corpus is not 3 news articles — and added nothing measurable on
# validation (8-fold by article: .856 right at .177 coverage with them, .880 at .205 without).
FEATURES = ("margin", "log_prob", "gap", "span_words", "lead")
GAP_CAP = 15.0  # the margin over the next-best window, capped (one window: the cap)


def features(span: SpanLike, spans: Sequence[SpanLike], text: str) -> dict[str, float]:
    """The features of `span` (whose text is `text`) among the best spans of all the windows
    read for the question (`spans`; window 0 is the best-scored sentence).

    - margin, log_prob: the reader's span score over "no answer", and its probability;
    - gap: the margin over the best span of any other window (agreement is not a gap);
    - span_words: log(1 + words in the span): long spans are often a list around the answer;
    - lead: 1 when the span is in the best-scored sentence of the retrieved passages.
    """
    others = [s.margin for s in spans if s.window != span.window]
    return {
        "margin": span.margin,
        "log_prob": math.log(max(span.prob, 1e-9)),
        "gap": max(-GAP_CAP, min(GAP_CAP, span.margin - max(others, default=-math.inf))),
        "span_words": math.log1p(len(text.split())),
        "lead": float(span.window == 0),
    }


@dataclass(frozen=True, slots=True)
class ShowModel:
    """Standardised logistic regression: P(right) = σ(w · (x − mean) / scale + bias)."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float  # show at or above this probability

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> ShowModel | None:
        d = meta.get("decision")
        if not d:
            return None
        model = cls(tuple(d["features"]), tuple(d["mean"]), tuple(d["scale"]),
                    tuple(d["weights"]), float(d["bias"]), float(d["threshold"]))
        if model.names != FEATURES:
            raise ValueError(f"reader.json decision features {model.names} != {FEATURES}")
        if not len(model.mean) == len(model.scale) == len(model.weights) == len(FEATURES):
            raise ValueError(f"reader.json decision needs {len(FEATURES)} means, scales and "
                             "weights")
        return model

    def to_meta(self) -> dict[str, Any]:
        return {"features": list(self.names), "mean": list(self.mean),
                "scale": list(self.scale), "weights": list(self.weights), "bias": self.bias,
                "threshold": self.threshold}

    def probability(self, feats: Mapping[str, float]) -> float:
        z = self.bias + sum(w * (feats[n] - m) / s for n, m, s, w in
                            zip(self.names, self.mean, self.scale, self.weights, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def fit(rows: Sequence[Mapping[str, float]], right: Sequence[bool], l2: float = 1.0,
        iterations: int = 30) -> ShowModel:
    """Fit P(right | features) by Newton's method with an L2 penalty (bias unpenalised);
    the threshold is set by `choose_threshold`, 0.5 until then."""
    x = np.array([[r[n] for n in FEATURES] for r in rows], dtype=np.float64)
    y = np.asarray(right, dtype=np.float64)
    mean, scale = x.mean(0), x.std(0) + 1e-9
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    penalty = l2 * np.diag(np.r_[np.ones(len(FEATURES)), 0.0])
    w = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -50, 50)))
        grad = z.T @ (p - y) + penalty @ w
        hess = (z * (p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return ShowModel(FEATURES, tuple(mean.round(6)), tuple(scale.round(6)),
                     tuple(w[:-1].round(6)), round(float(w[-1]), 6), 0.5)


def choose_threshold(probs: Sequence[float], right: Sequence[bool],
                     wrong_cost: float = 2.0) -> float:
    """The probability threshold maximising right − wrong_cost × wrong shown answers."""
    p, r = np.asarray(probs), np.asarray(right, dtype=bool)
    order = np.argsort(-p, kind="stable")
    gain = np.cumsum(np.where(r[order], 1.0, -wrong_cost))
    best = int(np.argmax(gain))
    if gain[best] <= 0:
        return 1.0  # nothing is worth showing
    return math.floor(float(p[order][best]) * 1e4) / 1e4  # rounded down: keeps the last one
