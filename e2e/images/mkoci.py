#!/usr/bin/python3
"""Pack a root file system into an OCI image layout tarball (Python 3 standard library only).

    mkoci.py ROOTFS OUT.tar --name monaco.local/python:3.11 [--entrypoint JSON] [--cmd JSON]
             [--env K=V]... [--workdir DIR] [--user UID[:GID]] [--label K=V]... [--exclude GLOB]...
             [--mtime EPOCH] [--level N]
    mkoci.py --verify OUT.tar

ROOTFS is a directory or a tar file (plain or compressed). OUT.tar is what
`ctr -n k8s.io images import OUT.tar` accepts: `oci-layout`, `index.json` (annotated with
`io.containerd.image.name` = the full name and `org.opencontainers.image.ref.name` = the tag), one
manifest, one config and one gzip layer, all under `blobs/sha256/`.

The output is deterministic for a given input: entries are sorted, owners are numeric, the gzip
header carries no name or time, JSON is canonical. `--mtime` also pins every file's modification
time; it is off by default because some contents depend on real mtimes (Python's timestamp-based
.pyc files, the JDK's CDS archive, which checks the mtime of `lib/modules`): pinning them would make
Python recompile at every start on a read-only root and the JVM drop its class-data sharing.

Extended attributes are not copied. Sockets are skipped. On success the image's digests are printed
as one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHUNK = 1 << 20


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def split_name(name: str) -> tuple[str, str]:
    """Full reference and tag of an image name: `python:3.11` -> (`docker.io/library/python:3.11`, `3.11`)."""
    if "@" in name:
        raise ValueError(f"digest references are not supported: {name}")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        repo, tag = name[:colon], name[colon + 1 :]
    else:
        repo, tag = name, "latest"
    if not repo or not tag:
        raise ValueError(f"bad image name: {name!r}")
    first = repo.split("/", 1)[0]
    if "/" not in repo or not ("." in first or ":" in first or first == "localhost"):
        repo = "docker.io/" + (repo if "/" in repo else "library/" + repo)
    return f"{repo}:{tag}", tag


class _LayerWriter:
    """File-like sink for tarfile: hashes the tar stream (diff_id) and gzips it into `out` (digest)."""

    def __init__(self, out: BinaryIO, level: int) -> None:
        self.out = out
        self.diff = hashlib.sha256()
        self.blob = hashlib.sha256()
        self.size = 0
        # wbits=31: gzip container, header with mtime 0 and no file name, so the output is reproducible.
        self.comp = zlib.compressobj(level, zlib.DEFLATED, 31, 9)

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob.update(data)
            self.out.write(data)
            self.size += len(data)

    def write(self, data: bytes) -> int:
        self.diff.update(data)
        self._emit(self.comp.compress(data))
        return len(data)

    def finish(self) -> None:
        self._emit(self.comp.flush())


@dataclass
class _Filter:
    excludes: list[str] = field(default_factory=list)
    mtime: int | None = None

    def excluded(self, rel: str) -> bool:
        return any(fnmatch.fnmatchcase(rel, pat) for pat in self.excludes)

    def normalize(self, ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uname = ""
        ti.gname = ""
        ti.mtime = self.mtime if self.mtime is not None else int(ti.mtime)
        ti.pax_headers = {}
        return ti


def _walk(root: str, rel: str = "") -> Iterator[str]:
    """Relative paths below root, parents before children, siblings sorted by name (bytes)."""
    here = os.path.join(root, rel) if rel else root
    with os.scandir(here) as it:
        entries = sorted(it, key=lambda e: os.fsencode(e.name))
    for e in entries:
        child = f"{rel}/{e.name}" if rel else e.name
        yield child
        if e.is_dir(follow_symlinks=False):
            yield from _walk(root, child)


def _add_tree(tar: tarfile.TarFile, root: str, flt: _Filter) -> int:
    count = 0
    pruned: str | None = None
    for rel in _walk(root):
        if pruned is not None and rel.startswith(pruned):
            continue
        pruned = None
        path = os.path.join(root, rel)
        if flt.excluded(rel):
            if os.path.isdir(path) and not os.path.islink(path):
                pruned = rel + "/"
            continue
        ti = tar.gettarinfo(path, arcname=rel)
        if ti is None:  # socket
            continue
        ti = flt.normalize(ti)
        if ti.isreg():
            with open(path, "rb") as f:
                tar.addfile(ti, f)
        else:
            tar.addfile(ti)
        count += 1
    return count


def _add_tar(tar: tarfile.TarFile, src_path: str, flt: _Filter) -> int:
    """Re-emit a tar's members sorted, keeping hard links valid whatever order they had."""
    count = 0
    with tarfile.open(src_path, "r:*") as src:
        members: dict[str, tarfile.TarInfo] = {}
        for m in src.getmembers():
            name = m.name[2:] if m.name.startswith("./") else m.name
            name = name.rstrip("/")
            if not name or name == ".":
                continue
            m.name = name
            if m.islnk():
                m.linkname = m.linkname[2:] if m.linkname.startswith("./") else m.linkname
            members[name] = m  # a later duplicate wins, as when extracting
        names = sorted(members, key=lambda n: [os.fsencode(p) for p in n.split("/")])
        kept = [n for n in names if not any(flt.excluded(p) for p in _prefixes(n))]
        emitted: dict[str, str] = {}  # original hard-link target -> name it was emitted under
        for n in kept:
            m = members[n]
            ti = flt.normalize(_copy_info(m))
            if m.islnk():
                target = m.linkname
                if target in emitted:
                    ti.linkname = emitted[target]
                    tar.addfile(ti)
                elif target in members and members[target].isreg():
                    data_m = members[target]
                    ti.type = tarfile.REGTYPE
                    ti.linkname = ""
                    ti.size = data_m.size
                    emitted[target] = n
                    with src.extractfile(data_m) as f:  # type: ignore[union-attr]
                        tar.addfile(ti, f)
                else:
                    raise ValueError(f"{src_path}: hard link {n} -> {target}: target missing")
            elif m.isreg():
                if n in emitted:  # an earlier hard link already carries the data
                    ti.type = tarfile.LNKTYPE
                    ti.linkname = emitted[n]
                    ti.size = 0
                    tar.addfile(ti)
                else:
                    emitted[n] = n
                    with src.extractfile(m) as f:  # type: ignore[union-attr]
                        tar.addfile(ti, f)
            else:
                tar.addfile(ti)
            count += 1
    return count


