"""How to quantise the int8 engine: accuracy against the float model and CPU per question.

    .venv/bin/python bench/int8_layers.py [--sentences 400] [--rounds 7]

From the cached fp32 ONNX export of the bundled model (made on first use of `onnx` or
`onnx-int8`), it writes three variants to a temporary folder, the quantisation choices the
docs/performance.md compares:

- `all-int8`: every MatMul dynamic int8 (per-channel weights, one activation scale per tensor);
- `float-ffn`: the same, but the feed-forward down-projections of layers 0–2 left float32
  (`fine_nodes`; the default before v4);
- `blockwise-ffn`: those three MatMuls blockwise 8-bit (`MatMulNBits`, blocks of 128, int8
  activations per block) — what `onnx_engine.quantize` writes (the default, v4).

For each it prints the mean and minimum cosine, against the float model, of the mean-pooled
vectors of BBC sentences (one text per call, as the engine embeds), and the CPU milliseconds
of one forward pass per question (the load benchmark's seed questions, one thread, median of
rounds). One process, one run: compare the rows with each other.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.index_build import machine  # noqa: E402
from bench.load import SEED_QUESTIONS  # noqa: E402
from rag.embedders.onnx_engine import BLOCK, FP32, ensure_exported, fine_nodes  # noqa: E402
from rag.embedding import resolve_model  # noqa: E402
from rag.settings import Settings  # noqa: E402

BBC_CSV = ROOT.parent / "shared" / "bench" / "bbc-news.csv"


def variants(fp32: Path, out: Path) -> dict[str, Path]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger().setLevel(logging.ERROR)
    fine = fine_nodes(fp32)
    paths = {"float32": fp32}
    for name, exclude in (("all-int8", []), ("float-ffn", fine)):
        paths[name] = out / f"{name}.onnx"
        quantize_dynamic(
            fp32, paths[name], weight_type=QuantType.QInt8, per_channel=True,
            nodes_to_exclude=exclude,
        )  # fmt: skip
    nbits = MatMulNBitsQuantizer(
        onnx.load(str(paths["float-ffn"])), bits=8, block_size=BLOCK, is_symmetric=True,
        accuracy_level=4, nodes_to_include=fine,
    )  # fmt: skip
    nbits.process()
    paths["blockwise-ffn"] = out / "blockwise-ffn.onnx"
    nbits.model.save_model_to_file(str(paths["blockwise-ffn"]), use_external_data_format=False)
    return paths


def sentences(n: int) -> list[str]:
    csv.field_size_limit(sys.maxsize)
    with BBC_CSV.open(newline="", encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    out = [s for t in texts for s in re.split(r"(?<=[.!?])\s+", t) if len(s) > 20]
    return out[:n]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sentences", type=int, default=400)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()

    import onnxruntime as ort
    from tokenizers import Tokenizer

    settings = Settings()
    folder = ensure_exported(
        settings.model, resolve_model(settings.model), settings.onnx_cache, quantized=False
    )
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    texts = sentences(args.sentences)

    def vector(session: ort.InferenceSession, text: str) -> np.ndarray:
        ids = np.array([tok.encode(text).ids], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids)}  # fmt: skip
        out = session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})[0][0]
        v = out.mean(axis=0)
        return v / np.linalg.norm(v)  # type: ignore[no-any-return]

    print(f"machine: {machine()}; {len(texts)} BBC sentences; one thread", flush=True)
    print(f"  {'variant':14s} {'cos mean':>9s} {'cos min':>8s} {'CPU ms/question':>16s}")
    with tempfile.TemporaryDirectory() as tmp:
        reference: np.ndarray | None = None
        for name, path in variants(folder / FP32, Path(tmp)).items():
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            vecs = np.stack([vector(session, t) for t in texts])
            reference = vecs if reference is None else reference
            cos = (vecs * reference).sum(axis=1)
            times = []
            for _ in range(args.rounds):
                t0 = time.process_time()
                for q in SEED_QUESTIONS * 5:
                    vector(session, q)
                times.append((time.process_time() - t0) / (5 * len(SEED_QUESTIONS)) * 1000)
            print(f"  {name:14s} {cos.mean():9.5f} {cos.min():8.4f} "
                  f"{statistics.median(times):16.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
