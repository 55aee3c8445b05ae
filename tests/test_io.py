import errno
import tempfile

import pytest

from rnnstab import _io


def _disk_full(handle):
    handle.write(b"half")
    raise OSError(errno.ENOSPC, "No space left on device", handle.name)


def test_a_failed_write_names_the_result_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "trace.json"
    with pytest.raises(OSError, match="No space left on device") as caught:
        _io.atomic_write(target, _disk_full)
    assert caught.value.filename == str(target)  # not the temporary ".trace.json.k3j_x9.tmp"
    assert list(tmp_path.iterdir()) == []


def test_a_directory_refusing_the_temporary_file_names_the_result_file(tmp_path, monkeypatch):
    def refuse(*, dir, prefix, suffix):
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}x{suffix}")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as caught:
        _io.atomic_write(tmp_path / "report.md", lambda handle: handle.write(b"text"))
    assert caught.value.filename == str(tmp_path / "report.md")


def test_an_error_that_is_not_about_the_file_passes_unchanged(tmp_path):
    def broken(handle):
        raise ValueError("not a disk problem")

    with pytest.raises(ValueError, match="not a disk problem"):
        _io.atomic_write(tmp_path / "x.json", broken)
    assert list(tmp_path.iterdir()) == []
