"""The HTTP side of the command-line client: one small class over the public API, standard library only.

Every failure a user can cause comes back as a `ClientError` whose message says what to change and whose
`status` is the command's exit status (see `Exit`). Nothing here prints.
"""

from __future__ import annotations

import enum
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
REQUEST_TIMEOUT = 30.0


class Exit(enum.IntEnum):
    """The client's own exit statuses; `monaco run --help` and README.md show them with the verdicts'."""

    USAGE = 2  # click's: a bad option or argument, a file that cannot be read
    UNKNOWN_LANGUAGE = 3
    TOO_LARGE = 4  # 413
    REFUSED = 5  # any other 4xx: 400, 404 unknown id, 409 already finished, 415
    UNREACHABLE = 6  # no answer, 503 or another 5xx
    QUEUE_FULL = 7  # 429


class ClientError(Exception):
    def __init__(self, message: str, status: Exit) -> None:
        super().__init__(message)
        self.status = status


class Client:
    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ClientError(f"--server {url!r} is not an http:// or https:// URL", Exit.USAGE)
        self.url = url.rstrip("/")

    def submit(self, language: str | None, code: str, stdin: str, limits: dict[str, Any]) -> str:
        body = {"code": code, "input": stdin, **limits}
        if language is not None:
            body["language"] = language
        submission_id: str = self._call("POST", "/submit", body)["id"]
        return submission_id

    def status(self, submission_id: str) -> dict[str, Any]:
        return self._call("GET", "/status?" + urllib.parse.urlencode({"id": submission_id}))

    def result(self, submission_id: str) -> dict[str, Any]:
        return self._call("GET", "/result?" + urllib.parse.urlencode({"id": submission_id}))

    def cancel(self, submission_id: str) -> dict[str, Any]:
        return self._call("DELETE", "/submissions/" + urllib.parse.quote(submission_id, safe=""))

    def languages(self) -> dict[str, Any]:
        return self._call("GET", "/languages")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"} | ({} if data is None else {"Content-Type": "application/json"})
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                answer: dict[str, Any] = json.load(response)
                return answer
        except urllib.error.HTTPError as exc:
            body = _error_body(exc)
            if body is None:  # not Monaco's {"error"}: a proxy, an Ingress, or another server at that URL
                raise ClientError(f"{self.url}{path} answered HTTP {exc.code} {exc.reason}, not as Monaco does: "
                                  f"{_NOT_MONACO}", Exit.UNREACHABLE) from None
            raise _refusal(exc.code, body, exc.headers.get("Retry-After")) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            hint = ("is the server https:// and is its certificate trusted here (SSL_CERT_FILE)?"
                    if isinstance(reason, ssl.SSLError) else
                    "start one with `monaco serve`, or point --server or MONACO_URL at one")
            raise ClientError(f"cannot reach the server at {self.url}: {reason} ({hint})", Exit.UNREACHABLE) from None
        except ValueError:
            raise ClientError(f"{self.url}{path} answered something that is not JSON: {_NOT_MONACO}",
                              Exit.UNREACHABLE) from None


_NOT_MONACO = "is --server Monaco's URL, with the path it is served under (e.g. https://example.com/monaco)?"


def _error_body(exc: urllib.error.HTTPError) -> dict[str, Any] | None:
    """Monaco's error answer, {"error": ...}; None for anything else."""
    try:
        body = json.loads(exc.read() or b"null")
    except ValueError:
        return None
    return body if isinstance(body, dict) and isinstance(body.get("error"), str) else None


def _refusal(code: int, body: dict[str, Any], retry_after: str | None) -> ClientError:
    """The ClientError of Monaco's error answer: its own message, and the exit status of its kind."""
    message = str(body["error"])
    if code == 400 and "languages" in body:  # the unknown-language 400 lists the known ones, in the message too
        return ClientError(message, Exit.UNKNOWN_LANGUAGE)
    if code == 413:
        return ClientError(message, Exit.TOO_LARGE)
    if code == 429:
        later = f"in {retry_after} s" if retry_after and retry_after.isdigit() else "later"
        return ClientError(message if "retry" in message else f"{message} (try again {later})", Exit.QUEUE_FULL)
    if code >= 500:
        return ClientError(f"server error {code}: {message}", Exit.UNREACHABLE)
    return ClientError(message, Exit.REFUSED)
