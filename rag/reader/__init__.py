"""The reader: a small extractive QA model, trained here, that finds the short answer.

A MiniLM-L6 encoder (initialised from the embedding model the project installs) with a start/end
span head; the `[CLS]` position is the "no answer" span (SQuAD 2.0 style). It reads
`[CLS] question [SEP] window [SEP]`, where a window is a few whole sentences of one document.

- `data.py`: SQuAD-format training data → sentence windows (answer windows, the unanswerable
  questions, and windows of the same article without the answer) → token features with labels.
- `spans.py`: the one span decoder, shared by validation (torch) and serving (ONNX Runtime).
- `train.py`: `rag reader train` (fixed seed, resumable checkpoints, a validation report).
- `export.py`: ONNX export with int8 weights; the word embeddings stay in the base model's package.
- `runtime.py`: `Reader`, the ONNX Runtime session the answerer uses.

Invariant: every span the reader returns is a character span of the window it read, so the
caller's `document.text[start:end] == text` holds after adding the window's offset.
"""
