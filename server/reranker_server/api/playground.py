"""`GET /playground`: a page to try the reranker in a browser (query, passages, ranked scores).

Three files shipped in the package: the page, its script and its styles, each served next to the
page (`/playground.js`, `/playground.css`; the page names them by relative URL, so an ingress
path prefix works). No CDN, fonts or scripts from elsewhere: clusters are often air-gapped. The
Content-Security-Policy allows this origin's files only (no inline script, so injected markup
cannot run) and no framing (no clickjacking of the API-key field). The page calls this server's
own `/v1/rerank`, so the API key, when one is set, is typed on the page and sent as a bearer
token. `--playground false` (PLAYGROUND=false) turns all three routes off (404).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

from reranker_contract import PLAYGROUND_PATH
from reranker_server.api.errors import APIError
from reranker_server.api.service import get_state

router = APIRouter()

# The page needs nothing but its own files and this origin's API; it submits no form and may not
# be framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# On the page and its files alike: `no-cache` (revalidate each load) keeps an upgraded server
# from pairing its new page with a browser's old script.
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    """A file under `static/` and the media type it is served with."""

    file_name: str
    media_type: str


SCRIPT_PATH = f"{PLAYGROUND_PATH}.js"
STYLE_PATH = f"{PLAYGROUND_PATH}.css"
ASSETS = {
    PLAYGROUND_PATH: Asset("playground.html", "text/html"),
    SCRIPT_PATH: Asset("playground.js", "text/javascript"),
    STYLE_PATH: Asset("playground.css", "text/css"),
}


@lru_cache(maxsize=len(ASSETS))
def asset_text(file_name: str) -> str:
    """The text of one of the playground's files."""
    return resources.files("reranker_server.api").joinpath("static", file_name).read_text("utf-8")


def _route(asset: Asset) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        if not get_state(request).settings.playground:
            raise APIError(404, "the playground is turned off (PLAYGROUND=false)", type="not_found")
        return Response(
            asset_text(asset.file_name), media_type=asset.media_type, headers=SECURITY_HEADERS
        )

    return serve


for _path, _asset in ASSETS.items():
    router.add_api_route(_path, _route(_asset), methods=["GET"], include_in_schema=False)
