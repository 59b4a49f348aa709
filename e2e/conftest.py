"""Fixtures shared by the e2e suite: the cluster guard, a kubectl runner, per-test namespaces.

The suite talks to whatever cluster `KUBECONFIG` names, but refuses to run against a cluster that
our harness (e2e/cluster/up.sh) did not create -- recognised by the ConfigMap
`kube-system/monaco-e2e-marker` -- unless MONACO_E2E_ANY_CLUSTER=1 is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

E2E_DIR = Path(__file__).resolve().parent
# The suite shares the tests' helpers (tests/support.py) and contract cases; pytest puts only e2e/ on
# sys.path, and Python runs in safe-path mode here (see the Makefile), so the checkout goes there too.
sys.path.insert(0, str(E2E_DIR.parent))
from tests.support import wait_until_blocking  # noqa: E402

IMAGES_ENV = E2E_DIR / "images" / "images.env"
MARKER = ("kube-system", "monaco-e2e-marker")


# ---- cluster fixtures (owner: the cluster harness) ---------------------------------------------


class KubectlError(AssertionError):
    pass


class Kubectl:
    """Runs kubectl; `kubectl("get", "pods", "-n", ns)` returns stdout (raises on failure)."""

    def __init__(self, binary: str, kubeconfig: str | None) -> None:
        self.binary = binary
        self.marker: dict[str, str] = {}  # the data of the harness's marker ConfigMap, when there is one
        self.env = dict(os.environ)
        if kubeconfig:
            self.env["KUBECONFIG"] = kubeconfig

    def run(self, *args: str, input: str | None = None, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.binary, *args], input=input, text=True, capture_output=True,
                              env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} exited {proc.returncode}:\n"
                               f"{proc.stdout}{proc.stderr}")
        return proc

    def __call__(self, *args: str, input: str | None = None, timeout: float = 120) -> str:
        return self.run(*args, input=input, timeout=timeout).stdout

    def json(self, *args: str, timeout: float = 120) -> Any:
        return json.loads(self(*args, "-o", "json", timeout=timeout))

    def apply(self, manifest: dict[str, Any] | str, namespace: str | None = None,
              check: bool = True) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        return self.run(*args, input=text, check=check)


def _find_kubectl() -> str:
    state = os.environ.get("MONACO_E2E_STATE", "/var/lib/monaco-e2e")
    for candidate in (os.environ.get("KUBECTL"), shutil.which("kubectl"),
                      os.path.join(state, "bin", "kubectl")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.exit("kubectl not found: run the suite through e2e/cluster/run-in-cluster.sh "
                "or put kubectl on PATH", returncode=2)
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def kubectl() -> Kubectl:
    """A kubectl runner for the cluster under test, after checking that we may use it."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        default = Path(os.environ.get("MONACO_E2E_STATE", "/var/lib/monaco-e2e")) / "admin.kubeconfig"
        kubeconfig = str(default) if default.exists() else None
    k = Kubectl(_find_kubectl(), kubeconfig)
    probe = k.run("-n", MARKER[0], "get", "configmap", MARKER[1], "-o", "json", check=False,
                  timeout=30)
    if probe.returncode != 0 and os.environ.get("MONACO_E2E_ANY_CLUSTER") != "1":
        pytest.exit(
            "refusing to run: the cluster in KUBECONFIG was not created by e2e/cluster/up.sh "
            f"(no ConfigMap {MARKER[0]}/{MARKER[1]}: {probe.stderr.strip()}). "
            "Set MONACO_E2E_ANY_CLUSTER=1 to run against it anyway.", returncode=2)
    k.marker = json.loads(probe.stdout).get("data", {}) if probe.returncode == 0 else {}
    return k


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "t"


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Any:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = f"e2e-{_slug(request.node.name, 40)}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "monaco.dev/e2e=true")
    # the default ServiceAccount is created asynchronously; pods are refused until it exists
    wait_until_blocking(lambda: kubectl.run("-n", name, "get", "serviceaccount", "default",
                                   check=False).returncode == 0, 60, "default ServiceAccount")
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)




def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip('"').strip("'")
    return values


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Image names (e2e/images/images.env; each may be overridden by an environment variable of the
    same name, e.g. PYTHON_IMAGE=python:3.11-slim on kind)."""
    values = _read_env_file(IMAGES_ENV)
    values.setdefault("PYTHON_IMAGE", "monaco.local/python:3.11")
    for key in list(values):
        values[key] = os.environ.get(key, values[key])
    return values


@pytest.fixture(scope="session")
def pull_policy() -> str:
    """Never on the local cluster (images are imported, nothing can be pulled)."""
    return os.environ.get("MONACO_E2E_PULL_POLICY", "Never")


# ---- what the cluster said when a test failed ----------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report gets the operator's and API's logs as they were at that moment: the module's
    last tests uninstall the release, so what e2e/run.sh prints at the end can no longer show them."""
    report = yield
    if report.when == "call" and report.failed and shutil.which("kubectl"):
        proc = subprocess.run(["bash", str(E2E_DIR / "diagnose.sh")], capture_output=True, text=True,
                              timeout=120, check=False)
        report.sections.append(("the cluster when it failed", proc.stdout[-60_000:] + proc.stderr[-5_000:]))
    return report
