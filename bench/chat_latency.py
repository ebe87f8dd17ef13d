"""Chat completion vs native ask: the same questions through both routes of one live server.

    .venv/bin/python bench/chat_latency.py [--rounds 3]

Builds an index over the seeds (in a temporary folder), serves it with the real app under
uvicorn on loopback, and asks every question of eval/qa.jsonl `--rounds` times through
`POST /v1/ask` and through `POST /v1/chat/completions` (non-streaming, model rag-extractive),
one request at a time, the two routes interleaved so that machine noise hits both alike.
Prints the client-side p50/p95 of each and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.index_build import machine  # noqa: E402
from rag.index.indexing import build_index  # noqa: E402
from rag.settings import Settings  # noqa: E402
from server.app import create_app  # noqa: E402
from server.testing import live_server  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(client: httpx.Client, path: str, body: dict[str, object]) -> float:
    t0 = time.perf_counter()
    r = client.post(path, json=body)
    ms = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        raise SystemExit(f"{path} answered {r.status_code}: {r.text[:200]}")
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    questions = [json.loads(x)["question"] for x in (ROOT / "eval/qa.jsonl").open()]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(seeds_dir=ROOT / "seeds", index_dir=Path(tmp) / "index")
        build_index(settings, progress=False)
        times: dict[str, list[float]] = {"ask": [], "chat": []}
        with (
            live_server(create_app(settings)) as base,
            httpx.Client(base_url=base, timeout=60) as client,
        ):
            for q in questions[:5]:  # warm-up: first-call costs (tokenizers, caches)
                timed(client, "/v1/ask", {"question": q})
                chat = {"model": "rag-extractive", "messages": [{"role": "user", "content": q}]}
                timed(client, "/v1/chat/completions", chat)
            for r in range(args.rounds):
                for i, q in enumerate(questions):
                    chat = {"model": "rag-extractive", "messages": [{"role": "user", "content": q}]}
                    order = [
                        ("ask", "/v1/ask", {"question": q}),
                        ("chat", "/v1/chat/completions", chat),
                    ]
                    if (i + r) % 2:
                        order.reverse()
                    for name, path, body in order:
                        times[name].append(timed(client, path, body))
    print(f"machine: {machine()} (shared with other jobs)")
    print(f"{len(questions)} questions × {args.rounds} rounds, sequential, hybrid, extractive")
    for name, values in times.items():
        print(
            f"  {name:5s} p50 {statistics.median(values):7.2f} ms   p95 {pct(values, 0.95):7.2f} ms"
        )
    ratio = statistics.median(times["chat"]) / statistics.median(times["ask"])
    print(f"  chat/ask p50 ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
