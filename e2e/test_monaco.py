"""Monaco on a real cluster: installed with its Helm chart, reached through its Service, real Jobs.

The module installs the chart (release `monaco-e2e` in namespace `monaco-e2e`), runs the product
tests against it, then upgrades it with new values and uninstalls it — in that order, so the last
tests prove what the first ones left behind. Values: MONACO_E2E_VALUES (default: the local-cluster
overlay helm/values-local.yaml, which uses the locally built images and adds JavaScript).

It does so twice, once per path (PATHS): `cold`, the chart's defaults, where every submission gets a
Job of its own; and `warm`, with warm pools for Python and C, where a submission at its language's
default limits claims an idle sandbox (the others, in the same pass, take the cold path).
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.contract_cases import BAD_REQUESTS  # shared with the local back end's tests
from tests.hostile_cases import FORGERIES, Case, check  # the local back end runs the same table
from tests.support import wait_until_blocking

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "monaco"
RELEASE = "monaco-e2e"
NAMESPACE = "monaco-e2e"
SANDBOX_NS = f"{RELEASE}-sandbox"
VALUES = os.environ.get("MONACO_E2E_VALUES", str(REPO / "helm" / "values-local.yaml"))
MAX_WORKERS = 3
# Per path, the values added to every install and upgrade. Idle pool pods request CPU like running ones:
# on the 2-core local node the warm pass gives sandboxes 300m, so that 3 workers and the pools fit.
WARM_POOL = {"python": 1, "c": 1}
BURST = {"python": 1}  # the python pool grows to 2 while python submissions queue
PATHS = {"cold": [], "warm": ["--set-json", f"warmPool={json.dumps(WARM_POOL)}", "--set", "sandbox.cpu=300m",
                               "--set-json", f"warmPoolBurst={json.dumps(BURST)}",
                               "--set", "operator.metricsPort=8082"]}
IDLE = "monaco.dev/pool-state=idle"
POLL = 0.2  # seconds between polls of the cluster

pytestmark = pytest.mark.e2e


def helm_binary() -> str:
    found = os.environ.get("HELM") or shutil.which("helm")
    if not found:
        pytest.fail("helm is not on PATH; run the suite through `make e2e` or e2e/cluster/run-in-cluster.sh")
    return found


def helm(*args: str, timeout: float = 600) -> str:
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


# ---- the release ---------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=list(PATHS))
def path(request: pytest.FixtureRequest) -> str:
    """cold or warm: the whole module runs once per path."""
    return str(request.param)


@pytest.fixture(scope="module")
def release(kubectl: Any, path: str) -> Iterator[None]:
    kubectl.run("delete", "namespace", NAMESPACE, SANDBOX_NS, "--ignore-not-found", "--wait", timeout=300)
    helm(
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "-f",
        VALUES,
        "--set",
        f"maxWorkers={MAX_WORKERS}",
        *PATHS[path],
        "--wait",
        "--timeout",
        "300s",
    )
    yield
    # The lifecycle test at the end uninstalls; make sure nothing is left if it did not get there.
    subprocess.run([helm_binary(), "uninstall", RELEASE, "-n", NAMESPACE, "--wait"], capture_output=True)
    kubectl.run("delete", "namespace", NAMESPACE, SANDBOX_NS, "--ignore-not-found", "--wait=false", check=False)


@pytest.fixture(scope="module")
def api(release: None, kubectl: Any) -> Iterator[httpx.Client]:
    svc = kubectl.json("get", "service", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=api")["items"][0]
    base = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
    with httpx.Client(base_url=base, timeout=60) as client:
        wait_until_blocking(lambda: _ready(client), 120, "the API to be ready", POLL)
        yield client


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


def run(api: httpx.Client, language: str, code: str, stdin: str = "", **limits: Any) -> dict[str, Any]:
    body = {"language": language, "code": code, "input": stdin, **limits}
    r = api.post("/submit", params={"wait": 60}, json=body)
    assert r.status_code in (200, 202), r.text
    sid = r.json()["id"]
    return finished(api, sid)


def finished(api: httpx.Client, sid: str, timeout: float = 240) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = api.get("/result", params={"id": sid}).json()
        return body if body["status"] in ("completed", "failed") else None

    result: dict[str, Any] = wait_until_blocking(done, timeout, f"submission {sid} to finish", 0.3)
    return result


# ---- programs through the real path ------------------------------------------------------------
HELLO = {
    "python": "import sys\nprint('hello', sys.stdin.read().strip())",
    "java": (
        "import java.util.*;\npublic class Solution { public static void main(String[] a) {"
        ' Scanner s = new Scanner(System.in); System.out.println("hello " + s.nextLine()); } }'
    ),
    "c": '#include <stdio.h>\nint main(){char b[64]; if(!fgets(b,64,stdin)) return 1; printf("hello %s", b);}',
    "cpp": (
        "#include <iostream>\n#include <string>\n#include <utility>\n"
        "int main(){std::string s; std::getline(std::cin,s);"
        " auto [a, b] = std::pair<std::string, int>{\"hello\", 1}; std::cout << a << ' ' << s << std::endl;}"
    ),
}


def ran_warm(kubectl: Any, sid: str) -> bool:
    """Whether the operator ran the submission in a warm pool's sandbox (its CodeSubmission's status)."""
    return bool(kubectl.json("get", "codesubmission", sid, "-n", SANDBOX_NS)["status"].get("warm"))


@pytest.mark.parametrize("language", ["python", "java", "c", "cpp"])
def test_each_language_runs_with_stdin(api: httpx.Client, kubectl: Any, path: str, language: str) -> None:
    if path == "warm" and language in WARM_POOL:
        wait_until_blocking(lambda: _ready_idle(kubectl, language) > 0, 180, f"an idle {language} pool pod", POLL)
    result = run(api, language, HELLO[language], "world\n")
    assert ran_warm(kubectl, result["id"]) == (path == "warm" and language in WARM_POOL), result
    assert result["verdict"] == "ok", result
    assert result["status"] == "completed"
    assert result["output"] == "hello world\n"
    assert result["exitCode"] == 0
    # measured in the sandbox in ms, not Kubernetes' whole seconds
    assert 0 < result["executionTimeMs"] < 10_000 and result["executionTimeMs"] != int(result["executionTimeMs"])
    assert result["executionTime"] == int(result["executionTimeMs"] + 0.5)  # the seed's integer ms
    assert result["memoryKb"] and result["memoryKb"] > 0


def test_a_language_added_by_values_only(api: httpx.Client) -> None:
    names = [lang["name"] for lang in api.get("/languages").json()["languages"]]
    if "javascript" not in names:
        pytest.skip("the values in use add no javascript language")
    result = run(api, "javascript", "const s = require('fs').readFileSync(0, 'utf8'); console.log(s.trim() * 2)", "21")
    assert result["verdict"] == "ok", result
    assert result["output"] == "42\n"


def test_compile_error(api: httpx.Client) -> None:
    result = run(api, "c", "int main() { return undeclared_name; }")
    assert result["verdict"] == "compile_error", result
    assert "undeclared_name" in result["compileOutput"]


def test_runtime_error_keeps_exit_code_and_stderr(api: httpx.Client) -> None:
    result = run(api, "python", "import sys\nprint('partial')\nsys.stderr.write('boom\\n')\nsys.exit(3)")
    assert result["verdict"] == "runtime_error" and result["exitCode"] == 3, result
    assert result["output"] == "partial\n" and "boom" in result["stderr"], result


def test_timeout(api: httpx.Client) -> None:
    result = run(api, "python", "while True: pass", timeoutSeconds=2)
    assert result["verdict"] == "timeout", result
    assert 2000 <= result["executionTime"] < 10_000


def test_memory_bomb(api: httpx.Client) -> None:
    result = run(api, "python", "x = []\nwhile True: x.append(bytearray(10 * 1024 * 1024))")
    assert result["verdict"] == "memory_limit", result


def test_fork_bomb_is_contained(api: httpx.Client) -> None:
    result = run(api, "c", "#include <unistd.h>\nint main(){ for(;;) fork(); }", timeoutSeconds=3)
    assert result["verdict"] in ("timeout", "runtime_error", "memory_limit"), result
    after = run(api, "python", "print('still serving')")
    assert after["verdict"] == "ok" and after["output"] == "still serving\n"


def test_output_flood_is_cut(api: httpx.Client) -> None:
    result = run(api, "python", "while True: print('x' * 1000)")
    assert result["verdict"] == "output_limit", result
    assert result["truncated"] is True
    assert len(result["output"]) == 65536


@pytest.mark.parametrize("case", FORGERIES, ids=lambda c: c.id)
def test_a_program_cannot_choose_its_verdict(api: httpx.Client, case: Case) -> None:
    """The same runner judges on both back ends: the same program gets the same verdict (tests/hostile_cases.py)."""
    check(case, run(api, case.language, case.code, **case.limits))


def test_sandbox_reaches_neither_the_api_nor_kubernetes(api: httpx.Client, kubectl: Any) -> None:
    svc = kubectl.json("get", "service", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=api")["items"][0]
    kube = kubectl.json("get", "service", "kubernetes", "-n", "default")
    targets = [(svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["port"]), (kube["spec"]["clusterIP"], 443)]
    code = (
        "import socket\n"
        f"for host, port in {targets!r}:\n"
        "    s = socket.socket(); s.settimeout(3)\n"
        "    try:\n"
        "        s.connect((host, port)); print(host, 'OPEN')\n"
        "    except OSError as e:\n"
        "        print(host, 'refused', type(e).__name__)\n"
    )
    result = run(api, "python", code)
    assert result["verdict"] == "ok", result
    lines = result["output"].splitlines()
    assert len(lines) == 2 and all("refused" in line for line in lines), lines
    # and the same code outside a sandbox does reach the API (the test is not passing on a dead network)
    assert api.get("/healthz").status_code == 200


def test_contract_errors(api: httpx.Client) -> None:
    assert api.post("/submit", content=b"{nope", headers={"content-type": "application/json"}).status_code == 400
    r = api.post("/submit", json={"language": "cobol", "code": "x"})
    assert r.status_code == 400 and "choose one of" in r.json()["error"]
    assert api.post("/submit", json={"language": "python", "code": "#" * 70000}).status_code == 413
    assert api.get("/status").status_code == 400
    assert api.get("/status", params={"id": "does-not-exist"}).status_code == 404
    stats = api.get("/queue-stats").json()
    assert stats["queue_stats"]["max_workers"] == MAX_WORKERS
    assert set(stats["queue_stats"]) == {"queue_length", "max_workers", "running_jobs"}


@pytest.mark.parametrize(("body", "fragment"), BAD_REQUESTS)
def test_bad_requests_are_400_as_on_the_local_back_end(api: httpx.Client, body: str, fragment: str) -> None:
    r = api.post("/submit", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]


def test_status_result_and_wait_as_on_the_local_back_end(api: httpx.Client) -> None:
    r = api.post("/submit", json={"language": "python", "code": "print('hello')"})
    assert r.status_code == 202 and set(r.json()) == {"id"}
    sid = r.json()["id"]
    status = api.get("/status", params={"id": sid}).json()
    assert status["id"] == sid and status["status"] in ("pending", "queued", "running", "completed")
    assert status["queuedAt"].endswith("Z")
    result = finished(api, sid)
    assert result["status"] == "completed" and result["verdict"] == "ok" and result["output"] == "hello\n"
    assert result["language"] == "python" and result["exitCode"] == 0 and result["stderr"] == ""
    assert result["executionTime"] > 0 and result["totalTime"] >= result["executionTime"]
    assert result["startedAt"] >= result["queuedAt"] and result["completedAt"] >= result["startedAt"]
    assert result["truncated"] is False
    done = api.post("/submit", params={"wait": 60}, json={"language": "python", "code": "print(6 * 7)"})
    assert done.status_code == 200 and done.json()["output"] == "42\n"
    slow = api.post("/submit", params={"wait": 0.2}, json={"code": "import time; time.sleep(3)"})
    assert slow.status_code == 202 and set(slow.json()) == {"id"}
    assert api.get("/result", params={"id": "no-such-id"}).status_code == 404
    assert api.delete(f"/submissions/{sid}").status_code == 409


def test_cancel(api: httpx.Client) -> None:
    sid = api.post("/submit", json={"language": "python", "code": "import time; time.sleep(25)", "timeoutSeconds": 30})
    sid = sid.json()["id"]
    r = api.delete(f"/submissions/{sid}")
    assert r.status_code == 200, r.text
    result = api.get("/result", params={"id": sid}).json()
    assert result["status"] == "failed" and result["verdict"] == "cancelled"


def test_the_playground_is_served_through_the_service(api: httpx.Client) -> None:
    """The page at / and every asset it names, through the chart's Service: the image carries the built playground."""
    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8", page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="\./(playground/[^"]+)"', page.text)
    assert {a.split("?")[0] for a in assets} >= {"playground/app.js", "playground/app.css"}
    for asset in assets:
        r = api.get("/" + asset)
        assert r.status_code == 200 and r.content, asset


def test_kubectl_shows_the_columns(api: httpx.Client, kubectl: Any) -> None:
    run(api, "python", "print(1)")
    table = kubectl("get", "codesubmissions", "-n", SANDBOX_NS)
    header = table.splitlines()[0].split()
    assert header[:1] == ["NAME"]
    for column in ("LANGUAGE", "STATUS", "VERDICT", "AGE"):
        assert column in header, header
    assert any(c.startswith("TIME") for c in header), header
    assert "python" in table and "completed" in table
    assert "WARM" in header, header
    assert kubectl("get", "csub", "-n", SANDBOX_NS)  # the short name


def _sandbox_pods(kubectl: Any) -> int:
    """Sandbox pods that hold a worker slot: idle warm-pool pods do not (they have no program)."""
    selector = f"app.kubernetes.io/component=sandbox,{IDLE.replace('=', '!=')}"
    pods = kubectl.json("get", "pods", "-n", SANDBOX_NS, "-l", selector)["items"]
    return sum(1 for p in pods if p["status"].get("phase") in ("Pending", "Running"))


def _operator_running(kubectl: Any) -> bool:
    pods = kubectl.json("get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator")["items"]
    return any(
        p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and all(c.get("ready") for c in p["status"].get("containerStatuses", []))
        for p in pods
    )


def test_burst_of_50_never_exceeds_max_workers_and_survives_operator_kills(api: httpx.Client, kubectl: Any) -> None:
    ids = []
    for i in range(50):
        r = api.post("/submit", json={"language": "python", "code": f"import time; time.sleep(0.5); print({i})"})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _sandbox_pods(kubectl))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for _ in range(2):  # kill the operator twice while the burst runs
            wait_until_blocking(lambda: _operator_running(kubectl), 180, "an operator pod to run", POLL)
            wait_until_blocking(lambda: _sandbox_pods(kubectl) > 0, 120, "sandbox pods to run", POLL)
            kubectl(
                "delete",
                "pod",
                "-n",
                NAMESPACE,
                "-l",
                "app.kubernetes.io/component=operator",
                "--grace-period=0",
                "--force",
                "--wait=false",
            )
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda sid: finished(api, sid, 600), ids))
    finally:
        stop.set()
        watcher.join(10)
    assert [r["output"] for r in results] == [f"{i}\n" for i in range(50)]
    assert all(r["verdict"] == "ok" for r in results)
    assert peak <= MAX_WORKERS, f"saw {peak} sandbox pods at once"
    # exactly once: every resource finished once, and no Job or pod of theirs is left running
    wait_until_blocking(lambda: _sandbox_pods(kubectl) == 0, 120, "no sandbox pod left", POLL)
    jobs = kubectl.json("get", "jobs", "-n", SANDBOX_NS, "-l", "monaco.dev/submission")["items"]  # not idle pools
    assert not [j for j in jobs if not j.get("status", {}).get("completionTime") and not j["status"].get("failed")]


