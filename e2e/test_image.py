"""The monaco image run the way people run images (issue 13): as a plain pod, its default command.

1. Nothing set at all: the pod is `image:` and nothing else, what `docker run IMAGE` gives, on a cluster
   whose pods get no seccomp profile unless they ask (Kubernetes' default).
2. As README.md's `docker run` line documents it, translated to a pod spec: `--cap-drop ALL` ->
   capabilities drop ALL, `--security-opt no-new-privileges` -> allowPrivilegeEscalation false,
   `--security-opt seccomp=unconfined` -> seccompProfile Unconfined, the image's user -> runAsNonRoot.

Each in a namespace of its own; the test reaches the pod by its IP (the suite runs inside the cluster's
network namespace), waits for /readyz, submits a Python program and wants `ok`. A failure carries the
pod's status and `kubectl logs`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from conftest import Kubectl

from tests.support import wait_until_blocking

PROGRAM = "import sys\nprint(sum(map(int, sys.stdin.read().split())))\n"


def _pod(name: str, image: str, pull_policy: str, security: dict[str, Any] | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "monaco", "image": image, "imagePullPolicy": pull_policy}
    if security is not None:
        container["securityContext"] = security
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [container], "restartPolicy": "Never"},
    }


def _call(ip: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{ip}:8080{path}", data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)


def _diagnose(kubectl: Kubectl, namespace: str, name: str) -> str:
    status = kubectl.run("-n", namespace, "get", "pod", name, "-o", "jsonpath={.status}", check=False)
    logs = kubectl.run("-n", namespace, "logs", name, "--tail=60", check=False)
    events = kubectl.run("-n", namespace, "get", "events", "--sort-by=.lastTimestamp", check=False)
    return (f"\npod status: {status.stdout}{status.stderr}\nkubectl logs {name}:\n{logs.stdout}{logs.stderr}"
            f"\nevents:\n{events.stdout}")


def _runs_a_program(kubectl: Kubectl, namespace: str, image: str, pull_policy: str,
                    security: dict[str, Any] | None) -> None:
    name = "monaco"
    kubectl.apply(_pod(name, image, pull_policy, security), namespace)

    def pod_ip() -> str | None:
        pod = kubectl.json("-n", namespace, "get", "pod", name)
        if pod["status"].get("phase") in ("Failed", "Succeeded"):
            raise AssertionError(f"the pod exited{_diagnose(kubectl, namespace, name)}")
        running = pod["status"].get("phase") == "Running"
        return pod["status"].get("podIP") if running else None

    try:
        ip = wait_until_blocking(pod_ip, 180, "the monaco pod running with an IP")

        def ready() -> bool:
            try:
                return bool(_call(ip, "/readyz", timeout=3)["status"] == "ready")
            except (OSError, ValueError):
                return False

        wait_until_blocking(ready, 120, f"GET http://{ip}:8080/readyz answering ready")
        languages = [lang["name"] for lang in _call(ip, "/languages")["languages"]]
        assert "python" in languages, languages
        result = _call(ip, "/submit?wait=60", {"language": "python", "code": PROGRAM, "input": "2 40"}, 75)
    except (AssertionError, OSError, pytest.fail.Exception) as exc:  # a timed-out wait is pytest.fail's
        raise AssertionError(f"{exc}{_diagnose(kubectl, namespace, name)}") from exc
    assert result.get("verdict") == "ok", f"{result}{_diagnose(kubectl, namespace, name)}"
    assert result["output"] == "42\n"


def test_the_image_runs_a_program_as_a_plain_pod(
    kubectl: Kubectl, namespace: str, images: dict[str, str], pull_policy: str
) -> None:
    _runs_a_program(kubectl, namespace, images["MONACO_IMAGE"], pull_policy, security=None)


def test_the_image_runs_a_program_as_the_readme_docker_line_runs_it(
    kubectl: Kubectl, namespace: str, images: dict[str, str], pull_policy: str
) -> None:
    security = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "Unconfined"},
    }
    _runs_a_program(kubectl, namespace, images["MONACO_IMAGE"], pull_policy, security)
