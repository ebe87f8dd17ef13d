"""Operations: `/health` (process alive), `/ready` (model and index loaded), `/metrics`
(Prometheus text) and the small demo page at `/`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from server.metrics import CONTENT_TYPE
from server.runtime import RuntimeDep
from server.schemas import Health, Readiness

router = APIRouter(tags=["ops"])


@router.get("/health", response_model=Health, summary="The process is alive")
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Model and index loaded",
    responses={503: {"model": Readiness, "description": "Still loading, or loading failed."}},
)
async def ready(rt: RuntimeDep) -> Any:
    if rt.assistant is None:
        state = "failed" if rt.load_error else "loading"
        body = Readiness(status=state, error=rt.load_error, watching=rt.watching)
        return JSONResponse(body.model_dump(), status_code=503)
    snap = rt.assistant.snapshot
    return Readiness(
        status="ready",
        index_version=snap.version,
        documents=len(snap.data.documents),
        chunks=len(snap.data.chunks),
        model=rt.settings.model,
        watching=rt.watching,
        answer_processes=rt.pool.live if rt.pool is not None else 0,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
async def metrics(rt: RuntimeDep) -> Response:
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE)
