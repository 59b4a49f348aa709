"""Benchmarks of the Kubernetes back end on a real cluster, printed as tables (never asserted).

1. latency: hello-world Python submitted through the API until completed, p50/p95, on the warm path
   (default limits: an idle pool sandbox, when the release has `warmPool.python`), on the cold path
   (the same program asking for 1 MiB more memory than the default, which no pool serves), and a bare
   Job running the same image and command, created directly and watched until it succeeds (same run);
   with the Kubernetes API writes per submission on each path (the API server's apiserver_request_total).
2. throughput: a burst of 100 hello-world submissions on each path, and as many bare pods of the same
   image and command, as many at a time as fit beside the pool: the node's ceiling when every program
   gets a pod of its own.
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
# Per path, the request body beside the code: default limits go warm; one MiB more goes cold.
PATHS = {"warm": {}, "cold": {"memoryMb": 101}}
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")
BARE_POD = "monaco.dev/bench=bare-pod"  # the label of the bare pods that measure the node's ceiling


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


def bare_pod_spec(image: str, resources: dict[str, Any]) -> dict[str, Any]:
    """A pod running `python3 -c print(...)` in the language image, as locked down as a sandbox's."""
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "run",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["python3", "-c", HELLO],
            "resources": resources,
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": True},
        }],
    }


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
                "spec": bare_pod_spec(image, {"limits": {"cpu": "1", "memory": "128Mi"}}),
            },
        },
    }
    started = time.monotonic()
    kubectl("create", "-f", "-", input=json.dumps(job))
    kubectl("wait", "--for=condition=complete", f"job/{name}", "-n", SANDBOX_NS, "--timeout=300s")
    elapsed = time.monotonic() - started
    kubectl("delete", "job", name, "-n", SANDBOX_NS, "--wait=false")
    return elapsed


def api_writes() -> int:
    """Every write the API server has served so far (all clients: operator, kubelet, controllers)."""
    total = 0.0
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if line.startswith("apiserver_request_total{") and any(f'verb="{v}"' in line for v in WRITE_VERBS):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def ran_warm(sid: str) -> bool:
    return bool(kjson("get", "codesubmission", sid, "-n", SANDBOX_NS).get("status", {}).get("warm"))


HOPS = ("submit .. running (the operator's watch, queued, then claim + attach or the Job and its children)",
        "running .. completed, less the run (pod start for cold; result back)", "the run itself (executionTime)",
        "completed .. the client sees it (API watch cache, client poll)")


def hops(sid: str, client_seconds: float) -> list[float]:
    """Where one submission's time went, in ms, from the timestamps on its CodeSubmission."""
    from datetime import datetime

    body = kjson("get", "codesubmission", sid, "-n", SANDBOX_NS)
    st = body.get("status", {})

    def t(value: str) -> float:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000

    submitted = t(body["metadata"]["annotations"]["monaco.dev/submitted-at"])
    started, completed = t(st["startedAt"]), t(st["completedAt"])
    run = float(st.get("executionTimeMs") or 0)
    return [started - submitted, completed - started - run, run,
            client_seconds * 1000 - (completed - submitted)]


