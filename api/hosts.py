"""Answer only requests whose Host is one of ours: the defence against DNS rebinding.

A web page on `evil.example` can point that name at 127.0.0.1 and then read what a Monaco there
answers, as the same origin: the browser still sends `Host: evil.example`, and that is what this
refuses. The probes (/healthz, /readyz) and /metrics stay open to any Host, because the kubelet and
Prometheus call a pod by its IP, and they reveal no program, input or output.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ANY_HOST = frozenset({"/healthz", "/readyz", "/metrics"})


def host_name(header: str) -> str:
    """`example.com:8080` -> `example.com`, `[::1]:8080` -> `[::1]`; lower case, no trailing dot."""
    header = header.strip().lower()
    if header.startswith("["):
        name = header[: header.find("]") + 1] if "]" in header else header
    else:
        name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    return name.rstrip(".")


def allowed(name: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == name:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


class AllowedHosts:
    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.patterns = [host_name(h) if not h.startswith("*") else h for h in allowed_hosts]
        self.any = "*" in self.patterns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.any or scope["type"] != "http" or scope["path"] in ANY_HOST:
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("host", "")
        if not allowed(host_name(header), self.patterns):
            shown = repr(header) if header else "no Host header"
            response = JSONResponse(
                {
                    "error": f"this server does not answer for host {shown}; "
                    "add the name to MONACO_ALLOWED_HOSTS (comma-separated) to allow it"
                },
                status_code=400,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
