"""Connections to Milvus: one client per URI and process, Milvus Lite files or servers.

The same client code talks to Milvus Lite (a local `*.db` path; pure Python, in-process, one
process per file) and to a Milvus server (`http://host:19530`). pymilvus is imported when a
client is first made; what is stored where is `rag.engines.milvus_index`.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from rag.errors import IndexStoreError

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def is_lite(uri: str | None) -> bool:
    """Whether `uri` (unset: the default `<index>/milvus.db`) is a Milvus Lite file, served
    in-process and by one process at a time, rather than a server address."""
    return not uri or "://" not in uri


def resolve_uri(uri: str | None, index_dir: Path) -> str:
    """A server URI as given; a local path made absolute (default `<index_dir>/milvus.db`)."""
    if not is_lite(uri):
        return str(uri)
    path = Path(uri) if uri else index_dir / "milvus.db"
    if path.suffix != ".db":
        raise IndexStoreError(
            f"RAG_MILVUS_URI {uri!r} is neither a server URI (http://host:19530) "
            "nor a Milvus Lite file ending in .db"
        )
    return str(path.resolve())


def connect(uri: str, timeout: float = 10.0) -> Any:
    """One client per URI and process (Milvus Lite serves a file from a thread in-process)."""
    with _clients_lock:
        if uri in _clients:
            return _clients[uri]
        from pymilvus import MilvusClient

        if is_lite(uri):
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            _check_lite_lock(Path(uri))
            for name in ("milvus_lite.server_manager", "grpc._server"):
                logging.getLogger(name).setLevel(logging.CRITICAL)  # we report errors ourselves
        try:
            client = MilvusClient(uri=uri, timeout=timeout)
        except Exception as exc:  # pymilvus raises MilvusException and assorted others
            raise IndexStoreError(f"cannot reach Milvus at {uri}: {reason(exc)}") from exc
        _clients[uri] = client
        return client


def disconnect(uri: str) -> None:
    """Close this process's client of `uri` (and stop its Milvus Lite server, which lets
    another process open the file)."""
    with _clients_lock:
        client = _clients.pop(uri, None)
    if client is not None:
        client.close()
    if is_lite(uri):
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


def _check_lite_lock(path: Path) -> None:
    """Milvus Lite serves a file from one process only; say so instead of a vague failure."""
    import fcntl

    lock = path / "LOCK"
    if not lock.is_file():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        raise IndexStoreError(
            f"Milvus Lite file {path} is open in another process (Milvus Lite allows one "
            "process per file): rebuild from the serving process (`rag serve --watch`, "
            "POST /v1/index/rebuild) or use a Milvus server (RAG_MILVUS_URI=http://host:19530)"
        ) from None
    finally:
        os.close(fd)


def reason(exc: Exception) -> str:
    """A pymilvus error in one line (at most 300 characters)."""
    text = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
    return " ".join(str(text).split())[:300]
