"""The container image: one definition (the Dockerfile) for Docker and the e2e harness, and its defaults work.

e2e/images/build.sh has no Docker: it reads the Dockerfile's `monaco` stage with e2e/images/dockerfile.py
and packs the config with mkoci.py. These tests hold that path to the Dockerfile, and run `monaco serve`
the way the image starts it: its environment, uid 65532, no capability, a /proc masked as container
runtimes mask it, in a network namespace of its own; a Python program must come back `ok`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import uuid
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "e2e" / "images"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"monaco_e2e_{name}", IMAGES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


dockerfile = _load("dockerfile")
mkoci = _load("mkoci")
STAGE = dockerfile.parse(REPO / "Dockerfile", "monaco", {"VERSION": VERSION})


def test_the_image_serves_on_all_addresses_with_a_data_dir_outside_tmp() -> None:
    env = STAGE.env
    assert env["MONACO_HOST"] == "0.0.0.0"
    assert not Path(env["MONACO_DATA_DIR"]).is_relative_to("/tmp")
    assert env["MONACO_SANDBOX"] == "unshare"  # the user-namespace sandbox: no root, no capability
    assert STAGE.user == "65532:65532" and STAGE.workdir == env["MONACO_DATA_DIR"]
    assert STAGE.entrypoint == ["python3", "-m", "monaco.cli"] and STAGE.cmd == ["serve"]
    assert STAGE.exposed == ["8080/tcp", "8081/tcp"]
    run = " ".join(STAGE.run)
    assert f"install -d -o 65532 -g 65532 -m 0700 {env['MONACO_DATA_DIR']}" in run


def test_the_image_is_labelled_and_checks_its_health() -> None:
    assert STAGE.labels == {
        "org.opencontainers.image.title": "monaco",
        "org.opencontainers.image.description": STAGE.labels["org.opencontainers.image.description"],
        "org.opencontainers.image.source": "https://github.com/monaco-dev/monaco",
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.version": VERSION,
    }
    check = STAGE.healthcheck
    assert check is not None and check["Test"][:3] == ["CMD", "python3", "-c"]
    assert "/readyz" in check["Test"][3] and check["Interval"] == 30 * 10**9 and check["Retries"] == 3


def test_the_all_in_one_stage_adds_only_the_toolchains() -> None:
    all_in_one = dockerfile.parse(REPO / "Dockerfile", "all", {"VERSION": VERSION})
    assert (all_in_one.env, all_in_one.labels, all_in_one.user) == (STAGE.env, STAGE.labels, STAGE.user)
    assert (all_in_one.entrypoint, all_in_one.cmd, all_in_one.healthcheck) == (STAGE.entrypoint, STAGE.cmd,
                                                                               STAGE.healthcheck)
    (install,) = all_in_one.run
    assert all(pkg in install.split() for pkg in ("gcc", "g++", "openjdk-17-jdk-headless"))


def test_an_instruction_the_harness_does_not_know_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM python:3.11-slim AS monaco\nSTOPSIGNAL SIGINT\n")
    refusal = "STOPSIGNAL in stage 'monaco': e2e/images/dockerfile.py does not know it"
    with pytest.raises(ValueError, match=re.escape(refusal)):
        dockerfile.parse(path, "monaco")


def test_the_harness_packs_the_dockerfiles_settings(tmp_path: Path) -> None:
    """dockerfile.py's arguments through mkoci.py give the config Docker builds from the Dockerfile."""
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("x\n")
    out = tmp_path / "image.tar"
    assert mkoci.main([str(root), str(out), "--name", "monaco.local/monaco:dev", *dockerfile.mkoci_args(STAGE)]) == 0
    (image,) = mkoci.verify(str(out))["images"]
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("blobs/" + image["manifest"].replace(":", "/")))  # type: ignore[arg-type]
        config = json.load(tar.extractfile("blobs/" + manifest["config"]["digest"].replace(":", "/")))  # type: ignore[arg-type]
    found = config["config"]
    assert found["Entrypoint"] == STAGE.entrypoint and found["Cmd"] == STAGE.cmd
    assert found["User"] == STAGE.user and found["WorkingDir"] == STAGE.workdir
    assert found["Labels"] == STAGE.labels
    assert found["ExposedPorts"] == {"8080/tcp": {}, "8081/tcp": {}}
    assert found["Healthcheck"] == STAGE.healthcheck
    assert dict(e.split("=", 1) for e in found["Env"]).items() >= STAGE.env.items()