# ---- the judge's fields (issue 11) on the Kubernetes back end
SQUARE_C = ('#include <stdio.h>\nint main(void) { long n; if (scanf("%ld", &n) != 1) return 2;\n'
            '  printf("%ld\\n", n * n); }\n')


def test_expected_output_and_wrong_answer(api: httpx.Client) -> None:
    ok = run(api, "python", "print(int(input()) ** 2)", "12\n", expectedOutput="144")
    assert ok["verdict"] == "ok", ok
    wrong = run(api, "python", "print(int(input()) ** 2)", "12\n", expectedOutput="145")
    assert wrong["verdict"] == "wrong_answer" and wrong["status"] == "failed", wrong


def test_test_cases_compile_once_and_report_each(api: httpx.Client) -> None:
    cases = [{"input": "2\n", "expectedOutput": "4"}, {"input": "3\n", "expectedOutput": "10"}, {"input": "x\n"}]
    result = run(api, "c", SQUARE_C, testCases=cases)
    assert [c["verdict"] for c in result["testCases"]] == ["ok", "wrong_answer", "runtime_error"], result
    assert result["verdict"] == "wrong_answer" and result["output"] == "9\n", result


def test_files_and_args(api: httpx.Client) -> None:
    code = "import sys, helper\nprint(helper.greet(sys.argv[1:]))"
    files = [{"name": "helper.py", "content": "def greet(names):\n    return ' & '.join(names)\n"}]
    result = run(api, "python", code, args=["a b", "$(id)"], files=files)
    assert result["verdict"] == "ok" and result["output"] == "a b & $(id)\n", result