def _prefixes(name: str) -> Iterator[str]:
    parts = name.split("/")
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def _copy_info(m: tarfile.TarInfo) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(m.name)
    for attr in ("size", "mode", "uid", "gid", "mtime", "type", "linkname", "devmajor", "devminor"):
        setattr(ti, attr, getattr(m, attr))
    return ti


def write_layer(rootfs: str, out: BinaryIO, flt: _Filter, level: int = 6) -> tuple[str, str, int, int]:
    """Write the gzip layer of rootfs to out; return (digest, diff_id, size, entries)."""
    w = _LayerWriter(out, level)
    with tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tar:  # type: ignore[call-overload]
        n = _add_tree(tar, rootfs, flt) if os.path.isdir(rootfs) else _add_tar(tar, rootfs, flt)
    w.finish()
    return "sha256:" + w.blob.hexdigest(), "sha256:" + w.diff.hexdigest(), w.size, n


@dataclass
class ImageConfig:
    env: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    workdir: str | None = None
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    exposed: list[str] = field(default_factory=list)
    # Docker's HEALTHCHECK (Test, Interval, ...): not in the OCI spec's config, which says to ignore unknown
    # fields; containerd and Kubernetes do, Docker and Podman honour it, as in an image BuildKit exports as OCI.
    healthcheck: dict[str, Any] | None = None
    architecture: str = "amd64"
    os: str = "linux"
    created: str | None = None


