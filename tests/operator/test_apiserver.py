"""The operator against a real API server, without nodes: etcd, kube-apiserver and kube-controller-manager
(Job, garbage collector, ServiceAccount controllers) on loopback ports, the manifests applied with
kubectl, the operator run as `monaco operator` with the operator's own RBAC, and two fake kubelets:
one ends sandbox pods by writing their status (no logs: every verdict is system_error), the other is a
node whose "kubelet" runs the pod's containers' commands with the real runner on this machine (the
pod's env and ConfigMap, mounts mapped to local dirs) and serves their logs to the API server.

Proves what unit tests cannot: the CRD and its CEL rule, the JSON-patch compare-and-set, RBAC, the
restricted Pod Security admission of the sandbox pod, garbage collection, restarts, and the result's way
from the runner through pods/log to the status. Not proven here: real containers, cgroups, OOM kills,
evictions, NetworkPolicy enforcement (the e2e suite's job).

Opt-in (it starts processes and takes a minute): MONACO_TEST_APISERVER=1, with etcd and kubectl on PATH
and kube-apiserver + kube-controller-manager in MONACO_KUBE_BIN (default: the e2e harness's cache).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import glob
import http.server
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

from tests.support import free_port, python, wait_until_blocking

ROOT = Path(__file__).resolve().parents[2]
NS = "monaco-sandbox"
MAX_WORKERS = 2
TIMEOUT = 60.0
POLL = 0.1  # seconds between the polls of a wait


def _kube_bin() -> Path | None:
    candidates = [os.environ.get("MONACO_KUBE_BIN", ""), *sorted(glob.glob("/var/cache/monaco-e2e/k8s-*/bin"))]
    for c in candidates:
        if c and (Path(c) / "kube-apiserver").exists() and (Path(c) / "kube-controller-manager").exists():
            return Path(c)
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("MONACO_TEST_APISERVER") != "1", reason="opt-in: MONACO_TEST_APISERVER=1"),
]


class ControlPlane:
    def __init__(self, work: Path, kube_bin: Path) -> None:
        self.work = work
        self.bin = kube_bin
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.ca = work / "certs" / "apiserver.crt"

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.work / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def kubeconfig(self, user: str, token: str) -> Path:
        path = self.work / f"{user}.kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: c, cluster: {{server: '{self.server}', certificate-authority: '{self.ca}'}}}}]\n"
            f"users: [{{name: u, user: {{token: {token}}}}}]\n"
            "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
        )
        return path

    def start(self) -> None:
        w = self.work
        subprocess.run(["openssl", "genrsa", "-out", str(w / "sa.key"), "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(w / "sa.key"), "-pubout", "-out", str(w / "sa.pub")],
                       check=True, capture_output=True)
        sa = "system:serviceaccount:monaco-system"
        groups = "system:serviceaccounts,system:serviceaccounts:monaco-system,system:authenticated"
        (w / "tokens.csv").write_text(
            "admintoken,admin,admin,system:masters\n"
            f'optoken,{sa}:monaco-operator,op,"{groups}"\n'
            f'apitoken,{sa}:monaco-api,api,"{groups}"\n'
        )
        client_port, peer_port = free_port(), free_port()
        self._start("etcd", [
            "etcd", "--name", "t", "--data-dir", str(w / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{client_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{client_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"t=http://127.0.0.1:{peer_port}",
        ])
        self._start("apiserver", [
            str(self.bin / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{client_port}",
            f"--secure-port={self.port}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--cert-dir={w / 'certs'}", "--authorization-mode=Node,RBAC", f"--token-auth-file={w / 'tokens.csv'}",
            "--service-account-issuer=https://kubernetes.default.svc", f"--service-account-key-file={w / 'sa.pub'}",
            f"--service-account-signing-key-file={w / 'sa.key'}", "--service-cluster-ip-range=10.96.0.0/16",
            "--kubelet-preferred-address-types=InternalIP",
        ])
        self.admin = self.kubeconfig("admin", "admintoken")
        self.operator = self.kubeconfig("op", "optoken")
        self.api = self.kubeconfig("api", "apitoken")
        wait_until_blocking(lambda: self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
                            TIMEOUT, "the API server", POLL)
        self._start("controller-manager", [
            str(self.bin / "kube-controller-manager"), f"--kubeconfig={self.admin}",
            "--controllers=job,garbagecollector,serviceaccount,namespace", "--leader-elect=false",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            f"--service-account-private-key-file={w / 'sa.key'}",
        ])

    def kubectl(self, *args: str, user: Path | None = None, input: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", f"--kubeconfig={user or self.admin}", *args], input=input, text=True,
                              capture_output=True, check=check, timeout=60)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    kube_bin = _kube_bin()
    if kube_bin is None or not shutil.which("etcd") or not shutil.which("kubectl"):
        pytest.skip("needs etcd, kubectl, kube-apiserver and kube-controller-manager")
    cp = ControlPlane(tmp_path_factory.mktemp("apiserver"), kube_bin)
    try:
        cp.start()
        cp.kubectl("apply", "-k", str(ROOT / "manifests"))
        wait_until_blocking(lambda: cp.kubectl("-n", NS, "get", "serviceaccount", "default", check=False).returncode
                            == 0, TIMEOUT, "the default ServiceAccount", POLL)
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="module")
def k8s(plane: ControlPlane) -> Iterator[tuple[client.CoreV1Api, client.BatchV1Api, client.CustomObjectsApi]]:
    cfg = client.Configuration()
    cfg.host = plane.server
    cfg.ssl_ca_cert = str(plane.ca)
    cfg.api_key = {"BearerToken": "admintoken"}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    api = client.ApiClient(cfg)
    yield client.CoreV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api)


class Operator:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.proc: subprocess.Popen[bytes] | None = None
        self.health = free_port()

    def start(self, **env: str) -> None:
        environ = {**os.environ, "KUBECONFIG": str(self.plane.operator), "MONACO_NAMESPACE": NS,
                   "MAX_WORKERS": str(MAX_WORKERS), "MONACO_START_DEADLINE_SECONDS": "10",
                   "MONACO_HEALTH_PORT": str(self.health), **env}
        with (self.plane.work / "operator.log").open("ab") as log:
            self.proc = subprocess.Popen(python("-m", "monaco.cli", "operator"), env=environ,
                                         stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def operator(plane: ControlPlane) -> Iterator[Operator]:
    op = Operator(plane)
    op.start()
    try:
        yield op
    finally:
        op.stop()


class FakeKubelet:
    """Ends sandbox pods after `delay` seconds by writing a terminal status; records the peak of live pods."""

    def __init__(self, core: client.CoreV1Api, delay: float) -> None:
        self.core, self.delay = core, delay
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        first: dict[str, float] = {}
        while not self._stop.is_set():
            live = [p for p in self.core.list_namespaced_pod(NS).items if p.status.phase in ("Pending", "Running")]
            self.peak = max(self.peak, len(live))
            for p in live:
                if p.metadata.deletion_timestamp:
                    continue
                if time.monotonic() - first.setdefault(p.metadata.name, time.monotonic()) < self.delay:
                    continue
                now = dt.datetime.now(dt.UTC).isoformat()
                state = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}
                body = {"status": {"phase": "Succeeded", "containerStatuses": [
                    {"name": "run", "ready": False, "restartCount": 0, "image": "x", "imageID": "", "state": state}]}}
                with contextlib.suppress(client.exceptions.ApiException):
                    self.core.patch_namespaced_pod_status(p.metadata.name, NS, body)
            self._stop.wait(0.05)

    def __enter__(self) -> FakeKubelet:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def create(plane: ControlPlane, names: list[str]) -> None:
    docs = []
    for i, name in enumerate(names):
        stamp = (dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=i)).isoformat()
        docs.append(
            "apiVersion: monaco.dev/v1alpha1\nkind: CodeSubmission\n"
            f"metadata: {{name: {name}, annotations: {{monaco.dev/submitted-at: '{stamp}'}}}}\n"
            "spec: {language: python, code: 'print(1)', input: '', limits: {timeoutSeconds: 5, memoryMb: 64}}\n"
        )
    plane.kubectl("-n", NS, "create", "-f", "-", user=plane.api, input="---\n".join(docs))


def statuses(custom: client.CustomObjectsApi, prefix: str) -> dict[str, dict[str, Any]]:
    items = custom.list_namespaced_custom_object("monaco.dev", "v1alpha1", NS, "codesubmissions")["items"]
    return {o["metadata"]["name"]: o.get("status") or {} for o in items if o["metadata"]["name"].startswith(prefix)}


def finished(custom: client.CustomObjectsApi, prefix: str = "burst") -> int:
    return sum(s.get("phase") in ("completed", "failed") for s in statuses(custom, prefix).values())


class Recorder:
    """Watches the submissions' status: every distinct result and start ever seen, per name."""

    def __init__(self, plane: ControlPlane) -> None:
        self.proc = subprocess.Popen(
            ["kubectl", f"--kubeconfig={plane.admin}", "-n", NS, "get", "codesubmissions", "--watch", "--no-headers",
             "-o", "custom-columns=N:.metadata.name,V:.status.verdict,C:.status.completedAt,S:.status.startedAt"],
            stdout=subprocess.PIPE, text=True)
        self.results: dict[str, set[tuple[str, str]]] = {}
        self.starts: dict[str, set[str]] = {}
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) != 4:
                continue
            name, verdict, completed, started = parts
            if completed != "<none>":
                self.results.setdefault(name, set()).add((verdict, completed))
            if started != "<none>":
                self.starts.setdefault(name, set()).add(started)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._thread.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def test_crd_rejects_bad_specs_and_keeps_spec_immutable(plane: ControlPlane) -> None:
    bad = ("apiVersion: monaco.dev/v1alpha1\nkind: CodeSubmission\nmetadata: {name: bad}\n"
           "spec: {language: 'Py thon', code: x, limits: {timeoutSeconds: 0, memoryMb: 1}}\n")
    out = plane.kubectl("-n", NS, "create", "-f", "-", user=plane.api, input=bad, check=False)
    assert out.returncode != 0 and "memoryMb" in out.stderr and "timeoutSeconds" in out.stderr
    create(plane, ["immutable"])
    out = plane.kubectl("-n", NS, "patch", "codesubmission", "immutable", "--type=merge", "-p",
                        '{"spec":{"code":"y"}}', check=False)
    assert out.returncode != 0 and "spec is immutable" in out.stderr
    out = plane.kubectl("-n", NS, "patch", "codesubmission", "immutable", "--type=merge", "-p",
                        '{"spec":{"code":"y"}}', user=plane.api, check=False)
    assert "forbidden" in out.stderr  # the API may not edit a submission at all
    plane.kubectl("-n", NS, "delete", "codesubmission", "immutable")


