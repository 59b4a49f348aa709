"""Builds Monaco's native binaries (core/native.py) as part of every install.

Everything else about the distribution is in pyproject.toml. A wheel carries the binaries under
monaco/*/bin/, so it is tagged for this platform (py3-none-linux_<arch>: no Python ABI is involved); an
editable install (`pip install -e .`, `make setup`) gets them built beside their sources.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parent


def _native():  # type: ignore[no-untyped-def]
    """core/native.py, loaded by path: Monaco is not importable while it is being built."""
    spec = importlib.util.spec_from_file_location("monaco_native", REPO / "core" / "native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class BuildWithNatives(build_py):
    def run(self) -> None:
        super().run()
        native = _native()
        if self.editable_mode:
            native.build_all(REPO)
        else:
            native.build_all(REPO, into=Path(self.build_lib))


class WithNativeCode(Distribution):
    def has_ext_modules(self) -> bool:  # a platform wheel, its files at the root (platlib)
        return True


class PlatformWheel(bdist_wheel):
    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(distclass=WithNativeCode, cmdclass={"build_py": BuildWithNatives, "bdist_wheel": PlatformWheel})
