import errno
import os
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rnnstab
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


def _files(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_staged_files_replace_the_earlier_ones_together_and_remove_those_not_written(tmp_path):
    for name, text in (("a.json", "old a"), ("b.png", "old b"), ("c.png", "old c"), ("keep.txt", "theirs")):
        (tmp_path / name).write_text(text)
    with _io.staged(tmp_path, ["a.json", "b.png", "c.png", "sub/d.png"]) as staging:
        (staging / "a.json").write_text("new a")
        (staging / "sub").mkdir()
        (staging / "sub/d.png").write_text("new d")
    # c.png was not written this time: an earlier run's would pass for this run's
    assert _files(tmp_path) == {"a.json": b"new a", "sub/d.png": b"new d", "keep.txt": b"theirs"}


def test_a_replacement_that_fails_midway_puts_every_earlier_file_back(tmp_path, monkeypatch):
    # the files were moved into place one by one: a failure left this run's first files beside the earlier run's
    for name in ("a.json", "b.png", "c.png"):
        (tmp_path / name).write_text(f"old {name}")
    before = _files(tmp_path)
    real, failed = os.replace, []

    def replace(source, target):
        if Path(target) == tmp_path / "b.png" and not failed:
            failed.append(source)
            raise OSError(errno.EIO, "Input/output error", str(source), None, str(target))
        real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError) as caught, _io.staged(tmp_path, ["a.json", "b.png", "c.png"]) as staging:
        for name in ("a.json", "b.png", "c.png"):
            (staging / name).write_text(f"new {name}")
    assert failed and caught.value.filename == str(tmp_path / "b.png")  # not the hidden staging folder
    assert _files(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.png", "c.png"]


def test_a_file_that_fails_while_staged_is_named_where_it_was_going(tmp_path):
    (tmp_path / "trace.json").write_text("earlier")
    with pytest.raises(OSError) as caught, _io.staged(tmp_path, ["trace.json", "trace.png"]) as staging:
        _io.atomic_write(staging / "trace.png", _disk_full)
    assert caught.value.filename == str(tmp_path / "trace.png")
    assert _files(tmp_path) == {"trace.json": b"earlier"} and len(list(tmp_path.iterdir())) == 1


def test_a_directory_in_the_place_of_an_output_is_refused_by_name_before_anything_moves(tmp_path):
    (tmp_path / "a.json").write_text("earlier")
    (tmp_path / "b.png").mkdir()
    with pytest.raises(InvalidArgumentError) as caught, _io.staged(tmp_path, ["a.json", "b.png"]) as staging:
        (staging / "a.json").write_text("new")
    assert str(caught.value) == (
        f"{tmp_path / 'b.png'} is a directory, where this command writes a file: move it away or choose another --out"
    )
    assert _files(tmp_path) == {"a.json": b"earlier"} and sorted(p.name for p in tmp_path.iterdir()) == [
        "a.json",
        "b.png",
    ]


def test_library_functions_name_their_own_argument_for_an_unusable_directory(tmp_path):
    # the CLI's messages say --out; a library caller passed `directory` or `log_path`, and is told so
    blocker = tmp_path / "file"
    blocker.write_text("")
    run = rnnstab.train("adding", length=4, hidden=3, steps=1)
    with pytest.raises(InvalidArgumentError, match=r"^directory .*file exists and is a file"):
        rnnstab.write_training_figures([run.frame()], blocker)
    with pytest.raises(InvalidArgumentError, match=r"^log_path's directory .*file exists and is a file"):
        rnnstab.train("adding", length=4, hidden=3, steps=1, log_path=blocker / "run.jsonl")
    with pytest.raises(InvalidArgumentError, match=r"^directory is empty: name a directory \(\. for the current"):
        _io.output_dir("", name="directory")