def test_burst_with_two_operator_kills_ends_each_submission_once(
    plane: ControlPlane, operator: Operator, k8s: tuple[client.CoreV1Api, client.BatchV1Api, client.CustomObjectsApi]
) -> None:
    core, batch, custom = k8s
    names = [f"burst-{i:02d}" for i in range(16)]
    recorder = Recorder(plane)
    try:
        with FakeKubelet(core, delay=0.3) as kubelet:
            create(plane, names)
            wait_until_blocking(lambda: finished(custom) >= 3, TIMEOUT, "the first results", POLL)
            operator.kill()
            operator.start()
            wait_until_blocking(lambda: finished(custom) >= 8, TIMEOUT, "more results", POLL)
            operator.kill()
            operator.start()
            wait_until_blocking(lambda: finished(custom) == len(names), TIMEOUT, "every result", POLL)
            assert kubelet.peak <= MAX_WORKERS
        wait_until_blocking(lambda: not [j for j in batch.list_namespaced_job(NS).items
                                         if j.metadata.name.startswith("csub-b")],
                            TIMEOUT, "the Jobs to be deleted", POLL)
        assert not [c for c in core.list_namespaced_config_map(NS).items if c.metadata.name.startswith("csub-burst")]
        wait_until_blocking(lambda: set(recorder.results) == set(names), TIMEOUT, "the watch to see every result", POLL)
    finally:
        recorder.stop()
    assert all(len(r) == 1 for r in recorder.results.values()), recorder.results
    assert all(len(s) == 1 for s in recorder.starts.values()), recorder.starts
    log = (plane.work / "operator.log").read_text()
    admitted = [line.split("admitted ")[1].split()[0] for line in log.splitlines() if "admitted burst-" in line]
    assert admitted[:4] == names[:4]  # FIFO (before the first kill)


