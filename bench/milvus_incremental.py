"""Milvus writes of a one-article change: incremental (shared collection) vs a full collection.

    .venv/bin/python bench/milvus_incremental.py [--copies 0] [--repeat 3]

Two index folders over the same articles (the seeds, plus `--copies` renamed copies of them
with a line added so their chunks differ), both `RAG_STORE=milvus` in Milvus Lite. In each,
one article is changed and the index rebuilt: in A with the same settings (the new version
extends the previous one's collection: only that article's rows are written), in B with
another collection prefix, which makes the same build write every row into a new collection
(from the stored vectors; the same one article is embedded in both). Prints rows written and
the time of the Milvus write (`MilvusIndex.save`) and of the whole build, per repeat. Not a
test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.index_build import machine  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.engines.milvus_index import MilvusIndex  # noqa: E402
from rag.index.indexing import build_index  # noqa: E402
from rag.settings import Settings  # noqa: E402

SAVES: list[tuple[float, dict[str, int]]] = []
_save = MilvusIndex.save


def _timed_save(self: MilvusIndex, folder: Path) -> None:
    t0 = time.perf_counter()
    _save(self, folder)
    SAVES.append((time.perf_counter() - t0, dict(self.written)))


MilvusIndex.save = _timed_save  # type: ignore[method-assign]


def corpus(dest: Path, copies: int) -> None:
    shutil.copytree(ROOT / "seeds", dest)
    seeds = sorted(dest.iterdir())
    for i in range(copies):
        src = seeds[i % len(seeds)]
        (dest / f"copy-{i:03d}.txt").write_text(src.read_text() + f"\n\nCopy number {i}.\n")


def run(base: Path, embedder: Embedder, prefix: str, repeat: int, copies: int) -> list[Any]:
    seeds, index = base / "seeds", base / "index"
    corpus(seeds, copies)
    settings = Settings(seeds_dir=seeds, index_dir=index, store="milvus", keep_versions=2)
    build_index(settings, embedder=embedder, progress=False)
    changed = seeds / "001_d02ccc4d9c9c05cf.txt"
    out = []
    for i in range(repeat):
        changed.write_text(changed.read_text() + f"\n\nUpdate {i} came on Friday.\n")
        s = settings.with_overrides(milvus_collection=f"{prefix}{i}" if prefix else "rag")
        SAVES.clear()
        report = build_index(s, embedder=embedder, progress=False)
        ((save_s, written),) = SAVES
        out.append((report.chunks, written, save_s, report.seconds))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    embedder = Embedder.load(Settings())
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        for label, prefix in [("A incremental", ""), ("B full collection", "full")]:
            rows = run(Path(tmp) / label[0], embedder, prefix, args.repeat, args.copies)
            for chunks, written, save_s, build_s in rows:
                print(
                    f"{label}: {chunks} chunks, inserted {written['inserted']}, retired "
                    f"{written['retired']}; Milvus write {save_s * 1000:.0f} ms, "
                    f"build {build_s * 1000:.0f} ms"
                )
            save_ms = statistics.median(r[2] for r in rows) * 1000
            build_ms = statistics.median(r[3] for r in rows) * 1000
            print(f"{label}: median Milvus write {save_ms:.0f} ms, build {build_ms:.0f} ms")


if __name__ == "__main__":
    main()