def build_config(cfg: ImageConfig, diff_id: str) -> dict[str, Any]:
    env = list(cfg.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, "PATH=" + DEFAULT_PATH)
    c: dict[str, Any] = {"Env": env}
    if cfg.entrypoint is not None:
        c["Entrypoint"] = cfg.entrypoint
    if cfg.cmd is not None:
        c["Cmd"] = cfg.cmd
    if cfg.workdir:
        c["WorkingDir"] = cfg.workdir
    if cfg.user:
        c["User"] = cfg.user
    if cfg.labels:
        c["Labels"] = dict(cfg.labels)
    if cfg.exposed:
        c["ExposedPorts"] = {port: {} for port in cfg.exposed}
    if cfg.healthcheck:
        c["Healthcheck"] = dict(cfg.healthcheck)
    doc: dict[str, Any] = {
        "architecture": cfg.architecture,
        "os": cfg.os,
        "config": c,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "e2e/images/mkoci.py"}],
    }
    if cfg.created:
        doc["created"] = cfg.created
        doc["history"][0]["created"] = cfg.created
    return doc


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    ti.mtime = 0
    tar.addfile(ti, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    ti.mtime = 0
    tar.addfile(ti)


def build_image(
    rootfs: str,
    out_path: str,
    name: str,
    cfg: ImageConfig,
    excludes: list[str] | None = None,
    mtime: int | None = None,
    level: int = 6,
) -> dict[str, Any]:
    """Pack rootfs into an OCI layout tarball at out_path (written atomically); return its digests."""
    full, tag = split_name(name)
    flt = _Filter(excludes=list(excludes or []), mtime=mtime)
    out_dir = os.path.dirname(os.path.abspath(out_path))
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".mkoci.") as tmp:
        layer_path = os.path.join(tmp, "layer")
        with open(layer_path, "wb") as lf:
            layer_digest, diff_id, layer_size, entries = write_layer(rootfs, lf, flt, level)
        config = canonical_json(build_config(cfg, diff_id))
        config_digest = sha256_digest(config)
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": MT_LAYER_GZIP, "digest": layer_digest, "size": layer_size}],
            }
        )
        manifest_digest = sha256_digest(manifest)
        index = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MT_INDEX,
                "manifests": [
                    {
                        "mediaType": MT_MANIFEST,
                        "digest": manifest_digest,
                        "size": len(manifest),
                        "platform": {"architecture": cfg.architecture, "os": cfg.os},
                        "annotations": {
                            "io.containerd.image.name": full,
                            "org.opencontainers.image.ref.name": tag,
                        },
                    }
                ],
            }
        )
        part = os.path.join(tmp, "image.tar")
        with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
            _add_bytes(tar, "index.json", index)
            _add_dir(tar, "blobs")
            _add_dir(tar, "blobs/sha256")
            blobs = [
                (config_digest, config),
                (manifest_digest, manifest),
            ]
            for digest, data in sorted(blobs):
                _add_bytes(tar, "blobs/sha256/" + digest.split(":", 1)[1], data)
            ti = tarfile.TarInfo("blobs/sha256/" + layer_digest.split(":", 1)[1])
            ti.size = layer_size
            ti.mode = 0o644
            ti.mtime = 0
            with open(layer_path, "rb") as lf:
                tar.addfile(ti, lf)
        os.replace(part, out_path)
    return {
        "name": full,
        "tag": tag,
        "manifest": manifest_digest,
        "config": config_digest,
        "layer": layer_digest,
        "diff_id": diff_id,
        "layer_size": layer_size,
        "entries": entries,
        "size": os.path.getsize(out_path),
    }


