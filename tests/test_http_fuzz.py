"""Random hostile requests against a real server: whatever the body, headers or query, never a 5xx, and
every refusal is JSON with an `error` that says something. (tests/test_http_boundary.py has the
hand-picked cases; this looks for the ones nobody thought of.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import served

pytestmark = [pytest.mark.slow]

# Text with everything JSON can spell, lone surrogates included (json.dumps escapes them as \udxxx).
TEXT = st.text(st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=30)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                      max_leaves=20)  # fmt: skip
FIELDS = st.sampled_from(["language", "code", "input", "timeoutSeconds", "memoryMb"])
SUBMISSIONS = st.dictionaries(FIELDS | TEXT, SCALARS | VALUES, max_size=6).map(
    lambda d: {"language": "python", "code": "print(1)", **d}
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _nested(depth: int) -> bytes:
    return b'{"code": ' + b"[" * depth + b"]" * depth + b"}"


BODIES = (
    SUBMISSIONS.map(_dumps)
    | VALUES.map(_dumps)
    | st.binary(max_size=200)
    | st.builds(lambda b, i, x: b[:i] + x + b[i:], SUBMISSIONS.map(_dumps), st.integers(0, 60), st.binary(max_size=8))
    | st.integers(1, 200_000).map(_nested)
    | st.integers(1, 6000).map(lambda n: b'{"code": "x", "memoryMb": ' + b"9" * n + b"}")
)
CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""])


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    # A queue of two: the few random bodies that are valid submissions stay cheap.
    with served(MAX_WORKERS="1", QUEUE_SIZE="2") as url:
        yield url


def _refused_well(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/json", response.headers
        error = response.json()["error"]
        assert isinstance(error, str) and len(error) > 10, error


def test_random_bodies_never_get_a_5xx(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:

        @given(body=BODIES, content_type=CONTENT_TYPES)
        @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(body: bytes, content_type: str) -> None:
            headers = {"content-type": content_type} if content_type else {}
            _refused_well(client.post("/submit", content=body, headers=headers))

        check()


def test_random_query_parameters_never_get_a_5xx(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:

        @given(wait=TEXT, sid=TEXT)
        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(wait: str, sid: str) -> None:
            wait, sid = (v.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for v in (wait, sid))
            _refused_well(client.post("/submit", params={"wait": wait}, json={"code": "x", "memoryMb": 1}))
            _refused_well(client.get("/status", params={"id": sid}))
            _refused_well(client.get("/result", params={"id": sid}))

        check()
