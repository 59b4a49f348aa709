"""The Helm chart (helm/monaco): lint, render and check the objects it makes, for three value sets.

The value sets: the chart's defaults, helm/values-all-on.yaml (every optional part on) and
helm/values-local.yaml (the local e2e cluster). Tests that need a `helm` binary ($HELM, PATH, or the
e2e harness's build under ${MONACO_E2E_CACHE:-/var/cache/monaco-e2e}) skip without one, unless $HELM is
set: then they fail (`make test` sets it, after building helm as the e2e harness does). The checks of
values.yaml, the schema and the generated README run everywhere.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from monaco.core import resource, seccomp
from monaco.core.languages import Registry
from monaco.core.settings import Settings
from monaco.operator import builders
from monaco.operator.submission import from_body

ROOT = Path(__file__).resolve().parents[1]
HELM_DIR = ROOT / "helm"
CHART = HELM_DIR / "monaco"
VALUE_SETS = {"default": None, "all-on": HELM_DIR / "values-all-on.yaml", "local": HELM_DIR / "values-local.yaml"}
RELEASE, NAMESPACE = "monaco", "monaco"
STANDARD_LABELS = ("helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
                   "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of")
SETTINGS_ENV = {"MAX_WORKERS", "QUEUE_SIZE", "DEFAULT_LANGUAGE", "PORT"}


# ---- helpers ---------------------------------------------------------------------------------------


def find_helm() -> str | None:
    """$HELM, then PATH, then the e2e harness's cached builds (newest version first)."""
    if os.environ.get("HELM"):
        return os.environ["HELM"] if os.access(os.environ["HELM"], os.X_OK) else None
    if on_path := shutil.which("helm"):
        return on_path
    cache_dir = Path(os.environ.get("MONACO_E2E_CACHE", "/var/cache/monaco-e2e"))
    candidates = [*sorted(cache_dir.glob("helm-*/bin/helm"), reverse=True), cache_dir / "helm-tmp" / "helm"]
    return next((str(c) for c in candidates if os.access(c, os.X_OK)), None)


