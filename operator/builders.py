"""Pure builders of a submission's children: the ConfigMap, the deny-all NetworkPolicy and the sandbox Job;
and of the warm pools' idle Jobs.

Each returns a plain dict; the caller sets the owner reference (kopf.adopt) and creates it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from functools import cache
from typing import Any

from monaco.core.languages import Language
from monaco.core.native import binary
from monaco.core.phase import (
    COMPILE,
    RUN,
    RUNNER_MEMORY_MB,
    Enforcement,
    Layout,
    phase_env,
    phase_limits,
    resolve_limits,
    source_files,
)
from monaco.core.resource import API_VERSION, KIND
from monaco.core.settings import Settings
from monaco.operator import names
from monaco.operator.submission import Submission

SRC_DIR = "/monaco/src"
BUILD_DIR = "/monaco/build"
TMP_DIR = "/tmp"
WORK_DIR = "/tmp/work"
RUNNER_DIR = "/monaco/bin"
RUNNER = f"{RUNNER_DIR}/monaco-init"
LAYOUT = Layout(src=SRC_DIR, build=BUILD_DIR, work=WORK_DIR, tmp=TMP_DIR, scratch=(TMP_DIR,))
# The container's memory cgroup enforces memory and the runner reads it; every sandbox pod runs as one
# uid on a node, so RLIMIT_NPROC (per uid, node-wide) would let pods starve each other: the kubelet's pod
# PID limit bounds processes instead.
ENFORCEMENT = Enforcement(memory_cgroup=True, own_uid=False, runner_reads_cgroup=True)
# Container logs count against ephemeral storage; the runner's own stdout is one envelope.
LOG_MB = 16


def owner_reference(sub: Submission) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": sub.name,
        "uid": sub.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(sub: Submission, settings: Settings) -> dict[str, Any]:
    return {
        "name": names.child_name(sub.name),
        "namespace": sub.namespace,
        "labels": names.labels(sub.name, settings.sandbox_labels),
        "annotations": {names.SUBMISSION_NAME: sub.name},
        "ownerReferences": [owner_reference(sub)],
    }


def build_configmap(sub: Submission, settings: Settings) -> dict[str, Any]:
    """The source file, its extra files and stdin (one per test case), mounted read-only at /monaco/src."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(sub, settings),
        "immutable": True,
        "data": source_files(sub.language, sub.code, sub.stdin, sub.spec),
    }


@cache
def runner_binary() -> bytes:
    """The runner (core/monaco-init.c, a static binary built at install time) every sandbox runs as PID 1."""
    return binary("monaco-init").read_bytes()


@cache  # every pod spec names it; the runner is one bytes object, whose hash Python keeps
def runner_configmap_name(runner: bytes) -> str:
    """Named by content: an upgrade brings a new one, and pods of the old runner keep theirs."""
    return f"monaco-runner-{hashlib.sha256(runner).hexdigest()[:12]}"


def build_runner_configmap(settings: Settings, runner: bytes) -> dict[str, Any]:
    """The runner binary, shared by every sandbox pod of the namespace, mounted read-only at /monaco/bin."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": runner_configmap_name(runner),
            "namespace": settings.namespace,
            "labels": {names.MANAGED_BY: "monaco", names.COMPONENT: "runner"},
        },
        "immutable": True,
        "binaryData": {"monaco-init": base64.b64encode(runner).decode()},
    }


def _deny_all(metadata: dict[str, Any], pod_selector: dict[str, Any]) -> dict[str, Any]:
    """A NetworkPolicy of both types with no rule: the selected pods reach nothing and nothing reaches them."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {"podSelector": pod_selector, "policyTypes": ["Ingress", "Egress"]},
    }


def build_network_policy(sub: Submission, settings: Settings) -> dict[str, Any]:
    """Selects exactly this submission's pod and allows nothing in or out."""
    return _deny_all(_metadata(sub, settings),
                     {"matchLabels": {**names.SANDBOX_SELECTOR, names.SUBMISSION: names.key(sub.name)}})


def _resources(cpu: str, memory_mb: int, storage_mb: int) -> dict[str, Any]:
    """requests == limits: Guaranteed QoS, and the scheduler places exactly what the sandbox may use."""
    amounts = {"cpu": cpu, "memory": f"{memory_mb}Mi", "ephemeral-storage": f"{storage_mb}Mi"}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "privileged": False,
    }


def _seccomp_profile(settings: Settings) -> dict[str, str]:
    """RuntimeDefault, or a Localhost profile (e.g. core/seccomp.py's, on the nodes by the chart's installer)."""
    if settings.sandbox_seccomp_profile == "RuntimeDefault":
        return {"type": "RuntimeDefault"}
    return {"type": "Localhost", "localhostProfile": settings.sandbox_seccomp_profile}


