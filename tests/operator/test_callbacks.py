"""The operator's callback deliveries (operator/callbacks.py) against the in-memory cluster, whose status
patches are real compare-and-set, and a real receiver on loopback."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import pytest

from monaco.core.judge0 import DEFAULT_FIELDS, encode64
from monaco.core.resource import submission_view
from monaco.core.settings import Settings
from monaco.operator.callbacks import Callbacks
from tests.operator.conftest import Clock, FakeCluster, indexes, submission, ts
from tests.support import Receiver, wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def finished(name: str, url: str | None, **status: Any) -> dict[str, Any]:
    body = submission(name, phase="completed", verdict="ok", output="hi\n", exitCode=0, completedAt=ts(0), **status)
    if url is not None:
        body["spec"]["callbackUrl"] = url
    return body


def sender(settings: Settings, cluster: FakeCluster, clock: Clock, allow: str = "127.0.0.1") -> Callbacks:
    return Callbacks(settings.model_copy(update={"callback_allow": allow}), cluster, clock)  # type: ignore[arg-type]


async def tick(cb: Callbacks, cluster: FakeCluster) -> None:
    """One turn of the admission loop's check, and the attempts it began, to their end."""
    await cb.check(indexes(list(cluster.submissions.values())).submissions)
    await wait_until(lambda: not cb.sending, 10, "the attempts to end")


def callback_of(cluster: FakeCluster, name: str) -> dict[str, Any]:
    state: dict[str, Any] = cluster.submissions[name]["status"]["callback"]
    return state


async def test_the_result_is_posted_once_and_recorded(settings: Settings, clock: Clock, receiver: Receiver) -> None:
    cluster = FakeCluster(finished("s1", f"{receiver.url}/hook"), finished("s2", None))
    expected = submission_view(cluster.submissions["s1"]).result_body()
    cb = sender(settings, cluster, clock)
    await tick(cb, cluster)
    assert callback_of(cluster, "s1") == {"state": "delivered", "attempts": 1}
    assert "callback" not in cluster.submissions["s2"]["status"]
    [(path, headers, _)] = receiver.received
    assert path == "/hook" and headers["x-monaco-submission"] == "s1" and headers["x-monaco-attempt"] == "1"
    assert receiver.bodies() == [expected] and expected["output"] == "hi\n"
    assert expected["callback"] == {"state": "pending", "attempts": 0, "lastError": None}
    # the claim tested the resourceVersion it read; the outcome tested the claimed attempt number
    claim, outcome = (ops for name, ops in cluster.status_writes if name == "s1")
    assert claim[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "1"}
    assert outcome[0] == {"op": "test", "path": "/status/callback/attempts", "value": 1}
    await tick(cb, cluster)
    assert len(receiver.received) == 1  # delivered: never again
    assert submission_view(cluster.submissions["s1"]).callback.state == "delivered"  # type: ignore[union-attr]


async def test_a_failed_attempt_waits_its_backoff_then_retries(settings: Settings, clock: Clock) -> None:
    with Receiver(503) as receiver:
        cluster = FakeCluster(finished("s1", receiver.url))
        cb = sender(settings, cluster, clock)
        await tick(cb, cluster)
        state = callback_of(cluster, "s1")
        assert state["state"] == "pending" and state["attempts"] == 1 and state["lastError"] == "HTTP 503"
        await tick(cb, cluster)  # not due yet
        assert len(receiver.received) == 1
        clock.advance(8 * 1.5 + 1)  # the first pause is 8 s, +-50%
        await tick(cb, cluster)
        assert callback_of(cluster, "s1") == {"state": "delivered", "attempts": 2}
        assert [b["callback"]["lastError"] for b in receiver.bodies()] == [None, "HTTP 503"]


async def test_two_operators_that_read_the_same_version_send_once(
    settings: Settings, clock: Clock, receiver: Receiver
) -> None:
    cluster = FakeCluster(finished("s1", receiver.url))
    stale = copy.deepcopy(cluster.submissions["s1"])
    first, second = sender(settings, cluster, clock), sender(settings, cluster, clock)
    assert await first._attempt("s1")

    async def read_before_the_claim(name: str) -> dict[str, Any]:
        return copy.deepcopy(stale)

    cluster.get_submission = read_before_the_claim  # type: ignore[method-assign]
    assert not await second._attempt("s1")  # its claim tests a resourceVersion that is gone
    assert len(receiver.received) == 1 and callback_of(cluster, "s1")["attempts"] == 1


