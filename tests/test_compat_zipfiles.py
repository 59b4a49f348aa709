"""Judge0's additional_files archives unpacked in memory: hostile archives are test data."""

from __future__ import annotations

import stat
import struct
import zipfile

import pytest

from monaco.api.compat.zipfiles import Bounds, ZipRefused, unpack
from tests.compat_support import zip_of

BOUNDS = Bounds(max_entries=16, max_total_bytes=64 * 1024, max_ratio=200)


def test_plain_files_come_out_in_order() -> None:
    data = zip_of({"util.py": b"X = 1\n", "data.txt": "héllo\n".encode()})
    assert unpack(data, BOUNDS) == [("util.py", "X = 1\n"), ("data.txt", "héllo\n")]


def test_stored_entries_too() -> None:
    assert unpack(zip_of({"a.h": b"#define A 1\n"}, zipfile.ZIP_STORED), BOUNDS) == [("a.h", "#define A 1\n")]


def test_a_zip_bomb_stops_at_the_budget_not_at_its_end() -> None:
    bomb = zip_of({"bomb.txt": b"0" * (50 * 1024 * 1024)})  # 50 MiB of zeros: about 50 KB compressed
    with pytest.raises(ZipRefused, match="expands past the limit"):
        unpack(bomb, BOUNDS)


def test_a_header_that_understates_the_size_is_caught_by_the_bytes_read() -> None:
    data = bytearray(zip_of({"lie.txt": b"A" * 60_000}))
    # the local header's and the central directory's uncompressed size say 10 bytes
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, 10)
    struct.pack_into("<I", data, central + 24, 10)
    with pytest.raises(ZipRefused, match=r"cannot be read|expands"):
        unpack(bytes(data), BOUNDS)


def test_a_header_that_overstates_the_size_changes_nothing_but_the_header() -> None:
    data = bytearray(zip_of({"big.txt": b"B" * 1000}))
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, 2**31)
    struct.pack_into("<I", data, central + 24, 2**31)
    assert unpack(bytes(data), BOUNDS) == [("big.txt", "B" * 1000)]  # what came out, not what was claimed


def test_compression_ratio_is_bounded() -> None:
    with pytest.raises(ZipRefused, match=r"expands .* times"):
        unpack(zip_of({"zeros.txt": b"\0" * 60_000}), BOUNDS)


@pytest.mark.parametrize("name", ["../evil.py", "/etc/passwd", "dir/util.py", "..\\evil.py", ".hidden", "a b.py"])
def test_names_that_are_not_one_plain_file_name(name: str) -> None:
    with pytest.raises(ZipRefused, match="entry"):
        unpack(zip_of({name: b"x"}), BOUNDS)


def test_directories_are_refused() -> None:
    with pytest.raises(ZipRefused, match="directory"):
        unpack(zip_of({"sub/": b""}), BOUNDS)


def test_symbolic_links_are_refused() -> None:
    info = zipfile.ZipInfo("link.py")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(ZipRefused, match="symbolic link"):
        unpack(buffer.getvalue(), BOUNDS)


def test_too_many_entries() -> None:
    with pytest.raises(ZipRefused, match="17 entries; the most is 16"):
        unpack(zip_of({f"f{i}.txt": b"x" for i in range(17)}), BOUNDS)


def test_the_same_name_twice() -> None:
    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate it writes
        archive.writestr("a.py", "1")
        archive.writestr("a.py", "2")
    with pytest.raises(ZipRefused, match="twice"):
        unpack(buffer.getvalue(), BOUNDS)


def test_binary_content_and_nul() -> None:
    with pytest.raises(ZipRefused, match="not UTF-8"):
        unpack(zip_of({"bin.dat": b"\xff\xfe\x00"}), BOUNDS)
    with pytest.raises(ZipRefused, match="NUL"):
        unpack(zip_of({"nul.txt": b"a\x00b"}), BOUNDS)


@pytest.mark.parametrize("data", [b"", b"not a zip", b"PK\x03\x04" + b"\0" * 30])
def test_not_a_zip(data: bytes) -> None:
    with pytest.raises(ZipRefused, match="not a zip"):
        unpack(data, BOUNDS)


def test_the_total_counts_every_entry() -> None:
    files = {f"f{i}.txt": bytes([65 + i]) * 5000 + b"\n".join(b"%d" % j for j in range(900)) for i in range(8)}
    with pytest.raises(ZipRefused, match="past the limit"):
        unpack(zip_of(files), Bounds(max_total_bytes=20_000))