def test_compiler_options_and_merged_stderr(api: httpx.Client) -> None:
    code = '#include <stdio.h>\nint main(void) { printf("%d\\n", VALUE); fflush(stdout); fprintf(stderr, "e\\n"); }\n'
    result = run(api, "c", code, compilerOptions=["-O0", "-DVALUE=7"], redirectStderrToStdout=True)
    assert result["verdict"] == "ok" and result["output"] == "7\ne\n" and result["stderr"] == "", result
    refused = api.post("/submit", json={"language": "c", "code": code, "compilerOptions": ["-I/etc"]})
    assert refused.status_code == 400 and "-I/etc" in refused.json()["error"]


def test_signal_of_a_crash(api: httpx.Client) -> None:
    result = run(api, "c", "int main(void) { volatile int *p = 0; return *p; }")
    assert result["verdict"] == "runtime_error" and result["signalName"] == "SIGSEGV", result


def test_judge0_sdk_and_piston_api_on_kubernetes(api: httpx.Client) -> None:
    """Judge0's official SDK, unmodified, pointed at the chart's Service, and Piston's execute: the same
    CodeSubmission path as POST /submit."""
    import judge0  # the dev extra; imported here so that the rest of the module never needs it

    client = judge0.Client(f"{api.base_url}/judge0")
    done = judge0.run(client=client, source_code="print(input()[::-1])", stdin="hello", language=71)
    assert done.status == judge0.Status.ACCEPTED and done.stdout == "olleh\n", done
    judged = judge0.run(client=client, source_code=SQUARE_C, language=50, test_cases=[("3", "9"), ("4", "17")])
    assert [s.status for s in judged] == [judge0.Status.ACCEPTED, judge0.Status.WRONG_ANSWER], judged
    crash = judge0.run(client=client, source_code="int main(void) { return *(volatile int *)0; }", language=50)
    assert crash.status == judge0.Status.RUNTIME_ERROR_SIGSEGV, crash
    r = api.post("/api/v2/execute", json={"language": "python", "version": "*", "args": ["x", "y"],
                                          "files": [{"content": "import sys\nprint(sys.argv[1:])"}]})
    assert r.status_code == 200, r.text
    assert r.json()["run"]["stdout"] == "['x', 'y']\n" and r.json()["run"]["code"] == 0, r.json()