async def test_an_attempt_whose_operator_died_is_made_again_when_its_claim_lapses(
    settings: Settings, clock: Clock, receiver: Receiver
) -> None:
    claimed = {"state": "pending", "attempts": 1, "nextAttemptAt": ts(1 + 40)}  # claimed, then the operator died
    cluster = FakeCluster(finished("s1", receiver.url, callback=claimed))
    cb = sender(settings, cluster, clock)
    clock.advance(30)
    await tick(cb, cluster)
    assert receiver.received == []
    clock.advance(15)
    await tick(cb, cluster)
    assert callback_of(cluster, "s1") == {"state": "delivered", "attempts": 2}


async def test_a_name_resolving_to_loopback_is_refused_and_nothing_is_sent(
    settings: Settings, clock: Clock, receiver: Receiver
) -> None:
    cluster = FakeCluster(finished("s1", f"http://localhost:{receiver.port}/"))
    await tick(sender(settings, cluster, clock, allow="localhost"), cluster)
    state = callback_of(cluster, "s1")
    assert state["state"] == "failed" and "is loopback" in state["lastError"]
    assert receiver.received == []


@pytest.mark.parametrize(
    ("allow", "url", "why"),
    [
        ("", "{receiver}", "callbacks are not enabled on this server"),
        ("hooks.example.com", "{receiver}", "not on this server's callback allowlist"),
        ("127.0.0.1", "gopher://127.0.0.1:{port}/", "http:// or https://"),
    ],
)
async def test_a_resource_created_around_the_api_is_checked_again_by_the_operator(
    settings: Settings, clock: Clock, receiver: Receiver, allow: str, url: str, why: str
) -> None:
    """kubectl can create a CodeSubmission with any callbackUrl: the operator checks it as the API does."""
    cluster = FakeCluster(finished("s1", url.format(receiver=receiver.url, port=receiver.port)))
    await tick(sender(settings, cluster, clock, allow=allow), cluster)
    state = callback_of(cluster, "s1")
    assert state["state"] == "failed" and state["attempts"] == 1 and why in state["lastError"]
    assert receiver.received == []


async def test_a_submission_still_running_is_left_alone(settings: Settings, clock: Clock, receiver: Receiver) -> None:
    body = submission("s1", phase="running", startedAt=ts(0))
    body["spec"]["callbackUrl"] = receiver.url
    cluster = FakeCluster(body)
    await tick(sender(settings, cluster, clock), cluster)
    await asyncio.sleep(0)
    assert receiver.received == [] and cluster.status_writes == []
    view = submission_view(cluster.submissions["s1"])
    assert view.callback is not None and view.callback.state == "pending"


async def test_a_judge0_format_callback_is_judge0s_put(settings: Settings, clock: Clock, receiver: Receiver) -> None:
    """spec.callbackFormat `judge0` (set by the Judge0 API): what Judge0 CE sends, a PUT of its default
    fields with the text in Base64; the claim and the recorded outcome are those of any callback."""
    body = finished("s1", f"{receiver.url}/j0")
    body["spec"]["callbackFormat"] = "judge0"
    body["status"].update(stderr="warn\n", executionTimeMs=12.5, memoryKb=2048)
    cluster = FakeCluster(body)
    await tick(sender(settings, cluster, clock), cluster)
    assert callback_of(cluster, "s1") == {"state": "delivered", "attempts": 1}
    assert receiver.methods == ["PUT"]
    [(path, headers, _)] = receiver.received
    assert path == "/j0" and headers["content-type"] == "application/json" and headers["x-monaco-submission"] == "s1"
    assert receiver.bodies() == [{
        "token": "s1", "status": {"id": 3, "description": "Accepted"}, "stdout": encode64("hi\n"),
        "stderr": encode64("warn\n"), "compile_output": None, "message": None, "time": "0.013", "memory": 2048,
    }]  # fmt: skip
    assert set(receiver.bodies()[0]) == set(DEFAULT_FIELDS)


async def test_a_monaco_format_callback_is_still_a_post(settings: Settings, clock: Clock, receiver: Receiver) -> None:
    body = finished("s1", receiver.url)
    body["spec"]["callbackFormat"] = "monaco"
    cluster = FakeCluster(body)
    await tick(sender(settings, cluster, clock), cluster)
    assert receiver.methods == ["POST"] and receiver.bodies()[0]["id"] == "s1"
