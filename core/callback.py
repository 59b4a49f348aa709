"""Callbacks: where Monaco may send a finished submission's result, and the one attempt that does it.

What is sent depends on the submission's callback format (`message`): `monaco`, the body of GET /result
by POST; `judge0`, set by the Judge0 API only, what Judge0 CE itself sends (core/judge0.py) by PUT.

Monaco sends callbacks itself (the local back end's process, or the operator on Kubernetes), never a
sandbox. Every URL passes two checks:

- at submit time (`Policy.check_url`): http or https, no userinfo, bounded length, a host spelled
  canonically (no `2130706433` or `0x7f.1` for 127.0.0.1), and the host on the operator's allowlist
  (MONACO_CALLBACK_ALLOW: names, `*.suffix` wildcards, IP addresses, CIDRs);
- at send time (`Policy.deliver`): the name is resolved, and refused if ANY address it resolves to is
  loopback, link-local (cloud metadata at 169.254.169.254 included), unspecified, multicast or reserved,
  in MONACO_CALLBACK_DENY (the cluster's pod and service networks, the sandbox network), or the
  Kubernetes API's address, unless an allowlist CIDR inside that range names it explicitly (so
  `127.0.0.1/32` lets a test receive on loopback, while `0.0.0.0/0` unlocks nothing). The connection
  goes to the address that was checked (no DNS-rebinding window) with the name kept in the Host header
  and TLS's SNI and certificate check; redirects are not followed; timeouts are short; at most
  RESPONSE_BYTES of the answer are read.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import random
import re
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from monaco.core import judge0
from monaco.core.models import CallbackState, SubmissionView

MAX_URL = 2048
RESPONSE_BYTES = 4096
USER_AGENT = "monaco-callback/1"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Format = Literal["monaco", "judge0"]
FORMATS: tuple[Format, ...] = get_args(Format)

# Never a callback target unless an allowlist CIDR inside the range names the address.
REFUSED_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)
_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class CallbackRefused(ValueError):
    """A callback URL Monaco will not call; the message says why and what to change."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # lower case, no brackets, no trailing dot
    port: int
    path: str  # path and query, as sent in the request line


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: delivered, or why not and whether trying again can help."""

    delivered: bool
    retry: bool = False
    error: str | None = None


def _unwrap(addr: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv6 one (mapped, 6to4, NAT64), which is where a packet really goes."""
    if isinstance(addr, ipaddress.IPv6Address):
        inner = addr.ipv4_mapped or addr.sixtofour
        if inner is not None:
            return inner
        if addr in _NAT64:
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


