"""A client's zip archive of source files, unpacked in memory with bounds, for Judge0's `additional_files`.

Nothing here touches a disk: every entry is read into memory, counting the bytes that actually come
out of the decompressor (a header's sizes are the sender's word, and a zip bomb lies in them), and
reading stops one byte past the budget. An archive is refused, with a message that names the entry,
when it holds too many entries, more bytes than the budget, an entry that expands more than
MAX_RATIO times, a directory, a symbolic link, a name that is not one plain file name, the same name
twice, encryption, or bytes that are not UTF-8 text (Monaco's `files` are source text).
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass

MAX_ENTRIES = 16  # Monaco's `files` takes at most 16
MAX_RATIO = 200  # uncompressed / compressed, per entry: source text compresses 3 to 10 times, a bomb 1000
FILE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CHUNK = 64 * 1024


class ZipRefused(ValueError):
    """The archive cannot be unpacked safely; the message says which entry and why."""


@dataclass(frozen=True)
class Bounds:
    max_entries: int = MAX_ENTRIES
    max_total_bytes: int = 64 * 1024
    max_ratio: int = MAX_RATIO


def file_name_problem(name: str) -> str | None:
    """Why `name` cannot be the name of a file beside the program, or None: one path component of
    letters, digits, '.', '_' and '-', at most 64 characters, not '.' or '..' and not hidden."""
    if not FILE_NAME.fullmatch(name):
        if "/" in name or "\\" in name:
            return "is a path; send a plain file name, without directories"
        return "must be 1 to 64 letters, digits, '.', '_' or '-'"
    if name.startswith("."):
        return "starts with '.'; hidden files and '.'/'..' are not allowed"
    return None


def _is_link(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """The entry's bytes as the decompressor yields them; ZipRefused once they pass `budget`."""
    out = bytearray()
    with archive.open(info) as stream:
        while chunk := stream.read(min(_CHUNK, budget + 1 - len(out))):
            out += chunk
            if len(out) > budget:
                raise ZipRefused(f"entry {info.filename!r} expands past the limit of the archive's bytes")
    return bytes(out)


def unpack(data: bytes, bounds: Bounds) -> list[tuple[str, str]]:
    """The archive's files as (name, text) pairs, in the archive's order; ZipRefused when it is unsafe."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ZipRefused(f"is not a zip archive ({exc})") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > bounds.max_entries:
            raise ZipRefused(f"holds {len(entries)} entries; the most is {bounds.max_entries}")
        files: list[tuple[str, str]] = []
        seen: set[str] = set()
        total = 0
        for info in entries:
            name = info.filename
            if info.is_dir() or _is_link(info):
                raise ZipRefused(f"entry {name!r} is a {'directory' if info.is_dir() else 'symbolic link'}; "
                                 "send plain files only")
            problem = file_name_problem(name)
            if problem:
                raise ZipRefused(f"entry {name!r} {problem}")
            if name in seen:
                raise ZipRefused(f"holds {name!r} twice")
            seen.add(name)
            if info.flag_bits & 0x1:
                raise ZipRefused(f"entry {name!r} is encrypted")
            try:
                content = _read(archive, info, bounds.max_total_bytes - total)
            except ZipRefused:
                raise
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, ValueError, OSError) as exc:
                raise ZipRefused(f"entry {name!r} cannot be read ({exc})") from None
            total += len(content)
            if len(content) > bounds.max_ratio * max(info.compress_size, 1):
                raise ZipRefused(f"entry {name!r} expands {len(content) // max(info.compress_size, 1)} times; "
                                 f"the most is {bounds.max_ratio}")
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                raise ZipRefused(f"entry {name!r} is not UTF-8 text; Monaco places source text files only") from None
            if "\x00" in text:
                raise ZipRefused(f"entry {name!r} contains a NUL character")
            files.append((name, text))
        return files