# ---- the warm path's own guarantees (warm pass only) -----------------------------------------------
def _pool_pods(kubectl: Any, language: str, selector: str = IDLE) -> list[dict[str, Any]]:
    pods = kubectl.json("get", "pods", "-n", SANDBOX_NS, "-l", f"monaco.dev/pool={language},{selector}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _ready_idle(kubectl: Any, language: str) -> int:
    return sum(1 for p in _pool_pods(kubectl, language) if p["status"].get("phase") == "Running")


def test_two_programs_in_a_row_never_share_a_pod_or_a_file(api: httpx.Client, kubectl: Any, path: str) -> None:
    if path != "warm":
        pytest.skip("warm pass only")
    code = ("import os, socket\nleft = sorted(os.listdir('/tmp')) + sorted(os.listdir('/monaco/src'))\n"
            "open('/tmp/left-behind', 'w').write('x')\nprint(socket.gethostname(), left)")
    seen = []
    for _ in range(2):
        wait_until_blocking(lambda: _ready_idle(kubectl, "python") > 0, 180, "an idle python pool pod", POLL)
        result = run(api, "python", code)
        assert result["verdict"] == "ok" and ran_warm(kubectl, result["id"]), result
        seen.append(result["output"].split(" ", 1))
    (host1, files1), (host2, files2) = seen
    assert host1 != host2  # one pod per program
    assert "left-behind" not in files1 + files2 and files1 == files2, seen  # the second saw a fresh pod


def test_an_idle_pool_pod_is_blocked_from_the_network(api: httpx.Client, kubectl: Any, path: str) -> None:
    """Before any claim: a process started in an idle pool pod (kubectl exec, as an administrator could)
    reaches neither the API nor Kubernetes. The pod is then discarded: it ran something."""
    if path != "warm":
        pytest.skip("warm pass only")
    wait_until_blocking(lambda: _ready_idle(kubectl, "python") > 0, 180, "an idle python pool pod", POLL)
    pod = _pool_pods(kubectl, "python")[0]
    svc = kubectl.json("get", "service", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=api")["items"][0]
    kube = kubectl.json("get", "service", "kubernetes", "-n", "default")
    targets = [(svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["port"]), (kube["spec"]["clusterIP"], 443)]
    probe = ("import socket\n"
             f"for host, port in {targets!r}:\n"
             "    s = socket.socket(); s.settimeout(3)\n"
             "    try:\n        s.connect((host, port)); print(host, 'OPEN')\n"
             "    except OSError as e:\n        print(host, 'refused', type(e).__name__)\n")
    try:
        out = kubectl("exec", "-n", SANDBOX_NS, pod["metadata"]["name"], "-c", "run", "--", "python3", "-c", probe)
    finally:
        job = pod["metadata"]["labels"]["batch.kubernetes.io/job-name"]
        kubectl.run("delete", "job", "-n", SANDBOX_NS, job, "--wait=false", check=False)
    lines = out.splitlines()
    assert len(lines) == 2 and all("refused" in line for line in lines), lines


def test_the_pool_refills_after_a_burst(api: httpx.Client, kubectl: Any, path: str) -> None:
    if path != "warm":
        pytest.skip("warm pass only")
    peak = 0
    stop = threading.Event()

    def watch() -> None:  # unclaimed python pool pods, starting or ready
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, len(_pool_pods(kubectl, "python")))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        ids = [api.post("/submit", json={"language": "python", "code": f"print({i})"}).json()["id"]
               for i in range(12)]
        results = [finished(api, sid, 600) for sid in ids]
    finally:
        stop.set()
        watcher.join(10)
    assert [r["output"] for r in results] == [f"{i}\n" for i in range(12)]
    assert sum(ran_warm(kubectl, sid) for sid in ids) >= 2, "no claim at all during the burst"
    assert peak == WARM_POOL["python"] + BURST["python"], f"the pool peaked at {peak} pods during the burst"
    # back to its size once the queue is gone: one idle, ready pod, and no claimed pod or Job left over
    wait_until_blocking(lambda: _ready_idle(kubectl, "python") == WARM_POOL["python"]
                        and not _pool_pods(kubectl, "python", "monaco.dev/pool-state=claimed"), 180,
                        "the python pool to refill", POLL)
    # and the operator's /metrics says so
    op = kubectl.json("get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator")["items"][0]
    text = httpx.get(f"http://{op['status']['podIP']}:8082/metrics", timeout=10).text
    assert 'monaco_pool_size{language="python"} 1.0' in text and "monaco_pool_claims_total" in text, text
    assert 'monaco_operator_admitted_total{path="warm"}' in text, text
    last_pass = next(float(line.split()[1]) for line in text.splitlines()
                     if line.startswith("monaco_operator_last_pass_timestamp_seconds "))
    assert abs(time.time() - last_pass) < 30, f"the admission loop last passed {time.time() - last_pass:.0f} s ago"


def _scale_operator(kubectl: Any, replicas: int) -> None:
    deploy = kubectl.json("get", "deploy", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator")["items"][0]
    kubectl("scale", "deploy", deploy["metadata"]["name"], "-n", NAMESPACE, f"--replicas={replicas}")
    if replicas:
        wait_until_blocking(lambda: _operator_running(kubectl), 180, "the operator to run", POLL)
    else:
        wait_until_blocking(lambda: not kubectl.json("get", "pods", "-n", NAMESPACE, "-l",
                                                     "app.kubernetes.io/component=operator")["items"],
                            180, "no operator pod", POLL)


@pytest.mark.parametrize("delivered", [True, False], ids=["after-delivery", "before-delivery"])
def test_an_operator_killed_at_the_claim_step_loses_nothing_and_runs_nothing_twice(
        api: httpx.Client, kubectl: Any, path: str, delivered: bool) -> None:
    """The operator dies right after a claim's compare-and-set on the pod's labels: the pod is claimed for the
    submission, and (after-delivery) its runner got the job and ran it, or (before-delivery) it got nothing.
    The next operator must resume the first where it ran, never running it again, and send the second down
    the cold path after deleting the pod it had claimed."""
    if path != "warm":
        pytest.skip("warm pass only")
    wait_until_blocking(lambda: _ready_idle(kubectl, "python") >= 1, 180, "an idle python pool pod", POLL)
    code = "print('once')"
    _scale_operator(kubectl, 0)
    try:
        r = api.post("/submit", json={"language": "python", "code": code})
        assert r.status_code == 202, r.text
        sid = r.json()["id"]
        pod = next(p for p in _pool_pods(kubectl, "python") if p["status"].get("phase") == "Running")
        name, job = pod["metadata"]["name"], pod["metadata"]["labels"]["batch.kubernetes.io/job-name"]
        # the claim's first write, as the operator makes it: the pod's labels, tested against what it saw
        kubectl("label", "pod", name, "-n", SANDBOX_NS, "--overwrite", "--resource-version",
                pod["metadata"]["resourceVersion"], "monaco.dev/pool-state=claimed", f"monaco.dev/submission={sid}")
        if delivered:  # and its delivery through pods/attach: the runner acknowledges, then runs it
            frame = f"MONACO-JOB v1 {len(code.encode())} 0\n{code}"
            out = kubectl("attach", "-i", "-c", "run", name, "-n", SANDBOX_NS, input=frame, timeout=120)
            assert "#MONACO-JOB v1 ACCEPTED" in out, out
    finally:
        _scale_operator(kubectl, 1)
    result = finished(api, sid, 300)
    assert result["verdict"] == "ok" and result["output"] == "once\n", result
    status = kubectl.json("get", "codesubmission", sid, "-n", SANDBOX_NS)["status"]
    cold = kubectl.run("get", "job", f"csub-{sid}", "-n", SANDBOX_NS, check=False)
    if delivered:  # it ran where it was delivered, and nowhere else
        assert status.get("warm") is True and status["jobName"] == job, status
        assert cold.returncode != 0 and "NotFound" in cold.stderr, cold.stdout
    else:  # the claimed pod never ran it and is gone; the cold path did
        assert not status.get("warm") and status["jobName"] == f"csub-{sid}", status
        wait_until_blocking(lambda: not [p for p in kubectl.json("get", "pods", "-n", SANDBOX_NS)["items"]
                                         if p["metadata"]["name"] == name
                                         and not p["metadata"].get("deletionTimestamp")],
                            120, f"the claimed pool pod {name} to go", POLL)


class _Receiver(http.server.BaseHTTPRequestHandler):
    """A callback receiver in the cluster's network namespace: keeps what each POST or PUT brought."""

    got: list[tuple[dict[str, str], bytes]] = []
    methods: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.got.append((dict(self.headers.items()), body))
        self.methods.append(self.command)
        self.send_response(204)
        self.end_headers()

    do_PUT = do_POST

    def log_message(self, *args: Any) -> None:
        pass


def test_the_operator_delivers_a_callback_from_the_cluster(api: httpx.Client, kubectl: Any, path: str) -> None:
    """callbacks.allow names the node's address; the operator (never a sandbox) POSTs the result there
    through its NetworkPolicy's callback egress, and the result shows the delivery."""
    if path != "cold":
        pytest.skip("the operator delivers the same way on both paths: once is enough")
    node = kubectl.json("get", "nodes")["items"][0]
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), _Receiver)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        refused = api.post("/submit", json={"code": "print(1)", "callbackUrl": f"http://{address}:{port}/hook"})
        assert refused.status_code == 400 and "callback" in refused.json()["error"], refused.text  # off by default
        helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "--set", f"callbacks.allow={address}",
             "--set-json", f"callbacks.ports=[{port}]", "--wait", "--timeout", "300s")
        wait_until_blocking(lambda: _ready(api), 120, "the API after the upgrade", POLL)
        url = f"http://{address}:{port}/hook?t=1"
        response = api.post("/submit", json={"code": "print('called back')", "callbackUrl": url})
        assert response.status_code == 202, response.text
        sid = response.json()["id"]
        wait_until_blocking(lambda: bool(_Receiver.got), 180, "the callback to arrive", POLL)
        headers, body = _Receiver.got[0]
        sent = json.loads(body)
        assert sent["id"] == sid and sent["verdict"] == "ok" and sent["output"] == "called back\n", sent
        assert headers.get("X-Monaco-Submission") == sid, headers
        wait_until_blocking(lambda: (api.get("/result", params={"id": sid}).json().get("callback") or {}).get("state")
                            == "delivered", 60, "the result to show the callback delivered", POLL)
        assert len(_Receiver.got) == 1, "delivered more than once"
        # the Judge0 API's callback_url: the operator PUTs Judge0's body (spec.callbackFormat: judge0)
        judge0_body = {"source_code": "print('judged')", "language_id": 71, "callback_url": f"http://{address}:{port}/j0"}
        created = api.post("/judge0/submissions", json=judge0_body)
        assert created.status_code == 201, created.text
        token = created.json()["token"]
        wait_until_blocking(lambda: len(_Receiver.got) >= 2, 180, "Judge0's callback to arrive", POLL)
        assert _Receiver.methods == ["POST", "PUT"], _Receiver.methods
        judged = json.loads(_Receiver.got[1][1])
        assert judged["token"] == token and judged["status"] == {"id": 3, "description": "Accepted"}, judged
        assert base64.b64decode(judged["stdout"]) == b"judged\n", judged
    finally:
        server.shutdown()
        server.server_close()


