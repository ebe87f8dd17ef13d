"""`GET /v1/documents` (a page of metadata) and `GET /v1/documents/{id}` (text + metadata,
and the other publications of its story: `copies`, `canonical`).

A document id is a key of the served index's table, never a path that is opened; every
citation offset refers to the `text` returned here. A document and its copies are read from
one index snapshot.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Query as QueryParam

from server.errors import ApiError, error_responses
from server.runtime import RuntimeDep
from server.schemas import DocumentDetail, DocumentInfo, DocumentPage
from server.web import matching_documents

router = APIRouter(tags=["documents"])


@router.get(
    "/v1/documents",
    response_model=DocumentPage,
    summary="List the indexed documents",
    responses=error_responses(422, 500, 503),
)
async def list_documents(
    rt: RuntimeDep,
    offset: Annotated[int, QueryParam(ge=0, description="Documents to skip.")] = 0,
    limit: Annotated[int, QueryParam(ge=1, le=1000, description="Page size.")] = 50,
    q: Annotated[
        str | None, QueryParam(max_length=200, description="Words the title, id or source contain.")
    ] = None,
) -> DocumentPage:
    docs = matching_documents(rt.ready().documents(), q)
    items = [DocumentInfo.of(d) for d in docs[offset : offset + limit]]
    return DocumentPage(total=len(docs), offset=offset, limit=limit, items=items)


@router.get(
    "/v1/documents/{doc_id:path}",
    response_model=DocumentDetail,
    summary="One document's text and metadata (citation offsets refer to this text)",
    responses=error_responses(404, 500, 503),
)
async def get_document(doc_id: str, rt: RuntimeDep) -> DocumentDetail:
    # Looked up in the index's table only: an id is a key here, never a path to open.
    snap = rt.ready().snapshot
    doc = snap.docs.get(doc_id)
    if doc is None:
        raise ApiError(404, "not_found", "no document with this id in the index")
    copies = [snap.docs[c] for c in snap.copies_of(doc_id)]
    return DocumentDetail.of(doc, copies, snap.canonical_of(doc_id))
