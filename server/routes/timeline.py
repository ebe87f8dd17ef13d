"""`GET /v1/timeline?q=…`: dated events for a question or a name, oldest first.

Each event is one sentence cited by its exact span (`document.text[start:end] == quote`), with
the copies of its story folded into `also_in`; the stories the events belong to come beside
them (`rag.temporal.timeline`, `rag.temporal.stories`). The query string carries the options of
`/v1/search`
(`top_k`, `mode`, `as_of`, and the filters as `doc_id`, `source` — both repeatable —
`date_from`, `date_to`); a missing, empty or over-long `q` is a 422 naming `q`, a bad date one
naming its field. The response carries the `as_of` and `period` it used, like `/v1/search`.
It is answered where `server.answering` says (an answer process, else one trip to the CPU pool,
embedding included) and uses one index snapshot.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Query as QueryParam
from fastapi.responses import Response

from rag.models import Filters, Mode, SearchQuery
from rag.temporal.timeline import TIMELINE_TOP_K, Timeline
from server.answering import AnsweringDep
from server.errors import error_responses

router = APIRouter(tags=["questions"])

_FILTERS = Filters.model_fields
_QUERY = SearchQuery.model_fields


@router.get(
    "/v1/timeline",
    response_model=Timeline,
    summary="Dated events for a question or a name, oldest first, each a cited sentence",
    responses=error_responses(422, 500, 503),
)
async def timeline(
    answering: AnsweringDep,
    q: Annotated[
        str,
        QueryParam(
            min_length=1,
            description="A question or a name (1 to max_question_chars characters).",
            examples=["Speaker of Kestria's National Assembly"],
        ),
    ],
    top_k: Annotated[
        int | None,
        QueryParam(ge=1, le=50, description=f"Passages to draw from (default {TIMELINE_TOP_K})."),
    ] = None,
    mode: Annotated[Mode | None, QueryParam(description="Retrieval mode.")] = None,
    doc_id: Annotated[
        list[str] | None, QueryParam(description=_FILTERS["doc_ids"].description)
    ] = None,
    source: Annotated[
        list[str] | None, QueryParam(description=_FILTERS["sources"].description)
    ] = None,
    date_from: Annotated[
        dt.date | None, QueryParam(description=_FILTERS["date_from"].description)
    ] = None,
    date_to: Annotated[
        dt.date | None, QueryParam(description=_FILTERS["date_to"].description)
    ] = None,
    as_of: Annotated[
        dt.date | None, QueryParam(description=_QUERY["as_of"].description, examples=["2024-06-01"])
    ] = None,
) -> Any:
    filters = Filters(doc_ids=doc_id, sources=source, date_from=date_from, date_to=date_to)
    query = SearchQuery(
        question=q,
        top_k=top_k,
        mode=mode,
        filters=None if filters.is_empty() else filters,
        as_of=as_of,
    )
    found = await answering.timeline(query, field="q")
    return Response(found.json(), media_type="application/json")
