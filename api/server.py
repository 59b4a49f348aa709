"""`monaco serve`: uvicorn around create_app."""

from __future__ import annotations

import uvicorn

from monaco.api.app import create_app
from monaco.core.logs import configure
from monaco.core.settings import Settings


def serve(settings: Settings) -> int:
    configure(settings.log_level, settings.log_json)
    app = create_app(settings)
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False, timeout_graceful_shutdown=10
    )
    return 0
