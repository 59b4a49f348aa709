"""The `monaco` command: `monaco serve` runs the HTTP API, `monaco operator` runs the kopf operator.

It sits above both (core/ is the leaf they share, and imports neither); `python -m monaco.cli` runs it too.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monaco", description="Run untrusted programs over HTTP, safely.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API (back end from MONACO_BACKEND: local or kubernetes)")
    serve.add_argument("--host", help="address to listen on (MONACO_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (PORT, default 8080)")
    serve.add_argument("--backend", choices=["local", "kubernetes"], help="overrides MONACO_BACKEND")
    serve.add_argument(
        "--allowed-hosts", help="comma-separated Host names to answer (MONACO_ALLOWED_HOSTS; default: loopback names)"
    )
    sub.add_parser("operator", help="run the Kubernetes operator (kopf) for CodeSubmission resources")
    sub.add_parser("languages", help="print the language registry as the API sees it")
    args = parser.parse_args(argv)

    from monaco.core.settings import Settings

    overrides = {
        k: v
        for k, v in {
            "host": args.__dict__.get("host"),
            "port": args.__dict__.get("port"),
            "backend": args.__dict__.get("backend"),
            "allowed_hosts": args.__dict__.get("allowed_hosts"),
        }.items()
        if v is not None
    }
    settings = Settings(**overrides)
    if args.command == "serve":
        from monaco.api.server import serve as run_server

        if settings.backend == "local":  # a sandbox that cannot be built here: one line, not a traceback
            from monaco.api.local.sandbox import Sandbox, SandboxUnavailable

            try:
                Sandbox(settings).check()
            except SandboxUnavailable as exc:
                print(f"monaco: cannot start: {exc}", file=sys.stderr)
                return 2
        return int(run_server(settings))
    if args.command == "operator":
        from monaco.operator.main import run as run_operator

        return int(run_operator(settings))
    import json

    json.dump([lang.public() for lang in settings.registry], sys.stdout, indent=2)
    print()
    return 0
