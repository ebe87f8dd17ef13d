"""Embedding engines: the model's forward pass behind one small protocol, one module per runtime.

`rag.embedding.Embedder` owns tokenisation, pooling and the API the rest of the project uses;
an engine only turns token ids into token embeddings. Every engine serves the same model with
the same tokenizer, so pooled vectors agree across engines to float tolerance (onnx) or
quantisation tolerance (onnx-int8). PyTorch is imported only by the torch engine and by the
one-off ONNX export; onnxruntime only by the onnx engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rag.choices import EMBED_BACKENDS

if TYPE_CHECKING:
    from tokenizers import Tokenizer

BACKENDS = EMBED_BACKENDS


class EmbeddingEngine(Protocol):
    """A transformer encoder: token ids in, token embeddings out (no pooling, no normalising)."""

    backend: str  # one of BACKENDS
    tokenizer: Tokenizer  # the model's fast tokenizer, without truncation or padding
    dim: int
    max_length: int  # the model's max_seq_length (tokens, special tokens included)

    def token_embeddings(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray
    ) -> np.ndarray:
        """(batch, seq, dim) float32 for int64 (batch, seq) inputs; thread-safe."""
        ...


def load_engine(backend: str, name: str, path: str, threads: int, cache: Path) -> EmbeddingEngine:
    """The engine for `backend` over the model at `path` (a folder, or a hub name)."""
    if backend == "torch":
        from rag.embedders.torch_engine import TorchEngine

        return TorchEngine.load(name, path, threads)
    if backend in ("onnx", "onnx-int8"):
        from rag.embedders.onnx_engine import OnnxEngine

        return OnnxEngine.load(name, path, threads, cache, quantized=backend == "onnx-int8")
    raise ValueError(f"unknown embedding backend {backend!r}; expected one of {BACKENDS}")