def test_cancel_frees_the_slot_and_deletes_the_children(
    plane: ControlPlane, operator: Operator, k8s: tuple[client.CoreV1Api, client.BatchV1Api, client.CustomObjectsApi]
) -> None:
    core, batch, custom = k8s
    create(plane, ["cancel-1", "cancel-2", "cancel-3"])
    wait_until_blocking(lambda: [s.get("phase") for s in statuses(custom, "cancel").values()]
                        == ["running", "running", "queued"], TIMEOUT, "two running, one queued", POLL)
    pods = core.list_namespaced_pod(NS, label_selector="monaco.dev/submission=cancel-1").items
    assert pods and pods[0].spec.security_context.run_as_non_root  # admitted by the restricted PSS
    plane.kubectl("-n", NS, "delete", "codesubmission", "cancel-1", "--wait=false", user=plane.api)
    wait_until_blocking(lambda: statuses(custom, "cancel").get("cancel-3", {}).get("phase") == "running",
                        15, "the queued one to be admitted", POLL)
    wait_until_blocking(lambda: not batch.list_namespaced_job(NS, label_selector="monaco.dev/submission=cancel-1")
                        .items, TIMEOUT, "the cancelled Job to go", POLL)
    for name in ("cancel-2", "cancel-3"):
        plane.kubectl("-n", NS, "delete", "codesubmission", name)


