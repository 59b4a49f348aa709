"""The built wheel carries every package and data file: imports work from it, not only from the checkout."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support import python

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
from importlib import resources
import monaco.cli, monaco.api.app, monaco.api.local.backend, monaco.operator.main
for module in (monaco.cli, monaco.api.app, monaco.operator.main):
    assert module.__file__.startswith(sys.argv[1]), module.__file__
assert resources.files("monaco.core").joinpath("bin", "monaco-init").read_bytes().startswith(b"\\x7fELF")
assert "languages:" in resources.files("monaco.core").joinpath("languages.yaml").read_text()
assert "unshare(" in resources.files("monaco.api.local").joinpath("nsrun.c").read_text()
import os
from monaco.core.native import NATIVES, binary
for native in NATIVES:  # built at install time, executable, found where the code looks
    if resources.files(native.package).joinpath(f"{native.name}.c").is_file():
        path = binary(native.name)
        assert str(path).startswith(sys.argv[1]) and os.access(path, os.X_OK), path
from monaco.core.settings import Settings
assert sorted(Settings().registry.names) == ["c", "cpp", "java", "python"]
from monaco.api import playground  # the page and its assets, built, from the installed package
assert [route.path for route in playground.routes("/")] == ["/", "/playground/{name}"]
print("ok")
"""


def test_wheel_imports(tmp_path: Path) -> None:
    subprocess.run(
        python("-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)),
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("monaco-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(n.startswith(("core/", "api/", "operator/", "cli/", "tests/")) for n in names)
    assert "monaco/api/local/bin/nsrun" in names
    assert {f"monaco/api/static/playground/{f}" for f in ("index.html", "app.js", "app.css")} <= set(names)
    assert wheel.name.endswith(f"-py3-none-linux_{os.uname().machine}.whl")  # native code: one platform
    site = tmp_path / "site"
    subprocess.run(
        python("-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)),
        check=True,
        capture_output=True,
    )
    done = subprocess.run(python("-c", CHECK, str(site)), capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.strip() == "ok", done.stderr