def _env(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def _build_mb(sub: Submission) -> int:
    return int(sub.language.compile_limits.output_file_mb)


def _container(sub: Submission, settings: Settings, phase: str, storage_mb: int,
               mounts: list[dict[str, Any]]) -> dict[str, Any]:
    limits = sub.limits
    env = phase_env(sub.language, phase, limits, output_limit=settings.output_limit_bytes, layout=LAYOUT,
                    enforcement=ENFORCEMENT, scratch_mb=settings.sandbox_work_mb, spec=sub.spec)
    memory_mb = phase_limits(sub.language, phase, limits, ENFORCEMENT, settings.sandbox_work_mb).memory_mb
    return {
        "name": phase,
        "image": sub.language.image,
        "imagePullPolicy": sub.language.image_pull_policy,
        "command": [RUNNER, phase],
        "workingDir": TMP_DIR,
        "env": _env(env),
        "resources": _resources(settings.sandbox_cpu, memory_mb + RUNNER_MEMORY_MB, storage_mb),
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "runner", "mountPath": RUNNER_DIR, "readOnly": True},
            # An empty, read-only dir over the container's devpts: /dev/ptmx leads nowhere, so a program
            # cannot take the ptys that every container on the node shares (the kernel's pty.max).
            {"name": "no-pts", "mountPath": "/dev/pts", "readOnly": True},
            {"name": "src", "mountPath": SRC_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": TMP_DIR},
            *mounts,
        ],
    }


def _compile_container(sub: Submission, settings: Settings) -> dict[str, Any]:
    return _container(sub, settings, COMPILE, settings.sandbox_work_mb + _build_mb(sub) + LOG_MB,
                      [{"name": "build", "mountPath": BUILD_DIR}])


def _run_container(sub: Submission, settings: Settings) -> dict[str, Any]:
    if not sub.language.compiles:
        return _container(sub, settings, RUN, settings.sandbox_work_mb + LOG_MB, [])
    return _container(sub, settings, RUN, settings.sandbox_work_mb + _build_mb(sub) + LOG_MB,
                      [{"name": "build", "mountPath": BUILD_DIR, "readOnly": True}])


def build_pod_spec(sub: Submission, settings: Settings) -> dict[str, Any]:
    uid = settings.sandbox_run_as_user
    volumes: list[dict[str, Any]] = [
        {"name": "runner", "configMap": {"name": runner_configmap_name(runner_binary()), "defaultMode": 0o555}},
        {"name": "src", "configMap": {"name": names.child_name(sub.name), "defaultMode": 0o444}},
        {"name": "tmp", "emptyDir": {"sizeLimit": f"{settings.sandbox_work_mb}Mi"}},
        {"name": "no-pts", "emptyDir": {"sizeLimit": "1Mi"}},
    ]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        # The runner is PID 1 and the kernel drops SIGTERM for it: a cancelled pod should not linger for 30 s.
        "terminationGracePeriodSeconds": 1,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": _seccomp_profile(settings),
        },
        "containers": [_run_container(sub, settings)],
        "volumes": volumes,
    }
    if sub.language.compiles:
        spec["initContainers"] = [_compile_container(sub, settings)]
        volumes.append({"name": "build", "emptyDir": {"sizeLimit": f"{_build_mb(sub)}Mi"}})
    if settings.runtime_class_name:
        spec["runtimeClassName"] = settings.runtime_class_name
    if settings.sandbox_node_selector:
        spec["nodeSelector"] = dict(settings.sandbox_node_selector)
    if settings.sandbox_tolerations:
        spec["tolerations"] = list(settings.sandbox_tolerations)
    if settings.sandbox_affinity:
        spec["affinity"] = dict(settings.sandbox_affinity)
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in settings.image_pull_secrets]
    return spec


def build_job(sub: Submission, settings: Settings) -> dict[str, Any]:
    """The sandbox Job: one pod, never retried, killed at compile + run timeout + slack."""
    metadata = _metadata(sub, settings)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": sub.deadline_seconds(settings.job_deadline_slack_seconds),
            # The operator deletes the Job once it has the result; this only catches what it missed.
            "ttlSecondsAfterFinished": settings.finished_ttl_seconds,
            "template": {
                "metadata": {
                    "labels": dict(metadata["labels"]),
                    "annotations": {**settings.sandbox_annotations, names.SUBMISSION_NAME: sub.name},
                },
                "spec": build_pod_spec(sub, settings),
            },
        },
    }


