"""The Starlette application, declared in one place and built from settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from monaco.api import playground, routes
from monaco.api.backend import Backend
from monaco.api.compat import judge0, piston
from monaco.api.errors import ApiError, error_response
from monaco.api.hosts import AllowedHosts
from monaco.api.metrics import Metrics
from monaco.api.openapi import build_openapi
from monaco.core.settings import Settings


def _version() -> str:
    try:
        return version("monaco")
    except PackageNotFoundError:
        return "0.0.0"


def make_backend(settings: Settings, metrics: Metrics) -> Backend:
    if settings.backend == "kubernetes":
        from monaco.api.kube import KubernetesBackend

        return KubernetesBackend(settings, metrics)
    from monaco.api.local.backend import LocalBackend

    return LocalBackend(settings, metrics)


async def _api_error(request: Request, exc: Exception) -> Response:
    """A refused submission is counted here unless the route counted it (429 and 503, where it raises them)."""
    assert isinstance(exc, ApiError)
    if request.method == "POST" and request.url.path.endswith(("/submit", "/submit/batch")):
        routes.count_refusal(request.app.state.metrics, exc.status)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {
        404: f"no route {request.url.path}; see /openapi.json",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, exc.detail)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "internal error; the server log has the details"}, status_code=500)


def _playground(path: str, api_routes: list[Route]) -> list[Route]:
    """The playground's routes at `path`, none when it is empty; refused when `path` is an API route's."""
    if not path:
        return []
    assets = path.startswith(playground.ASSETS) and path != playground.ASSETS
    if assets or path in {route.path for route in api_routes}:
        raise ValueError(f"MONACO_PLAYGROUND_PATH={path} is a path of the API; choose another, such as /play/")
    return playground.routes(path)


def _compat(settings: Settings) -> list[BaseRoute]:
    """The Judge0 and Piston APIs (api/compat/), each unless its setting turns it off."""
    mounted: list[BaseRoute] = []
    if settings.judge0_api:
        mounted.append(Mount("/judge0", routes=judge0.routes_list()))
    if settings.piston_api:
        mounted.extend(piston.routes_list())
    return mounted


def create_app(settings: Settings | None = None, backend: Backend | None = None) -> Starlette:
    settings = settings or Settings()
    settings.registry  # noqa: B018 - a broken languages file fails here, at start-up, not on the first request
    metrics = Metrics(settings.max_workers)
    backend = backend or make_backend(settings, metrics)
    openapi = build_openapi(_version())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.stop()

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi)

    middleware = [Middleware(AllowedHosts, allowed_hosts=settings.allowed_host_list)]
    if settings.cors_origin_list:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origin_list,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["content-type"],
            )
        )
    api_routes = [
        Route("/submit", routes.submit, methods=["POST"]),
        Route("/submit/batch", routes.submit_batch, methods=["POST"]),
        Route("/results", routes.results, methods=["GET"]),
        Route("/status", routes.status, methods=["GET"]),
        Route("/result", routes.result, methods=["GET"]),
        Route("/submissions/{id}", routes.cancel, methods=["DELETE"]),
        Route("/queue-stats", routes.queue_stats, methods=["GET"]),
        Route("/languages", routes.languages, methods=["GET"]),
        Route("/healthz", routes.healthz, methods=["GET"]),
        Route("/readyz", routes.readyz, methods=["GET"]),
        Route("/metrics", routes.metrics, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
    app = Starlette(
        routes=[*api_routes, *_compat(settings), *_playground(settings.playground_path, api_routes)],
        middleware=middleware,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.backend = backend
    app.state.metrics = metrics
    return app
