import errno
import tempfile

import pytest
from typer.testing import CliRunner

from rnnstab import _io
from rnnstab.cli import app
from rnnstab.exceptions import InvalidArgumentError


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


@pytest.mark.parametrize("command", [["trace", "--steps", "3", "--hidden", "4"], ["inits", "--hidden", "4"]])
def test_an_empty_out_is_refused_not_read_as_the_current_directory(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command, "--out", ""])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().startswith("error: --out is empty: name a directory (--out . for the current one)")
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_the_library_refuses_an_empty_output_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgumentError, match="--out is empty"):
        _io.output_dir("")
