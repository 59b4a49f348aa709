"""The playground: a page for people, at MONACO_PLAYGROUND_PATH (`/` by default; empty turns it off).

The page and its assets are the build of playground/ (`make playground`), committed under
api/static/playground/ so that they ship in the wheel and the image: nothing is fetched from anywhere
else, as clusters are often air-gapped. They are read once, when the app is created. The page calls the
public API by relative URLs, so it works wherever the API is mounted, under an Ingress path too.

Every response carries a strict Content-Security-Policy: this origin only. The one allowance is a nonce,
new with each page, for the style sheets the editor (CodeMirror) writes into the page at run time.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import secrets
from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ASSETS = "/playground/"  # the assets' path under the API's root, whatever the page's path
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ASSET_POLICY = "default-src 'none'; frame-ancestors 'none'"
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class PlaygroundMissing(RuntimeError):
    """The built assets are not where the package keeps them."""


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # when it is worth it
    media_type: str
    version: str  # of the content: the page asks for `?v=<version>`, which may be cached for good

    @classmethod
    def of(cls, name: str, body: bytes) -> Asset:
        packed = gzip.compress(body, mtime=0)
        return cls(body, packed if len(packed) < len(body) * 0.9 else None, _TYPES[name[name.rfind(".") :]],
                   hashlib.sha256(body).hexdigest()[:16])


def api_root(page_path: str) -> str:
    """The API's root relative to the page: `./` for `/` or `/play`, `../` for `/play/` or `/a/b`."""
    return "../" * (page_path.count("/") - 1) or "./"


def _load() -> tuple[str, dict[str, Asset]]:
    folder = resources.files("monaco.api").joinpath("static", "playground")
    try:
        page = folder.joinpath("index.html").read_text()
        files = {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file() and f.name != "index.html"}
    except (FileNotFoundError, NotADirectoryError):
        raise PlaygroundMissing(
            f"the playground's built files are missing from {folder}: run `make playground`, "
            "or set MONACO_PLAYGROUND_PATH= (empty) to serve the API without it"
        ) from None
    return page, {name: Asset.of(name, body) for name, body in files.items() if name[name.rfind(".") :] in _TYPES}


def routes(page_path: str) -> list[Route]:
    """The page at `page_path` and its assets under /playground/."""
    template, assets = _load()
    root = api_root(page_path)

    def url(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in assets:
            raise PlaygroundMissing(f"index.html names {name!r}, which the build did not make: run `make playground`")
        return f"{root}{ASSETS[1:]}{name}?v={assets[name].version}"

    page = re.sub(r"\{\{asset ([^}]+)\}\}", url, template).replace("{{root}}", root)

    async def serve_page(request: Request) -> Response:
        nonce = secrets.token_urlsafe(18)
        headers = {**_HEADERS, "Content-Security-Policy": _PAGE_POLICY.format(nonce=nonce), "Cache-Control": "no-cache"}
        return Response(page.replace("{{nonce}}", nonce), media_type="text/html; charset=utf-8", headers=headers)

    async def serve_asset(request: Request) -> Response:
        asset = assets.get(request.path_params["name"])
        if asset is None:
            return Response(b"no such file", status_code=404, media_type="text/plain", headers=_HEADERS)
        cache = "public, max-age=31536000, immutable" if request.query_params.get("v") == asset.version else "no-cache"
        headers = {**_HEADERS, "Content-Security-Policy": _ASSET_POLICY, "Cache-Control": cache,
                   "ETag": f'"{asset.version}"', "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        body = asset.body
        if asset.gzipped and "gzip" in request.headers.get("accept-encoding", ""):
            body, headers["Content-Encoding"] = asset.gzipped, "gzip"
        return Response(body, media_type=asset.media_type, headers=headers)

    return [
        Route(page_path, serve_page, methods=["GET"]),
        Route(ASSETS + "{name}", serve_asset, methods=["GET"]),
    ]
