"""The PyTorch engine: sentence-transformers' model, called directly (no `encode` bookkeeping).

The only embedding module that imports torch at query time. Torch modules are not re-entrant
across threads, so calls are serialised by a lock.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from rag.errors import RagError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def load_sentence_transformer(name: str, path: str) -> SentenceTransformer:
    """The sentence-transformers model at `path` on CPU, in eval mode, with a clear error."""
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(path, device="cpu")
    except OSError as exc:
        raise RagError(
            f"cannot load embedding model {name!r}: {exc.__class__.__name__} "
            "(offline? use the bundled default or a local folder)"
        ) from exc
    model.eval()
    return model


class TorchEngine:
    backend = "torch"

    def __init__(self, model: SentenceTransformer) -> None:
        self.model = model
        self.tokenizer: Any = model.tokenizer.backend_tokenizer
        self.dim = int(model.get_embedding_dimension())
        self.max_length = int(model.max_seq_length)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, name: str, path: str, threads: int) -> Self:
        import torch

        torch.set_num_threads(threads)
        model = load_sentence_transformer(name, path)
        model.encode(["warm-up"], show_progress_bar=False)  # pays one-off setup costs
        return cls(model)

    def token_embeddings(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray
    ) -> np.ndarray:
        import torch

        features = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention_mask),
            "token_type_ids": torch.from_numpy(token_type_ids),
        }
        with self._lock, torch.inference_mode():
            return self.model[0](features)["token_embeddings"].float().numpy()
