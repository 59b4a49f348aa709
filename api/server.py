"""`monaco serve`: uvicorn around create_app, with the read deadlines uvicorn does not have.

uvicorn closes idle keep-alive connections, but a client that sends its request head or body one byte
at a time (slowloris), or connects and sends nothing, holds a connection and its file descriptor for
as long as it likes, and `limit_concurrency` only answers 503 once a head is complete. So the server
speaks HTTP/1.1 through a small subclass of uvicorn's h11 protocol (named explicitly, so the choice
does not depend on whether httptools happens to be installed) that adds, per connection:

- a deadline for the request head, from the connection's first byte of each request (or from
  `accept` for the first one) to the end of the headers: MONACO_HEADER_TIMEOUT_SECONDS;
- a deadline for the body, from the end of the headers to the body's last byte:
  MONACO_BODY_TIMEOUT_SECONDS;
- a cap on open connections, MONACO_MAX_CONNECTIONS: one over it is answered 503 and closed at once.

A deadline that passes answers 408 (unless a response has begun) and closes the connection. These are
timers on the event loop, not a task per connection; h11's parser state says which phase a connection
is in after every read. A reverse proxy in front (nginx, an Ingress) does the same job and more; this
keeps a Monaco reachable without one safe.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, cast

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from monaco.api.app import create_app
from monaco.core.logs import configure
from monaco.core.settings import Settings

log = logging.getLogger("monaco.http")


def _raw_response(status: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


class DeadlineH11Protocol(H11Protocol):
    head_timeout = 10.0
    body_timeout = 60.0
    max_connections = 512

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = ""  # "head" or "body" while a deadline runs

    @classmethod
    def configured(cls, settings: Settings) -> type[DeadlineH11Protocol]:
        limits = {
            "head_timeout": settings.header_timeout_seconds,
            "body_timeout": settings.body_timeout_seconds,
            "max_connections": settings.max_connections,
        }
        return cast("type[DeadlineH11Protocol]", type(cls.__name__, (cls,), limits))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.warning("refused a connection: %d are open (MONACO_MAX_CONNECTIONS)", len(self.connections) - 1)
            transport.write(_raw_response("503 Service Unavailable", "too many open connections; retry shortly"))
            transport.close()
            return
        self._arm("head")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def send_400_response(self, msg: str) -> None:
        """What h11 cannot parse (a broken request line, a head over 16 KiB): JSON like every other error."""
        self._disarm()
        why = "the request is not valid HTTP/1.1 (request line, headers or framing), or its head is over 16 KiB"
        self.transport.write(_raw_response("400 Bad Request", why))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Arm or drop the deadline for the phase the client is in now."""
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm("body")
        elif state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm("head")  # part of the next request's head has come
        elif state is h11.IDLE and self.cycle is None:
            pass  # the first request's head: armed since the connection was made
        else:
            self._disarm()  # a whole request is in, or the keep-alive timer watches an idle connection

    def _arm(self, phase: str) -> None:
        if self._phase == phase:
            return  # the deadline runs from the phase's start; bytes that trickle in do not move it
        self._disarm()
        seconds = self.head_timeout if phase == "head" else self.body_timeout
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._phase = None, ""

    def _expired(self) -> None:
        phase, seconds = self._phase, self.head_timeout if self._phase == "head" else self.body_timeout
        self._deadline, self._phase = None, ""
        if self.transport.is_closing():
            return
        setting = "MONACO_HEADER_TIMEOUT_SECONDS" if phase == "head" else "MONACO_BODY_TIMEOUT_SECONDS"
        log.info("closed a connection whose request %s took over %g s (%s)", phase, seconds, setting)
        if phase == "head" or not self.cycle.response_started:  # in the head phase, any cycle is the last one
            message = f"the request {phase} took longer than {seconds:g} s; send it at once"
            self.transport.write(_raw_response("408 Request Timeout", message))
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app reads a disconnect and its answer goes nowhere
            self.cycle.message_event.set()
        self.transport.close()


def serve(settings: Settings) -> int:
    configure(settings.log_level, settings.log_json)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        http=DeadlineH11Protocol.configured(settings),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0
