"""The reader's show decision (`rag/reader/decision.py`): the fit, the threshold, the shipped
decision, and features computed from a real reading of the seeds."""

from __future__ import annotations

import json
import random

import pytest

from rag.reader.decision import FEATURES, ShowModel, choose_threshold, features, fit
from rag.reader.runtime import MODEL_DIR


def _rows(n: int, seed: int = 3) -> tuple[list[dict[str, float]], list[bool]]:
    """Synthetic questions: a span is right more often the higher its margin and the shorter
    it is; the other features are noise."""
    rng = random.Random(seed)
    rows, right = [], []
    for _ in range(n):
        row = {name: rng.gauss(0, 1) for name in FEATURES}
        z = 2.0 * row["margin"] - 1.0 * row["span_words"]
        rows.append(row)
        right.append(rng.random() < 1 / (1 + 2.718281828 ** -z))
    return rows, right


def test_fit_finds_the_features_that_matter_and_their_signs() -> None:
    rows, right = _rows(4000)
    model = fit(rows, right)
    w = dict(zip(model.names, model.weights, strict=True))
    assert w["margin"] > 1.2 and w["span_words"] < -0.5
    assert all(abs(w[n]) < 0.2 for n in FEATURES if n not in ("margin", "span_words"))
    hi = {**dict.fromkeys(FEATURES, 0.0), "margin": 2.0}
    lo = {**dict.fromkeys(FEATURES, 0.0), "margin": -2.0}
    assert model.probability(hi) > 0.9 > 0.1 > model.probability(lo)


def test_threshold_maximises_right_minus_cost_times_wrong() -> None:
    probs = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5]
    right = [True, True, False, True, False, False]
    # cumulative gains at cost 2: 1, 2, 0, 1, -1, -3 → show the first two
    assert choose_threshold(probs, right, wrong_cost=2) == 0.9
    # cost 0.5: 1, 2, 1.5, 2.5, 2, 1.5 → show the first four
    assert choose_threshold(probs, right, wrong_cost=0.5) == 0.7
    assert choose_threshold([0.9, 0.8], [False, False]) == 1.0  # nothing worth showing


def test_the_shipped_decision_loads_and_a_bad_one_is_refused() -> None:
    meta = json.loads((MODEL_DIR / "reader.json").read_text())
    model = ShowModel.from_meta(meta)
    assert model is not None and 0.5 < model.threshold < 1.0
    assert ShowModel.from_meta({**meta, "decision": None}) is None
    bad = {**meta["decision"], "features": ["margin"]}
    with pytest.raises(ValueError, match="features"):
        ShowModel.from_meta({**meta, "decision": bad})
    round_trip = ShowModel.from_meta({"decision": model.to_meta()})
    assert round_trip == model


def test_features_of_a_real_reading(assistant) -> None:
    from rag.reader.answer import read

    q = "Who is the chairman of the Arab Parliament?"
    qvec = assistant.embed([q])[0]
    passages = assistant.search(q, query_vector=qvec).passages
    reading = read(assistant.snapshot, q, qvec, passages, assistant.reader(), windows=2)
    best = reading.best()
    doc_id, start, end = reading.offsets(best)
    text = assistant.document(doc_id).text[start:end]
    f = features(best, reading.spans, text)
    assert set(f) == set(FEATURES) and "Al-Asoumi" in text
    assert f["lead"] == 1.0 and f["gap"] > 0 and f["margin"] > 0 > f["log_prob"]
    others = [s for s in reading.spans if s.window != best.window]
    for s in others:  # a weaker window's gap is the best one's, negated
        assert features(s, reading.spans, "x")["gap"] == pytest.approx(-f["gap"])


def test_a_model_without_a_decision_shows_by_margin_and_a_bad_one_is_one_clear_error(
    tmp_path, assistant
) -> None:
    import shutil

    from rag.errors import RagError
    from rag.reader.answer import judge, read
    from rag.reader.runtime import Reader

    folder = tmp_path / "model"
    shutil.copytree(MODEL_DIR, folder)
    meta = json.loads((folder / "reader.json").read_text())
    (folder / "reader.json").write_text(json.dumps({**meta, "decision": None}))
    reader = Reader(folder)
    assert reader.show_model is None
    q = "Who is the chairman of the Arab Parliament?"
    qvec = assistant.embed([q])[0]
    passages = assistant.search(q, query_vector=qvec).passages
    reading = read(assistant.snapshot, q, qvec, passages, reader, windows=2)
    best = reading.best()
    show, confidence = judge(reader, reading, best, "x")
    assert show == (best.margin >= reader.show_threshold)
    assert confidence == pytest.approx(1 / (1 + 2.718281828459045 ** -best.margin), abs=1e-3)

    broken = {**meta["decision"], "weights": meta["decision"]["weights"][:-1]}
    (folder / "reader.json").write_text(json.dumps({**meta, "decision": broken}))
    with pytest.raises(RagError, match="unreadable decision"):
        Reader(folder)


def test_a_stricter_min_confidence_withholds_the_short_answer_but_keeps_its_sentence(
    assistant, seeds_settings, embedder, monkeypatch
) -> None:
    from rag.assistant import Assistant
    from rag.settings import Settings

    q = "Who is the chairman of the Arab Parliament?"
    default = assistant.ask(q)
    assert default.short_answer is not None and "Al-Asoumi" in default.short_answer.text
    p = default.confidence
    assert 0 < p < 1
    strict = Assistant.open(settings=seeds_settings.with_overrides(
        reader_min_confidence=min(1.0, p + 0.01)), embedder=embedder)
    withheld = strict.ask(q)
    assert withheld.short_answer is None and not withheld.abstained
    assert withheld.confidence == p  # the same reading, judged against a higher bar
    assert withheld.citations[0].quote == default.citations[0].quote
    lenient = Assistant.open(settings=seeds_settings.with_overrides(
        reader_min_confidence=p), embedder=embedder)
    assert lenient.ask(q).short_answer == default.short_answer
    monkeypatch.setenv("RAG_READER_MIN_CONFIDENCE", "0.9")
    assert Settings().reader_min_confidence == 0.9
    monkeypatch.setenv("RAG_READER_MIN_CONFIDENCE", "1.5")
    with pytest.raises(ValueError, match="reader_min_confidence"):
        Settings()
