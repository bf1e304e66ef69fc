"""The pages (`/app/` for residents, and every other site named in `SITES`): static files
under `app/web/<site>/` plus the shared `app/web/common/` (modules several sites use,
known as `common/...`) and `app/web/vendor/`, served by the app itself.

Every asset is served under a content-hashed name computed once from its bytes
(`/app/assets/js/main.3f2a9c1d5e.js`), cached for a year as immutable; `index.html` is
`no-cache` and carries an import map that sends every module URL (`./api.js` resolved
against its importer) and the vendored libraries' bare names to the hashed URLs. The
Content-Security-Policy allows scripts from 'self' plus that one import map by its sha256
hash: no inline script, no eval. `SUISHEN_PAGES_FRAME_ANCESTORS` names who may frame the
pages (a mini-app host's web view); `'self'` by default. See docs/app.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from app.context import AppContext, app_context
from app.domain import Domain
from app.settings import SettingsError

WEB = Path(__file__).parent / "web"
VENDOR = WEB / "vendor"
# Each site: its folder under app/web/ and where it is served. A new screen is one line
# here and one folder; the routes below are made for every site alike.
SITES: dict[str, str] = {
    "app": "/app/",
    "gate": "/gate/",
    "operator": "/gate/operator/",
    "desk": "/desk/",
    "home": "/",
    "docs": "/docs/",
}
SERVED_SUFFIXES = {".js", ".mjs", ".css", ".svg", ".png", ".ico", ".webp", ".woff2"}
# Bare module names the pages import, and the vendored file each one means.
BARE_MODULES = {"qrcode-generator": "vendor/qrcode-generator-2.0.4/qrcode.mjs"}
FRAME_ANCESTORS_KNOB = "SUISHEN_PAGES_FRAME_ANCESTORS"
_SOURCE = re.compile(r"^(?:'self'|'none'|\*|(?:https?://)?[A-Za-z0-9*.-]+(?::[0-9*]+)?)$")
IMMUTABLE = "public, max-age=31536000, immutable"
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}
_PLACEHOLDER = re.compile(r"\{\{asset:([^}]+)\}\}")


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str


@dataclass(frozen=True)
class Site:
    index: bytes
    assets: Mapping[str, Asset]  # path under /app/assets/ -> asset
    urls: Mapping[str, str]  # source path (relative to app/web, "app/" dropped) -> URL
    import_map_hash: str  # 'sha256-...' of the inline import map


def _logical(path: Path, site: str) -> str:
    """The name a file is known by: `js/main.js`, `vendor/qrcode-generator-2.0.4/...`."""
    relative = path.relative_to(WEB).as_posix()
    return relative.removeprefix(f"{site}/")


def _hashed(logical: str, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()[:10]
    stem, dot, suffix = logical.rpartition(".")
    return f"{stem}.{digest}{dot}{suffix}"


@cache
def build_site(site: str = "app") -> Site:
    """Read every file of `site` once and name it by its bytes (at start)."""
    assets: dict[str, Asset] = {}
    urls: dict[str, str] = {}
    asset_prefix = SITES[site] + "assets/"
    files = [
        p
        for folder in (WEB / site, WEB / "common", VENDOR)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix in SERVED_SUFFIXES
    ]
    for path in files:
        body = path.read_bytes()
        logical = _logical(path, site)
        served = _hashed(logical, body)
        media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
        if media.startswith("text/") and "charset" not in media:
            media += "; charset=utf-8"
        assets[served] = Asset(body, media)
        urls[logical] = asset_prefix + served
    imports = {asset_prefix + logical: url for logical, url in urls.items() if _is_module(logical)}
    imports.update({name: urls[target] for name, target in BARE_MODULES.items()})
    import_map = json.dumps({"imports": imports}, indent=1, sort_keys=True)
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    template = (WEB / site / "index.html").read_text(encoding="utf-8")

    def asset_url(match: re.Match[str]) -> str:
        return urls[match.group(1)]

    index = _PLACEHOLDER.sub(asset_url, template).replace(
        "<!--importmap-->", f'<script type="importmap">{import_map}</script>'
    )
    return Site(index.encode(), assets, urls, f"'sha256-{digest}'")


def _is_module(logical: str) -> bool:
    return logical.endswith((".js", ".mjs"))


def frame_ancestors(extra: Mapping[str, str]) -> str:
    """The sources allowed to frame the pages, from the knob (space-separated CSP sources)."""
    raw = (extra.get(FRAME_ANCESTORS_KNOB) or "").strip() or "'self'"
    sources = raw.split()
    if not all(_SOURCE.match(s) for s in sources) or (len(sources) > 1 and "'none'" in sources):
        raise SettingsError(
            f"{FRAME_ANCESTORS_KNOB} must be 'none', 'self' or space-separated origins "
            f"(https://host[:port]), got {raw!r}"
        )
    return " ".join(sources)


def security_headers(extra: Mapping[str, str], site: Site) -> dict[str, str]:
    ancestors = frame_ancestors(extra)
    csp = "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {site.import_map_hash}",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "connect-src 'self'",
            "worker-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {ancestors}",
        ]
    )
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    # The old header knows only these two; a list of hosts is left to frame-ancestors.
    if ancestors in ("'none'", "'self'"):
        headers["X-Frame-Options"] = "DENY" if ancestors == "'none'" else "SAMEORIGIN"
    return headers


def _site_of(request: Request) -> str:
    site: str = request.scope["route"].name
    return site


def _headers(request: Request, cache_control: str) -> dict[str, str]:
    site = build_site(_site_of(request))
    headers = security_headers(app_context(request).settings.extra, site)
    headers["Cache-Control"] = cache_control
    return headers


async def redirect_to_site(request: Request) -> Response:
    target = SITES[_site_of(request)]
    return RedirectResponse(target, status_code=308, headers=_headers(request, "no-cache"))


async def index(request: Request) -> Response:
    return Response(
        build_site(_site_of(request)).index,
        media_type="text/html; charset=utf-8",
        headers=_headers(request, "no-cache"),
    )


async def asset(request: Request) -> Response:
    found = build_site(_site_of(request)).assets.get(request.path_params["path"])
    if found is None:
        return Response(
            "not found", status_code=404, media_type="text/plain; charset=utf-8",
            headers=_headers(request, "no-store"),
        )  # fmt: skip
    headers = _headers(request, IMMUTABLE)
    if request.path_params["path"].startswith("js/sw."):
        # A site's service worker (js/sw.js, hashed) may control the whole site, not only
        # the assets folder it is served from.
        headers["Service-Worker-Allowed"] = SITES[_site_of(request)]
    return Response(found.body, media_type=found.media_type, headers=headers)


async def _startup(ctx: AppContext) -> None:
    # Hash the files once at start, and refuse a malformed frame-ancestors knob there.
    frame_ancestors(ctx.settings.extra)
    for site in SITES:
        build_site(site)


def _routes() -> list[Route]:
    """For each site: its index, its hashed assets, and a redirect from the bare path."""
    routes = []
    for site, mount in SITES.items():
        if mount != "/":
            routes.append(
                Route(mount.rstrip("/"), redirect_to_site, name=site, include_in_schema=False)
            )
        routes += [
            Route(mount, index, methods=["GET"], name=site, include_in_schema=False),
            Route(mount + "assets/{path:path}", asset, name=site, include_in_schema=False),
        ]
    return routes


DOMAIN = Domain(name="pages", routes=_routes(), startup=_startup)
