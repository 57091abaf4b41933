"""
The file operations the mbox, Maildir and summaries files share: ranges read
whole through short reads, and replacements that leave the old file or the
new one, never a mix nor a temporary file.
"""

from __future__ import annotations

import os
import stat

import pytest

from twisted_mailhub.backends import files
from twisted_mailhub.backends.files import (
    ShortRead,
    pread_exactly,
    pread_upto,
    pwrite_all,
    read_number,
    replace_file,
    write_all,
    write_number,
)

DATA = bytes(range(256)) * 40


@pytest.fixture
def fd(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(DATA)
    fd = os.open(path, os.O_RDONLY)
    yield fd
    os.close(fd)


@pytest.fixture
def dribbling(monkeypatch):
    """C{os.pread} returning at most 7 octets a call, as a file may."""
    calls = []
    real = os.pread

    def pread(fd, length, offset):
        calls.append((length, offset))
        return real(fd, min(length, 7), offset)

    monkeypatch.setattr(os, "pread", pread)
    return calls


def test_a_range_is_read_whole_through_short_reads(fd, dribbling):
    assert pread_exactly(fd, 100, 3) == DATA[3:103]
    assert len(dribbling) == 15  # 14 of 7 and the last 2
    assert pread_upto(fd, 100, 3) == DATA[3:103]


def test_a_large_range_is_asked_for_in_parts(fd, monkeypatch):
    calls = []
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda f, n, o: calls.append(n) or real(f, n, o))
    monkeypatch.setattr(files, "_READ_PART", 1000)
    assert pread_exactly(fd, len(DATA), 0) == DATA
    assert calls == [1000] * 10 + [240]


def test_the_end_of_the_file_before_the_range_ends(fd, dribbling):
    with pytest.raises(ShortRead) as raised:
        pread_exactly(fd, 50, len(DATA) - 20)
    error = raised.value
    assert (error.length, error.offset, error.got) == (50, len(DATA) - 20, 20)
    assert str(error) == f"wanted 50 octet(s) at offset {len(DATA) - 20}, the file ends after 20"
    assert isinstance(error, EOFError)
    # Where a short range is expected, it is what was there.
    assert pread_upto(fd, 50, len(DATA) - 20) == DATA[-20:]
    assert pread_upto(fd, 50, len(DATA) + 5) == b""


def test_empty_ranges(fd):
    assert pread_exactly(fd, 0, len(DATA) + 100) == b""
    assert pread_upto(fd, -3, 0) == b""
    with pytest.raises(ShortRead):
        pread_exactly(fd, 1, len(DATA))


def test_write_all_through_short_writes(tmp_path, monkeypatch):
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data[:5])))
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        write_all(fd, DATA[:101])
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == DATA[:101]


def test_replace_gives_the_new_content_and_keeps_the_mode(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    result = replace_file(str(path), [b"new ", b"content"])
    assert path.read_bytes() == b"new content"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert result.st_ino == os.stat(path).st_ino and result.st_size == 11
    assert os.listdir(tmp_path) == ["file"]


def test_a_new_file_gets_the_mode_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        replace_file(str(tmp_path / "a"), [b"a"])
        replace_file(str(tmp_path / "b"), [b"b"], 0o644)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "b").st_mode) == 0o644


def chunks_failing_after(n: int):
    for i in range(n):
        yield b"part %d\n" % i
    raise OSError("disk full")


def test_a_failure_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"):
        replace_file(str(path), chunks_failing_after(3))
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file"]


def test_a_failed_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "file"
    path.write_bytes(b"old")
    written = []

    def fail(source, target):
        written.append(open(source, "rb").read())
        raise OSError("rename refused")

    monkeypatch.setattr(files, "_rename", fail)
    with pytest.raises(OSError, match="rename refused"):
        replace_file(str(path), [b"new"])
    assert written == [b"new"]  # the new content was whole, under another name
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file"]


def test_no_file_before_and_a_failure_leaves_none(tmp_path):
    with pytest.raises(OSError):
        replace_file(str(tmp_path / "file"), chunks_failing_after(1))
    assert os.listdir(tmp_path) == []


def test_a_temporary_of_the_callers_own(tmp_path):
    path, spare = tmp_path / "file", tmp_path / "spare"
    spare.mkdir()
    temporary = spare / "file.new"
    temporary.write_bytes(b"left by an earlier attempt, longer than the new content")
    replace_file(str(path), [b"new"], temporary=str(temporary))
    assert path.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["file", "spare"]
    assert os.listdir(spare) == []
    temporary.write_bytes(b"again")
    with pytest.raises(OSError):
        replace_file(str(path), chunks_failing_after(2), temporary=str(temporary))
    assert path.read_bytes() == b"new" and os.listdir(spare) == []


def test_a_counter_file(tmp_path):
    fd = os.open(tmp_path / "counter", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert read_number(fd) == 0
        write_number(fd, 1234567)
        assert read_number(fd) == 1234567
        write_number(fd, 8)  # shorter: nothing of the old number stays
        assert read_number(fd) == 8
        assert (tmp_path / "counter").read_bytes() == b"8\n"
        os.pwrite(fd, b"garbage", 0)
        assert read_number(fd) == 0
    finally:
        os.close(fd)


def test_pwrite_all_through_short_writes(tmp_path, monkeypatch):
    path = tmp_path / "out"
    path.write_bytes(b"0123456789")
    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: real(fd, bytes(data[:3]), offset))
    fd = os.open(path, os.O_WRONLY)
    try:
        pwrite_all(fd, b"abcdefgh", 4)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"0123abcdefgh"
