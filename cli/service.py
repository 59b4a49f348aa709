"""`monaco serve` and `monaco operator`: the service itself, as the image and the chart start it."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def _settings(**overrides: Any) -> Any:
    from monaco.core.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@click.command(short_help="Run the HTTP API.")
@click.option("--host", help="Address to listen on (MONACO_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (PORT, default 8080).")
@click.option("--backend", type=click.Choice(["local", "kubernetes"]), help="Overrides MONACO_BACKEND.")
@click.option(
    "--allowed-hosts",
    metavar="NAMES",
    help="Comma-separated Host names to answer (MONACO_ALLOWED_HOSTS; default: loopback names).",
)
def serve(host: str | None, port: int | None, backend: str | None, allowed_hosts: str | None) -> int:
    """Run the HTTP API (back end from MONACO_BACKEND: local or kubernetes)."""
    settings = _settings(host=host, port=port, backend=backend, allowed_hosts=allowed_hosts)
    from monaco.api.server import serve as run_server

    if settings.backend == "local":  # a sandbox that cannot be built here: one line, not a traceback
        from monaco.api.local.sandbox import Sandbox, SandboxUnavailable

        try:
            Sandbox(settings).check()
        except SandboxUnavailable as exc:
            print(f"monaco: cannot start: {exc}", file=sys.stderr)
            return 2
    return int(run_server(settings))


@click.command(short_help="Run the Kubernetes operator.")
def operator() -> int:
    """Run the Kubernetes operator (kopf) for CodeSubmission resources."""
    from monaco.operator.main import run as run_operator

    return int(run_operator(_settings()))


def print_registry() -> None:
    """The language registry as this machine's settings make it (what `monaco languages --local` prints)."""
    json.dump([lang.public() for lang in _settings().registry], sys.stdout, indent=2)
    print()


COMMANDS = (serve, operator)
