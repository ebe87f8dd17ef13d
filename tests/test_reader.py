"""The reader: a tiny real training run (loss falls, the exported model loads and reads), the
shipped model's integrity checks, and its short answers on the seeds (exact offsets)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.errors import RagError
from rag.reader.data import encode_pair, featurize, load_tokenizer, split_by_title
from rag.reader.network import base_model_path
from rag.reader.runtime import MODEL_DIR, Reader
from rag.reader.spans import best_span
from rag.reader.train import TrainConfig, train_and_export

FACTS = [
    ("Arland", "Port Vessa", "copper", 1821, "Mira Tolan"),
    ("Belmor", "Quenby", "wool", 1764, "Oskar Fenn"),
    ("Corvale", "Lindt Harbour", "salt", 1902, "Ada Russo"),
    ("Dunmere", "Estbury", "timber", 1688, "Piet Varga"),
]


def _squad(path: Path) -> Path:
    """A small SQuAD 2.0 file: four made-up articles, answerable and unanswerable questions."""
    data = []
    for land, city, good, year, founder in FACTS:
        p1 = (f"{land} is a small country on the northern coast. Its capital is {city}, a port "
              f"city. The country was founded in {year} by {founder}. Most people there work "
              f"in farming.")
        p2 = (f"The main export of {land} is {good}. Trade grew quickly after the railway "
              f"opened. Ships carry the {good} to markets abroad.")
        qas1 = [
            (f"What is the capital of {land}?", city),
            (f"When was {land} founded?", str(year)),
            (f"Who founded {land}?", founder),
            (f"What is the population of {land}?", None),
        ]
        qas2 = [(f"What does {land} export?", good), (f"Who built the railway in {land}?", None)]
        paragraphs = []
        for ctx, qas in ((p1, qas1), (p2, qas2)):
            items = []
            for n, (q, a) in enumerate(qas):
                item = {"id": f"{land}{len(paragraphs)}{n}", "question": q,
                        "is_impossible": a is None, "answers": []}
                if a is not None:
                    item["answers"] = [{"text": a, "answer_start": ctx.index(a)}]
                items.append(item)
            paragraphs.append({"context": ctx, "qas": items})
        data.append({"title": land, "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": "v2.0", "data": data}))
    return path


def test_examples_hold_their_answer_and_negatives_do_not(tmp_path: Path) -> None:
    from rag.reader.data import load_articles, make_examples

    arts = load_articles(_squad(tmp_path / "tiny.json"))
    train, val = split_by_title(arts, 1)
    assert len(val) == 1 and {a.title for a in train}.isdisjoint({val[0].title})
    examples = make_examples(train, seed=1, elsewhere=1.0, beside=1.0)
    assert make_examples(train, seed=1, elsewhere=1.0, beside=1.0) == examples  # seeded
    kinds = {e.kind for e in examples}
    assert {"answer", "impossible", "elsewhere"} <= kinds
    for e in examples:
        if e.answer is not None:
            assert e.context[e.answer[0] : e.answer[1]] in e.answers
        else:
            assert not any(g.lower() in e.context.lower() for g in e.answers)
    more = make_examples(train, seed=1, elsewhere=1.0, beside=1.0, impossible=3)
    extra = [e for e in more if e not in examples]
    assert extra and all(e.kind == "impossible" and e.answer is None for e in extra)
    assert sorted(repr(e) for e in more if e.kind != "impossible") == sorted(
        repr(e) for e in examples if e.kind != "impossible")  # the other draws are unchanged
    feats = featurize(examples, load_tokenizer(base_model_path()), 64)
    for i, e in enumerate(examples):
        if e.answer is not None:
            offs = feats.offsets[i]
            s, t = int(feats.start[i]), int(feats.end[i])
            assert e.context[offs[s][0] : offs[t][1]] == e.context[e.answer[0] : e.answer[1]]
        else:
            assert feats.start[i] == feats.end[i] == 0


def test_best_span_prefers_no_answer_when_cls_wins() -> None:
    import numpy as np

    start = np.array([5.0, -9, 1.0, 0.0, -9])
    end = np.array([5.0, -9, 0.0, 2.0, -9])
    mask = np.array([True, False, True, True, False])
    span = best_span(start, end, mask)
    assert (span.start_token, span.end_token) == (2, 3)
    assert span.margin == pytest.approx(3.0 - 10.0)
    assert best_span(start, end, np.array([True, False, False, False, False])) is None


@pytest.mark.slow
def test_tiny_training_run_learns_resumes_and_exports_a_model_that_reads(tmp_path: Path) -> None:
    data = _squad(tmp_path / "tiny.json")
    common = dict(data=str(data), out=str(tmp_path / "run"), batch_size=8, lr=3e-4,
                  val_articles=1, checkpoint_every=5, epochs=40.0, max_len=64)
    first = train_and_export(TrainConfig(**common, max_steps=5), resume=False)
    assert first["steps"] == 5 and (tmp_path / "run" / "checkpoint.pt").exists()
    report = train_and_export(TrainConfig(**common, max_steps=20), resume=True)
    assert report["steps"] == 20  # continued from step 5, not from scratch
    losses = json.loads((tmp_path / "run" / "report.json").read_text())["first_losses"]
    assert len(losses) == 20 and losses[:5] == first["first_losses"][:5]
    assert sum(losses[-4:]) / 4 < 0.6 * sum(losses[:4]) / 4, losses  # the loss falls
    model = tmp_path / "run" / "model"
    meta = json.loads((model / "reader.json").read_text())
    assert set(meta["thresholds"]) == {"show"} and meta["sha256"]
    assert meta["bytes"] < 16 * 2**20  # word embeddings are not stored in the file
    reader = Reader(model)
    window = "Its capital is Port Vessa, a port city."
    (span,) = reader.read("What is the capital of Arland?", [window])
    assert 0 <= span.start < span.end <= len(window)


def test_the_shipped_model_is_verified_before_it_loads(tmp_path: Path) -> None:
    reader = Reader(MODEL_DIR)  # loads offline, from the package
    assert reader.meta["sha256"] and reader.show_threshold > 0
    altered = tmp_path / "altered"
    shutil.copytree(MODEL_DIR, altered)
    onnx_file = altered / reader.meta["file"]
    raw = bytearray(onnx_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    onnx_file.write_bytes(bytes(raw))
    with pytest.raises(RagError, match="sha256"):
        Reader(altered)
    onnx_file.unlink()
    with pytest.raises(RagError, match="missing"):
        Reader(altered)
    with pytest.raises(RagError, match="missing or unreadable"):
        Reader(tmp_path / "nowhere")


def test_windows_longer_than_the_budget_are_cut_not_overflowed() -> None:
    tok = load_tokenizer(base_model_path())
    ids, types, mask, offs = encode_pair(tok, "Who?", "word " * 500, 128)
    assert len(ids) == 128 and ids[-1] == tok.token_to_id("[SEP]") and types[-2] == 1
    assert mask[0] and not mask[-1] and mask[-2] and (offs[-1] == -1).all()


def test_reader_finds_the_day_of_the_call_and_cites_its_sentence_first(assistant) -> None:
    """The rules refused this one although the first passage says "on Thursday" (issue 22):
    the reader prefers a span to "no answer" in that sentence, so it answers and leads with it."""
    answer = assistant.ask("When did Amirabdollahian talk to Bayramov?")
    assert not answer.abstained
    assert "on Thursday" in answer.citations[0].quote
    if answer.short_answer is not None:
        assert "Thursday" in answer.short_answer.text


def test_a_confident_short_answer_is_shown_inside_citation_one(assistant) -> None:
    answer = assistant.ask("In which city did the Arab Parliament release its statement about "
                           "the meeting with Gafarova?")
    assert answer.short_answer is not None and answer.short_answer.text == "Cairo"
    first = answer.citations[0]
    assert first.start <= answer.short_answer.start < answer.short_answer.end <= first.end
    # confidence is the calibrated probability that the short answer is right
    assert answer.confidence >= assistant.reader().show_model.threshold


def test_reader_refuses_what_the_articles_do_not_say(assistant) -> None:
    answer = assistant.ask("What is the population of Baku?")
    assert answer.abstained and answer.short_answer is None and answer.confidence < 0.5


def test_which_rule_refusals_stand_against_the_reader() -> None:
    """A name, number or office in no passage is overruled only by a shown span; any other
    refusal by a margin above 0; a margin at or below 0 lets every refusal stand."""
    from rag.models import Passage
    from rag.reader.answer import rules_stand

    text = "Kestria's Speaker, Ilse Brandt, opened the session on Monday."
    passages = [Passage(doc_id="a.txt", title="a", chunk_id="a.txt#0", start=0, end=len(text),
                        text=text, score=1.0, rank=1)]
    missing = "Who is Kestria's foreign minister?"  # the office is in no passage
    present = "Who is Kestria's Speaker?"
    assert rules_stand(missing, passages, margin=2.0, show=False)
    assert not rules_stand(missing, passages, margin=2.0, show=True)
    assert not rules_stand(present, passages, margin=2.0, show=False)
    assert rules_stand(present, passages, margin=0.0, show=False)
    assert rules_stand(present, passages, margin=-3.0, show=True)


QA = Path(__file__).resolve().parent.parent / "eval" / "qa.jsonl"


def test_every_short_answer_is_an_exact_slice_inside_citation_one(assistant) -> None:
    questions = [json.loads(line)["question"] for line in QA.read_text().splitlines()]
    shown = 0
    for q in questions:
        a = assistant.ask(q)
        if a.short_answer is None:
            continue
        shown += 1
        s = a.short_answer
        doc = assistant.document(s.doc_id)
        assert doc.text[s.start : s.end] == s.text
        c = a.citations[s.n - 1]
        assert s.n == 1 and c.doc_id == s.doc_id and c.start <= s.start and s.end <= c.end
    assert shown >= 3  # the decision shows few, but some (docs/reader.md: coverage)


def test_reader_setting_switches_between_model_rules_and_off(assistant) -> None:
    q = "Who is the chairman of the Arab Parliament?"
    for reader in ("model", "rules", "off"):
        other = type(assistant)(assistant.settings.with_overrides(reader=reader),
                                assistant.snapshot, assistant.embedder)
        a = other.ask(q)
        assert not a.abstained
        assert (a.short_answer is None) == (reader == "off"), reader