def test_rendered_chart_is_accepted_by_the_api_server(kubectl: Any, release: None) -> None:
    # A release of its own, so that every object is a create (not a patch of the installed release's);
    # the namespaces its objects live in are made for real (a dry-run Namespace is not there for them).
    for i, values in enumerate((VALUES, str(REPO / "helm" / "values-all-on.yaml"))):
        ns = f"monaco-dryrun-{i}"  # one each: the first is still being deleted while the second runs
        rendered = helm("template", f"dryrun{i}", str(CHART), "--namespace", ns, "-f", values)
        docs = [d for d in yaml.safe_load_all(rendered) if d]
        assert len(docs) > 10
        wanted = {d["metadata"].get("namespace") for d in docs} | {ns}
        made = [
            ns for ns in sorted(n for n in wanted if n) if kubectl.run("get", "namespace", ns, check=False).returncode
        ]
        for ns in made:
            kubectl("create", "namespace", ns)
        try:
            out = kubectl.run("apply", "--dry-run=server", "-f", "-", input=rendered).stdout
            assert out.count("(server dry run)") == len(docs), out
        finally:
            for n in made:
                kubectl.run("delete", "namespace", n, "--wait=false", check=False)


# ---- a stricter seccomp profile, put on the node by the chart --------------------------------------
IO_URING = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
fd = libc.syscall(425, 1, params)  # io_uring_setup: 425 on x86_64 and aarch64 alike
print("io_uring_setup:", "open" if fd >= 0 else errno.errorcode.get(ctypes.get_errno(), "?"))
"""
LOCALHOST_PROFILE = "monaco/sandbox-v1.json"


def _kubelet_root_dir(kubectl: Any) -> str:
    """The local cluster's kubelet runs with --root-dir=$STATE/kubelet/root (e2e/cluster/up.sh), and the
    marker names $STATE; elsewhere (kind) the kubelet's default."""
    state = kubectl.marker.get("state")
    return f"{state}/kubelet/root" if state else "/var/lib/kubelet"


