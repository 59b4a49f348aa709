"""The callback policy (core/callback.py) against hostile URLs and hostile name resolution.

Every send-time case points at a real receiver on loopback, so that a refusal is proven by the
receiver having seen nothing, not only by the answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from monaco.core.callback import CallbackRefused, Policy
from monaco.core.settings import Settings
from tests.support import Receiver

ALLOW = "hooks.example.com,*.ok.example,10.1.0.0/16"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def fake_dns(table: dict[str, list[str]]) -> object:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(f"unknown host {host}")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/", "not on this server's callback allowlist"),
        ("http://localhost/", "not on this server's callback allowlist"),
        ("http://[::1]/", "not on this server's callback allowlist"),
        ("http://0.0.0.0/", "not on this server's callback allowlist"),
        ("http://169.254.169.254/latest/meta-data/", "not on this server's callback allowlist"),
        ("http://[::ffff:127.0.0.1]/", "not on this server's callback allowlist"),
        ("http://[fe80::1]/", "not on this server's callback allowlist"),
        ("http://2130706433/", "is not a host name"),
        ("http://0x7f.1/", "is not a host name"),
        ("http://0x7f000001/", "is not a host name"),
        ("http://017700000001/", "is not a host name"),
        ("http://127.1/", "is not a host name"),
        ("http://1.2.3.4.5/", "is not a host name"),
        ("http://hooks.example.com.evil.net/", "not on this server's callback allowlist"),
        ("http://xhooks.example.com/", "not on this server's callback allowlist"),
        ("http://ok.example/", "not on this server's callback allowlist"),
        ("http://a.ok.example.evil/", "not on this server's callback allowlist"),
        ("http://hooks.example.com@127.0.0.1/", "user name or password"),
        ("http://user:secret@hooks.example.com/", "user name or password"),
        ("http://hooks.example.com\\@127.0.0.1/", "backslashes"),
        ("http://hooks.example.com /x", "whitespace"),
        ("http://hooks.example.com/\r\nX-Injected: 1", "control characters"),
        ("http://hööks.example.com/", "non-ASCII"),
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://hooks.example.com:70/_x", "http:// or https://"),
        ("ftp://hooks.example.com/", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("hooks.example.com/path", "http:// or https://"),
        ("", "http:// or https://"),
        ("http:///path", "no host"),
        ("http://hooks.example.com:0/", "no host (or port 0)"),
        ("http://hooks.example.com:99999/", "invalid port"),
        ("http://hooks.example.com/" + "a" * 3000, "the limit is 2048"),
        ("http://under_score.example.com/", "is not a host name"),
    ],
)
def test_submit_time_refusals(url: str, why: str) -> None:
    with pytest.raises(CallbackRefused) as err:
        Policy.parse(ALLOW).check_url(url)
    assert why in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "url",
    ["http://hooks.example.com/done?token=abc", "HTTPS://Hooks.Example.COM./x", "https://a.b.ok.example:8443/",
     "http://10.1.200.3:9000/", "http://[::ffff:10.1.0.7]/"],
)
def test_submit_time_accepts_allowlisted_hosts(url: str) -> None:
    assert Policy.parse(ALLOW).check_url(url).url == url


def test_off_by_default() -> None:
    policy = Settings().callbacks
    assert not policy.enabled
    with pytest.raises(CallbackRefused, match="callbacks are not enabled on this server"):
        policy.check_url("http://hooks.example.com/")


@pytest.mark.parametrize(
    "entry", ["http://hooks.example.com", "*", "*.", "exa mple.com", "10.0.0.0/33", "hooks_example.com", "2130706433"]
)
def test_a_bad_allowlist_entry_fails_at_start_up(entry: str) -> None:
    with pytest.raises(ValueError, match="callback allowlist entry"):
        Settings(callback_allow=f"hooks.example.com,{entry}")


def test_a_bad_deny_entry_fails_at_start_up() -> None:
    with pytest.raises(ValueError, match="callback deny entry"):
        Settings(callback_deny="pods.cluster.local")


# Names on the allowlist whose resolution points somewhere Monaco must never call.
HOSTILE_DNS = {
    "loop.example": ["127.0.0.1"],
    "loop2.example": ["127.6.6.6"],
    "mixed.example": ["93.184.216.34", "127.0.0.1"],  # one good address does not excuse a bad one
    "v6loop.example": ["::1"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "nat64.example": ["64:ff9b::7f00:1"],
    "sixtofour.example": ["2002:7f00:1::1"],
    "metadata.example": ["169.254.169.254"],
    "linklocal6.example": ["fe80::1%1"],
    "zero.example": ["0.0.0.0"],
    "zero6.example": ["::"],
    "multicast.example": ["224.0.0.1"],
    "broadcast.example": ["255.255.255.255"],
    "kubeapi.example": ["10.96.0.1"],
    "pod.example": ["10.244.3.7"],
}


@pytest.mark.parametrize("host", sorted(HOSTILE_DNS))
def test_send_time_refuses_every_name_that_resolves_somewhere_refused(host: str, receiver: Receiver) -> None:
    policy = Policy.parse(
        ",".join(HOSTILE_DNS), deny="10.244.0.0/16", kubernetes_host="10.96.0.1", timeout_seconds=1,
        resolve=fake_dns(HOSTILE_DNS),
    )  # fmt: skip
    attempt = policy.deliver(f"http://{host}:{receiver.port}/hook", {"id": "x"})
    assert not attempt.delivered and not attempt.retry
    assert attempt.error and "refused to call" in attempt.error
    assert receiver.received == []


def test_a_name_resolving_to_loopback_is_refused_by_the_real_resolver(receiver: Receiver) -> None:
    attempt = Policy.parse("localhost").deliver(f"http://localhost:{receiver.port}/", {})
    assert not attempt.delivered and attempt.error and "loopback" in attempt.error
    assert receiver.received == []


def test_an_allowlist_cidr_that_only_contains_loopback_does_not_unlock_it(receiver: Receiver) -> None:
    policy = Policy.parse("0.0.0.0/0,::/0")
    for url in (receiver.url, f"http://[::ffff:127.0.0.1]:{receiver.port}/"):
        policy.check_url(url)  # on the allowlist...
        attempt = policy.deliver(url, {})
        assert not attempt.delivered and not attempt.retry and "loopback" in (attempt.error or "")  # ...yet refused
    assert receiver.received == []


def test_the_kubernetes_api_is_refused_even_inside_an_allowlisted_network() -> None:
    policy = Policy.parse("10.96.0.0/12", kubernetes_host="10.96.0.1")
    policy.check_url("http://10.96.0.1/")
    attempt = policy.deliver("https://10.96.0.1/api", {})
    assert attempt.error == "refused to call 10.96.0.1: 10.96.0.1 is the Kubernetes API server"
    assert policy.refusal(__import__("ipaddress").ip_address("10.96.0.2")) is None


def test_an_explicit_loopback_entry_lets_a_local_receiver_in(receiver: Receiver) -> None:
    attempt = Policy.parse("127.0.0.1").deliver(f"{receiver.url}/hook?x=1", {"id": "abc"}, {"X-Monaco-Attempt": "1"})
    assert attempt.delivered and attempt.error is None
    [(path, headers, _)] = receiver.received
    assert path == "/hook?x=1" and headers["content-type"] == "application/json"
    assert headers["x-monaco-attempt"] == "1"
    assert receiver.bodies() == [{"id": "abc"}]


def test_the_connection_goes_to_the_checked_address_with_the_name_in_host(receiver: Receiver) -> None:
    """No second lookup between the check and the connection (DNS rebinding): the name below exists
    only in the policy's resolver, so the connection can only have used the address it returned."""
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    policy = Policy.parse("receiver.invalid,127.0.0.1/32", resolve=resolve)
    assert policy.deliver(f"http://receiver.invalid:{receiver.port}/", {}).delivered
    assert lookups == ["receiver.invalid"]
    assert receiver.received[0][1]["host"] == f"receiver.invalid:{receiver.port}"


