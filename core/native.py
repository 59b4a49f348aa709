"""Native binaries shipped with Monaco (built at install time): where they are."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


class NativeMissing(RuntimeError):
    """A native binary was not built; the message says how to build it."""


def binary(name: str, package: str = "monaco.core") -> Path:
    path = Path(str(resources.files(package).joinpath("bin", name)))
    if not path.is_file():
        raise NativeMissing(f"{path} is missing: reinstall Monaco with a C compiler (make setup builds it)")
    return path
