"""How one phase of a submission is run, for both back ends: its effective limits and the runner's environment.

The local sandbox and the Kubernetes pod differ only in where they put a run's files (`Layout`) and in
what they enforce themselves from outside the runner (`Enforcement`); everything else is decided here
once, so the same program gets the same limits, and so the same verdict, on both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monaco.core.languages import Language
from monaco.core.models import Limits, RunSpec

COMPILE, RUN = "compile", "run"
# Below this the runner's own start-up is a noticeable part of the limit; and 0 would disable it.
MIN_TIMEOUT_SECONDS = 0.1
MIN_MEMORY_MB = 16
# What the runner itself needs beside the program, inside the same memory limit (cgroup or container).
RUNNER_MEMORY_MB = 8


class LimitError(ValueError):
    """A requested limit this language does not allow; the message names the field and the bound."""


def resolve_limits(language: Language, timeout_seconds: float | None, memory_mb: int | None) -> Limits:
    """Requested limits -> the limits a submission runs with: the language's defaults fill what is left
    out, and anything outside [minimum, the language's maximum] is refused, never silently capped."""
    lim = language.limits
    timeout = lim.timeout_seconds if timeout_seconds is None else timeout_seconds
    memory = lim.memory_mb if memory_mb is None else memory_mb
    if not math.isfinite(timeout) or timeout < MIN_TIMEOUT_SECONDS:
        raise LimitError(f"'timeoutSeconds' is {timeout:g}; the minimum is {MIN_TIMEOUT_SECONDS:g}")
    if timeout > lim.timeout_ceiling:
        raise LimitError(
            f"'timeoutSeconds' is {timeout:g}; the maximum for {language.name} is {lim.timeout_ceiling:g}"
        )
    if memory < MIN_MEMORY_MB:
        raise LimitError(f"'memoryMb' is {memory}; the minimum is {MIN_MEMORY_MB}")
    if memory > lim.memory_ceiling:
        raise LimitError(f"'memoryMb' is {memory}; the maximum for {language.name} is {lim.memory_ceiling}")
    return Limits(timeout_seconds=timeout, memory_mb=memory)


@dataclass(frozen=True)
class Layout:
    """Where a back end puts a run's files, as the runner sees them inside the sandbox."""

    src: str  # read-only: the source file and `stdin`
    build: str  # compile artifacts: writable in compile, read-only in run
    work: str  # the program's scratch working dir
    tmp: str  # HOME and TMPDIR
    scratch: tuple[str, ...]  # emptied by the runner when a phase ends


@dataclass(frozen=True)
class Enforcement:
    """What a back end enforces from outside the runner."""

    memory_cgroup: bool  # a memory cgroup holds the run to its limit (and counts OOM kills)
    own_uid: bool  # the sandbox's uid is its own, so RLIMIT_NPROC bounds this run alone
    runner_reads_cgroup: bool  # the runner can read its memory cgroup (a container's /sys/fs/cgroup)


@dataclass(frozen=True)
class PhaseLimits:
    timeout_seconds: float
    memory_mb: int
    address_space_mb: int  # 0: RLIMIT_AS not set
    processes: int
    open_files: int
    file_size_mb: int


def phase_limits(
    language: Language, phase: str, limits: Limits, enforcement: Enforcement, scratch_mb: int
) -> PhaseLimits:
    """The limits of one phase: compile has the language's own; run has the submission's."""
    if phase == COMPILE:
        cl = language.compile_limits
        timeout, memory, asked_as = cl.timeout_seconds, cl.memory_mb, cl.address_space_mb
        procs, nofile, fsize = cl.processes, cl.open_files, cl.output_file_mb
    else:
        rl = language.limits
        timeout, memory, asked_as = limits.timeout_seconds, limits.memory_mb, rl.address_space_mb
        procs, nofile, fsize = rl.processes, rl.open_files, scratch_mb
        if asked_as is not None:  # the language's address space at its default memory, and as much more
            asked_as += max(0, memory - rl.memory_mb)
    # With a memory cgroup the kernel enforces memory; RLIMIT_AS stays only where the language asks for
    # more address space than memory (a JVM reserves far more than it uses), or is the limit where no
    # cgroup is.
    if enforcement.memory_cgroup:
        address_space = asked_as if asked_as is not None and asked_as > memory else 0
    else:
        address_space = asked_as or memory
    return PhaseLimits(timeout, memory, address_space, procs, nofile, fsize)


def phase_env(
    language: Language,
    phase: str,
    limits: Limits,
    *,
    output_limit: int,
    layout: Layout,
    enforcement: Enforcement,
    scratch_mb: int,
    spec: RunSpec | None = None,
) -> dict[str, str]:
    """The runner's environment for one phase (see core/monaco-init.c for what each variable means).

    The program inherits it; the back end adds only what is its own (PATH, where a container has one).
    A submission's arguments (run) or compiler options (compile) travel as MONACO_ARGC and MONACO_ARG_<i>,
    which the runner hands to `sh -c COMMAND` as positional parameters: no shell ever reads them as code.
    """
    pl = phase_limits(language, phase, limits, enforcement, scratch_mb)
    spec = spec or RunSpec()
    params = spec.compiler_options if phase == COMPILE else spec.args
    command = (language.compile or "") if phase == COMPILE else language.run
    if params and '"$@"' not in command:
        command += ' "$@"'
    extra: dict[str, str] = {}
    if params:
        extra["MONACO_ARGC"] = str(len(params))
        extra.update({f"MONACO_ARG_{i}": p for i, p in enumerate(params)})
    if spec.files:
        extra["MONACO_FILES"] = "/".join(f.name for f in spec.files)
    if phase == RUN and spec.redirect_stderr_to_stdout:
        extra["MONACO_MERGE_STDERR"] = "1"
    if phase == RUN and spec.test_cases:
        extra["MONACO_CASES"] = str(len(spec.test_cases))
    return {
        "HOME": layout.tmp,
        "TMPDIR": layout.tmp,
        "LANG": "C.UTF-8",
        **language.env,
        "MONACO_SRC_DIR": layout.src,
        "MONACO_SOURCE_FILE": language.source_file,
        "MONACO_BUILD_DIR": layout.build if language.compiles else layout.work,
        "MONACO_WORK_DIR": layout.work,
        "MONACO_COMMAND": command,
        "MONACO_TIMEOUT_MS": str(max(1, math.ceil(pl.timeout_seconds * 1000))),
        "MONACO_MEMORY_MB": str(pl.memory_mb),
        "MONACO_OUTPUT_LIMIT": str(output_limit),
        "MONACO_AS_KB": str(pl.address_space_mb * 1024),
        "MONACO_NPROC": str(pl.processes if enforcement.own_uid else 0),
        "MONACO_NOFILE": str(pl.open_files),
        "MONACO_FSIZE_KB": str(pl.file_size_mb * 1024),
        "MONACO_CGROUP_MEMORY": "1" if enforcement.runner_reads_cgroup else "0",
        "MONACO_NEEDS_COMPILE": "1" if phase == RUN and language.compiles else "0",
        "MONACO_SCRATCH_DIRS": ":".join(layout.scratch),
        **extra,
    }


def case_stdin(index: int) -> str:
    """The name of test case `index`'s stdin file in the source dir (beside `stdin`)."""
    return f"stdin-{index}"


def source_files(language: Language, code: str, stdin: str, spec: RunSpec) -> dict[str, str]:
    """Every file of a submission's source dir but the runner: the same names on both back ends."""
    files = {language.source_file: code, "stdin": stdin}
    files.update({f.name: f.content for f in spec.files})
    files.update({case_stdin(i): case.input for i, case in enumerate(spec.test_cases)})
    return files
