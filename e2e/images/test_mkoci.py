"""Tests of mkoci.py: pure Python, no cluster, no root.

Run with `python3 -m pytest e2e/images/test_mkoci.py` or `python3 e2e/images/test_mkoci.py`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import io
import json
import os
import sys
import tarfile
import tempfile
import unittest
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("mkoci", _HERE / "mkoci.py")
assert _spec and _spec.loader
mkoci = importlib.util.module_from_spec(_spec)
sys.modules["mkoci"] = mkoci
_spec.loader.exec_module(mkoci)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(tar: tarfile.TarFile, digest: str) -> bytes:
    f = tar.extractfile("blobs/sha256/" + digest.split(":", 1)[1])
    assert f is not None
    return f.read()


def _make_rootfs(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "proc").mkdir()
    (root / "proc" / "junk").write_text("excluded\n")
    hello = root / "bin" / "hello"
    hello.write_text("#!/bin/sh\necho hello\n")
    os.chmod(hello, 0o755)
    (root / "etc" / "zz").write_text("z\n")
    os.link(hello, root / "etc" / "aa-hardlink")  # sorts before its original, in another dir
    os.symlink("../bin/hello", root / "etc" / "link")
    (root / "big").write_bytes(os.urandom(300_000))


class MkociTest(unittest.TestCase):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = Path(self._tmp.name)
        self.root = self.tmp / "rootfs"
        _make_rootfs(self.root)

    def tearDown(self) -> None:
        self._tmp.cleanup()

    def build(self, src: Path, out: str, **kw: Any) -> dict[str, Any]:
        cfg = mkoci.ImageConfig(
            env=["LANG=C.UTF-8"], entrypoint=["/bin/hello"], cmd=["x"], workdir="/tmp", user="65532:65532"
        )
        kw.setdefault("excludes", ["proc/*"])
        index: dict[str, Any] = mkoci.build_image(str(src), str(self.tmp / out), "monaco.local/test:1.0", cfg, **kw)
        return index

    def test_digests_are_self_consistent(self) -> None:
        info = self.build(self.root, "img.tar")
        with tarfile.open(self.tmp / "img.tar") as tar:
            names = tar.getnames()
            self.assertEqual(names[:2], ["oci-layout", "index.json"])
            self.assertEqual(json.loads(_blob_file(tar, "oci-layout")), {"imageLayoutVersion": "1.0.0"})
            index = json.loads(_blob_file(tar, "index.json"))
            (desc,) = index["manifests"]
            self.assertEqual(
                desc["annotations"],
                {
                    "io.containerd.image.name": "monaco.local/test:1.0",
                    "org.opencontainers.image.ref.name": "1.0",
                },
            )
            self.assertEqual(desc["platform"], {"architecture": "amd64", "os": "linux"})
            manifest_raw = _blob(tar, desc["digest"])
            self.assertEqual(_sha(manifest_raw), desc["digest"])
            self.assertEqual(len(manifest_raw), desc["size"])
            self.assertEqual(info["manifest"], desc["digest"])
            manifest = json.loads(manifest_raw)
            config_raw = _blob(tar, manifest["config"]["digest"])
            self.assertEqual(_sha(config_raw), manifest["config"]["digest"])
            self.assertEqual(len(config_raw), manifest["config"]["size"])
            config = json.loads(config_raw)
            (layer,) = manifest["layers"]
            self.assertEqual(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip")
            layer_raw = _blob(tar, layer["digest"])
            self.assertEqual(_sha(layer_raw), layer["digest"])
            self.assertEqual(len(layer_raw), layer["size"])
            self.assertEqual(config["rootfs"], {"type": "layers", "diff_ids": [_sha(gzip.decompress(layer_raw))]})
            c = config["config"]
            self.assertEqual(c["Entrypoint"], ["/bin/hello"])
            self.assertEqual(c["Cmd"], ["x"])
            self.assertEqual(c["WorkingDir"], "/tmp")
            self.assertEqual(c["User"], "65532:65532")
            self.assertTrue(c["Env"][0].startswith("PATH=/usr/local/sbin:"))
            self.assertIn("LANG=C.UTF-8", c["Env"])
        # The layer itself: sorted, parents first, numeric owners, excluded contents gone, links kept.
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer_raw))) as lt:
            members = {m.name: m for m in lt.getmembers()}
            order = [m.name for m in lt.getmembers()]
        self.assertEqual(
            order,
            ["big", "bin", "bin/hello", "etc", "etc/aa-hardlink", "etc/link", "etc/zz", "proc", "tmp"],
        )
        self.assertTrue(members["etc/aa-hardlink"].islnk())
        self.assertEqual(members["etc/aa-hardlink"].linkname, "bin/hello")
        self.assertEqual(members["etc/link"].linkname, "../bin/hello")
        self.assertEqual(members["tmp"].mode & 0o7777, 0o1777)
        self.assertEqual(members["bin/hello"].mode & 0o777, 0o755)
        self.assertTrue(all(m.uname == "" and m.gname == "" for m in members.values()))
        # And the module's own verifier agrees.
        self.assertEqual(mkoci.verify(str(self.tmp / "img.tar"))["images"][0]["manifest"], info["manifest"])

    def test_deterministic_with_pinned_mtime(self) -> None:
        a = self.build(self.root, "a.tar", mtime=0)
        os.utime(self.root / "etc" / "zz", (12345, 12345))
        b = self.build(self.root, "b.tar", mtime=0)
        self.assertEqual(a["manifest"], b["manifest"])
        self.assertEqual((self.tmp / "a.tar").read_bytes(), (self.tmp / "b.tar").read_bytes())

    def test_real_mtimes_are_kept_by_default(self) -> None:
        os.utime(self.root / "etc" / "zz", (1_600_000_000.7, 1_600_000_000.7))
        info = self.build(self.root, "img.tar")
        with tarfile.open(self.tmp / "img.tar") as tar:
            layer = gzip.decompress(_blob(tar, info["layer"]))
        with tarfile.open(fileobj=io.BytesIO(layer)) as lt:
            zz = lt.getmember("etc/zz")
        self.assertEqual(zz.mtime, 1_600_000_000)
        self.assertEqual(zz.pax_headers, {})  # integer mtimes: no per-file PAX headers

    def test_tar_input_equals_directory_input(self) -> None:
        # A tar of the same tree, written in reverse order (hard link before its target).
        src = self.tmp / "rootfs.tar"
        with tarfile.open(src, "w") as t:
            paths = sorted(p for p in self.root.rglob("*"))
            for p in reversed(paths):
                t.add(p, arcname="./" + str(p.relative_to(self.root)), recursive=False)
        from_dir = self.build(self.root, "dir.tar", mtime=7)
        from_tar = self.build(src, "tar.tar", mtime=7)
        self.assertEqual(from_dir["diff_id"], from_tar["diff_id"])
        self.assertEqual(from_dir["manifest"], from_tar["manifest"])
        mkoci.verify(str(self.tmp / "tar.tar"))

    def test_verify_detects_a_tampered_blob(self) -> None:
        info = self.build(self.root, "img.tar")
        bad = self.tmp / "bad.tar"
        with tarfile.open(self.tmp / "img.tar") as src, tarfile.open(bad, "w") as dst:
            for m in src.getmembers():
                data = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
                if data is not None and m.name.endswith(info["config"].split(":", 1)[1]):
                    data = data.replace(b"65532", b"00000")
                dst.addfile(m, io.BytesIO(data) if data is not None else None)
        with self.assertRaisesRegex(ValueError, "config: digest mismatch"):
            mkoci.verify(str(bad))

    def test_split_name(self) -> None:
        self.assertEqual(mkoci.split_name("registry.k8s.io/pause:3.9"), ("registry.k8s.io/pause:3.9", "3.9"))
        self.assertEqual(mkoci.split_name("python:3.11"), ("docker.io/library/python:3.11", "3.11"))
        self.assertEqual(mkoci.split_name("localhost:5000/x"), ("localhost:5000/x:latest", "latest"))
        self.assertEqual(mkoci.split_name("org/img:1"), ("docker.io/org/img:1", "1"))

    def test_cli(self) -> None:
        out = self.tmp / "cli.tar"
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            rc = mkoci.main(
                [
                    str(self.root),
                    str(out),
                    "--name",
                    "monaco.local/x:y",
                    "--entrypoint",
                    '["/bin/hello"]',
                    "--mtime",
                    "0",
                ]
            )
        self.assertEqual(rc, 0)
        self.assertEqual(json.loads(printed.getvalue())["name"], "monaco.local/x:y")
        self.assertEqual(mkoci.verify(str(out))["images"][0]["name"], "monaco.local/x:y")


def _blob_file(tar: tarfile.TarFile, name: str) -> bytes:
    f = tar.extractfile(name)
    assert f is not None
    return f.read()


if __name__ == "__main__":
    unittest.main()