def idle_pool_pods() -> int:
    pods = kjson("get", "pods", "-n", SANDBOX_NS, "-l", "monaco.dev/pool=python,monaco.dev/pool-state=idle")["items"]
    return sum(1 for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"))


def wait_for_pool(timeout: float = 120) -> None:
    """Between measured runs: the pool back at its size (its refill is not part of one run's latency)."""
    deadline = time.monotonic() + timeout
    while idle_pool_pods() < 1 and time.monotonic() < deadline:
        time.sleep(0.2)


def submit_and_wait(api: httpx.Client, body: dict[str, Any]) -> tuple[float, str]:
    t = time.monotonic()
    sid = api.post("/submit", json={"code": HELLO, **body}).json()["id"]
    result = wait_done(api, sid)
    assert result["output"] == "hello\n", result
    return time.monotonic() - t, sid


def latency(runs: int = 15) -> None:
    image = python_image()
    seconds: dict[str, list[float]] = {"warm": [], "cold": [], "bare": []}
    writes: dict[str, list[int]] = {"warm": [], "cold": [], "bare": []}
    warm_runs = 0
    steps: dict[str, list[list[float]]] = {"warm": [], "cold": []}
    with api_client() as api:
        for body in PATHS.values():
            submit_and_wait(api, body)  # warm up
        for _ in range(runs):  # interleaved, so all three see the same cluster
            for path in ("bare", *PATHS):
                if path == "warm":
                    wait_for_pool()
                before = api_writes()
                if path == "bare":
                    seconds[path].append(bare_job(image))
                else:
                    elapsed, sid = submit_and_wait(api, PATHS[path])
                    seconds[path].append(elapsed)
                    warm_runs += path == "warm" and ran_warm(sid)
                    steps[path].append(hops(sid, elapsed))
                time.sleep(2)  # let the tail (teardown, pool refill) land in this run's writes
                writes[path].append(api_writes() - before)
    rows = []
    for path, label in (("warm", "warm pool (POST /submit .. completed)"), ("cold", "cold path (same)"),
                        ("bare", "bare Job (create .. Complete)")):
        rows += [(f"{label} p50", f"{statistics.median(seconds[path]) * 1000:.0f} ms"),
                 (f"{label} p95", f"{pct(seconds[path], 95) * 1000:.0f} ms"),
                 (f"{label} API writes per run (median)", f"{statistics.median(writes[path]):.0f}")]
    rows.append(("runs that claimed a warm sandbox", f"{warm_runs} / {runs}"))
    table(f"latency: hello-world Python, {runs} runs each, interleaved", rows)
    table("where the time goes, hop by hop (median ms, from the CodeSubmission's timestamps)",
          [(f"{path}: {hop}", f"{statistics.median(s[i] for s in steps[path]):.0f}")
           for path in steps for i, hop in enumerate(HOPS)])


def operator_env() -> dict[str, str]:
    deploy = kjson("get", "deploy", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator")["items"][0]
    env = deploy["spec"]["template"]["spec"]["containers"][0].get("env") or []
    return {e["name"]: str(e.get("value", "")) for e in env}


def millicpu(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def free_millicpu() -> int:
    """The node's allocatable CPU less what its pods that have not ended request now."""
    node = kjson("get", "nodes")["items"][0]
    used = 0
    for pod in kjson("get", "pods", "-A")["items"]:
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        for c in pod["spec"].get("containers", []):
            used += millicpu(str(((c.get("resources") or {}).get("requests") or {}).get("cpu", "0m")))
    return millicpu(str(node["status"]["allocatable"]["cpu"])) - used


def bare_pods(count: int, at_once: int, image: str, cpu: str) -> tuple[float, list[float]]:
    """The node's ceiling for one pod per program: `count` bare pods running the same image and command at
    the sandbox's CPU, at most `at_once` at a time, each deleted once it succeeded. Through the Python
    client and one watch, so that measuring costs the node next to nothing. (seconds in all, and each
    pod's seconds from create to Succeeded)"""
    import threading

    from kubernetes import client, config, watch

    config.load_kube_config()  # type: ignore[no-untyped-call]
    core = client.CoreV1Api()
    done: dict[str, threading.Event] = {}
    stop = threading.Event()

    def watcher() -> None:
        while not stop.is_set():
            for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
                    core.list_namespaced_pod, SANDBOX_NS, timeout_seconds=5, label_selector=BARE_POD):
                pod = event["object"]
                if pod.status and pod.status.phase in ("Succeeded", "Failed") and pod.metadata.name in done:
                    done[pod.metadata.name].set()
                if stop.is_set():
                    return

    def one(_: int) -> float:
        name = f"bench-pod-{uuid.uuid4().hex[:10]}"
        done[name] = threading.Event()
        resources = {"cpu": cpu, "memory": "128Mi"}
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": dict([BARE_POD.split("=")])},
                "spec": {**bare_pod_spec(image, {"requests": resources, "limits": resources}),
                         "enableServiceLinks": False, "terminationGracePeriodSeconds": 0}}
        t = time.monotonic()
        core.create_namespaced_pod(SANDBOX_NS, body)  # type: ignore[arg-type]  # a dict is a V1Pod's wire form
        deadline = t + 300
        while not done[name].wait(2):  # an event the watch missed between two of its streams: read the pod
            status = core.read_namespaced_pod_status(name, SANDBOX_NS).status
            if status is not None and str(status.phase) in ("Succeeded", "Failed"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(name)
        elapsed = time.monotonic() - t
        core.delete_namespaced_pod(name, SANDBOX_NS, grace_period_seconds=0)
        return elapsed

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(at_once) as pool:
            each = list(pool.map(one, range(count)))
    finally:
        stop.set()
    return time.monotonic() - started, each


def throughput(burst: int = 100) -> None:
    env = operator_env()
    pool_python = json.loads(env.get("MONACO_WARM_POOL") or "{}").get("python", 0)
    burst_python = json.loads(env.get("MONACO_WARM_POOL_BURST") or "{}").get("python", 0)
    with api_client() as api:
        workers = api.get("/queue-stats").json()["queue_stats"]["max_workers"]
        rows = [("warm pool, its burst, MAX_WORKERS", f"{pool_python}, {burst_python}, {workers}")]
        for path, body in PATHS.items():
            if path == "warm":
                wait_for_pool()
            before = api_writes()
            started = time.monotonic()
            ids = [api.post("/submit", json={"code": HELLO, **body}).json()["id"] for _ in range(burst)]
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda s: wait_done(api, s, 900), ids))
            elapsed = time.monotonic() - started
            written = api_writes() - before
            ok = sum(1 for r in results if r["verdict"] == "ok")
            warm = sum(1 for sid in ids if ran_warm(sid))
            rows += [(f"{path}: completed ok", f"{ok} / {burst} ({warm} warm)"),
                     (f"{path}: wall time", f"{elapsed:.1f} s"),
                     (f"{path}: rate", f"{ok / elapsed:.2f} /s"),
                     (f"{path}: API writes per submission", f"{written / burst:.1f}")]
    cpu = env.get("MONACO_SANDBOX_CPU", "500m")
    # as many as Monaco may have beside the pool's idle pods (workers and the burst), or as fit the node
    at_once = max(1, min(workers + burst_python, free_millicpu() // millicpu(cpu)))
    elapsed, each = bare_pods(burst, at_once, python_image(), cpu)
    rows += [(f"bare pods ({at_once} at a time, {cpu} CPU): the node's ceiling", f"{burst / elapsed:.2f} /s"),
             ("bare pods: create to Succeeded, p50 / p95",
              f"{pct(each, 50) * 1000:.0f} / {pct(each, 95) * 1000:.0f} ms")]
    table(f"throughput: burst of {burst} hello-world Python per path (MAX_WORKERS={workers})", rows)


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
