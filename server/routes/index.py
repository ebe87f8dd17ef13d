"""`POST /v1/index/rebuild` (authorised) and `GET /v1/index/status`.

A rebuild needs the admin bearer token when `RAG_ADMIN_TOKEN` is set (compared in constant
time); without one, only loopback clients may start it.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rag.settings import Settings
from server.errors import ApiError, error_responses
from server.runtime import RuntimeDep
from server.schemas import IndexStatus, RebuildAccepted

router = APIRouter(tags=["index"])
bearer = HTTPBearer(auto_error=False, description="Required when RAG_ADMIN_TOKEN is set.")


@router.post(
    "/v1/index/rebuild",
    status_code=202,
    response_model=RebuildAccepted,
    summary="Start an incremental rebuild from the articles folder",
    responses=error_responses(401, 403, 413, 500, 503),
)
async def rebuild(
    request: Request,
    rt: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> RebuildAccepted:
    _authorize(request, credentials, rt.settings)
    rt.ready()
    assert rt.rebuilder is not None
    return RebuildAccepted(status=rt.rebuilder.request("api"))


@router.get(
    "/v1/index/status",
    response_model=IndexStatus,
    summary="The served index version and the last rebuild's result",
    responses=error_responses(500, 503),
)
async def index_status(rt: RuntimeDep) -> IndexStatus:
    assistant = rt.ready()
    assert rt.rebuilder is not None
    running, queued, completed, last = rt.rebuilder.state()
    snap = assistant.snapshot
    return IndexStatus(
        serving_version=snap.version,
        documents=len(snap.data.documents),
        chunks=len(snap.data.chunks),
        running=running,
        queued=queued,
        watching=rt.watching,
        completed=completed,
        last=last,
        reload_error=assistant.last_reload_error,
    )


def _authorize(
    request: Request, credentials: HTTPAuthorizationCredentials | None, settings: Settings
) -> None:
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if token:
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "a valid `Authorization: Bearer <token>` header is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return
    host = request.client.host if request.client else ""
    if not _is_loopback(host):
        raise ApiError(403, "forbidden", "without an admin token only loopback clients may rebuild")


def _is_loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
