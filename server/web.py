"""The web app: its page and assets, and the small JSON the page needs to draw itself.

The page is plain files in `server/static/` (HTML, CSS, ES modules; no build step, no CDN), so
it works offline. Only files named in `ASSETS` are served: a request path is a key in that table,
never a path joined onto the folder. Every page response carries a Content-Security-Policy that
allows scripts, styles and requests from this origin only, a second line of defence behind the
script's rule that article text is only ever inserted as text.

`GET /v1/config` tells the page what this server offers (which answerers are configured, the
defaults, and whether this client may start a rebuild); it works while the model is loading.
`matching_documents` is the filter behind `GET /v1/documents?q=`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from rag.choices import ANSWERERS, MODES, AnswererName, Mode
from rag.models import Document
from rag.settings import Settings
from server.middleware import is_loopback

STATIC_DIR = Path(__file__).parent / "static"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# The page's scripts (ES modules) and stylesheet, listed once at import: name -> media type.
ASSETS = {p.name: _TYPES[p.suffix] for p in STATIC_DIR.iterdir() if p.suffix in _TYPES}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter()
RebuildAccess = Literal["allowed", "token", "forbidden"]


class WebConfig(BaseModel):
    """What the page may offer this client."""

    answerers: list[AnswererName] = Field(
        description="Answerers this server can use (llm only when RAG_LLM_BASE_URL is set)."
    )
    default_answerer: AnswererName
    modes: list[Mode]
    default_mode: Mode
    default_top_k: int
    max_top_k: int = 50
    max_question_chars: int
    rebuild: RebuildAccess = Field(
        description="allowed: this client may POST /v1/index/rebuild as it is (loopback, no "
        "admin token set); token: it needs the admin token; forbidden: it may not."
    )


def answerers(settings: Settings) -> list[AnswererName]:
    """The answerers this server can use: the LLM only when one is configured."""
    return [a for a in ANSWERERS if a != "llm" or settings.llm_base_url]


def rebuild_access(settings: Settings, host: str) -> RebuildAccess:
    """Mirrors the rebuild route's rule: the admin token when one is set, else loopback only."""
    if settings.admin_token and settings.admin_token.get_secret_value():
        return "token"
    return "allowed" if is_loopback(host) else "forbidden"


@router.get(
    "/v1/config",
    response_model=WebConfig,
    summary="What this server offers the web page (answerers, defaults, rebuild access)",
    tags=["ops"],
)
async def config(request: Request) -> WebConfig:
    settings: Settings = request.app.state.runtime.settings
    offered = answerers(settings)
    default = settings.answerer if settings.answerer in offered else "extractive"
    return WebConfig(
        answerers=offered,
        default_answerer=default,
        modes=list(MODES),
        default_mode=settings.mode,
        default_top_k=settings.top_k,
        max_question_chars=settings.max_question_chars,
        rebuild=rebuild_access(settings, request.client.host if request.client else ""),
    )


@router.get("/", include_in_schema=False)
async def home() -> Response:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@router.get("/static/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, "no such asset")
    return FileResponse(
        STATIC_DIR / name,
        media_type=media_type,
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


def matching_documents(docs: Sequence[Document], q: str | None) -> Sequence[Document]:
    """Documents whose title, id or source contains every word of `q` (case-insensitive)."""
    words = (q or "").casefold().split()
    if not words:
        return docs
    return [
        d
        for d in docs
        if all(w in f"{d.title}\n{d.id}\n{d.source or ''}".casefold() for w in words)
    ]
