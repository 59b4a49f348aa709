#!/usr/bin/env python3
"""The settings of one stage of the repository's Dockerfile, so that build.sh builds the same image.

    dockerfile.py DOCKERFILE STAGE --version V     mkoci.py's arguments, one per line
    dockerfile.py DOCKERFILE STAGE --run           the stage's RUN commands, one per line

The Dockerfile is the one definition of the monaco image: build.sh (no Docker there) takes from its
`monaco` stage the ENV, USER, WORKDIR, EXPOSE, LABEL, ENTRYPOINT, CMD and HEALTHCHECK, and runs its RUN
steps in the image's chroot. Only what this parser understands may appear in that stage (exec-form
ENTRYPOINT/CMD/HEALTHCHECK, KEY=VALUE ENV and LABEL, ${ARG} in labels); anything else is an error,
so a new instruction cannot be silently left out of the e2e image. Standard library only.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

_DURATION = re.compile(r"(\d+)(ms|s|m|h)")
_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
# Instructions of the stage that concern only how Docker assembles files, not the image's settings.
_FILES = {"FROM", "ARG", "COPY"}


@dataclass
class Stage:
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    exposed: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    healthcheck: dict[str, object] | None = None
    run: list[str] = field(default_factory=list)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        word, _, rest = whole.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _pairs(args: str) -> dict[str, str]:
    pairs = {}
    for word in shlex.split(args):
        key, eq, value = word.partition("=")
        if not eq:
            raise ValueError(f"only KEY=VALUE pairs are understood, not {word!r}")
        pairs[key] = value
    return pairs


def _exec_form(args: str, what: str) -> list[str]:
    value = json.loads(args)
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ValueError(f"{what} must be in exec form (a JSON list of strings)")
    return value


def _healthcheck(args: str) -> dict[str, object]:
    """HEALTHCHECK [--interval=30s ...] CMD [...], as Docker writes it into the image config."""
    check: dict[str, object] = {}
    while args.startswith("--"):
        option, _, args = args.partition(" ")
        name, _, value = option[2:].partition("=")
        key = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod", "retries": "Retries"}[name]
        if key == "Retries":
            check[key] = int(value)
        else:
            match = _DURATION.fullmatch(value)
            if not match:
                raise ValueError(f"HEALTHCHECK --{name}={value}: a duration such as 30s is expected")
            check[key] = int(match[1]) * _NS[match[2]]
        args = args.lstrip()
    word, _, rest = args.partition(" ")
    if word.upper() != "CMD":
        raise ValueError("HEALTHCHECK must be `CMD [...]` in exec form")
    check["Test"] = ["CMD", *_exec_form(rest, "HEALTHCHECK CMD")]
    return check


def parse(path: str | Path, target: str, args: dict[str, str] | None = None) -> Stage:
    """The settings of stage `target` (and of the stages it is built FROM, in this file)."""
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    name = ""
    values = dict(args or {})
    for word, rest in _instructions(Path(path).read_text()):
        if word == "FROM":
            parts = rest.split()
            base = stages.get(parts[0])
            stage = copy.deepcopy(base) if base else Stage()
            stage.run = []  # RUN steps of a parent stage are the parent's files, not this stage's
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            if name:
                stages[name] = stage
            continue
        if stage is None:
            if word != "ARG":
                raise ValueError(f"{word} before the first FROM")
            continue
        if word == "ENV":
            stage.env.update(_pairs(rest))
        elif word == "LABEL":
            for key, value in _pairs(rest).items():
                stage.labels[key] = re.sub(r"\$\{(\w+)\}", lambda m: values.get(m[1], ""), value)
        elif word == "USER":
            stage.user = rest
        elif word == "WORKDIR":
            stage.workdir = rest
        elif word == "EXPOSE":
            stage.exposed += [p if "/" in p else f"{p}/tcp" for p in rest.split()]
        elif word == "ENTRYPOINT":
            stage.entrypoint = _exec_form(rest, "ENTRYPOINT")
        elif word == "CMD":
            stage.cmd = _exec_form(rest, "CMD")
        elif word == "HEALTHCHECK":
            stage.healthcheck = _healthcheck(rest)
        elif word == "RUN":
            stage.run.append(rest)
        elif word not in _FILES:
            raise ValueError(f"{word} in stage {name!r}: e2e/images/dockerfile.py does not know it")
    if target not in stages:
        raise ValueError(f"{path}: no stage named {target!r}")
    return stages[target]


def mkoci_args(stage: Stage) -> list[str]:
    """The stage's settings as mkoci.py's arguments."""
    out = [f"--env={k}={v}" for k, v in stage.env.items()]
    out += [f"--label={k}={v}" for k, v in stage.labels.items()]
    out += [f"--expose={p}" for p in stage.exposed]
    if stage.user:
        out.append(f"--user={stage.user}")
    if stage.workdir:
        out.append(f"--workdir={stage.workdir}")
    if stage.entrypoint is not None:
        out.append("--entrypoint=" + json.dumps(stage.entrypoint))
    if stage.cmd is not None:
        out.append("--cmd=" + json.dumps(stage.cmd))
    if stage.healthcheck is not None:
        out.append("--healthcheck=" + json.dumps(stage.healthcheck, sort_keys=True))
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path, target, *rest = argv
    version = rest[rest.index("--version") + 1] if "--version" in rest else "0.0.0"
    stage = parse(path, target, {"VERSION": version})
    lines = stage.run if "--run" in rest else mkoci_args(stage)
    for line in lines:
        if "\n" in line:
            raise ValueError(f"a newline in {line!r}")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
