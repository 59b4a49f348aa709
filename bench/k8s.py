"""Benchmarks of the Kubernetes back end on a real cluster, printed as tables (never asserted).

1. latency: hello-world Python submitted through the API until completed, p50/p95, beside a bare Job
   running the same image and command, created directly and watched until it succeeds (same run).
2. throughput: a burst of 100 hello-world submissions.
3. memory: operator and API resident memory with 2,000 finished CodeSubmissions present.

Needs a cluster with Monaco installed by the chart (release and namespace from MONACO_BENCH_RELEASE,
default monaco-bench) and kubectl on PATH; `make bench-k8s` brings up the local cluster and installs it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.run import pct, table

RELEASE = os.environ.get("MONACO_BENCH_RELEASE", "monaco-bench")
NAMESPACE = os.environ.get("MONACO_BENCH_NAMESPACE", RELEASE)
SANDBOX_NS = f"{RELEASE}-sandbox"
HELLO = 'print("hello")'


def kubectl(*args: str, input: str | None = None) -> str:
    done = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout


def kjson(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json"))


def api_client() -> httpx.Client:
    svc = kjson("get", "service", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=api")["items"][0]
    return httpx.Client(base_url=f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}", timeout=120)


def wait_done(api: httpx.Client, sid: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get("/result", params={"id": sid}).json()
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.05)
    raise TimeoutError(sid)


def python_image() -> str:
    cm = kjson("get", "configmap", "-n", NAMESPACE, "-l", "app.kubernetes.io/instance=" + RELEASE)["items"]
    import yaml

    for item in cm:
        for text in item.get("data", {}).values():
            if "languages:" in text:
                return str(yaml.safe_load(text)["languages"]["python"]["image"])
    raise RuntimeError("no languages ConfigMap found")


def bare_job(image: str) -> float:
    """Seconds from creating a Job running `python3 -c print(...)` to the Job reporting success."""
    name = f"bench-bare-{uuid.uuid4().hex[:8]}"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": SANDBOX_NS, "labels": {"monaco.dev/bench": "bare"}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 30,
            "template": {
                "metadata": {"labels": {"monaco.dev/bench": "bare"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "run",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python3", "-c", HELLO],
                            "resources": {"limits": {"cpu": "1", "memory": "128Mi"}},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": True,
                            },
                        }
                    ],
                },
            },
        },
    }
    started = time.monotonic()
    kubectl("create", "-f", "-", input=json.dumps(job))
    kubectl("wait", "--for=condition=complete", f"job/{name}", "-n", SANDBOX_NS, "--timeout=300s")
    elapsed = time.monotonic() - started
    kubectl("delete", "job", name, "-n", SANDBOX_NS, "--wait=false")
    return elapsed


def latency(runs: int = 15) -> None:
    image = python_image()
    monaco_s: list[float] = []
    bare_s: list[float] = []
    with api_client() as api:
        wait_done(api, api.post("/submit", json={"code": HELLO}).json()["id"])  # warm up
        for _ in range(runs):  # interleaved, so both see the same cluster
            bare_s.append(bare_job(image))
            t = time.monotonic()
            sid = api.post("/submit", json={"code": HELLO}).json()["id"]
            result = wait_done(api, sid)
            monaco_s.append(time.monotonic() - t)
            assert result["output"] == "hello\n", result
    m, b = statistics.median(monaco_s), statistics.median(bare_s)
    table(
        f"latency: hello-world Python, {runs} runs each, interleaved",
        [
            ("Monaco (POST /submit .. completed) p50", f"{m * 1000:.0f} ms"),
            ("Monaco p95", f"{pct(monaco_s, 95) * 1000:.0f} ms"),
            ("bare Job (create .. Complete) p50", f"{b * 1000:.0f} ms"),
            ("bare Job p95", f"{pct(bare_s, 95) * 1000:.0f} ms"),
            ("ratio of medians", f"{m / b:.2f} (target <= 1.25)"),
        ],
    )


def throughput(burst: int = 100) -> None:
    with api_client() as api:
        workers = api.get("/queue-stats").json()["queue_stats"]["max_workers"]
        started = time.monotonic()
        ids = [api.post("/submit", json={"code": HELLO}).json()["id"] for _ in range(burst)]
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda s: wait_done(api, s, 900), ids))
        elapsed = time.monotonic() - started
    ok = sum(1 for r in results if r["verdict"] == "ok")
    table(
        f"throughput: burst of {burst} hello-world Python (MAX_WORKERS={workers})",
        [("completed ok", f"{ok} / {burst}"), ("wall time", f"{elapsed:.1f} s"), ("rate", f"{ok / elapsed:.2f} /s")],
    )


def rss_mb(component: str) -> float:
    pod = kjson("get", "pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/component={component}")["items"][0]
    name = pod["metadata"]["name"]
    out = kubectl("exec", "-n", NAMESPACE, name, "--", "python3", "-c", "print(open('/proc/1/status').read())")
    for line in out.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {name}")


def memory(count: int = 2000) -> None:
    """Creates `count` CodeSubmissions already finished (status written through the status subresource
    while the operator is scaled to zero), restarts both, and reads their resident memory."""
    deployments = {
        c: kjson("get", "deploy", "-n", NAMESPACE, "-l", f"app.kubernetes.io/component={c}")["items"][0]["metadata"][
            "name"
        ]
        for c in ("api", "operator")
    }
    kubectl("scale", "deploy", deployments["operator"], "-n", NAMESPACE, "--replicas=0")
    names = [f"bench-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for chunk in range(0, count, 200):
        items = [
            {
                "apiVersion": "monaco.dev/v1alpha1",
                "kind": "CodeSubmission",
                "metadata": {"name": n, "labels": {"monaco.dev/bench": "memory"}},
                "spec": {
                    "language": "python",
                    "code": HELLO,
                    "input": "",
                    "limits": {"timeoutSeconds": 10, "memoryMb": 100},
                },
            }
            for n in names[chunk : chunk + 200]
        ]
        kubectl(
            "create",
            "-n",
            SANDBOX_NS,
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        )
    status = {
        "status": {
            "phase": "completed",
            "verdict": "ok",
            "output": "hello\n",
            "exitCode": 0,
            "queuedAt": now,
            "startedAt": now,
            "completedAt": now,
            "executionTimeMs": 10.0,
            "totalTimeMs": 10.0,
            "memoryKb": 4000,
            "truncated": False,
            "message": "",
        }
    }
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: kubectl(
                    "patch",
                    "csub",
                    n,
                    "-n",
                    SANDBOX_NS,
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    json.dumps(status),
                ),
                names,
            )
        )
    kubectl("scale", "deploy", deployments["operator"], "-n", NAMESPACE, "--replicas=1")
    kubectl("rollout", "restart", "deploy", deployments["api"], "-n", NAMESPACE)
    for d in deployments.values():
        kubectl("rollout", "status", "deploy", d, "-n", NAMESPACE, "--timeout=300s")
    with api_client() as api:
        deadline = time.monotonic() + 300
        while api.get("/queue-stats").json()["submissions"] < count and time.monotonic() < deadline:
            time.sleep(1)
        seen = api.get("/queue-stats").json()["submissions"]
    peaks = {"api": 0.0, "operator": 0.0}
    for _ in range(5):  # the highest of a few samples, a second apart, after both have listed everything
        for component in peaks:
            peaks[component] = max(peaks[component], rss_mb(component))
        time.sleep(1)
    table(
        f"memory: resident set with {count} finished CodeSubmissions present (highest of 5 samples)",
        [
            ("submissions the API's cache holds", str(seen)),
            ("API RSS", f"{peaks['api']:.0f} MB (target < 200 MB)"),
            ("operator RSS", f"{peaks['operator']:.0f} MB (target < 200 MB)"),
        ],
    )
    kubectl("delete", "csub", "-n", SANDBOX_NS, "-l", "monaco.dev/bench=memory", "--wait=false")


def main() -> None:
    wanted = sys.argv[1:] or ["latency", "throughput", "memory"]
    nodes = kjson("get", "nodes")["items"]
    info = nodes[0]["status"]["nodeInfo"]
    print(
        f"cluster: {len(nodes)} node(s), kubelet {info['kubeletVersion']}, {info['containerRuntimeVersion']}, "
        f"{nodes[0]['status']['capacity']['cpu']} cpu"
    )
    for name in wanted:
        {"latency": latency, "throughput": throughput, "memory": memory}[name]()


if __name__ == "__main__":
    main()
