"""Pure builders of a submission's children: the ConfigMap, the deny-all NetworkPolicy and the sandbox Job.

Each returns a plain dict; the caller sets the owner reference (kopf.adopt) and creates it.
"""

from __future__ import annotations

import math
from typing import Any

from monaco.core.languages import runner_script
from monaco.core.resource import API_VERSION, KIND
from monaco.core.settings import Settings
from monaco.operator import names
from monaco.operator.submission import Submission

SRC_DIR = "/monaco/src"
BUILD_DIR = "/monaco/build"
TMP_DIR = "/tmp"
WORK_DIR = "/tmp/work"
RUNNER = f"{SRC_DIR}/runner.sh"
COMPILE, RUN = "compile", "run"
# What the runner itself (sh, head, base64) needs beside the program, inside the same cgroup.
RUNNER_MEMORY_MB = 8
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
    """The source file, stdin and the runner script, mounted read-only at /monaco/src."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(sub, settings),
        "immutable": True,
        "data": {sub.language.source_file: sub.code, "stdin": sub.stdin, "runner.sh": runner_script()},
    }


def build_network_policy(sub: Submission, settings: Settings) -> dict[str, Any]:
    """Selects exactly this submission's pod and allows nothing in or out."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(sub, settings),
        "spec": {
            "podSelector": {"matchLabels": {**names.SANDBOX_SELECTOR, names.SUBMISSION: names.key(sub.name)}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


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


def _env(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def _build_mb(sub: Submission) -> int:
    return int(sub.language.compile_limits.output_file_mb)


def _common_env(sub: Submission, settings: Settings) -> dict[str, str]:
    return {
        "HOME": TMP_DIR,
        "TMPDIR": TMP_DIR,
        **sub.language.env,
        "MONACO_SRC_DIR": SRC_DIR,
        "MONACO_SOURCE_FILE": sub.language.source_file,
        "MONACO_BUILD_DIR": BUILD_DIR if sub.language.compiles else WORK_DIR,
        "MONACO_WORK_DIR": WORK_DIR,
        "MONACO_OUTPUT_LIMIT": str(settings.output_limit_bytes),
        # The container's memory cgroup and the kubelet's pod PID limit enforce memory and processes.
        "MONACO_AS_KB": "0",
        "MONACO_NPROC": "0",
        # The runner shares the program's uid here: it re-executes from an execute-only shell so that
        # the program cannot ptrace it or read its memory (see core/runner.sh).
        "MONACO_SELF_PROTECT": "1",
    }


def _compile_container(sub: Submission, settings: Settings) -> dict[str, Any]:
    lang = sub.language
    limits = lang.compile_limits
    env = {
        **_common_env(sub, settings),
        "MONACO_COMMAND": lang.compile or "",
        "MONACO_TIMEOUT_MS": str(math.ceil(limits.timeout_seconds * 1000)),
        "MONACO_NOFILE": str(limits.open_files),
        "MONACO_FSIZE_KB": str(limits.output_file_mb * 1024),
        "MONACO_CGROUP_MEMORY": "0",
    }
    return {
        "name": COMPILE,
        "image": lang.image,
        "imagePullPolicy": lang.image_pull_policy,
        "command": ["/bin/sh", RUNNER, COMPILE],
        "workingDir": TMP_DIR,
        "env": _env(env),
        "resources": _resources(settings.sandbox_cpu, limits.memory_mb + RUNNER_MEMORY_MB,
                                settings.sandbox_work_mb + _build_mb(sub) + LOG_MB),
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "src", "mountPath": SRC_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": TMP_DIR},
            {"name": "build", "mountPath": BUILD_DIR},
        ],
    }


def _run_container(sub: Submission, settings: Settings) -> dict[str, Any]:
    lang = sub.language
    env = {
        **_common_env(sub, settings),
        "MONACO_COMMAND": lang.run,
        "MONACO_TIMEOUT_MS": str(math.ceil(sub.timeout_seconds * 1000)),
        "MONACO_NOFILE": str(lang.limits.open_files),
        "MONACO_CGROUP_MEMORY": "1",
        "MONACO_NEEDS_COMPILE": "1" if lang.compiles else "0",
    }
    mounts: list[dict[str, Any]] = [
        {"name": "src", "mountPath": SRC_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": TMP_DIR},
    ]
    storage = settings.sandbox_work_mb + LOG_MB
    if lang.compiles:
        mounts.append({"name": "build", "mountPath": BUILD_DIR, "readOnly": True})
        storage += _build_mb(sub)
    return {
        "name": RUN,
        "image": lang.image,
        "imagePullPolicy": lang.image_pull_policy,
        "command": ["/bin/sh", RUNNER, RUN],
        "workingDir": TMP_DIR,
        "env": _env(env),
        "resources": _resources(settings.sandbox_cpu, sub.memory_mb + RUNNER_MEMORY_MB, storage),
        "securityContext": _security_context(),
        "volumeMounts": mounts,
    }


def build_pod_spec(sub: Submission, settings: Settings) -> dict[str, Any]:
    uid = settings.sandbox_run_as_user
    volumes: list[dict[str, Any]] = [
        {"name": "src", "configMap": {"name": names.child_name(sub.name), "defaultMode": 0o444}},
        {"name": "tmp", "emptyDir": {"sizeLimit": f"{settings.sandbox_work_mb}Mi"}},
    ]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        # The runner is PID 1 and ignores SIGTERM: a cancelled pod should not linger for 30 s.
        "terminationGracePeriodSeconds": 1,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
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
