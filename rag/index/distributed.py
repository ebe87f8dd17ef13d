"""Chunk and embed on Ray: a Ray Data pipeline whose results feed the normal index writer.

`ray_embed_stream(settings, docs)` runs `map_batches` over the documents to (re-)embed with
an actor pool: each actor loads the model once and runs the very code of a local build
(`rag.index.embed_stream.embed_stream`) on its batch, so chunk ids, offsets and sentence spans are
identical and vectors equal within float tolerance. Results come back in the order of `docs`
(document-id order), as `(Document, EmbeddedDoc)` pairs — the same seam as a local build.

Invariants:
- Nothing is written here: the caller streams the pairs into a temporary version
  (`rag.index.writer.write_stream`) that goes live only after the stream is exhausted, so a failed
  or interrupted Ray run never leaves a half-written index.
- A killed actor is restarted by Ray Data and its batch retried (its actor-pool defaults);
  when that is not possible the build fails with one line naming the Ray error.
- An address that does not answer fails in seconds (a TCP probe before `ray.init`), not after
  Ray's own minutes of retries.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from rag.errors import IndexStoreError
from rag.models import Document
from rag.settings import Settings

logger = logging.getLogger(__name__)

DOCS_PER_BATCH = 8  # documents per map_batches call (each actor embeds their chunks at once)
PROBE_TIMEOUT_S = 5.0


class RayEmbedStream:
    """Iterable of `(Document, EmbeddedDoc)` in the order given; `dim` and `max_length` of the
    model are known once the first result arrived."""

    def __init__(self, settings: Settings, docs: Sequence[Document]) -> None:
        self.settings = settings
        self.docs = list(docs)
        self.dim = 0
        self.max_length = 0
        self.seconds = 0.0

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        if not self.docs:
            return
        t0 = time.perf_counter()
        init_ray(self.settings)
        by_id = {d.id: d for d in self.docs}
        pending: dict[str, Any] = {}
        order = iter(self.docs)
        want = next(order, None)
        try:
            for row in self._dataset().iter_rows():
                if time.perf_counter() - t0 > self.settings.ray_timeout:
                    raise IndexStoreError(
                        f"the Ray build took longer than RAG_RAY_TIMEOUT="
                        f"{self.settings.ray_timeout:g}s; nothing was written"
                    )
                self.dim, self.max_length = int(row["dim"]), int(row["max_length"])
                pending[row["doc_id"]] = pickle.loads(row["payload"])
                while want is not None and want.id in pending:
                    yield by_id[want.id], pending.pop(want.id)
                    want = next(order, None)
        except IndexStoreError:
            raise
        except Exception as exc:  # Ray raises RayTaskError, ActorDiedError, … wrapping the cause
            raise IndexStoreError(f"the Ray build failed: {_one_line(exc)}") from exc
        if want is not None:
            raise IndexStoreError(f"the Ray build returned no result for {want.id}")
        self.seconds = time.perf_counter() - t0

    def _dataset(self) -> Any:
        import ray.data

        s = self.settings
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        items = [{"doc": pickle.dumps(d)} for d in self.docs]
        blocks = min(len(items), max(s.ray_actors, -(-len(items) // DOCS_PER_BATCH)))
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        return ds.map_batches(
            EmbedActor,
            fn_constructor_kwargs={"settings_json": s.model_dump_json()},
            batch_size=DOCS_PER_BATCH,
            batch_format="pandas",
            concurrency=s.ray_actors,
            num_cpus=s.ray_cpus_per_actor,
            num_gpus=s.ray_gpus_per_actor,
        )  # Ray Data restarts a dead actor and retries its batch (max_restarts=-1 by default)


class EmbedActor:
    """One Ray actor: the model loaded once, then `embed_stream` on each batch."""

    def __init__(self, settings_json: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from rag.embedding import Embedder

        self.settings = Settings.model_validate_json(settings_json)
        self.embedder = Embedder.load(self.settings)

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        from rag.index.embed_stream import embed_stream

        docs = [pickle.loads(b) for b in batch["doc"]]
        fresh = dict(
            (d.id, e) for d, e in embed_stream(self.settings, docs, self.embedder, progress=False)
        )
        return pd.DataFrame(
            {
                "doc_id": [d.id for d in docs],
                "payload": [pickle.dumps(fresh[d.id]) for d in docs],
                "dim": [self.embedder.dim] * len(docs),
                "max_length": [self.embedder.max_length] * len(docs),
            }
        )


def ray_embed_stream(settings: Settings, docs: Sequence[Document]) -> RayEmbedStream:
    """Chunk and embed `docs` on Ray; iterate for `(Document, EmbeddedDoc)` in `docs` order."""
    return RayEmbedStream(settings, docs)


def init_ray(settings: Settings) -> None:
    """Connect to (or start, for `local`) Ray once per process; one clear error otherwise."""
    import ray

    if ray.is_initialized():
        return
    address = settings.ray_address or "local"
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"ray\..*")
    try:
        if address == "local":
            start_local_ray(settings.ray_num_cpus)
        else:
            local_ip = probe(address)
            ray.init(
                address=address,
                log_to_driver=False,
                configure_logging=False,
                _node_ip_address=local_ip,  # the interface that reaches the head (loopback too)
            )
    except IndexStoreError:
        raise
    except Exception as exc:
        raise IndexStoreError(f"cannot start or reach Ray at {address}: {_one_line(exc)}") from exc


def probe(address: str) -> str | None:
    """Fail fast when nothing listens at `host:port`; the local IP that reached it."""
    if address == "auto":
        return None
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise IndexStoreError(f"Ray address {address!r} is not host:port, ray://host:port or local")
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S) as sock:
            return str(sock.getsockname()[0])
    except OSError as exc:
        raise IndexStoreError(f"cannot reach Ray at {address}: {exc.strerror or exc}") from None


LOCAL_START_TRIES = 2


def start_local_ray(num_cpus: int | None) -> None:
    """Start a local Ray instance for this process, a second time if the first start fails.

    On a loaded 2-core machine a local start now and then ends in "The current node timed out
    during startup": the raylet never registered with the GCS (no raylet log at all; seen in 2
    of about 8 full test runs). That is Ray's own start-up, not the user's doing, so it is
    retried once from scratch before the error reaches the user.
    """
    import ray

    for attempt in range(1, LOCAL_START_TRIES + 1):
        try:
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            return
        except Exception as exc:
            ray.shutdown()  # whatever part of the node did start
            if attempt == LOCAL_START_TRIES:
                raise
            logger.warning("local Ray did not start (%s); trying again", _one_line(exc))


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = next((ln for ln in text if ln.strip()), exc.__class__.__name__)
    return f"{exc.__class__.__name__}: {first.strip()[:300]}"