def test_the_harness_builds_the_files_the_dockerfile_copies() -> None:
    """The build stage's COPY sources are what build.sh puts in the wheel it builds, and build.sh takes
    the `monaco` stage's settings and RUN steps from the Dockerfile."""
    text = (REPO / "Dockerfile").read_text()
    sources = re.findall(r"^COPY (?!--from)(.*) \S+$", text, re.M)
    copied = {word.rstrip("*") for line in sources for word in line.split()}
    build = (IMAGES / "build.sh").read_text()
    tarred = re.search(r"pyproject.toml core api operator cli \$\(ls setup.py README\* LICENSE\*", build)
    assert tarred is not None
    assert copied == {"pyproject.toml", "setup.py", "README.md", "core", "api", "operator", "cli"}
    assert '"$HERE/dockerfile.py" "$REPO/Dockerfile" monaco --run' in build
    assert '"$HERE/dockerfile.py" "$REPO/Dockerfile" monaco --version "$version"' in build


# ---- `monaco serve` as the image starts it ------------------------------------------------------------

CLIENT = r"""
import json, sys, time, urllib.request
def call(path, body=None):
    req = urllib.request.Request("http://127.0.0.2:8080" + path, data=body and json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)
deadline = time.monotonic() + 60
while True:
    try:
        call("/readyz")
        break
    except OSError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"the server did not become ready on 127.0.0.2:8080: {exc}")
        time.sleep(0.2)
languages = call("/languages")
result = call("/submit?wait=30", {"language": "python", "code": sys.argv[1], "input": "2 40"})
print(json.dumps({"languages": languages, "result": result}))
"""

PROGRAM = """import os
print(sum(map(int, input().split())))
print("proc", [p for p in os.listdir("/proc") if p.isdigit()])
try:
    print("data", os.listdir("DATA"))
except OSError as exc:
    print("data", type(exc).__name__)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and the switch to uid 65532 need root")
def test_serve_with_the_image_defaults_runs_a_program() -> None:
    if shutil.which("ip") is None:
        pytest.skip("needs `ip` (iproute2) to bring up the loopback of a network namespace")
    data = Path("/var/lib/monaco-test") / uuid.uuid4().hex
    data.mkdir(parents=True)
    os.chown(data, 65532, 65532)
    data.chmod(0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONACO_", "PORT"))}
    env.update(STAGE.env)
    env.update(MONACO_DATA_DIR=str(data), HOME=str(data), PYTHONSAFEPATH="1")
    program = PROGRAM.replace("DATA", str(data))
    # A container runtime masks parts of /proc (runc: a read-only tmpfs over /proc/acpi, /proc/scsi ...): the
    # kernel then refuses a new proc in a user namespace. The server as uid 65532 with no capability; the
    # client as root beside it.
    script = (
        'set -e; ip link set lo up; d=/proc/acpi; [ -d $d ] || d=/proc/sys; mount -t tmpfs -o ro tmpfs $d; '
        'setpriv --reuid=65532 --regid=65532 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs '
        '"$0" -m monaco.cli serve >"$1/serve.log" 2>&1 & server=$!; '
        '"$0" -c "$2" "$3"; status=$?; kill $server; wait $server || true; exit $status'
    )
    try:
        done = subprocess.run(
            ["unshare", "--net", "--mount", "--propagation", "private", "/bin/sh", "-c", script,
             sys.executable, str(data), CLIENT, program],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
        )
        log = (data / "serve.log").read_text() if (data / "serve.log").exists() else ""
        assert done.returncode == 0, f"{done.stdout}{done.stderr}\nserver log:\n{log}"
        answer = json.loads(done.stdout.splitlines()[-1])
    finally:
        shutil.rmtree(data, ignore_errors=True)
    result = answer["result"]
    assert result["verdict"] == "ok", f"{result}\nserver log:\n{log}"
    lines = result["output"].splitlines()
    assert lines[0] == "42"
    # No process outside the run shows: its own PID namespace's /proc, or an empty one where the kernel
    # refuses a new proc in a user namespace (it does when a runtime's masks lock parts of the outer one).
    pids = [int(p) for p in re.findall(r"\d+", lines[1])]
    if "programs get an empty /proc" in log:
        assert pids == []
    else:
        assert pids[0] == 1 and len(pids) <= 4, lines[1]
    assert lines[2] in ("data []", "data FileNotFoundError")  # the database and the runs' dirs are covered
    assert "unshare-user" in log
    names = [lang["name"] for lang in answer["languages"]["languages"]]
    assert "python" in names