def verify(path: str) -> dict[str, Any]:
    """Check an OCI layout tarball: every digest and size matches, diff_ids match the layers."""

    def check(blob: bytes | None, desc: dict[str, Any], what: str) -> bytes:
        if blob is None:
            raise ValueError(f"{what}: blob {desc['digest']} missing")
        if sha256_digest(blob) != desc["digest"]:
            raise ValueError(f"{what}: digest mismatch")
        if len(blob) != desc["size"]:
            raise ValueError(f"{what}: size mismatch")
        return blob

    with tarfile.open(path, "r") as tar:

        def read(name: str) -> bytes | None:
            try:
                f = tar.extractfile(name)
            except KeyError:
                return None
            return f.read() if f else None

        layout = json.loads(read("oci-layout") or b"{}")
        if layout.get("imageLayoutVersion") != "1.0.0":
            raise ValueError("oci-layout missing or wrong")
        index = json.loads(read("index.json") or b"{}")
        if index.get("schemaVersion") != 2 or not index.get("manifests"):
            raise ValueError("index.json has no manifests")
        result: dict[str, Any] = {"images": []}
        for mdesc in index["manifests"]:
            if mdesc.get("mediaType") != MT_MANIFEST:
                raise ValueError(f"unexpected media type {mdesc.get('mediaType')}")
            manifest = json.loads(check(read("blobs/" + mdesc["digest"].replace(":", "/")), mdesc, "manifest"))
            cdesc = manifest["config"]
            config = json.loads(check(read("blobs/" + cdesc["digest"].replace(":", "/")), cdesc, "config"))
            diff_ids = config["rootfs"]["diff_ids"]
            if len(diff_ids) != len(manifest["layers"]):
                raise ValueError("layer count differs from diff_ids")
            for ldesc, diff_id in zip(manifest["layers"], diff_ids, strict=True):
                member = "blobs/" + ldesc["digest"].replace(":", "/")
                f = tar.extractfile(member)
                if f is None:
                    raise ValueError(f"layer {ldesc['digest']} missing")
                blob_h, raw_h, size = hashlib.sha256(), hashlib.sha256(), 0
                d = zlib.decompressobj(31)
                while chunk := f.read(CHUNK):
                    blob_h.update(chunk)
                    size += len(chunk)
                    raw_h.update(d.decompress(chunk))
                raw_h.update(d.flush())
                if "sha256:" + blob_h.hexdigest() != ldesc["digest"] or size != ldesc["size"]:
                    raise ValueError(f"layer {ldesc['digest']}: digest or size mismatch")
                if "sha256:" + raw_h.hexdigest() != diff_id:
                    raise ValueError(f"layer {ldesc['digest']}: diff_id mismatch")
            result["images"].append(
                {
                    "name": mdesc.get("annotations", {}).get("io.containerd.image.name"),
                    "manifest": mdesc["digest"],
                    "config": cdesc["digest"],
                    "diff_ids": diff_ids,
                }
            )
    return result


def _kv(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise SystemExit(f"mkoci: bad {what} {item!r}, expected KEY=VALUE")
        out[k] = v
    return out


def _json_list(s: str | None, what: str) -> list[str] | None:
    if s is None:
        return None
    v = json.loads(s)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise SystemExit(f"mkoci: {what} must be a JSON list of strings")
    return v


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rootfs", nargs="?", help="root file system: a directory or a tar")
    p.add_argument("out", nargs="?", help="OCI layout tarball to write")
    p.add_argument("--verify", metavar="TAR", help="check an OCI layout tarball and exit")
    p.add_argument("--name", help="image name, e.g. monaco.local/python:3.11")
    p.add_argument("--entrypoint", help='JSON list, e.g. ["/pause"]')
    p.add_argument("--cmd", help="JSON list")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE (PATH gets a default)")
    p.add_argument("--workdir")
    p.add_argument("--user")
    p.add_argument("--label", action="append", default=[], help="KEY=VALUE")
    p.add_argument("--expose", action="append", default=[], help="PORT/PROTO, e.g. 8080/tcp")
    p.add_argument("--healthcheck", help='JSON object as Docker writes it, e.g. {"Test": ["CMD", "true"]}')
    p.add_argument("--exclude", action="append", default=[], help="glob on the relative path; prunes dirs")
    p.add_argument("--mtime", type=int, help="pin every entry's mtime (see the module doc)")
    p.add_argument("--level", type=int, default=6, help="gzip level (default 6)")
    p.add_argument("--arch", default="amd64")
    a = p.parse_args(argv)
    if a.verify:
        print(json.dumps(verify(a.verify), indent=1))
        return 0
    if not (a.rootfs and a.out and a.name):
        p.error("ROOTFS, OUT and --name are required")
    if not os.path.exists(a.rootfs):
        p.error(f"{a.rootfs}: no such file or directory")
    _kv(a.env, "--env")
    created = None
    if a.mtime is not None:
        import datetime

        created = datetime.datetime.fromtimestamp(a.mtime, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    cfg = ImageConfig(
        env=a.env,
        entrypoint=_json_list(a.entrypoint, "--entrypoint"),
        cmd=_json_list(a.cmd, "--cmd"),
        workdir=a.workdir,
        user=a.user,
        labels=_kv(a.label, "--label"),
        exposed=a.expose,
        healthcheck=json.loads(a.healthcheck) if a.healthcheck else None,
        architecture=a.arch,
        created=created,
    )
    info = build_image(a.rootfs, a.out, a.name, cfg, excludes=a.exclude, mtime=a.mtime, level=a.level)
    print(json.dumps(info, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
