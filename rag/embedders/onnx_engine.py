"""The ONNX Runtime engine: the same model exported once to ONNX (and int8-quantised), cached.

At first use the model folder's transformer is exported with `torch.onnx.export` (token
embeddings out; pooling stays in `rag.embedding`, shared by every engine), and for `onnx-int8`
quantised with `onnxruntime.quantization.quantize_dynamic` (int8 weights with per-channel
scales, one dynamic activation scale per tensor). The feed-forward down-projections of the first
half of the layers, whose inputs are the widest-ranging activations, get finer activation
scales instead: `MatMulNBits` with 8-bit weights and activations quantised per block of 128
(`accuracy_level` 4). That keeps the accuracy of leaving them float32 (≈ 40 % less error than
all per-tensor int8) at less CPU than float32 (see `fine_nodes`, `quantize`). Both land in
`<cache>/<key>/` with the tokenizer and a meta.json, written to a temporary folder and renamed
into place, so a killed export leaves nothing half-written and concurrent processes at worst
export twice. The key hashes the model's name and the size and mtime of every file in its
folder plus `EXPORT_VERSION`, so an edited model re-exports. Nothing is downloaded; later loads
import neither torch nor sentence-transformers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Self

import numpy as np

from rag.errors import RagError

logger = logging.getLogger(__name__)

EXPORT_VERSION = 1
FP32, INT8 = "model.onnx", "model-int8-v4.onnx"  # v4: early feed-forward outputs blockwise 8-bit
BLOCK = 128  # activation/weight block of the finely quantised MatMuls
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def cache_key(name: str, path: str) -> str:
    """Hash of the model's identity: its name and every file's (relative path, size, mtime)."""
    h = hashlib.sha256(f"{EXPORT_VERSION}\0{name}\0".encode())
    folder = Path(path)
    if folder.is_dir():
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:16]


def export_model(name: str, path: str, target: Path) -> None:
    """Export the transformer at `path` to `target/model.onnx` with its tokenizer and meta."""
    import torch

    from rag.embedders.torch_engine import load_sentence_transformer

    model = load_sentence_transformer(name, path)
    encoder = model[0].auto_model.eval()

    class _Tokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.int64)
    axes = {k: {0: "batch", 1: "tokens"} for k in (*INPUTS, "token_embeddings")}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for any input
        torch.onnx.export(
            _Tokens(),
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(target / FP32),
            input_names=list(INPUTS),
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    (target / "tokenizer.json").write_text(model.tokenizer.backend_tokenizer.to_str())
    meta = {
        "model": name,
        "dim": int(model.get_embedding_dimension()),
        "max_length": int(model.max_seq_length),
        "export_version": EXPORT_VERSION,
        "torch": torch.__version__,
    }
    (target / "meta.json").write_text(json.dumps(meta, indent=2))


_FFN_OUT = re.compile(r"layer\.(\d+)/output/dense/MatMul$")


def fine_nodes(model_path: Path) -> list[str]:
    """The MatMuls quantised blockwise rather than per tensor: the feed-forward down-projections
    of the first half of the layers (BERT-style exports name them
    `…/layer.N/output/dense/MatMul`, as opposed to `…/attention/output/dense/…`). Their input is
    the GELU output, whose range makes 8-bit activation scales coarsest, and the error made
    early is carried through every later layer.
    Measured with these nodes left float32 (mean cosine to the float model on 300 BBC
    sentences; SQuAD + 928 BBC hybrid hit@1 / MRR / recall@200w, torch = .791 / .861 / .903):
    all int8 0.9927, .782 / .857 / .907; layers 0–2 float 0.9954, .787 / .858 / .901 at ≈ 26 %
    more CPU; all six float 0.9958, .787 / .859 / .905 at ≈ 45 % more; layers 3–5 float 0.9932.
    Blockwise 8-bit instead of float32 for layers 0–2 (`bench/int8_layers.py`): the same
    cosine (0.99557 against 0.99563) with 17 % less CPU per question; SQuAD + BBC .791 / .860 /
    .901. Empty for a model whose nodes are named otherwise (then everything is quantised per
    tensor)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    found = [
        (int(m.group(1)), n.name)
        for n in model.graph.node
        if n.op_type == "MatMul" and "/attention/" not in n.name
        for m in [_FFN_OUT.search(n.name)]
        if m is not None
    ]
    half = (len(found) + 1) // 2
    return [name for layer, name in found if layer < half]