def _sandbox_seccomp_profiles(kubectl: Any) -> list[dict[str, str]]:
    pods = kubectl.json("get", "pods", "-n", SANDBOX_NS, "-l", "app.kubernetes.io/component=sandbox")["items"]
    return [p["spec"]["securityContext"].get("seccompProfile", {}) for p in pods]


def test_stricter_seccomp_profile_closes_io_uring(api: httpx.Client, kubectl: Any, path: str) -> None:
    """seccompInstaller copies the profile to the node, sandbox.seccompProfile names it: io_uring is EPERM
    and every language still runs; then back to RuntimeDefault."""
    before = run(api, "python", IO_URING)
    assert before["verdict"] == "ok", before
    upgrade = ["upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "-f", VALUES, "--set", f"maxWorkers={MAX_WORKERS}",
               *PATHS[path]]
    helm(*upgrade, "--set", "seccompInstaller.enabled=true",
         "--set", f"seccompInstaller.kubeletRootDir={_kubelet_root_dir(kubectl)}",
         "--set", f"sandbox.seccompProfile={LOCALHOST_PROFILE}", "--wait", "--timeout", "300s")
    try:  # --wait: the installer's pod is ready once the profile is on the node, the new operator is up
        programs = [("python", IO_URING, "")] + [(lang, HELLO[lang], "world\n") for lang in HELLO]
        if "javascript" in [lang["name"] for lang in api.get("/languages").json()["languages"]]:
            programs.append(("javascript", "console.log('hello ' + require('fs').readFileSync(0, 'utf8').trim())",
                             "world\n"))
        ids = [api.post("/submit", json={"language": lang, "code": code, "input": stdin}).json()["id"]
               for lang, code, stdin in programs]
        wait_until_blocking(lambda: {"type": "Localhost", "localhostProfile": LOCALHOST_PROFILE}
                   in _sandbox_seccomp_profiles(kubectl), 120, "a sandbox pod under the Localhost profile", POLL)
        probe, *hellos = [finished(api, sid) for sid in ids]
        assert probe["verdict"] == "ok", probe
        assert probe["output"] == "io_uring_setup: EPERM\n", f"under RuntimeDefault: {before['output']!r}; now {probe}"
        for (lang, _, _), result in zip(programs[1:], hellos, strict=True):
            assert (result["verdict"], result["output"]) == ("ok", "hello world\n"), (lang, result)
    finally:
        helm(*upgrade, "--wait", "--timeout", "300s")
    op = kubectl.json("get", "deployment", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator")["items"][0]
    env = {e["name"]: e.get("value") for e in op["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MONACO_SANDBOX_SECCOMP_PROFILE"] == "RuntimeDefault"
    installer = "app.kubernetes.io/component=seccomp-installer"
    assert not kubectl.json("get", "daemonsets", "-n", NAMESPACE, "-l", installer)["items"]


# ---- the lifecycle: upgrade with queued work, then uninstall --------------------------------------
def test_upgrade_takes_effect_without_losing_queued_work(api: httpx.Client, kubectl: Any, path: str) -> None:
    ids = [
        api.post("/submit", json={"language": "python", "code": f"import time; time.sleep(1); print({i})"}).json()["id"]
        for i in range(8)
    ]
    helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "-f",
        VALUES,
        "--set",
        "maxWorkers=1",
        *PATHS[path],
        "--wait",
        "--timeout",
        "300s",
    )
    wait_until_blocking(
        lambda: _ready(api) and api.get("/queue-stats").json()["queue_stats"]["max_workers"] == 1,
        120,
        "the API to report maxWorkers=1",
        POLL,
    )
    results = [finished(api, sid, 600) for sid in ids]
    assert [r["output"] for r in results] == [f"{i}\n" for i in range(8)]
    if path == "warm":  # the upgrade above kept the pools; this one grows one, and it grows
        helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "--set", "warmPool.python=2",
             "--wait", "--timeout", "300s")
        wait_until_blocking(lambda: _ready_idle(kubectl, "python") == 2, 180, "two idle python pool pods", POLL)
    more = [
        api.post("/submit", json={"language": "python", "code": "import time; time.sleep(1)"}).json()["id"]
        for _ in range(4)
    ]
    peak = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        peak = max(peak, _sandbox_pods(kubectl))
        if all(api.get("/status", params={"id": s}).json()["status"] in ("completed", "failed") for s in more):
            break
    assert peak <= 1, f"saw {peak} sandbox pods with maxWorkers=1"


def test_uninstall_leaves_only_the_crd(kubectl: Any, release: None) -> None:
    helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "300s")
    left = kubectl.json(
        "get",
        "all,configmaps,roles,rolebindings,serviceaccounts,networkpolicies",
        "-n",
        NAMESPACE,
        "-l",
        f"app.kubernetes.io/instance={RELEASE}",
    )["items"]
    assert left == [], [f"{o['kind']}/{o['metadata']['name']}" for o in left]
    wait_until_blocking(
        lambda: kubectl.run("get", "namespace", SANDBOX_NS, check=False).returncode != 0,
        300,
        "the sandbox namespace to be deleted",
        POLL,
    )
    crd = json.loads(kubectl("get", "crd", "codesubmissions.monaco.dev", "-o", "json"))
    assert crd["spec"]["names"]["shortNames"] == ["csub"]  # kept, as the chart README says
