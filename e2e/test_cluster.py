"""Proof that the cluster under test is a real Kubernetes cluster: pods run, Services route,
limits are enforced by the kernel, Jobs time out, Pod Security admission refuses, NetworkPolicy
denies, and in-cluster clients reach the API server. Each test uses its own namespace.

Runs against the local cluster of e2e/cluster/up.sh (`make e2e-cluster-test`) or, with
MONACO_E2E_ANY_CLUSTER=1, any cluster in KUBECONFIG whose nodes have the python image.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

import pytest
from conftest import Kubectl

from tests.support import wait_until_blocking

# Pods the tests start: restricted-PSS compliant unless a test says otherwise.
RESTRICTED_CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod(name: str, image: str, pull_policy: str, command: list[str], *,
        labels: dict[str, str] | None = None, memory: str = "128Mi",
        restart: str = "Never", extra: dict[str, Any] | None = None,
        container_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": command,
        "resources": {"requests": {"cpu": "50m", "memory": memory},
                      "limits": {"cpu": "1", "memory": memory}},
        "securityContext": dict(RESTRICTED_CONTAINER_SECURITY),
    }
    container.update(container_extra or {})
    spec: dict[str, Any] = {"restartPolicy": restart, "containers": [container],
                            "terminationGracePeriodSeconds": 1}
    spec.update(extra or {})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": name}}, "spec": spec}


def py(code: str) -> list[str]:
    return ["python3", "-u", "-c", code]


def phase(kubectl: Kubectl, ns: str, name: str) -> str:
    return kubectl("-n", ns, "get", "pod", name, "-o", "jsonpath={.status.phase}")


def wait_phase(kubectl: Kubectl, ns: str, name: str, want: str, timeout: float = 120) -> None:
    def check() -> bool:
        got = phase(kubectl, ns, name)
        if got in ("Succeeded", "Failed") and got != want:
            raise AssertionError(f"pod {name} ended {got}, wanted {want}:\n" + describe(kubectl, ns))
        return got == want
    wait_until_blocking(check, timeout, f"pod {ns}/{name} to be {want}")


def describe(kubectl: Kubectl, ns: str) -> str:
    return (kubectl.run("-n", ns, "describe", "pods", check=False).stdout
            + kubectl.run("-n", ns, "get", "events", check=False).stdout)


def logs(kubectl: Kubectl, ns: str, name: str) -> str:
    return kubectl("-n", ns, "logs", name)


def serve(kubectl: Kubectl, ns: str, images: dict[str, str], pull_policy: str,
          token: str) -> str:
    """A pod serving `token` over HTTP on port 8080 behind Service `web`; returns its cluster IP."""
    server = py(
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        f"        body = b'{token}'\n"
        "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *a): print('request', *a, flush=True)\n"
        "http.server.ThreadingHTTPServer(('', 8080), H).serve_forever()\n")
    manifest = pod("web", images["PYTHON_IMAGE"], pull_policy, server, labels={"app": "web"},
                   container_extra={"ports": [{"containerPort": 8080}],
                                    "readinessProbe": {"tcpSocket": {"port": 8080},
                                                       "periodSeconds": 1}})
    kubectl.apply(manifest, ns)
    kubectl.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                   "spec": {"selector": {"app": "web"},
                            "ports": [{"port": 80, "targetPort": 8080}]}}, ns)
    kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/web", "--timeout=120s", timeout=130)
    return kubectl("-n", ns, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")


def test_pod_runs_and_its_logs_are_read(kubectl: Kubectl, namespace: str,
                                        images: dict[str, str], pull_policy: str) -> None:
    token = uuid.uuid4().hex
    kubectl.apply(pod("hello", images["PYTHON_IMAGE"], pull_policy,
                      py(f"import sys; print('hello from', sys.version_info[:2], '{token}')")),
                  namespace)
    wait_phase(kubectl, namespace, "hello", "Succeeded")
    assert token in logs(kubectl, namespace, "hello")
    status = kubectl.json("-n", namespace, "get", "pod", "hello")["status"]
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert status["podIP"]


def test_service_routes_to_a_pod(kubectl: Kubectl, namespace: str, images: dict[str, str],
                                 pull_policy: str) -> None:
    token = uuid.uuid4().hex
    ip = serve(kubectl, namespace, images, pull_policy, token)
    client = py(
        "import time, urllib.request\n"
        "deadline = time.time() + 60\n"
        "while True:\n"
        "    try:\n"
        f"        print('got', urllib.request.urlopen('http://{ip}:80/', timeout=2).read().decode()); break\n"
        "    except Exception as e:\n"
        "        if time.time() > deadline: raise\n"
        "        print('retry', e); time.sleep(0.5)\n")
    kubectl.apply(pod("client", images["PYTHON_IMAGE"], pull_policy, client), namespace)
    wait_phase(kubectl, namespace, "client", "Succeeded", timeout=120)
    assert f"got {token}" in logs(kubectl, namespace, "client")
    # the server saw the request
    assert "request" in logs(kubectl, namespace, "web")


def test_pod_over_its_memory_limit_is_oom_killed(kubectl: Kubectl, namespace: str,
                                                 images: dict[str, str], pull_policy: str) -> None:
    # bytearray() zero-fills, so all 512 MiB are really touched
    hog = py("import time; b = bytearray(512 * 1024 * 1024); print('survived'); time.sleep(5)")
    kubectl.apply(pod("hog", images["PYTHON_IMAGE"], pull_policy, hog, memory="64Mi"), namespace)
    wait_phase(kubectl, namespace, "hog", "Failed")
    term = kubectl.json("-n", namespace, "get", "pod", "hog")["status"]["containerStatuses"][0][
        "state"]["terminated"]
    assert term["reason"] == "OOMKilled", term
    assert term["exitCode"] == 137, term


def test_job_past_its_active_deadline_fails_with_deadline_exceeded(
        kubectl: Kubectl, namespace: str, images: dict[str, str], pull_policy: str) -> None:
    template = pod("sleeper", images["PYTHON_IMAGE"], pull_policy, py("import time; time.sleep(600)"))
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "sleeper"},
           "spec": {"activeDeadlineSeconds": 5, "backoffLimit": 0, "ttlSecondsAfterFinished": 300,
                    "template": {"metadata": {"labels": {"app": "sleeper"}},
                                 "spec": template["spec"]}}}
    started = time.monotonic()
    kubectl.apply(job, namespace)

    def failed() -> dict[str, Any] | None:
        conds = kubectl.json("-n", namespace, "get", "job", "sleeper")["status"].get("conditions", [])
        return next((c for c in conds if c["type"] == "Failed" and c["status"] == "True"), None)

    cond = wait_until_blocking(failed, 120, "the Job to fail")
    assert cond["reason"] == "DeadlineExceeded", cond
    assert time.monotonic() - started >= 3
    # not before the deadline: both times are whole seconds, truncated
    status = kubectl.json("-n", namespace, "get", "job", "sleeper")["status"]
    ts = [datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ")
          for t in (status["startTime"], cond["lastTransitionTime"])]
    assert (ts[1] - ts[0]).total_seconds() >= 5, (status, cond)
    # the Job controller kills the pod it had running
    wait_until_blocking(lambda: not kubectl("-n", namespace, "get", "pods", "-l", "app=sleeper",
                                   "--field-selector=status.phase=Running", "-o", "name"),
               60, "the Job's pod to stop running")


def test_restricted_pod_security_refuses_a_violating_pod(
        kubectl: Kubectl, namespace: str, images: dict[str, str], pull_policy: str) -> None:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted",
            "--overwrite")
    bad = pod("privileged", images["PYTHON_IMAGE"], pull_policy, py("print('should not run')"),
              container_extra={"securityContext": {"privileged": True, "runAsUser": 0}})
    refused = kubectl.apply(bad, namespace, check=False)
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr, refused.stderr
    assert 'restricted' in refused.stderr
    # the other half: a compliant pod is admitted and runs (non-root, no caps, RuntimeDefault seccomp)
    good = pod("compliant", images["PYTHON_IMAGE"], pull_policy,
               py("import os; print('uid', os.getuid())"))
    kubectl.apply(good, namespace)
    wait_phase(kubectl, namespace, "compliant", "Succeeded")
    assert "uid 65534" in logs(kubectl, namespace, "compliant")


def test_deny_all_network_policy_cuts_a_connection_that_worked(
        kubectl: Kubectl, namespace: str, images: dict[str, str], pull_policy: str) -> None:
    token = uuid.uuid4().hex
    ip = serve(kubectl, namespace, images, pull_policy, token)
    # one long-lived client pod probes the Service every 0.5 s and prints one line per attempt
    prober = py(
        "import socket, time, urllib.request\n"
        "n = 0\n"
        "while True:\n"
        "    n += 1\n"
        "    try:\n"
        f"        body = urllib.request.urlopen('http://{ip}:80/', timeout=1).read().decode()\n"
        f"        print(n, 'ok' if body == '{token}' else 'wrong')\n"
        "    except Exception as e:\n"
        "        print(n, 'fail', type(e).__name__)\n"
        "    time.sleep(0.5)\n")
    kubectl.apply(pod("prober", images["PYTHON_IMAGE"], pull_policy, prober,
                      labels={"app": "prober"}), namespace)

    def lines() -> list[list[str]]:
        out = kubectl.run("-n", namespace, "logs", "prober", check=False).stdout
        return [line.split() for line in out.splitlines() if line.strip()]

    # first half: without a policy the prober reaches the Service
    wait_until_blocking(lambda: any(line[1] == "ok" for line in lines()), 120,
               "the prober to reach the Service before the policy")
    kubectl.apply({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "deny-all"},
                   "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}, namespace)
    applied_at = len(lines())

    # second half: the same pod, same Service, now cut off (3 failures in a row, none ok after)
    def cut_off() -> bool:
        after = [line[1] for line in lines()[applied_at:]]
        return len(after) >= 3 and after[-3:] == ["fail"] * 3
    wait_until_blocking(cut_off, 90, "the deny-all NetworkPolicy to cut the prober off")
    blocked_from = len(lines())
    wait_until_blocking(lambda: len(lines()) >= blocked_from + 4, 30, "more probes")
    later = [line[1] for line in lines()[blocked_from:]]
    assert "ok" not in later, later


def test_a_new_pod_is_denied_from_its_first_packet(kubectl: Kubectl, namespace: str,
                                                   images: dict[str, str], pull_policy: str) -> None:
    """A policy that exists before the pod must hold from the pod's first connection (a Monaco
    sandbox connects at once and exits): no window while the enforcer catches up."""
    token = uuid.uuid4().hex
    ip = serve(kubectl, namespace, images, pull_policy, token)
    kubectl.apply({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "deny-sandbox"},
                   "spec": {"podSelector": {"matchLabels": {"role": "sandbox"}},
                            "policyTypes": ["Ingress", "Egress"]}}, namespace)
    # the enforcer has the policy itself (what is tested is a new pod's window): a long-lived
    # selected pod is cut off first
    guard = py(
        "import socket, time\n"
        "while True:\n"
        "    s = socket.socket(); s.settimeout(1)\n"
        "    try:\n"
        f"        s.connect(('{ip}', 80)); print('ok', flush=True)\n"
        "    except OSError:\n"
        "        print('fail', flush=True)\n"
        "    s.close(); time.sleep(0.5)\n")
    kubectl.apply(pod("guard", images["PYTHON_IMAGE"], pull_policy, guard,
                      labels={"role": "sandbox"}), namespace)

    def guard_cut_off() -> bool:
        out = kubectl.run("-n", namespace, "logs", "guard", check=False).stdout.split()
        return out[-3:] == ["fail"] * 3
    wait_until_blocking(guard_cut_off, 90, "the policy to be enforced on an existing pod")
    once = py(
        "import socket, time\n"
        f"for host, port in [('{ip}', 80), ('KUBERNETES_SERVICE_PLACEHOLDER', 443)]:\n"
        "    s = socket.socket(); s.settimeout(4); t = time.monotonic()\n"
        "    try:\n"
        "        s.connect((host, port)); print(host, 'OPEN', flush=True)\n"
        "    except OSError as e:\n"
        "        print(host, 'blocked', type(e).__name__, flush=True)\n")
    kube_ip = kubectl("-n", "default", "get", "service", "kubernetes",
                      "-o", "jsonpath={.spec.clusterIP}")
    once = [part.replace("KUBERNETES_SERVICE_PLACEHOLDER", kube_ip) for part in once]
    kubectl.apply(pod("sandbox", images["PYTHON_IMAGE"], pull_policy, once,
                      labels={"role": "sandbox"}), namespace)
    kubectl.apply(pod("control", images["PYTHON_IMAGE"], pull_policy, once,
                      labels={"role": "control"}), namespace)
    wait_phase(kubectl, namespace, "sandbox", "Succeeded")
    wait_phase(kubectl, namespace, "control", "Succeeded")
    sandbox = logs(kubectl, namespace, "sandbox").split("\n")
    control = logs(kubectl, namespace, "control").split("\n")
    assert [line.split()[1] for line in sandbox if line] == ["blocked", "blocked"], sandbox
    assert [line.split()[1] for line in control if line] == ["OPEN", "OPEN"], control


def test_in_cluster_client_reaches_the_kubernetes_service(
        kubectl: Kubectl, namespace: str, images: dict[str, str], pull_policy: str) -> None:
    client = py(
        "import json, os, ssl, urllib.request, urllib.error\n"
        "sa = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "host, port = os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT']\n"
        "ctx = ssl.create_default_context(cafile=sa + '/ca.crt')\n"
        "req = urllib.request.Request(f'https://{host}:{port}/version',\n"
        "    headers={'Authorization': 'Bearer ' + open(sa + '/token').read().strip()})\n"
        "try:\n"
        "    resp = urllib.request.urlopen(req, context=ctx, timeout=10)\n"
        "    print(json.dumps({'status': resp.status, 'body': json.load(resp)}))\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(json.dumps({'status': e.code, 'body': None}))\n")
    kubectl.apply(pod("incluster", images["PYTHON_IMAGE"], pull_policy, client), namespace)
    wait_phase(kubectl, namespace, "incluster", "Succeeded")
    result = json.loads(logs(kubectl, namespace, "incluster").strip().splitlines()[-1])
    # TCP through the Service, TLS verified against the cluster CA, the token accepted or refused
    assert result["status"] in (200, 401, 403), result
    if result["status"] == 200:
        assert result["body"]["gitVersion"].startswith("v1."), result


def test_kubelet_limits_pod_pids(kubectl: Kubectl, namespace: str, images: dict[str, str],
                                 pull_policy: str) -> None:
    limit = int(getattr(kubectl, "marker", {}).get("podPidsLimit", "0") or 0)
    if limit <= 0:
        pytest.skip("the cluster does not say its podPidsLimit (not made by e2e/cluster/up.sh)")
    # start processes (each one is a task in the pod's pids cgroup) until the kernel says no
    spawner = py(
        "import os, signal\n"
        "kids = []\n"
        "try:\n"
        f"    while len(kids) < {limit * 2}:\n"
        "        kids.append(os.posix_spawn('/bin/sleep', ['sleep', '120'], {}))\n"
        "except OSError as e:\n"
        "    print('stopped', len(kids), e)\n"
        "print('processes', len(kids))\n"
        "for k in kids: os.kill(k, signal.SIGKILL)\n"
        "for k in kids: os.waitpid(k, 0)\n")
    kubectl.apply(pod("pids", images["PYTHON_IMAGE"], pull_policy, spawner, memory="512Mi"),
                  namespace)
    wait_phase(kubectl, namespace, "pids", "Succeeded")
    out = logs(kubectl, namespace, "pids")
    assert "stopped" in out, out
    started = int(out.split("processes")[-1].split()[0])
    assert 0 < started < limit, out