def test_a_rebinding_name_is_refused_when_it_turns_to_loopback(receiver: Receiver) -> None:
    answers = iter([["10.1.0.5"], ["127.0.0.1"]])
    policy = Policy.parse("rebind.example,10.1.0.0/16", resolve=lambda host, port: next(answers))
    assert policy.pin(policy.check_url("http://rebind.example/")) == "10.1.0.5"
    with pytest.raises(CallbackRefused, match="loopback"):
        policy.pin(policy.check_url("http://rebind.example/"))


def test_redirects_are_not_followed() -> None:
    with Receiver() as target, Receiver((302, {"Location": f"{target.url}/stolen"})) as redirecting:
        attempt = Policy.parse("127.0.0.1").deliver(redirecting.url, {})
        assert attempt == type(attempt)(False, retry=False, error="HTTP 302: redirects are not followed")
        assert len(redirecting.received) == 1 and target.received == []


@pytest.mark.parametrize(("code", "retry"), [(400, False), (401, False), (404, False), (410, False), (408, True),
                                             (429, True), (500, True), (503, True)])
def test_what_a_receivers_error_means(code: int, retry: bool) -> None:
    with Receiver(code) as r:
        attempt = Policy.parse("127.0.0.1").deliver(r.url, {})
    assert not attempt.delivered and attempt.retry is retry and attempt.error == f"HTTP {code}"


def test_a_closed_port_is_retried() -> None:
    with Receiver() as r:
        port = r.port
    attempt = Policy.parse("127.0.0.1").deliver(f"http://127.0.0.1:{port}/", {})
    assert not attempt.delivered and attempt.retry and "ConnectionRefused" in (attempt.error or "")


def test_a_receiver_that_never_answers_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        silent = threading.Event()
        port = listener.getsockname()[1]
        began = time.monotonic()
        attempt = Policy.parse("127.0.0.1", timeout_seconds=0.5).deliver(f"http://127.0.0.1:{port}/", {})
        silent.set()
    assert time.monotonic() - began < 5
    assert not attempt.delivered and attempt.retry and "timed out" in (attempt.error or "")


def test_an_unresolvable_name_is_retried() -> None:
    attempt = Policy.parse("nowhere.invalid").deliver("http://nowhere.invalid/", {})
    assert not attempt.delivered and attempt.retry and "cannot resolve nowhere.invalid" in (attempt.error or "")


def test_backoff_doubles_with_jitter() -> None:
    policy = Policy.parse("hooks.example.com", backoff_seconds=8)
    assert [policy.delay(n, rng=lambda lo, hi: 1.0) for n in (1, 2, 3, 4)] == [8, 16, 32, 64]  # 2 minutes in all
    assert {policy.delay(1, rng=lambda lo, hi: lo), policy.delay(1, rng=lambda lo, hi: hi)} == {4, 12}
    assert len({policy.delay(3) for _ in range(20)}) > 1