# ---- warm pools: idle sandboxes of a language that receive their program through pods/attach
POOL_SRC_SLACK_MB = 1
# How long the operator may take to notice an over-age idle pod and retire it, beyond the maximum idle age.
POOL_RETIRE_SLACK_SECONDS = 120


def pool_template(language: Language, settings: Settings) -> Submission:
    """The submission a pool is built for: the language's default limits, no program yet."""
    return Submission(name=f"pool-{language.name}", namespace=settings.namespace, uid="", language=language,
                      code="", stdin="", limits=resolve_limits(language, None, None))


def _pool_src_mb(settings: Settings) -> int:
    return math.ceil((settings.max_code_bytes + settings.max_input_bytes) / 2**20) + POOL_SRC_SLACK_MB


def delivery_container(language: Language) -> str:
    """The container that reads the job from its stdin: the first phase of the language."""
    return COMPILE if language.compiles else RUN


def build_pool_pod_spec(language: Language, settings: Settings) -> dict[str, Any]:
    """The cold pod spec of a default-limits submission, with three changes: the source dir is an empty
    dir the first phase writes the job into; the first phase reads the job from its stdin; and compile is
    a container beside run (each keeps its own cgroup and limits), run waiting for its end."""
    spec = build_pod_spec(pool_template(language, settings), settings)
    spec["volumes"] = [
        {"name": "src", "emptyDir": {"sizeLimit": f"{_pool_src_mb(settings)}Mi"}} if v["name"] == "src" else v
        for v in spec["volumes"]
    ]
    containers = [*spec.pop("initContainers", []), *spec["containers"]]
    first = delivery_container(language)
    for c in containers:
        if c["name"] == first:
            c["command"] = [RUNNER, c["name"], "job"]
            c["stdin"], c["stdinOnce"] = True, True
            for m in c["volumeMounts"]:
                if m["name"] == "src":
                    m["readOnly"] = False
        else:
            c["command"] = [RUNNER, c["name"], "after-compile"]
    spec["containers"] = containers
    return spec


def pool_hash(language: Language, settings: Settings) -> str:
    """Names what an idle pod was built from (image, limits, runner, settings): a change drains old pods."""
    spec = build_pool_pod_spec(language, settings)
    text = json.dumps([spec, settings.warm_pool_max_idle_seconds, settings.sandbox_labels,
                       settings.sandbox_annotations], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pool_labels(language: Language, settings: Settings) -> dict[str, str]:
    return {**settings.sandbox_labels, **names.SANDBOX_SELECTOR, names.POOL: language.name,
            names.POOL_HASH: pool_hash(language, settings)}


def build_pool_job(language: Language, settings: Settings) -> dict[str, Any]:
    """An idle sandbox Job. Its deadline covers the longest idle time and then one run at default limits;
    claimed, it gets the submission as its owner (and is deleted with it)."""
    labels = pool_labels(language, settings)
    deadline = pool_template(language, settings).deadline_seconds(settings.job_deadline_slack_seconds)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"generateName": f"pool-{language.name}-", "namespace": settings.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": settings.warm_pool_max_idle_seconds + POOL_RETIRE_SLACK_SECONDS + deadline,
            "ttlSecondsAfterFinished": settings.finished_ttl_seconds,
            "template": {
                "metadata": {
                    "labels": {**labels, names.POOL_STATE: names.IDLE},
                    "annotations": dict(settings.sandbox_annotations),
                },
                "spec": build_pool_pod_spec(language, settings),
            },
        },
    }


def build_pool_network_policy(settings: Settings) -> dict[str, Any]:
    """Deny-all for every pool pod, idle or claimed: created before the first pool Job."""
    return _deny_all(
        {"name": names.POOL_NETWORK_POLICY, "namespace": settings.namespace,
         "labels": {names.MANAGED_BY: "monaco", names.COMPONENT: "sandbox"}},
        {"matchLabels": dict(names.SANDBOX_SELECTOR), "matchExpressions": [{"key": names.POOL, "operator": "Exists"}]},
    )


def job_frame(code: str, stdin: str) -> bytes:
    """What the pool runner reads from its stdin (core/monaco-init.c): a header, the source, the stdin."""
    source, data = code.encode(), stdin.encode()
    return f"MONACO-JOB v1 {len(source)} {len(data)}\n".encode() + source + data


def claim_owner_patch(sub: Submission) -> dict[str, Any]:
    """The merge patch that hands a claimed pool Job to its submission."""
    return {"metadata": {"ownerReferences": [owner_reference(sub)],
                         "labels": {names.SUBMISSION: names.key(sub.name), names.POOL_STATE: names.CLAIMED}}}