@dataclass
class Policy:
    """The operator's callback settings: allowlist, extra refused networks, retry schedule."""

    names: tuple[str, ...] = ()  # exact host names
    suffixes: tuple[str, ...] = ()  # from `*.example.com`: ".example.com"
    networks: tuple[IPNetwork, ...] = ()  # from IP and CIDR entries
    refused: tuple[tuple[IPNetwork, str], ...] = field(default_factory=tuple)
    attempts: int = 5
    backoff_seconds: float = 8.0
    timeout_seconds: float = 5.0
    resolve: Callable[[str, int], list[str]] = field(default=lambda host, port: _resolve(host, port))

    @classmethod
    def parse(cls, allow: str, deny: str = "", kubernetes_host: str | None = None, **kwargs: Any) -> Policy:
        names: list[str] = []
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for entry in _entries(allow):
            if entry.startswith("*."):
                if not _NAME.fullmatch(entry[2:]):
                    raise ValueError(f"callback allowlist entry {entry!r} is not a `*.domain` wildcard")
                suffixes.append(entry[1:])
            elif (net := _network(entry)) is not None:
                networks.append(net)
            elif _NAME.fullmatch(entry) and not _numeric_label(entry):
                names.append(entry)
            else:
                raise ValueError(
                    f"callback allowlist entry {entry!r} is neither a host name, `*.domain`, an IP address nor a CIDR"
                )
        refused = [(ipaddress.ip_network(cidr), why) for cidr, why in REFUSED_RANGES]
        for entry in _entries(deny):
            net = _network(entry)
            if net is None:
                raise ValueError(f"callback deny entry {entry!r} is not an IP address or CIDR")
            refused.append((net, "a refused network (MONACO_CALLBACK_DENY)"))
        if kubernetes_host and (api := _network(kubernetes_host)) is not None:
            refused.append((api, "the Kubernetes API server"))
        return cls(tuple(names), tuple(suffixes), tuple(networks), tuple(refused), **kwargs)

    @property
    def enabled(self) -> bool:
        return bool(self.names or self.suffixes or self.networks)

    # ---- submit time
    def check_url(self, url: str) -> Target:
        """The URL's parts if Monaco may call it; CallbackRefused saying why not."""
        if not self.enabled:
            raise CallbackRefused("callbacks are not enabled on this server (its MONACO_CALLBACK_ALLOW is empty)")
        if len(url) > MAX_URL:
            raise CallbackRefused(f"'callbackUrl' is {len(url)} characters; the limit is {MAX_URL}")
        if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in url) or not url.isascii():
            raise CallbackRefused("'callbackUrl' holds whitespace, control characters, backslashes or non-ASCII; "
                                  "send a percent-encoded http(s) URL")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise CallbackRefused(f"'callbackUrl' must be an http:// or https:// URL, not {parts.scheme or url!r}")
        if "@" in parts.netloc:
            raise CallbackRefused("'callbackUrl' must not hold a user name or password (user@host)")
        try:
            port = parts.port if parts.port is not None else (443 if scheme == "https" else 80)
        except ValueError:
            raise CallbackRefused("'callbackUrl' has an invalid port") from None
        host = (parts.hostname or "").rstrip(".")
        if not host or port == 0:
            raise CallbackRefused("'callbackUrl' has no host (or port 0)")
        addr = _address(host)
        if addr is None and (_numeric_label(host) or not _NAME.fullmatch(host)):
            raise CallbackRefused(
                f"'callbackUrl' host {host!r} is not a host name; write IP addresses as 1.2.3.4 or [2001:db8::1]"
            )
        if not self._listed(host, addr):
            raise CallbackRefused(f"'callbackUrl' host {host!r} is not on this server's callback allowlist")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Target(url, scheme, host, port, path)

    def _listed(self, host: str, addr: IPAddress | None) -> bool:
        if addr is not None:
            return any(a in net for a in (addr, _unwrap(addr)) for net in self.networks)
        return host in self.names or any(host.endswith(s) for s in self.suffixes)

    # ---- send time
    def refusal(self, addr: IPAddress) -> str | None:
        """Why Monaco must not connect to `addr`, or None."""
        real = _unwrap(addr)
        for net, why in self.refused:
            if real.version == net.version and real in net:
                if any(real in a and _inside(a, net) for a in self.networks):
                    continue  # the operator named this very address (or a part of that range) on the allowlist
                return f"{addr} is {why}"
        return None

    def pin(self, target: Target) -> str:
        """The one address to connect to, once every address the host resolves to was checked."""
        addr = _address(target.host)
        try:
            found = [target.host] if addr is not None else self.resolve(target.host, target.port)
        except OSError as exc:
            raise ConnectionError(f"cannot resolve {target.host}: {exc}") from None
        if not found:
            raise ConnectionError(f"{target.host} resolves to no address")
        for raw in found:
            why = self.refusal(ipaddress.ip_address(raw.split("%", 1)[0]))
            if why is not None:
                raise CallbackRefused(f"refused to call {target.host}: {why}")
        return found[0]

    def deliver(
        self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None, method: str = "POST"
    ) -> Attempt:
        """Send `body` as JSON to `url` (POST, or `method`), once. Never raises."""
        try:
            target = self.check_url(url)
            address = self.pin(target)
        except CallbackRefused as exc:
            return Attempt(False, retry=False, error=str(exc))
        except ConnectionError as exc:
            return Attempt(False, retry=True, error=str(exc))
        data = json.dumps(body).encode()
        conn = _connection(target, address, self.timeout_seconds)
        try:
            conn.request(
                method, target.path, body=data,
                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})},
            )  # fmt: skip
            resp = conn.getresponse()
            resp.read(RESPONSE_BYTES)
            code = resp.status
        except (OSError, http.client.HTTPException) as exc:
            return Attempt(False, retry=True, error=f"{type(exc).__name__}: {exc}"[:500])
        finally:
            conn.close()
        if 200 <= code < 300:
            return Attempt(True)
        if 300 <= code < 400:
            return Attempt(False, retry=False, error=f"HTTP {code}: redirects are not followed")
        return Attempt(False, retry=code in (408, 429) or code >= 500, error=f"HTTP {code}")

    def after(self, attempt: Attempt, attempts: int) -> tuple[CallbackState, float | None]:
        """The delivery's state after its `attempts`-th attempt, and the seconds until the next one (None:
        no next one, it was delivered or given up on)."""
        if attempt.delivered:
            return CallbackState(state="delivered", attempts=attempts), None
        if not attempt.retry or attempts >= self.attempts:
            return CallbackState(state="failed", attempts=attempts, last_error=attempt.error), None
        return CallbackState(state="pending", attempts=attempts, last_error=attempt.error), self.delay(attempts)

    def delay(self, attempts: int, rng: Callable[[float, float], float] = random.uniform) -> float:
        """Seconds before the next attempt after `attempts` failed ones: exponential, with jitter."""
        return float(self.backoff_seconds * 2 ** (attempts - 1) * rng(0.5, 1.5))


@dataclass(frozen=True)
class Message:
    method: str
    body: dict[str, Any]


def message(view: SubmissionView, fmt: str | None) -> Message:
    """What a submission's callback sends, in its format (None, as stored for submissions from before
    formats: `monaco`)."""
    if fmt == "judge0":
        return Message("PUT", judge0.callback_body(view.result_body()))
    return Message("POST", view.result_body())


def headers(submission_id: str, attempt: int) -> dict[str, str]:
    """What a receiver can deduplicate and order by: delivery is at least once."""
    return {"X-Monaco-Submission": submission_id, "X-Monaco-Attempt": str(attempt)}


def _entries(text: str) -> Iterable[str]:
    return (e.strip().lower().rstrip(".") for e in text.split(",") if e.strip())


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return None


def _inside(inner: IPNetwork, outer: IPNetwork) -> bool:
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _numeric_label(host: str) -> bool:
    """A last label that is a number (`2130706433`, `0x7f`, `1.2.3.4.5`): the spellings of IPv4 that
    resolvers and URL parsers read differently; refused rather than guessed at."""
    last = host.rsplit(".", 1)[-1]
    return bool(re.fullmatch(r"[0-9]+|0x[0-9a-f]*", last))


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Pinned(http.client.HTTPConnection):
    """HTTP to a checked address, with the URL's name in the Host header."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    """HTTPS to a checked address; SNI and the certificate check use the URL's name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _connection(target: Target, address: str, timeout: float) -> http.client.HTTPConnection:
    kind = _PinnedTLS if target.scheme == "https" else _Pinned
    return kind(target.host, target.port, address, timeout)
