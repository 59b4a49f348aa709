"""One phase environment for both back ends (core/phase.py); each back end adds only what is its own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from monaco.core.languages import Registry
from monaco.core.models import Limits
from monaco.core.phase import COMPILE, RUN, Enforcement, Layout, LimitError, phase_env, resolve_limits
from monaco.core.settings import Settings
from monaco.operator import builders
from monaco.operator.submission import from_body
from tests.operator.conftest import submission

REGISTRY = Registry.load()
LAYOUT = Layout(src="/s", build="/b", work="/w", tmp="/t", scratch=("/t", "/x"))


def env(language: str, phase: str, limits: Limits | None = None, **enforcement: bool) -> dict[str, str]:
    lang = REGISTRY[language]
    flags = {"memory_cgroup": True, "own_uid": True, "runner_reads_cgroup": False, **enforcement}
    return phase_env(lang, phase, limits or resolve_limits(lang, None, None), output_limit=1000, layout=LAYOUT,
                     enforcement=Enforcement(**flags), scratch_mb=64)


def test_the_run_phase_of_an_interpreted_language() -> None:
    e = env("python", RUN, Limits(timeout_seconds=2.5, memory_mb=64))
    assert e["MONACO_COMMAND"] == REGISTRY["python"].run
    assert (e["MONACO_TIMEOUT_MS"], e["MONACO_MEMORY_MB"], e["MONACO_OUTPUT_LIMIT"]) == ("2500", "64", "1000")
    assert e["MONACO_BUILD_DIR"] == e["MONACO_WORK_DIR"] == "/w"  # nothing compiled: no build dir
    assert (e["MONACO_NEEDS_COMPILE"], e["MONACO_SCRATCH_DIRS"], e["LANG"]) == ("0", "/t:/x", "C.UTF-8")
    assert e["MONACO_FSIZE_KB"] == str(64 * 1024)  # the scratch space bounds file writes
    assert e["MONACO_AS_KB"] == "0"  # the memory cgroup enforces memory
    assert e["MONACO_NPROC"] == str(REGISTRY["python"].limits.processes)


def test_compile_and_run_of_a_compiled_language_keep_their_own_limits() -> None:
    java = REGISTRY["java"]
    c, r = env("java", COMPILE), env("java", RUN, Limits(timeout_seconds=3, memory_mb=500))
    assert c["MONACO_COMMAND"] == java.compile and r["MONACO_COMMAND"] == java.run
    assert c["MONACO_TIMEOUT_MS"] == str(int(java.compile_limits.timeout_seconds * 1000))
    assert r["MONACO_TIMEOUT_MS"] == "3000"
    assert c["MONACO_MEMORY_MB"] == str(java.compile_limits.memory_mb) and r["MONACO_MEMORY_MB"] == "500"
    assert c["MONACO_BUILD_DIR"] == r["MONACO_BUILD_DIR"] == "/b"
    assert (c["MONACO_NEEDS_COMPILE"], r["MONACO_NEEDS_COMPILE"]) == ("0", "1")
    # A JVM reserves more address space than it uses: the language's RLIMIT_AS, grown with the memory asked
    assert java.limits.address_space_mb is not None
    assert r["MONACO_AS_KB"] == str((java.limits.address_space_mb + 500 - java.limits.memory_mb) * 1024)


def test_what_the_back_end_enforces_itself_decides_the_rlimits() -> None:
    without_cgroup = env("python", RUN, memory_cgroup=False)
    assert without_cgroup["MONACO_AS_KB"] == str(REGISTRY["python"].limits.memory_mb * 1024)
    shared_uid = env("python", RUN, own_uid=False)  # RLIMIT_NPROC is per uid, node-wide
    assert shared_uid["MONACO_NPROC"] == "0"
    assert env("python", RUN, runner_reads_cgroup=True)["MONACO_CGROUP_MEMORY"] == "1"


def test_limits_are_resolved_once_and_refused_outside_the_languages_bounds() -> None:
    python = REGISTRY["python"]
    assert resolve_limits(python, None, None) == Limits(timeout_seconds=python.limits.timeout_seconds,
                                                         memory_mb=python.limits.memory_mb)
    for timeout, memory, message in ((0.05, None, "minimum is 0.1"), (float("nan"), None, "minimum"),
                                     (1e9, None, "maximum for python"), (None, 8, "minimum is 16"),
                                     (None, 10**6, "maximum for python")):
        with pytest.raises(LimitError, match=message):
            resolve_limits(python, timeout, memory)


def test_each_back_end_adds_only_its_own(tmp_path: Path) -> None:
    """The local sandbox adds PATH (the sandbox has no image to give one); a pod adds nothing: its image
    has its own PATH. Everything else comes from phase_env."""
    settings = Settings(data_dir=tmp_path)
    sub = from_body(submission("s", language="c"), settings.registry)
    pod = builders.build_job(sub, settings)["spec"]["template"]["spec"]
    for container in [*pod["initContainers"], *pod["containers"]]:
        pod_env = {e["name"]: e["value"] for e in container["env"]}
        expected = phase_env(sub.language, container["name"], sub.limits, output_limit=settings.output_limit_bytes,
                             layout=builders.LAYOUT, enforcement=builders.ENFORCEMENT,
                             scratch_mb=settings.sandbox_work_mb)
        assert pod_env == expected

    from monaco.api.local.sandbox import Sandbox

    seen: dict[str, Any] = {}

    async def spawn(argv: list[str], env: dict[str, str], *_: Any) -> tuple[bytes | None, str]:
        assert argv[:2] == ["env", "-i"]  # the runner starts with exactly this environment
        seen.update(arg.partition("=")[::2] for arg in argv[2:] if "=" in arg)
        return None, "not run"

    sandbox = Sandbox(Settings(data_dir=tmp_path, sandbox="none", allow_unisolated=True))
    sandbox.mode = "none"
    sandbox._spawn = spawn  # type: ignore[method-assign,assignment]
    base = tmp_path / "run"
    (base / "src").mkdir(parents=True)
    lang = REGISTRY["c"]
    asyncio.run(sandbox.run_phase(base, lang, RUN, sub.limits, slot=0))
    layout = Layout(src=str(base / "src"), build=str(base / "build"), work=str(base / "work"),
                    tmp=str(base / "tmp"), scratch=(str(base / "tmp"),))
    core = phase_env(lang, RUN, sub.limits, output_limit=settings.output_limit_bytes, layout=layout,
                     enforcement=Enforcement(memory_cgroup=False, own_uid=False, runner_reads_cgroup=False),
                     scratch_mb=settings.sandbox_tmp_mb)
    assert set(seen) - set(core) == {"PATH"}
    assert {k: seen[k] for k in core} == core
