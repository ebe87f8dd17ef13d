"""`rag eval`: measure retrieval, answers, citations, abstention and latency on question sets.

Modules, from pure to impure:
- `metrics`: pure metric functions and the per-question record (standard library only, so
  `eval/check_qa.py` imports its answer normalisation under a bare `python3`);
- `registry`: the one table of metrics (`METRICS`): summary key, table label, format and
  threshold flag of each; the summary, the table, the thresholds and the CLI flags derive
  from it;
- `corpora`: eval sets — `eval/qa.jsonl`-style questions, SQuAD JSON and `--distractors`;
- `report`: the printed tables and the JSON report;
- `runner`: `run_eval(EvalConfig, Settings)`, asking every question through the Assistant.

This package imports nothing heavy on import; the runner loads the model when it runs.
"""
