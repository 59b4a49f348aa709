"""manifests/: complete for kustomize, least-privilege RBAC, hardened Deployments, restricted sandbox namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def kustomization() -> dict[str, Any]:
    return dict(yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text()))


def all_docs() -> list[dict[str, Any]]:
    return [d for rel in kustomization()["resources"] for d in docs(rel)]


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in all_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


def test_every_resource_file_exists_and_is_listed() -> None:
    listed = set(kustomization()["resources"])
    for rel in listed:
        assert (MANIFESTS / rel).exists(), rel
    on_disk = {str(p.relative_to(MANIFESTS)) for p in MANIFESTS.rglob("*.yaml")}
    assert on_disk - listed == {"kustomization.yaml", "languages.yaml"}


def test_languages_copy_matches_the_registry() -> None:
    assert (MANIFESTS / "languages.yaml").read_text() == (ROOT / "core" / "languages.yaml").read_text()


def test_sandbox_namespace_enforces_restricted() -> None:
    labels = find("Namespace", "monaco-sandbox")["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def _rules(role: str) -> dict[tuple[str, str], set[str]]:
    doc = find("Role", role)
    assert doc["metadata"]["namespace"] == "monaco-sandbox"
    return {(g, r): set(rule["verbs"]) for rule in doc["rules"] for g in rule["apiGroups"] for r in rule["resources"]}


def test_rbac_is_namespaced_and_least_privilege() -> None:
    assert not [d for d in all_docs() if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    assert _rules("monaco-api") == {("monaco.dev", "codesubmissions"): {"create", "get", "list", "watch", "delete"}}
    op = _rules("monaco-operator")
    assert op[("monaco.dev", "codesubmissions")] == {"get", "list", "watch", "patch", "update", "delete"}
    assert op[("monaco.dev", "codesubmissions/status")] >= {"get", "patch"}
    assert op[("batch", "jobs")] == {"create", "get", "list", "watch", "delete"}
    assert op[("", "pods")] == {"get", "list", "watch"}
    assert op[("", "pods/log")] == {"get"}
    assert op[("", "configmaps")] == {"create", "get", "delete"}
    assert op[("networking.k8s.io", "networkpolicies")] == {"create", "get", "delete"}
    assert op[("", "events")] == {"create", "patch"}
    for role in ("monaco-api", "monaco-operator"):
        binding = find("RoleBinding", role)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": role, "namespace": "monaco-system"}]


@pytest.mark.parametrize(("name", "command", "port"), [("monaco-api", "serve", 8080),
                                                       ("monaco-operator", "operator", 8081)])
def test_deployments_are_hardened(name: str, command: str, port: int) -> None:
    deploy = find("Deployment", name)
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["args"] == [command]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["ports"][0]["containerPort"] == port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/etc/monaco"] == "languages"
    assert container["envFrom"] == [{"configMapRef": {"name": "monaco-config"}}]


def test_operator_runs_alone() -> None:
    spec = find("Deployment", "monaco-operator")["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}


def test_api_probes_and_service() -> None:
    container = find("Deployment", "monaco-api")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MONACO_HOST"] == "0.0.0.0"
    service = find("Service", "monaco-api")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_shared_config() -> None:
    [config] = [g for g in kustomization()["configMapGenerator"] if g["name"] == "monaco-config"]
    literals = dict(item.split("=", 1) for item in config["literals"])
    assert literals["MONACO_BACKEND"] == "kubernetes"
    assert literals["MONACO_NAMESPACE"] == "monaco-sandbox"
    assert literals["MONACO_LANGUAGES_FILE"] == "/etc/monaco/languages.yaml"


def test_sandbox_namespace_denies_all_traffic_by_default() -> None:
    policy = find("NetworkPolicy", "deny-all")
    assert policy["metadata"]["namespace"] == "monaco-sandbox"
    assert policy["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
