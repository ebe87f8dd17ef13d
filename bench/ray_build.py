"""Ray build vs local build on the same corpus, in one run: throughput and overhead ratio.

    .venv/bin/python bench/ray_build.py [--csv ../shared/bench/bbc-news.csv] [--limit 200]
        [--actors 2] [--address local]

Builds one index locally (model loaded once, in this process, as `rag index` does) and one
with `ray_address` (an in-process Ray with `--actors` embedding actors, each loading the model
once; or a cluster address), from the same articles. Both are full builds timed end to end
(Ray: including `ray.init`, actor start-up and model loads, which is what a user waits for),
and the Ray stage alone. Prints chunks/s, the ratio, and per-actor throughput, the figure
docs/scale.md projects from. Checks the two indexes hold the same chunks. Not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from bench.index_build import machine, make_corpus  # noqa: E402
from rag.index import store  # noqa: E402
from rag.index.indexing import build_index  # noqa: E402
from rag.settings import Settings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=ROOT.parent / "shared/bench/bbc-news.csv")
    ap.add_argument("--limit", type=int, default=200, help="articles from the CSV")
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--address", default="local")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rag-ray-bench-") as tmp:
        base = Path(tmp)
        n_docs = make_corpus(args.csv, base / "seeds", 1, args.limit)
        local = Settings(seeds_dir=base / "seeds", index_dir=base / "local")
        on_ray = local.with_overrides(
            index_dir=base / "ray",
            ray_address=args.address,
            ray_actors=args.actors,
            ray_num_cpus=max(args.actors, os.cpu_count() or 1),
        )
        t0 = time.perf_counter()
        rep_local = build_index(local, progress=False)
        t_local = time.perf_counter() - t0
        t0 = time.perf_counter()
        rep_ray = build_index(on_ray, progress=False)
        t_ray = time.perf_counter() - t0
        _, pa = store.version_path(local.index_dir)
        _, pb = store.version_path(on_ray.index_dir)
        same = [c.id for c in store.read_data(pa).chunks] == [
            c.id for c in store.read_data(pb).chunks
        ]
    n = rep_local.chunks
    print(f"machine: {machine()} (shared with other agents; figures are noisy)")
    print(f"corpus: {n_docs} BBC articles, {n} chunks; Ray: {args.address}, {args.actors} actors")
    print(f"local build : {t_local:7.1f} s  {n / t_local:6.1f} chunks/s (model load included)")
    print(f"ray build   : {t_ray:7.1f} s  {n / t_ray:6.1f} chunks/s (ray.init, actors included)")
    print(f"overhead ratio ray/local: {t_ray / t_local:.2f}×   same chunks: {same}")
    print(f"per-actor throughput: {n / t_ray / args.actors:.1f} chunks/s/actor")
    assert rep_ray.chunks == n


if __name__ == "__main__":
    main()
