"""Reading a request's JSON body so that nothing a client sends can get past it as a 500.

`json.loads` accepts more than JSON, and some of what it accepts breaks later code: NaN and
Infinity, numbers that overflow to inf or whose digits Python refuses to convert, nesting deep
enough to exhaust the interpreter's stack, duplicate keys (which two parsers may read differently),
bytes that are no UTF-8. Each is refused here with a 400 that names it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import ClientDisconnect, Request

from monaco.api.errors import ApiError

MAX_DIGITS = 20  # enough for any 64-bit integer; a submission's numbers are seconds and megabytes


def require_json(request: Request) -> None:
    """A body must say it is JSON: a browser sends a cross-site `text/plain` or form body without
    asking (no CORS preflight), but must ask before it sends `application/json`."""
    raw = request.headers.get("content-type", "")
    media, _, params = raw.partition(";")
    if media.strip().lower() != "application/json":
        shown = f"'{raw}'" if raw else "none"
        raise ApiError(415, f"the body must be JSON sent with 'Content-Type: application/json' (got {shown})")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ApiError(415, f"the body must be UTF-8 JSON; got charset {value.strip()!r}")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body is {declared} bytes; the limit is {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ApiError(413, f"the request body is over the limit of {limit} bytes")
    except ClientDisconnect:  # nobody reads the answer, but a 400 keeps a traceback out of the log
        raise ApiError(400, "the client closed the connection before the body was complete") from None
    return bytes(body)


def _no_constant(name: str) -> Any:
    raise ApiError(400, f"the body is not valid JSON: {name} is not a JSON number")


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise ApiError(400, f"a number in the body has {len(digits.lstrip('-'))} digits; the most is {MAX_DIGITS}")
    return int(digits)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ApiError(400, f"a number in the body is too large: {text[:40]}")
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    for key, _ in pairs:  # a field's value is checked where the field is read; a key, even unknown, here
        if not key.isascii():
            try:
                key.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ApiError(400, f"the body has a key with a lone surrogate (\\u{ord(key[exc.start]):04x} at "
                                    f"character {exc.start}); send valid Unicode text") from None
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ApiError(400, f"the body has the key {key!r} twice; send each field once")
            seen.add(key)
    return obj


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a ApiError that says what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body is not UTF-8 (byte {exc.start}); send JSON as UTF-8") from None
    text = text.removeprefix("\ufeff")  # a byte-order mark, which RFC 8259 lets a parser ignore
    try:
        data = json.loads(
            text, parse_constant=_no_constant, parse_int=_int, parse_float=_float, object_pairs_hook=_unique
        )
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # the parser's own guard, well before the stack runs out
        raise ApiError(400, "the body nests arrays or objects too deeply; a submission is one flat object") from None
    if not isinstance(data, dict):
        raise ApiError(400, 'the body must be a JSON object such as {"language": "python", "code": "print(1)"}')
    return data
