"""Log what the reader sees and finds for every question of a set: the rows the reader's
decision (`rag/reader/decision.py`) is fitted on (validation articles) and measured on.

Usage (from the repository root):

    .venv/bin/python bench/reader_rows.py validation --out bench/out/rows-validation.json
    .venv/bin/python bench/reader_rows.py ../shared/bench/squad2-dev-3articles.json --out …
    .venv/bin/python bench/reader_rows.py eval/qa.jsonl --out …      # against the seeds' index

`validation` is the 8 articles `rag reader train` held out of the training file (never an
evaluation article), among the BBC distractors, as in `bench/reader_calibrate.py`. Each row holds
the question, its gold answers, the rules' verdict (abstain, short answer; whether a name,
number or office of the question is in no passage), and per read sentence
(the best `--windows`, `RAG_READER_WINDOWS` by default): its retrieval scores and the reader's
best span, margin and probability; and the best span's decision features
(`rag.reader.decision.features`), text and SQuAD F1 against the gold answers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def validation_file(data: Path, n_val: int, target: Path) -> int:
    """Write the validation articles of `data` as a SQuAD file; returns its question count."""
    import gzip

    from rag.reader.data import load_articles, split_by_title

    _, val = split_by_title(load_articles(data), n_val)
    titles = {a.title for a in val}
    with gzip.open(data, "rt", encoding="utf-8") if data.suffix == ".gz" else open(data) as fh:
        raw = json.load(fh)
    raw["data"] = [a for a in raw["data"] if a["title"] in titles]
    target.write_text(json.dumps(raw))
    return sum(len(p["qas"]) for a in raw["data"] for p in a["paragraphs"])


def rows_of(path: Path, args: argparse.Namespace) -> list[dict]:
    from rich.console import Console

    from rag.answer.answering import extractive_answer
    from rag.answer.short_answer import analyse, missing_terms
    from rag.assistant import Assistant
    from rag.embedding import Embedder
    from rag.evaluation.corpora import open_eval_set
    from rag.evaluation.metrics import squad_f1
    from rag.evaluation.runner import EvalConfig
    from rag.reader.answer import read
    from rag.reader.decision import features
    from rag.settings import load_settings

    settings = load_settings(reader="model")
    embedder = Embedder.load(settings)
    squad = path.suffix == ".json"
    config = EvalConfig(distractors=args.distractors if squad else None,
                        corpus_dir=args.corpus_dir if squad else None)
    rows = []
    with open_eval_set(path, config, settings, embedder, Console(stderr=True)) as (es, fs):
        assistant = Assistant.open(settings=fs, embedder=embedder)
        reader, snap = assistant.reader(), assistant.snapshot
        for q in es.questions:
            qvec = assistant.embed([q.question])[0]
            passages = assistant.search(q.question, query_vector=qvec).passages
            reading = read(snap, q.question, qvec, passages, reader,
                           windows=args.windows or fs.reader_windows)
            rules = extractive_answer(snap, q.question, qvec, passages,
                                      max_sentences=fs.answer_sentences,
                                      threshold=fs.abstain_threshold, scored=reading.scored)
            wins = []
            for span in reading.spans:
                w = reading.windows[span.window]
                doc_id, a, b = reading.offsets(span)
                wins.append({
                    "window": span.window, "doc_id": doc_id, "start": a, "end": b,
                    "text": snap.docs[doc_id].text[a:b], "margin": span.margin,
                    "prob": span.prob, "sentence": snap.docs[doc_id].text[
                        w.sentence.start:w.sentence.end],
                    "score": w.sentence.score, "semantic": w.sentence.semantic,
                    "lexical": w.sentence.lexical, "passage_rank": w.sentence.passage_rank,
                })
            best = reading.best()
            best_text = ""
            if best is not None:
                doc_id, a, b = reading.offsets(best)
                best_text = snap.docs[doc_id].text[a:b]
            rows.append({
                "id": q.id, "question": q.question, "answers": list(q.answers),
                "answerable": q.answerable and bool(q.answers), "gold_docs": list(q.doc_ids),
                "rules_abstained": rules.abstained,
                "rules_missing": bool(missing_terms(analyse(q.question),
                                                    [p.text for p in passages])),
                "rules_short": rules.short_answer.text if rules.short_answer else None,
                "top_score": reading.scored[0].score if reading.scored else None,
                "windows": wins,
                "best": best_text if best else None,
                "features": features(best, reading.spans, best_text) if best else None,
                "f1": squad_f1(best_text, q.answers) if best and q.answers else 0.0,
            })
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("set", help="'validation', a SQuAD .json file, or a JSON Lines eval file")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=SHARED / "reader" / "squad-train.json.gz")
    p.add_argument("--distractors", type=Path, default=SHARED / "bench" / "bbc-news.csv")
    p.add_argument("--corpus-dir", type=Path, default=ROOT / "bench" / "out" / "reader-cal")
    p.add_argument("--windows", type=int, default=None)
    args = p.parse_args(argv)
    if args.set == "validation":
        with tempfile.TemporaryDirectory() as tmp:
            squad = Path(tmp) / "reader-validation.json"
            validation_file(args.data, 8, squad)
            rows = rows_of(squad, args)
    else:
        rows = rows_of(Path(args.set), args)
    args.out.write_text(json.dumps(rows))
    print(f"{len(rows)} rows → {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
