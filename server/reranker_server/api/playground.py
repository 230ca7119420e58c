"""`GET /playground`: a page to try the reranker in a browser (query, passages, ranked scores).

One self-contained HTML file shipped in the package (no CDN, fonts or scripts from elsewhere:
clusters are often air-gapped). It calls this server's own `/v1/rerank`, so the API key, when one
is set, is typed on the page and sent as a bearer token. `--playground false` (PLAYGROUND=false)
turns the route off (404).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from reranker_contract import PLAYGROUND_PATH
from reranker_server.api.errors import APIError
from reranker_server.api.service import get_state

router = APIRouter()

# The page needs nothing but itself and this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'"
)


@lru_cache(maxsize=1)
def page() -> str:
    """The playground's HTML."""
    return (
        resources.files("reranker_server.api").joinpath("static/playground.html").read_text("utf-8")
    )


@router.get(PLAYGROUND_PATH, response_class=HTMLResponse, include_in_schema=False)
async def playground(request: Request) -> HTMLResponse:
    if not get_state(request).settings.playground:
        raise APIError(404, "the playground is turned off (PLAYGROUND=false)", type="not_found")
    return HTMLResponse(page(), headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})