def quantize(folder: Path) -> None:
    """Write the int8 model beside `model.onnx`: dynamic int8 quantisation of the weights with
    per-tensor activation scales, except `fine_nodes`, which become blockwise 8-bit
    `MatMulNBits` (weights and activations scaled per block of `BLOCK` along the inner axis)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # both quantisers log progress through the root logger
    tmp = folder / f".{INT8}.tmp-{os.getpid()}"
    try:
        fine = fine_nodes(folder / FP32)
        # per-channel scales: cosine to the float model ≥ 0.99 (per-tensor: ≈ 0.94 on news text)
        quantize_dynamic(
            folder / FP32,
            tmp,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=fine,
        )
        if fine:
            nbits = MatMulNBitsQuantizer(
                onnx.load(str(tmp)),
                bits=8,
                block_size=BLOCK,
                is_symmetric=True,
                accuracy_level=4,  # int8 products of blockwise-quantised activations
                nodes_to_include=fine,
            )
            nbits.process()
            nbits.model.save_model_to_file(str(tmp), use_external_data_format=False)
        os.replace(tmp, folder / INT8)
    finally:
        tmp.unlink(missing_ok=True)
        root.setLevel(level)


def ensure_exported(name: str, path: str, cache: Path, quantized: bool) -> Path:
    """The cache folder holding this model's ONNX files, exporting them on first use."""
    folder = cache.expanduser() / cache_key(name, path)
    if not (folder / "meta.json").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        logger.warning("exporting embedding model %s to ONNX in %s (once)", name, folder)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
        try:
            export_model(name, path, tmp)
            try:
                os.rename(tmp, folder)
            except OSError:  # another process finished first: use its export
                if not (folder / "meta.json").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if quantized and not (folder / INT8).exists():
        logger.warning("quantising %s to int8 in %s (once)", name, folder)
        quantize(folder)
    return folder


class OnnxEngine:
    def __init__(self, session: Any, tokenizer: Any, meta: dict[str, Any], backend: str) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.dim = int(meta["dim"])
        self.max_length = int(meta["max_length"])
        self.backend = backend
        self._inputs = [i.name for i in session.get_inputs()]

    @classmethod
    def load(cls, name: str, path: str, threads: int, cache: Path, quantized: bool) -> Self:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise RagError("RAG_EMBED_BACKEND=onnx needs onnxruntime: run `make setup`") from exc
        from tokenizers import Tokenizer

        try:
            folder = ensure_exported(name, path, cache, quantized)
        except OSError as exc:
            raise RagError(f"cannot write the ONNX export cache at {cache}: {exc}") from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between calls: the cores are shared with FAISS, BM25 and the server
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model_file = folder / (INT8 if quantized else FP32)
        session = ort.InferenceSession(str(model_file), opts, providers=["CPUExecutionProvider"])
        meta = json.loads((folder / "meta.json").read_text())
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        engine = cls(session, tokenizer, meta, "onnx-int8" if quantized else "onnx")
        ones = np.ones((1, 4), np.int64)
        engine.token_embeddings(ones, ones, np.zeros_like(ones))  # warm-up
        return engine

    def token_embeddings(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray
    ) -> np.ndarray:
        feed = dict(zip(INPUTS, (input_ids, attention_mask, token_type_ids), strict=True))
        out = self.session.run(None, {k: feed[k] for k in self._inputs})[0]
        return np.asarray(out, dtype=np.float32)