# helm's cache, config and data dirs, kept out of the developer's home (set by the `helm` fixture)
_HELM_ENV: dict[str, str] = {}


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    binary = find_helm()
    if binary is None and os.environ.get("HELM"):
        pytest.fail(f"HELM={os.environ['HELM']} is not an executable: `make helm` builds the pinned one")
    if binary is None:
        pytest.skip("no helm binary: set $HELM, put helm on PATH, or build one with e2e/cluster/build.sh helm")
    home = tmp_path_factory.mktemp("helm-home")
    _HELM_ENV.update({k: str(home / k.lower()) for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")})
    return [binary]


def run_helm(helm: list[str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*helm, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **_HELM_ENV})
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


def values_args(value_set: str) -> list[str]:
    path = VALUE_SETS[value_set]
    return ["-f", str(path)] if path else []


@cache
def _render(binary: str, value_set: str, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    out = run_helm([binary], "template", RELEASE, str(CHART), "-n", NAMESPACE, *values_args(value_set), *extra)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def render(helm: list[str], value_set: str, *extra: str) -> list[dict[str, Any]]:
    return copy.deepcopy(_render(helm[0], value_set, tuple(extra)))


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert name in found, f"no {kind} {name}; have {sorted(found)}"
    return found[name]


def merged_values(value_set: str) -> dict[str, Any]:
    """values.yaml with an overlay merged as Helm does (maps merge, null deletes a key)."""

    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        for key, value in over.items():
            if value is None:
                base.pop(key, None)
            elif isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value
        return base

    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    path = VALUE_SETS[value_set]
    return merge(values, yaml.safe_load(path.read_text())) if path else values


def gen_readme() -> ModuleType:
    spec = importlib.util.spec_from_file_location("monaco_chart_gen_readme", CHART / "gen-readme.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    env = container(deployment)["env"]
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), f"duplicate env vars: {names}"
    return {e["name"]: e["value"] for e in env if "value" in e}


def settings_from(env: dict[str, str], languages_file: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings the container would build from this environment (the registry read from a copy)."""
    for key in list(os.environ):
        if key.startswith("MONACO_") or key in SETTINGS_ENV:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MONACO_LANGUAGES_FILE", str(languages_file))
    return Settings()


# ---- values.yaml, the schema and the README (no helm needed) ---------------------------------------


def test_readme_is_generated_from_current_values() -> None:
    proc = subprocess.run([sys.executable, str(CHART / "gen-readme.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", [CHART / "values.yaml", HELM_DIR / "values-local.yaml"], ids=lambda p: p.name)
def test_every_values_key_has_a_comment(path: Path) -> None:
    keys = gen_readme().documented_keys(path.read_text())
    assert len(keys) > 10
    missing = [f"{path.name}:{k.line} {k.path}" for k in keys if not k.comment]
    assert not missing, f"keys without a comment line directly above: {missing}"
    # and the parser saw every key the YAML has (outside lists)
    values = yaml.safe_load(path.read_text())
    paths = {k.path for k in keys}

    def walk(node: Any, prefix: str) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                path = f"{prefix}{key}"
                yield path
                if path in paths and any(p.startswith(path + ".") for p in paths):
                    yield from walk(value, path + ".")

    assert set(walk(values, "")) == paths


def test_default_languages_are_core_languages_yaml() -> None:
    """values.yaml's registry is the built-in one, field for field (a change to one is made to both)."""
    chart = yaml.safe_load((CHART / "values.yaml").read_text())["languages"]
    core = yaml.safe_load((ROOT / "core" / "languages.yaml").read_text())["languages"]
    assert chart == core


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_merged_values_make_a_valid_registry(value_set: str) -> None:
    values = merged_values(value_set)
    registry = Registry.from_mapping({"languages": values["languages"]}, value_set)
    assert values["defaultLanguage"] in registry


def test_schema_bounds_match_the_crd() -> None:
    props = json.loads((CHART / "values.schema.json").read_text())["properties"]
    assert props["maxCodeBytes"]["maximum"] == resource.MAX_CODE
    assert props["maxInputBytes"]["maximum"] == resource.MAX_INPUT
    assert props["outputLimitBytes"]["maximum"] <= resource.MAX_OUTPUT


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_values_satisfy_the_schema(value_set: str) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    schema = json.loads((CHART / "values.schema.json").read_text())
    errors = [str(e) for e in jsonschema_rs.validator_for(schema).iter_errors(merged_values(value_set))]
    assert not errors


@pytest.mark.parametrize(("path", "value"), [
    (("maxWorkers",), 0),
    (("maxWorkers",), "3"),
    (("image", "pullPolicy"), "Sometimes"),
    (("maxInputBytes",), resource.MAX_INPUT + 1),
    (("languages", "python", "limits", "memoryMb"), "big"),
    (("languages", "python", "bogus"), 1),
    (("maxWorker",), 3),
])
def test_schema_rejects_a_wrong_value(path: tuple[str, ...], value: Any) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = merged_values("default")
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert not jsonschema_rs.validator_for(schema).is_valid(values)


# ---- helm lint and helm template -------------------------------------------------------------------


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_lint_strict(helm: list[str], value_set: str) -> None:
    run_helm(helm, "lint", "--strict", str(CHART), *values_args(value_set))


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_every_object_has_the_standard_labels(helm: list[str], value_set: str) -> None:
    docs = render(helm, value_set)
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "Service", "ServiceAccount", "ConfigMap", "Role", "RoleBinding",
            "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    for doc in docs:
        meta = doc["metadata"]
        labels = meta.get("labels", {})
        assert all(label in labels for label in STANDARD_LABELS), (doc["kind"], meta["name"], labels)
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert len(meta["name"]) <= 63
        if value_set == "all-on":
            assert labels["team"] == "judge" and meta["annotations"]["monaco.dev/owner"] == "judge-team"
        if doc["kind"] in ("Deployment",):
            pod_labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_pods_are_locked_down(helm: list[str], value_set: str) -> None:
    for name in ("monaco-api", "monaco-operator"):
        deploy = one(render(helm, value_set), "Deployment", name)
        pod = deploy["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 65532
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["enableServiceLinks"] is False
        ctr = container(deploy)
        assert ctr["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                          "capabilities": {"drop": ["ALL"]}}
        assert ctr["command"] == ["python3", "-m", "monaco.cli"]
        assert "memory" in ctr["resources"]["limits"]
        mounts = {m["mountPath"]: m for m in ctr["volumeMounts"]}
        assert mounts["/etc/monaco"]["readOnly"] is True and "/tmp" in mounts
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["languages"]["configMap"]["name"] == "monaco-languages"
        assert volumes["tmp"]["emptyDir"]["sizeLimit"]
        assert "checksum/languages" in deploy["spec"]["template"]["metadata"]["annotations"]


def test_api_deployment_service_and_probes(helm: list[str]) -> None:
    docs = render(helm, "default")
    api = one(docs, "Deployment", "monaco-api")
    ctr = container(api)
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert ctr["image"] == f"ghcr.io/monaco-dev/monaco:{app_version}"
    assert ctr["args"] == ["serve"]
    assert ctr["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert ctr["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["spec"]["replicas"] == 1
    assert api["spec"]["template"]["spec"]["serviceAccountName"] == "monaco-api"
    svc = one(docs, "Service", "monaco-api")
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    assert not by_kind(docs, "Ingress") and not by_kind(docs, "HorizontalPodAutoscaler")
    assert one(docs, "PodDisruptionBudget", "monaco-api")["spec"]["maxUnavailable"] == 1


def test_operator_is_one_recreated_instance(helm: list[str]) -> None:
    op = one(render(helm, "default"), "Deployment", "monaco-operator")
    assert op["spec"]["replicas"] == 1
    assert op["spec"]["strategy"] == {"type": "Recreate"}
    ctr = container(op)
    assert ctr["args"] == ["operator"]
    assert ctr["ports"] == [{"name": "health", "containerPort": 8081, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": 8082, "protocol": "TCP"}]
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert env_of(op)["MONACO_HEALTH_PORT"] == "8081"
    assert op["spec"]["template"]["spec"]["serviceAccountName"] == "monaco-operator"


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_env_is_what_settings_reads(helm: list[str], value_set: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Every variable is a Settings field's name and parses; the values are the chart's values."""
    docs = render(helm, value_set)
    values = merged_values(value_set)
    aliases = {alias for field in Settings.model_fields.values()
               for alias in getattr(field.validation_alias, "choices", [field.validation_alias]) if alias}
    languages = tmp_path / "languages.yaml"
    languages.write_text(one(docs, "ConfigMap", "monaco-languages")["data"]["languages.yaml"])
    sandbox_ns = values["sandbox"]["namespace"]["name"] or f"{RELEASE}-sandbox"
    for name in ("monaco-api", "monaco-operator"):
        env = env_of(one(docs, "Deployment", name))
        ours = {k for k in env if k.startswith("MONACO_") or k in SETTINGS_ENV}
        assert ours <= aliases, f"{name}: not Settings fields: {sorted(ours - aliases)}"
        assert env["MONACO_LANGUAGES_FILE"] == "/etc/monaco/languages.yaml"
        s = settings_from({k: env[k] for k in ours}, languages, monkeypatch)
        assert s.backend == "kubernetes"
        assert s.namespace == sandbox_ns
        assert s.max_workers == values["maxWorkers"] and s.queue_size == values["queueSize"]
        assert s.default_language == values["defaultLanguage"]
        assert s.max_input_bytes == values["maxInputBytes"] and s.max_code_bytes == values["maxCodeBytes"]
        assert s.output_limit_bytes == values["outputLimitBytes"]
        assert s.finished_ttl_seconds == values["finishedTtlSeconds"]
        assert s.start_deadline_seconds == values["startDeadlineSeconds"]
        assert s.log_json is values["logJson"]
        assert s.runtime_class_name == (values["sandbox"]["runtimeClassName"] or None)
        assert s.sandbox_node_selector == values["sandbox"]["nodeSelector"]
        assert s.sandbox_tolerations == values["sandbox"]["tolerations"]
        assert s.sandbox_affinity == values["sandbox"]["affinity"]
        assert s.image_pull_secrets == values["sandbox"]["imagePullSecrets"]
        assert s.sandbox_labels == values["sandbox"]["podLabels"]
        assert s.sandbox_annotations == values["sandbox"]["podAnnotations"]
        assert s.sandbox_run_as_user == values["sandbox"]["runAsUser"]
        assert sorted(s.registry.names) == sorted(values["languages"])
        if name == "monaco-api":
            assert (s.host, s.port) == ("0.0.0.0", 8080)
            assert s.playground_path == values["playgroundPath"]
            assert (s.judge0_api, s.piston_api) == (values["judge0Api"], values["pistonApi"])


def test_the_default_input_cap_fits_the_crd(helm: list[str]) -> None:
    env = env_of(one(render(helm, "default"), "Deployment", "monaco-api"))
    assert int(env["MONACO_MAX_INPUT_BYTES"]) == 524288 <= resource.MAX_INPUT
    assert "MONACO_RUNTIME_CLASS_NAME" not in env  # unset means the cluster's default runtime


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_languages_configmap(helm: list[str], value_set: str) -> None:
    data = one(render(helm, value_set), "ConfigMap", "monaco-languages")["data"]
    assert list(data) == ["languages.yaml"]
    parsed = yaml.safe_load(data["languages.yaml"])
    assert list(parsed) == ["languages"]
    registry = Registry.from_mapping(parsed, "the chart's ConfigMap")
    assert parsed["languages"] == merged_values(value_set)["languages"]
    if value_set == "default":
        assert registry.names == ["c", "cpp", "java", "python"]
        assert {lang.image for lang in registry} == {"python:3.11-slim", "eclipse-temurin:17-jdk", "gcc:12"}
    if value_set == "local":
        images = dict(line.split("=", 1) for line in (ROOT / "e2e/images/images.env").read_text().splitlines()
                      if "=" in line and not line.startswith("#"))
        assert registry.names == ["c", "cpp", "java", "javascript", "python"]
        assert all(lang.image_pull_policy == "Never" for lang in registry)
        assert registry["python"].image == images["PYTHON_IMAGE"]
        assert registry["java"].image == images["JAVA_IMAGE"]
        assert registry["c"].image == registry["cpp"].image == images["GCC_IMAGE"]
        assert registry["javascript"].image == images["NODE_IMAGE"]
    if value_set == "all-on":
        assert "c" not in registry and registry["javascript"].run == "exec node main.js"


def test_local_overlay_uses_the_local_monaco_image(helm: list[str]) -> None:
    images = dict(line.split("=", 1) for line in (ROOT / "e2e/images/images.env").read_text().splitlines()
                  if "=" in line and not line.startswith("#"))
    for name in ("monaco-api", "monaco-operator"):
        ctr = container(one(render(helm, "local"), "Deployment", name))
        assert ctr["image"] == images["MONACO_IMAGE"]
        assert ctr["imagePullPolicy"] == "Never"


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_sandbox_namespace_enforces_restricted(helm: list[str], value_set: str) -> None:
    docs = render(helm, value_set)
    ns_name = merged_values(value_set)["sandbox"]["namespace"]["name"] or f"{RELEASE}-sandbox"
    ns = one(docs, "Namespace", ns_name)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    keep = ns["metadata"].get("annotations", {}).get("helm.sh/resource-policy")
    assert keep == ("keep" if merged_values(value_set)["sandbox"]["namespace"]["keep"] else None)
    deny = one(docs, "NetworkPolicy", "monaco-sandbox-default-deny")
    assert deny["metadata"]["namespace"] == ns_name
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_given_sandbox_namespace_is_not_created(helm: list[str]) -> None:
    docs = render(helm, "default", "--set", "sandbox.namespace.create=false", "--set", "sandbox.namespace.name=given")
    assert not by_kind(docs, "Namespace")
    assert {r["metadata"]["namespace"] for r in by_kind(docs, "Role").values()} == {"given"}


def _rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                out.setdefault((group, res), set()).update(rule["verbs"])
    return out


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_rbac_is_least_privilege_in_the_sandbox_namespace(helm: list[str], value_set: str) -> None:
    docs = render(helm, value_set)
    values = merged_values(value_set)
    sandbox_ns = values["sandbox"]["namespace"]["name"] or f"{RELEASE}-sandbox"
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    roles, bindings = by_kind(docs, "Role"), by_kind(docs, "RoleBinding")
    assert set(roles) == set(bindings) == {"monaco-api", "monaco-operator"}
    assert _rules(roles["monaco-api"]) == {
        ("monaco.dev", "codesubmissions"): {"create", "get", "list", "watch", "delete"},
    }
    # warm pools (on in all-on) add what a claim and its delivery need, and nothing else
    warm = {"patch"} if values.get("warmPool") else set()
    attach = {("", "pods/attach"): {"create", "get"}} if values.get("warmPool") else {}
    assert _rules(roles["monaco-operator"]) == {
        ("monaco.dev", "codesubmissions"): {"get", "list", "watch", "patch", "update", "delete"},
        ("monaco.dev", "codesubmissions/status"): {"get", "patch", "update"},
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"} | warm,
        ("", "pods"): {"get", "list", "watch"} | warm,
        ("", "pods/log"): {"get"},
        **attach,
        ("", "configmaps"): {"create", "get", "delete"},
        ("networking.k8s.io", "networkpolicies"): {"create", "get", "delete"},
        ("", "events"): {"create", "patch"},
    }
    accounts = by_kind(docs, "ServiceAccount")
    for component in ("api", "operator"):
        role, binding = roles[f"monaco-{component}"], bindings[f"monaco-{component}"]
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == sandbox_ns
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": f"monaco-{component}"}
        sa_name = values[component]["serviceAccount"]["name"] or f"monaco-{component}"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa_name, "namespace": NAMESPACE}]
        assert accounts[sa_name]["metadata"]["namespace"] == NAMESPACE
        deploy = one(docs, "Deployment", f"monaco-{component}")
        assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == sa_name


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_network_policies_allow_only_the_kubernetes_api(helm: list[str], value_set: str) -> None:
    docs = render(helm, value_set)
    np_values = merged_values(value_set)["networkPolicy"]
    policies = by_kind(docs, "NetworkPolicy")
    api_port = 8080
    for component, ingress_port in (("api", api_port), ("operator", 8081)):
        policy = policies[f"monaco-{component}"]["spec"]
        deploy = one(docs, "Deployment", f"monaco-{component}")
        assert policy["podSelector"]["matchLabels"] == deploy["spec"]["selector"]["matchLabels"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        ingress, *metrics = policy["ingress"]
        assert ingress["ports"] == [{"protocol": "TCP", "port": ingress_port}]
        # the operator's Prometheus endpoint, when on (all-on), from the API's peers
        metrics_port = merged_values(value_set)["operator"]["metricsPort"] if component == "operator" else 0
        assert [m["ports"] for m in metrics] == ([[{"protocol": "TCP", "port": metrics_port}]] if metrics_port else [])
        assert all(m.get("from", []) == np_values["apiIngressFrom"] for m in metrics)
        if component == "api":
            assert ingress.get("from", []) == np_values["apiIngressFrom"]
        else:
            assert "from" not in ingress
        egress = policy["egress"]
        kube = egress[0]
        assert kube["ports"] == [{"protocol": "TCP", "port": p} for p in np_values["kubeApiPorts"]]
        assert [t["ipBlock"]["cidr"] for t in kube.get("to", [])] == np_values["kubeApiCIDRs"]
        if np_values["dns"]["enabled"]:
            assert len(egress) == 2
            assert {p["port"] for p in egress[1]["ports"]} == {53}
        else:
            assert len(egress) == 1


def test_callbacks_open_the_operators_egress_only_when_on(helm: list[str]) -> None:
    def env_and_egress(*extra: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
        docs = render(helm, "default", *extra)
        for component in ("api", "operator"):
            [container] = one(docs, "Deployment", f"monaco-{component}")["spec"]["template"]["spec"]["containers"]
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["MONACO_CALLBACK_ALLOW"] == (extra[1].split("=", 1)[1].replace("\\,", ",") if extra else "")
        api = one(docs, "NetworkPolicy", "monaco-api")["spec"]["egress"]
        assert all(p["port"] not in (80, 53) for rule in api for p in rule["ports"])  # the API never calls out
        return env, one(docs, "NetworkPolicy", "monaco-operator")["spec"]["egress"]

    env, egress = env_and_egress()
    assert len(egress) == 1 and env["MONACO_CALLBACK_DENY"] == "10.96.0.0/12,10.244.0.0/16"
    peer = [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
    env, egress = env_and_egress("--set", "callbacks.allow=hooks.example.com\\,203.0.113.0/24",
                                 "--set-json", f"callbacks.egressTo={json.dumps(peer)}")
    _kube, hooks, dns = egress
    assert hooks == {"ports": [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 443}], "to": peer}
    assert {p["port"] for p in dns["ports"]} == {53}
    assert env["MONACO_CALLBACK_ATTEMPTS"] == "5" and env["MONACO_CALLBACK_BACKOFF_SECONDS"] == "8"


def test_all_on_renders_every_optional_part(helm: list[str]) -> None:
    docs = render(helm, "all-on")
    ingress = one(docs, "Ingress", "monaco-api")["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"secretName": "judge-tls", "hosts": ["judge.example.com", "api.judge.example.com"]}]
    assert [r["host"] for r in ingress["rules"]] == ["judge.example.com", "api.judge.example.com"]
    assert ingress["rules"][1]["http"]["paths"][0]["backend"] == {"service": {"name": "monaco-api",
                                                                              "port": {"name": "http"}}}
    hpa = one(docs, "HorizontalPodAutoscaler", "monaco-api")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert {m["resource"]["name"] for m in hpa["metrics"]} == {"cpu", "memory"}
    api = one(docs, "Deployment", "monaco-api")
    assert "replicas" not in api["spec"]  # the HPA owns it
    assert one(docs, "PodDisruptionBudget", "monaco-api")["spec"]["minAvailable"] == 1
    pod = api["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["priorityClassName"] == "monaco-high"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"} and pod["tolerations"] and pod["affinity"]
    assert api["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert api["spec"]["template"]["metadata"]["labels"]["tier"] == "web"
    assert env_of(api)["EXTRA_FLAG"] == "1"
    assert container(api)["image"] == "registry.example.com/monaco/monaco:0.1.0"
    assert one(docs, "Service", "monaco-api")["spec"]["type"] == "LoadBalancer"
    assert one(docs, "ServiceAccount", "monaco-api-sa")["metadata"]["annotations"]["iam.example.com/role"]


def test_autoscaling_needs_a_metric(helm: list[str]) -> None:
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--set", "api.autoscaling.enabled=true",
                    "--set", "api.autoscaling.targetCPUUtilizationPercentage=0", check=False)
    assert proc.returncode != 0 and "targetCPUUtilizationPercentage" in proc.stderr


@pytest.mark.parametrize(("args", "names"), [
    (["--set", "maxWorkers=0"], "maxWorkers"),
    (["--set", "maxWorkers=many"], "maxWorkers"),
    (["--set", "image.pullPolicy=Sometimes"], "image.pullPolicy"),
    (["--set", "sandbox.imagePullSecrets=oops"], "sandbox.imagePullSecrets"),
    (["--set", "maxInputBytes=2000000"], "maxInputBytes"),
    (["--set", "warmPool.python=-1"], "warmPool.python"),
    (["--set", "warmPool.Python=1"], "warmPool"),
    (["--set", "languages.python.imagePullPolicy=Sometimes"], "languages.python.imagePullPolicy"),
    (["--set", "defaultLanguage=ruby"], "defaultLanguage"),
    (["--set", "languages.python=null"], "defaultLanguage"),
    (["--set", "sandbox.seccompProfile=Unconfined"], "sandbox.seccompProfile"),
    (["--set", "sandbox.seccompProfile=/var/lib/kubelet/seccomp/x.json"], "sandbox.seccompProfile"),
    (["--set", "sandbox.seccompProfile=monaco/../x.json"], "sandbox.seccompProfile"),
    (["--set", "seccompInstaller.enabled=true", "--set", "sandbox.seccompProfile=monaco/v9.json"],
     "sandbox.seccompProfile"),
    (["--set", "seccompInstaller.kubeletRootDir=var/lib/kubelet"], "seccompInstaller.kubeletRootDir"),
])
def test_wrong_values_are_rejected_by_name(helm: list[str], args: list[str], names: str) -> None:
    proc = run_helm(helm, "template", RELEASE, str(CHART), *args, check=False)
    assert proc.returncode != 0, proc.stdout[:500]
    # Helm up to 3.17 names a value `a.b`, from 3.18 (another JSON-schema library) `/a/b`
    assert names in proc.stderr or "/" + names.replace(".", "/") in proc.stderr, proc.stderr


def test_adding_a_language_is_a_values_change(helm: list[str]) -> None:
    docs = render(helm, "default", "--set", "languages.ruby.displayName=Ruby",
                  "--set-string", "languages.ruby.version=3", "--set", "languages.ruby.image=ruby:3-slim",
                  "--set", "languages.ruby.sourceFile=main.rb", "--set", "languages.ruby.run=exec ruby main.rb")
    data = one(docs, "ConfigMap", "monaco-languages")["data"]["languages.yaml"]
    assert Registry.from_mapping(yaml.safe_load(data))["ruby"].image == "ruby:3-slim"


def test_notes_tell_how_to_submit(helm: list[str], tmp_path: Path) -> None:
    """NOTES.txt, rendered through a copy of the chart (helm template does not print it)."""
    chart = tmp_path / "monaco"
    shutil.copytree(CHART, chart)
    (chart / "notes.txt").write_text((CHART / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "zz-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n'
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n')
    for args, expect in (
        (["-n", NAMESPACE], ["port-forward svc/monaco-api 8080:80", 'deletes namespace "monaco-sandbox"',
                             "(and the playground: $MONACO_URL/ in a browser):"]),
        (["-f", str(VALUE_SETS["all-on"])], ["https://judge.example.com", 'keeps the CodeSubmission CRD']),
    ):
        out = run_helm(helm, "template", RELEASE, str(chart), "-s", "templates/zz-notes.yaml", *args).stdout
        notes = yaml.safe_load(out)["data"]["notes"]
        assert all(e in notes for e in expect), notes
        assert 'curl -s -X POST "$MONACO_URL/submit"' in notes and "/result?id=" in notes


def test_seccomp_installer_only_when_enabled(helm: list[str]) -> None:
    assert not by_kind(render(helm, "default"), "DaemonSet")
    docs = render(helm, "all-on")
    values = merged_values("all-on")
    [ds] = by_kind(docs, "DaemonSet").values()
    assert ds["metadata"]["name"] == "monaco-seccomp-installer" and ds["metadata"]["namespace"] == NAMESPACE
    profiles = one(docs, "ConfigMap", "monaco-seccomp-installer")["data"]
    assert profiles == {seccomp.FILE_NAME: seccomp.render_json()}
    pod = ds["spec"]["template"]["spec"]
    # least privilege: root for a root-owned host directory, and nothing more
    assert pod["securityContext"] == {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False
    [ctr] = pod["containers"]
    assert ctr["securityContext"] == {"privileged": False, "allowPrivilegeEscalation": False,
                                      "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    assert ctr["command"] == ["python3", "-m", "monaco.core.seccomp", "install", "/profiles", "/seccomp/monaco"]
    assert ctr["image"] == container(one(docs, "Deployment", "monaco-operator"))["image"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert [v for v in volumes.values() if "hostPath" in v] == [volumes["seccomp"]]
    assert volumes["seccomp"]["hostPath"] == {"path": "/var/lib/k0s/kubelet/seccomp/monaco",  # trailing / trimmed
                                              "type": "DirectoryOrCreate"}
    assert volumes["profiles"]["configMap"]["name"] == "monaco-seccomp-installer"
    # on every node a sandbox pod may use
    sandbox = values["sandbox"]
    assert pod["nodeSelector"] == sandbox["nodeSelector"] and pod["tolerations"] == sandbox["tolerations"]
    assert pod["affinity"] == {"nodeAffinity": sandbox["affinity"]["nodeAffinity"]}
    # a new profile rolls the pods, which copy it again
    assert ds["spec"]["template"]["metadata"]["annotations"]["checksum/seccomp"]


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_sandbox_pods_follow_the_seccomp_value(helm: list[str], value_set: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(helm, value_set)
    (tmp_path / "languages.yaml").write_text(one(docs, "ConfigMap", "monaco-languages")["data"]["languages.yaml"])
    env = env_of(one(docs, "Deployment", "monaco-operator"))
    settings = settings_from({k: v for k, v in env.items() if k.startswith("MONACO_") or k in SETTINGS_ENV},
                             tmp_path / "languages.yaml", monkeypatch)
    expected = merged_values(value_set)["sandbox"]["seccompProfile"]
    assert settings.sandbox_seccomp_profile == expected
    assert "MONACO_SANDBOX_SECCOMP_PROFILE" not in env_of(one(docs, "Deployment", "monaco-api"))
    sub = from_body({"metadata": {"name": "s1", "namespace": settings.namespace, "uid": "u1"},
                     "spec": {"language": settings.default_language, "code": "x"}}, settings.registry)
    profile = builders.build_pod_spec(sub, settings)["securityContext"]["seccompProfile"]
    assert profile == ({"type": "RuntimeDefault"} if expected == "RuntimeDefault"
                       else {"type": "Localhost", "localhostProfile": expected})


def test_crds_are_the_generated_ones(helm: list[str]) -> None:
    """crds/ is written by core/crd.py (with manifests/crd/); Helm must ship exactly that file."""
    crd_dir = CHART / "crds"
    files = sorted(crd_dir.glob("*.yaml")) if crd_dir.is_dir() else []
    if not files:
        pytest.skip("helm/monaco/crds/ is not generated yet (make generate)")
    assert [f.name for f in files] == [f"{resource.CRD_NAME}.yaml"]
    assert files[0].read_text() == (ROOT / "manifests" / "crd" / files[0].name).read_text()
    docs = render(helm, "default", "--include-crds")
    crd = one(docs, "CustomResourceDefinition", resource.CRD_NAME)
    assert crd["spec"]["group"] == resource.GROUP


# ---- for operators: the Grafana dashboard and the ServiceMonitor (tests/test_dashboard.py checks its queries)
DASHBOARD = CHART / "files" / "dashboards" / "monaco.json"


def test_dashboard_and_service_monitor_only_when_enabled(helm: list[str]) -> None:
    docs = render(helm, "default")
    assert "monaco-dashboard" not in by_kind(docs, "ConfigMap") and not by_kind(docs, "ServiceMonitor")
    assert "monaco-dashboard" in by_kind(render(helm, "all-on"), "ConfigMap")


def test_dashboard_configmap_is_the_file_for_grafanas_sidecar(helm: list[str]) -> None:
    docs = render(helm, "default", "--set", "dashboard.enabled=true", "--set", "maxWorkers=7",
                  "--set", "dashboard.namespace=monitoring", "--set", "dashboard.annotations.grafana_folder=Monaco")
    cm = one(docs, "ConfigMap", "monaco-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "Monaco"
    rendered = json.loads(cm["data"]["monaco.json"])
    assert rendered == json.loads(DASHBOARD.read_text())  # the file as it is: nothing in it depends on values


def test_service_monitor_scrapes_the_api_services_metrics(helm: list[str]) -> None:
    docs = render(helm, "default", "--set", "serviceMonitor.enabled=true",
                  "--set", "serviceMonitor.labels.release=prom", "--set", "serviceMonitor.interval=15s")
    monitor = one(docs, "ServiceMonitor", "monaco-api")
    service = one(docs, "Service", "monaco-api")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()  # it selects the API's Service
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    assert "http" in {p["name"] for p in service["spec"]["ports"]}


def test_pod_monitor_scrapes_the_operators_metrics_only_when_it_serves_them(helm: list[str]) -> None:
    assert not by_kind(render(helm, "default", "--set", "serviceMonitor.enabled=true",
                              "--set", "operator.metricsPort=0"), "PodMonitor")
    docs = render(helm, "default", "--set", "serviceMonitor.enabled=true",  # served by default
                  "--set", "serviceMonitor.labels.release=prom")
    monitor = one(docs, "PodMonitor", "monaco-operator")
    pod = one(docs, "Deployment", "monaco-operator")["spec"]["template"]
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    [container] = pod["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 8082, "protocol": "TCP"} in container["ports"]
    assert not by_kind(render(helm, "default", "--set", "operator.metricsPort=8082"), "PodMonitor")


@pytest.mark.parametrize(("args", "names"), [
    (["--set", "serviceMonitor.interval=often"], "serviceMonitor.interval"),
    (["--set", "dashboard.enabled=yes"], "dashboard.enabled"),
])
def test_wrong_observability_values_are_rejected(helm: list[str], args: list[str], names: str) -> None:
    test_wrong_values_are_rejected_by_name(helm, args, names)
