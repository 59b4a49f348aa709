"""Monaco's native binaries: compiled from C when Monaco is installed, found at run time.

- `nsrun` from `api/local/nsrun.c`, installed as `monaco/api/local/bin/nsrun`: the local sandbox's
  launcher, built with `cc -O2` (it runs on the host).
- `monaco-init` from `core/monaco-init.c`, installed as `monaco/core/bin/monaco-init`: the runner, PID 1
  inside any sandbox or image, so static, `-Os` and stripped: `musl-gcc` when musl-tools is installed,
  else `gcc -static` (larger, same behaviour).

`setup.py` calls `build_all` from its build step (a wheel carries the binaries), and `make setup` calls
it for the checkout (`python -P -m monaco.core.native`), where an editable install finds them. This
module imports only the standard library: setup.py loads it by path, before Monaco is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

HOW_TO_BUILD = (
    "build it with `make setup` in a checkout (or `python -P -m monaco.core.native`), or reinstall Monaco "
    "(`pip install .`) on a machine with gcc and libc6-dev, plus musl-tools for a small static monaco-init"
)


@dataclass(frozen=True)
class Native:
    name: str
    package: str  # the import path of the folder that holds the source; the binary goes in its bin/
    folder: str  # that folder in the checkout
    static: bool

    @property
    def source(self) -> str:
        return f"{self.folder}/{self.name}.c"


NATIVES = (
    Native("nsrun", "monaco.api.local", "api/local", static=False),
    Native("monaco-init", "monaco.core", "core", static=True),
)


class NativeMissing(RuntimeError):
    """A native binary was not built; the message says how to build it."""


class BuildError(RuntimeError):
    """A native binary could not be compiled; the message holds the compiler's complaint."""


def _native(name: str) -> Native:
    for native in NATIVES:
        if native.name == name:
            return native
    raise KeyError(f"no native binary named {name!r} (known: {', '.join(n.name for n in NATIVES)})")


def binary(name: str, package: str | None = None) -> Path:
    """The installed binary `name` (from the package that ships it), or NativeMissing saying how to build it."""
    path = Path(str(resources.files(package or _native(name).package).joinpath("bin", name)))
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise NativeMissing(f"Monaco's native binary {name} is not built ({path} is missing): {HOW_TO_BUILD}")
    return path


def _compiler(native: Native) -> list[str]:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if native.static:
        musl = shutil.which("musl-gcc")
        if musl:
            return [musl, "-static", "-Os", "-s"]
        if cc:
            return [cc, "-static", "-Os", "-s"]
    elif cc:
        return [cc, "-O2"]
    raise BuildError(f"cannot build {native.name}: no C compiler (cc, gcc or musl-gcc) on PATH; {HOW_TO_BUILD}")


def build(native: Native, source: Path, output: Path) -> Path:
    """Compile `source` into `output` (atomically), unless `output` is newer than `source`."""
    if output.is_file() and output.stat().st_mtime >= source.stat().st_mtime:
        return output
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    argv = [*_compiler(native), "-Wall", "-o", str(tmp), str(source)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"cannot build {native.name}: `{' '.join(argv)}` failed:\n{done.stderr.strip()}")
    os.chmod(tmp, 0o755)
    tmp.replace(output)
    return output


def build_all(repo: Path, into: Path | None = None) -> list[Path]:
    """Build every native binary whose source is in the checkout `repo`.

    The binaries go beside their sources (`api/local/bin/nsrun`, for an editable install) or, with
    `into` (a build dir of package folders), to `into/monaco/api/local/bin/nsrun`. A source that is not
    in the checkout is skipped; one that is there must build.
    """
    built = []
    for native in NATIVES:
        source = repo / native.source
        if not source.is_file():
            continue
        folder = into.joinpath(*native.package.split(".")) if into else repo / native.folder
        built.append(build(native, source, folder / "bin" / native.name))
    return built


def main() -> int:
    """Build the checkout's native binaries in place: `python -P -m monaco.core.native [REPO]`."""
    repo = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    try:
        for path in build_all(repo):
            print(f"built {path}")
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