def test_a_pod_that_never_starts_fails_at_the_start_deadline(
    plane: ControlPlane, operator: Operator, k8s: tuple[client.CoreV1Api, client.BatchV1Api, client.CustomObjectsApi]
) -> None:
    _, batch, custom = k8s
    create(plane, ["stuck"])
    wait_until_blocking(lambda: statuses(custom, "stuck").get("stuck", {}).get("phase") == "failed",
                        40, "the start deadline", POLL)
    status = statuses(custom, "stuck")["stuck"]
    assert status["verdict"] == "system_error" and "did not start" in status["message"]
    wait_until_blocking(lambda: not batch.list_namespaced_job(NS, label_selector="monaco.dev/submission=stuck").items,
                        TIMEOUT, "the Job to be deleted", POLL)


class LoggingKubelet:
    """A fake node whose 'kubelet' runs each sandbox's containers with the real runner, on this machine
    and with the pod's own environment and ConfigMap, then serves their logs to the API server (which
    proxies the operator's pods/log reads here) and writes the pod's terminal status."""

    def __init__(self, plane: ControlPlane, core: client.CoreV1Api) -> None:
        self.plane, self.core = plane, core
        self.work = plane.work / "node"
        self.work.mkdir(exist_ok=True)
        self.logs: dict[tuple[str, str], bytes] = {}
        self.requests: list[dict[str, list[str]]] = []
        self.port = free_port()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server = self._serve()

    def _serve(self) -> http.server.ThreadingHTTPServer:
        key, cert = self.work / "kubelet.key", self.work / "kubelet.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-days", "1", "-subj", "/CN=fake-node"], check=True, capture_output=True)
        kubelet = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                _, _, _ns, pod, container = url.path.split("/")[:5]
                query = parse_qs(url.query)
                kubelet.requests.append(query)
                data = kubelet.logs.get((pod, container))
                if data is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                lines = data.splitlines(keepends=True)
                if "tailLines" in query:
                    lines = lines[-int(query["tailLines"][0]):]
                body = b"".join(lines)
                if "limitBytes" in query:
                    body = body[: int(query["limitBytes"][0])]
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        return server

    def register_node(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "fake-node"}}
        with contextlib.suppress(client.exceptions.ApiException):
            self.core.create_node(node)
        self.core.patch_node_status("fake-node", {"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}}}})

    def _execute(self, pod: Any) -> None:
        name = pod.metadata.name
        volumes = {v.name: v.config_map.name for v in pod.spec.volumes if v.config_map}
        cm = self.core.read_namespaced_config_map(volumes["src"], NS)
        runner = self.core.read_namespaced_config_map(volumes["runner"], NS)
        base = self.work / name
        src, build, tmp, bin_ = base / "src", base / "build", base / "tmp", base / "bin"
        for d in (src, build, tmp, bin_):
            d.mkdir(parents=True)
        for key, value in cm.data.items():
            (src / key).write_text(value)
        for key, value in runner.binary_data.items():
            (bin_ / key).write_bytes(base64.b64decode(value))
            (bin_ / key).chmod(0o555)
        statuses: dict[str, list[dict[str, Any]]] = {"initContainerStatuses": [], "containerStatuses": []}
        now = dt.datetime.now(dt.UTC).isoformat()
        for kind, containers in (("initContainerStatuses", pod.spec.init_containers or []),
                                 ("containerStatuses", pod.spec.containers)):
            for c in containers:
                # The pod's mounts, mapped onto this machine's directories.
                mounts = {"/monaco/src": str(src), "/monaco/build": str(build), "/tmp": str(tmp),
                          "/monaco/bin": str(bin_)}

                def here(value: str, mounts: dict[str, str] = mounts) -> str:
                    for inside, outside in mounts.items():
                        if value == inside or value.startswith(inside + "/"):
                            return outside + value[len(inside):]
                    return value

                env = {e.name: here(e.value) for e in c.env} | {"PATH": os.environ["PATH"]}
                command = [here(arg) for arg in c.command]
                out = subprocess.run(command, env=env, capture_output=True, timeout=60, check=True).stdout
                self.logs[(name, c.name)] = out
                statuses[kind].append({"name": c.name, "ready": False, "restartCount": 0, "image": c.image,
                                       "imageID": "", "state": {"terminated": {
                                           "exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}})
        if not statuses["initContainerStatuses"]:
            del statuses["initContainerStatuses"]
        self.core.patch_namespaced_pod_status(name, NS, {"status": {"phase": "Succeeded", **statuses}})

    def _run(self) -> None:
        done: set[str] = set()
        while not self._stop.is_set():
            for pod in self.core.list_namespaced_pod(NS).items:
                name = pod.metadata.name
                if name in done or pod.metadata.deletion_timestamp or pod.status.phase != "Pending":
                    continue
                done.add(name)
                if not pod.spec.node_name:
                    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                               "target": {"apiVersion": "v1", "kind": "Node", "name": "fake-node"}}
                    with contextlib.suppress(Exception):  # some client versions choke on the reply
                        self.core.create_namespaced_pod_binding(name, NS, binding)
                self._execute(self.core.read_namespaced_pod(name, NS))
            self._stop.wait(0.05)

    def __enter__(self) -> LoggingKubelet:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.register_node()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._server.shutdown()
        self._server.server_close()


def create_one(plane: ControlPlane, name: str, language: str, code: str, stdin: str = "") -> None:
    doc = {"apiVersion": "monaco.dev/v1alpha1", "kind": "CodeSubmission", "metadata": {"name": name},
           "spec": {"language": language, "code": code, "input": stdin}}
    plane.kubectl("-n", NS, "create", "-f", "-", user=plane.api, input=json.dumps(doc))


def test_results_travel_from_the_runner_through_the_pod_logs(
    plane: ControlPlane, operator: Operator, k8s: tuple[client.CoreV1Api, client.BatchV1Api, client.CustomObjectsApi]
) -> None:
    core, _, custom = k8s
    cases = {
        "log-ok": ("python", "import sys\nprint(sys.stdin.read().upper(), end='')", "hello\n"),
        "log-exit": ("python", "import sys\nprint('bye', file=sys.stderr)\nsys.exit(3)", ""),
        "log-c": ("c", '#include <stdio.h>\nint main(void){puts("from c");return 0;}\n', ""),
        "log-cerr": ("c", "int main(void){ return nope; }\n", ""),
    }
    if not shutil.which("gcc"):
        cases = {k: v for k, v in cases.items() if v[0] != "c"}
    with LoggingKubelet(plane, core) as kubelet:
        for name, (language, code, stdin) in cases.items():
            create_one(plane, name, language, code, stdin)
        wait_until_blocking(lambda: finished(custom, "log-") == len(cases), TIMEOUT, "every result", POLL)
        got = statuses(custom, "log-")
    assert got["log-ok"]["verdict"] == "ok" and got["log-ok"]["output"] == "HELLO\n", got["log-ok"]
    assert got["log-ok"]["executionTimeMs"] > 0 and got["log-ok"]["exitCode"] == 0
    assert got["log-exit"]["verdict"] == "runtime_error" and got["log-exit"]["stderr"] == "bye\n"
    assert got["log-exit"]["exitCode"] == 3
    if "log-c" in got:
        assert got["log-c"]["verdict"] == "ok" and got["log-c"]["output"] == "from c\n", got["log-c"]
        assert got["log-c"]["compileTimeMs"] > 0
        assert got["log-cerr"]["verdict"] == "compile_error" and "nope" in got["log-cerr"]["compileOutput"]
    # Every read was bounded.
    assert kubelet.requests and all("tailLines" in q and "limitBytes" in q for q in kubelet.requests)


def test_the_sandbox_namespace_really_enforces_restricted(plane: ControlPlane) -> None:
    """So the sandbox pods created above passed a real Pod Security admission, not an absent one."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rootful"},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    out = plane.kubectl("-n", NS, "create", "-f", "-", input=json.dumps(pod), check=False)
    assert out.returncode != 0 and "violates PodSecurity" in out.stderr and "restricted" in out.stderr
