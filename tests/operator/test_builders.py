"""The sandbox's children, field by field, and the pod against the restricted Pod Security Standard."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from monaco.core import seccomp
from monaco.core.phase import RUNNER_MEMORY_MB
from monaco.core.settings import Settings
from monaco.operator import builders, names
from monaco.operator.submission import SpecError, Submission, from_body
from tests.operator.conftest import NS, submission


def sub_of(settings: Settings, language: str = "python", **spec: Any) -> Submission:
    body = submission("s1", language=language)
    body["spec"].update(spec)
    return from_body(body, settings.registry)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def all_containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


# ---- the submission and its limits
def test_limits_default_to_the_language_and_are_refused_past_its_maxima(settings: Settings) -> None:
    """The operator resolves limits as the API does (core/phase.py): refused with a reason, never capped."""
    python = settings.registry.get("python")
    assert python is not None
    s = sub_of(settings, limits={})
    assert (s.timeout_seconds, s.memory_mb) == (python.limits.timeout_seconds, python.limits.memory_mb)
    with pytest.raises(SpecError, match=r"'timeoutSeconds' is 10000; the maximum for python is"):
        sub_of(settings, limits={"timeoutSeconds": 10_000})
    with pytest.raises(SpecError, match=r"'memoryMb' is 1000000; the maximum for python is"):
        sub_of(settings, limits={"memoryMb": 1_000_000})
    with pytest.raises(SpecError, match=r"'timeoutSeconds' is 0.0001; the minimum is 0.1"):
        sub_of(settings, limits={"timeoutSeconds": 0.0001})
    s = sub_of(settings, limits={"timeoutSeconds": 2.5, "memoryMb": 64})
    assert (s.timeout_seconds, s.memory_mb) == (2.5, 64)


def test_unknown_language_is_a_spec_error_naming_the_known_ones(settings: Settings) -> None:
    with pytest.raises(SpecError, match=r"unknown language 'cobol'.*python"):
        sub_of(settings, language="cobol")


# ---- names
def test_names_are_deterministic_and_fit_label_values() -> None:
    assert names.child_name("abc") == "csub-abc"
    assert names.key("abc") == "abc"
    long = "x" * 200
    assert names.child_name(long) == names.child_name(long)
    assert len(names.child_name(long)) <= 63 and len(names.key(long)) <= 63
    assert names.child_name(long) != names.child_name("x" * 199)


# ---- ConfigMap
def test_configmap_holds_source_and_stdin(settings: Settings) -> None:
    cm = builders.build_configmap(sub_of(settings), settings)
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "csub-s1"
    assert cm["metadata"]["namespace"] == NS
    assert cm["data"] == {"main.py": "print(input())", "stdin": "hi\n"}
    owner = cm["metadata"]["ownerReferences"][0]
    assert owner == {"apiVersion": "monaco.dev/v1alpha1", "kind": "CodeSubmission", "name": "s1",
                     "uid": "uid-s1", "controller": True, "blockOwnerDeletion": True}


def test_runner_configmap_is_named_by_content_and_mounted_executable(settings: Settings) -> None:
    runner = builders.runner_binary()
    assert runner.startswith(b"\x7fELF")
    cm = builders.build_runner_configmap(settings, runner)
    assert cm["immutable"] is True and cm["metadata"]["namespace"] == settings.namespace
    assert base64.b64decode(cm["binaryData"]["monaco-init"]) == runner
    assert cm["metadata"]["name"] == builders.runner_configmap_name(runner) != builders.runner_configmap_name(b"x")
    pod = builders.build_job(sub_of(settings, language="c"), settings)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["runner"]["configMap"] == {"name": cm["metadata"]["name"], "defaultMode": 0o555}
    for container in all_containers(pod):
        assert container["command"] == ["/monaco/bin/monaco-init", container["name"]]
        assert {"name": "runner", "mountPath": "/monaco/bin", "readOnly": True} in container["volumeMounts"]


# ---- NetworkPolicy
def test_network_policy_denies_everything_for_exactly_this_pod(settings: Settings) -> None:
    sub = sub_of(settings)
    np = builders.build_network_policy(sub, settings)
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in np["spec"] and "egress" not in np["spec"]
    selector = np["spec"]["podSelector"]["matchLabels"]
    pod_labels = builders.build_job(sub, settings)["spec"]["template"]["metadata"]["labels"]
    assert selector == {"app.kubernetes.io/managed-by": "monaco", "app.kubernetes.io/component": "sandbox",
                        "monaco.dev/submission": "s1"}
    assert selector.items() <= pod_labels.items()
    other = builders.build_job(from_body(submission("s2"), settings.registry), settings)
    assert not selector.items() <= other["spec"]["template"]["metadata"]["labels"].items()


# ---- Job
def test_job_of_an_interpreted_language(settings: Settings) -> None:
    sub = sub_of(settings)
    job = builders.build_job(sub, settings)
    assert job["metadata"]["name"] == "csub-s1"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 5 + settings.job_deadline_slack_seconds
    assert spec["ttlSecondsAfterFinished"] == settings.finished_ttl_seconds
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert "initContainers" not in pod
    [run] = pod["containers"]
    assert run["name"] == "run" and run["image"] == "python:3.11-slim"
    assert run["command"] == ["/monaco/bin/monaco-init", "run"]
    env = env_of(run)
    assert env["MONACO_COMMAND"] == 'exec python3 main.py "$@"'
    assert env["MONACO_TIMEOUT_MS"] == "5000"
    assert env["MONACO_WORK_DIR"] == "/tmp/work"
    assert env["MONACO_SRC_DIR"] == "/monaco/src" and env["MONACO_SOURCE_FILE"] == "main.py"
    assert env["MONACO_CGROUP_MEMORY"] == "1"
    assert env["MONACO_AS_KB"] == "0" and env["MONACO_NPROC"] == "0"
    assert env["MONACO_NEEDS_COMPILE"] == "0"
    assert env["MONACO_OUTPUT_LIMIT"] == str(settings.output_limit_bytes)
    mounts = {m["mountPath"]: m for m in run["volumeMounts"]}
    assert mounts["/monaco/src"]["readOnly"] is True and mounts["/tmp"]["name"] == "tmp"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["src"]["configMap"]["name"] == "csub-s1"
    assert volumes["tmp"]["emptyDir"]["sizeLimit"] == f"{settings.sandbox_work_mb}Mi"
    assert set(volumes) == {"runner", "src", "tmp", "no-pts"}
    assert {"name": "no-pts", "mountPath": "/dev/pts", "readOnly": True} in run["volumeMounts"]
    assert run["resources"]["limits"]["memory"] == f"{128 + RUNNER_MEMORY_MB}Mi"


def test_job_of_a_compiled_language(settings: Settings) -> None:
    sub = sub_of(settings, language="c")
    c = settings.registry.get("c")
    assert c is not None and c.compile
    job = builders.build_job(sub, settings)
    limits = c.compile_limits
    assert job["spec"]["activeDeadlineSeconds"] == int(limits.timeout_seconds) + 5 + settings.job_deadline_slack_seconds
    pod = job["spec"]["template"]["spec"]
    [compile_], [run] = pod["initContainers"], pod["containers"]
    assert compile_["command"] == ["/monaco/bin/monaco-init", "compile"]
    cenv, renv = env_of(compile_), env_of(run)
    assert cenv["MONACO_COMMAND"] == c.compile
    assert cenv["MONACO_TIMEOUT_MS"] == str(int(limits.timeout_seconds * 1000))
    assert cenv["MONACO_FSIZE_KB"] == str(limits.output_file_mb * 1024)
    assert cenv["MONACO_BUILD_DIR"] == renv["MONACO_BUILD_DIR"] == "/monaco/build"
    assert renv["MONACO_NEEDS_COMPILE"] == "1"
    assert compile_["resources"]["limits"]["memory"] == f"{limits.memory_mb + RUNNER_MEMORY_MB}Mi"
    build_mounts = {c["name"]: m for c in (compile_, run) for m in c["volumeMounts"] if m["name"] == "build"}
    assert build_mounts["compile"].get("readOnly") is not True
    assert build_mounts["run"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["build"]["emptyDir"]["sizeLimit"] == f"{limits.output_file_mb}Mi"
    for container in (compile_, run):
        assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/monaco/src", "/tmp", "/monaco/build"}


def test_language_env_reaches_both_containers(settings: Settings) -> None:
    pod = builders.build_job(sub_of(settings, language="java"), settings)["spec"]["template"]["spec"]
    for container in all_containers(pod):
        env = env_of(container)
        assert env["MALLOC_ARENA_MAX"] == "2"
        assert env["HOME"] == env["TMPDIR"] == "/tmp"  # the root file system is read-only


@pytest.mark.parametrize("language", ["python", "c", "java", "cpp"])
def test_requests_equal_limits(settings: Settings, language: str) -> None:
    pod = builders.build_job(sub_of(settings, language=language), settings)["spec"]["template"]["spec"]
    for container in all_containers(pod):
        resources = container["resources"]
        assert resources["requests"] == resources["limits"]
        assert set(resources["limits"]) == {"cpu", "memory", "ephemeral-storage"}
        assert resources["limits"]["cpu"] == settings.sandbox_cpu


def test_cpu_from_settings(settings: Settings) -> None:
    settings = Settings(sandbox_cpu="2")
    pod = builders.build_job(sub_of(settings, language="c"), settings)["spec"]["template"]["spec"]
    assert {c["resources"]["limits"]["cpu"] for c in all_containers(pod)} == {"2"}
    with pytest.raises(ValueError, match="sandbox_cpu"):
        Settings(sandbox_cpu="lots")


def test_labels_annotations_and_placement_from_settings(settings: Settings) -> None:
    settings = settings.model_copy(update={
        "runtime_class_name": "gvisor",
        "sandbox_node_selector": {"pool": "sandbox"},
        "sandbox_tolerations": [{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}],
        "sandbox_affinity": {"nodeAffinity": {}},
        "image_pull_secrets": ["regcred"],
        "sandbox_labels": {"team": "judge"},
        "sandbox_annotations": {"note": "x"},
    })
    job = builders.build_job(sub_of(settings), settings)
    template = job["spec"]["template"]
    pod = template["spec"]
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["nodeSelector"] == {"pool": "sandbox"}
    assert pod["tolerations"][0]["key"] == "sandbox"
    assert pod["affinity"] == {"nodeAffinity": {}}
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert template["metadata"]["labels"] == job["metadata"]["labels"] == {
        "team": "judge", "app.kubernetes.io/managed-by": "monaco", "app.kubernetes.io/component": "sandbox",
        "monaco.dev/submission": "s1"}
    assert template["metadata"]["annotations"]["note"] == "x"


@pytest.mark.parametrize(("profile", "expected"), [
    ("RuntimeDefault", {"type": "RuntimeDefault"}),
    (seccomp.LOCALHOST_PROFILE, {"type": "Localhost", "localhostProfile": "monaco/sandbox-v1.json"}),
])
def test_seccomp_profile_from_settings(settings: Settings, profile: str, expected: dict[str, str]) -> None:
    settings = settings.model_copy(update={"sandbox_seccomp_profile": profile})
    pod = builders.build_job(sub_of(settings, language="c"), settings)["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == expected
    # the pod's profile covers both containers: none of them names another
    assert all("seccompProfile" not in c["securityContext"] for c in all_containers(pod))


@pytest.mark.parametrize("value", ["Unconfined", "/var/lib/kubelet/seccomp/x.json", "../x.json", "monaco/../x",
                                   "", "monaco//x.json", ".hidden.json"])
def test_seccomp_profile_refuses_what_is_no_relative_profile_path(value: str) -> None:
    with pytest.raises(ValueError, match="sandbox_seccomp_profile"):
        Settings(sandbox_seccomp_profile=value)


def test_placement_is_absent_by_default(settings: Settings) -> None:
    pod = builders.build_job(sub_of(settings), settings)["spec"]["template"]["spec"]
    for key in ("runtimeClassName", "nodeSelector", "tolerations", "affinity", "imagePullSecrets"):
        assert key not in pod


# ---- the restricted Pod Security Standard, rule by rule
# https://kubernetes.io/docs/concepts/security/pod-security-standards/ (baseline + restricted, v1.30)
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}


@pytest.fixture(params=[(language, profile) for language in ("python", "c", "java", "cpp")
                        for profile in ("RuntimeDefault", seccomp.LOCALHOST_PROFILE)], ids=lambda p: "-".join(p))
def pod_spec(request: pytest.FixtureRequest, settings: Settings) -> dict[str, Any]:
    language, profile = request.param
    settings = settings.model_copy(update={"sandbox_seccomp_profile": profile})
    spec: dict[str, Any] = builders.build_job(sub_of(settings, language=language), settings)["spec"]["template"]["spec"]
    return spec


def _container_or_pod(pod: dict[str, Any], container: dict[str, Any], field: str) -> Any:
    sc = container.get("securityContext") or {}
    return sc[field] if field in sc else (pod.get("securityContext") or {}).get(field)


def test_pss_host_process(pod_spec: dict[str, Any]) -> None:
    for sc in [pod_spec.get("securityContext", {})] + [c.get("securityContext", {}) for c in all_containers(pod_spec)]:
        assert not (sc.get("windowsOptions") or {}).get("hostProcess")


def test_pss_host_namespaces(pod_spec: dict[str, Any]) -> None:
    assert not pod_spec.get("hostNetwork") and not pod_spec.get("hostPID") and not pod_spec.get("hostIPC")


def test_pss_privileged_containers(pod_spec: dict[str, Any]) -> None:
    for c in all_containers(pod_spec):
        assert not (c.get("securityContext") or {}).get("privileged")


def test_pss_capabilities_drop_all_add_nothing_but_net_bind(pod_spec: dict[str, Any]) -> None:
    for c in all_containers(pod_spec):
        caps = c["securityContext"]["capabilities"]
        assert "ALL" in caps["drop"]
        assert set(caps.get("add") or []) <= {"NET_BIND_SERVICE"}


def test_pss_volume_types(pod_spec: dict[str, Any]) -> None:
    for volume in pod_spec["volumes"]:
        kinds = set(volume) - {"name"}
        assert kinds and kinds <= RESTRICTED_VOLUMES, volume


def test_pss_host_ports(pod_spec: dict[str, Any]) -> None:
    for c in all_containers(pod_spec):
        assert all(not p.get("hostPort") for p in c.get("ports") or [])


def test_pss_apparmor_and_selinux(pod_spec: dict[str, Any]) -> None:
    for sc in [pod_spec["securityContext"]] + [c["securityContext"] for c in all_containers(pod_spec)]:
        assert (sc.get("appArmorProfile") or {}).get("type") in (None, "RuntimeDefault", "Localhost")
        se = sc.get("seLinuxOptions") or {}
        assert se.get("type") in (None, "", "container_t", "container_init_t", "container_kvm_t")
        assert not se.get("user") and not se.get("role")


def test_pss_proc_mount_and_sysctls(pod_spec: dict[str, Any]) -> None:
    for c in all_containers(pod_spec):
        assert c["securityContext"].get("procMount") in (None, "Default")
    assert {s["name"] for s in pod_spec["securityContext"].get("sysctls") or []} <= SAFE_SYSCTLS


def test_pss_seccomp_runtime_default_or_localhost(pod_spec: dict[str, Any]) -> None:
    assert pod_spec["securityContext"]["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost")
    for c in all_containers(pod_spec):
        assert (c["securityContext"].get("seccompProfile") or {}).get("type") in (None, "RuntimeDefault", "Localhost")


def test_pss_no_privilege_escalation(pod_spec: dict[str, Any]) -> None:
    for c in all_containers(pod_spec):
        assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_pss_run_as_non_root_with_a_non_zero_uid(pod_spec: dict[str, Any]) -> None:
    for c in all_containers(pod_spec):
        assert _container_or_pod(pod_spec, c, "runAsNonRoot") is True
        assert _container_or_pod(pod_spec, c, "runAsUser") not in (None, 0)
    assert pod_spec["securityContext"]["runAsGroup"] != 0 and pod_spec["securityContext"]["fsGroup"] != 0


def test_sandbox_hardening_beyond_pss(pod_spec: dict[str, Any], settings: Settings) -> None:
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["enableServiceLinks"] is False
    assert pod_spec["securityContext"]["runAsUser"] == settings.sandbox_run_as_user
    for c in all_containers(pod_spec):
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        writable = [m for m in c["volumeMounts"] if not m.get("readOnly")]
        volumes = {v["name"]: v for v in pod_spec["volumes"]}
        assert all("emptyDir" in volumes[m["name"]] and volumes[m["name"]]["emptyDir"]["sizeLimit"] for m in writable)
