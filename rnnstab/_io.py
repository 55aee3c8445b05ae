"""Result files written atomically (a temporary file in the target directory, then an atomic rename), and sets of
them written all or none (:func:`staged`)."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from rnnstab.exceptions import InvalidArgumentError


def output_dir(path: str | os.PathLike[str], *, created: list[Path] | None = None, name: str = "--out") -> Path:
    """Create ``path`` as a directory (with parents) or raise a clear error if that is impossible.

    ``created``, if given, receives the directories this call made, deepest first, so that a command that then
    fails can remove them again (:func:`remove_empty`). ``name`` is what the errors call the path: the command's
    option, or the library function's argument."""
    if not os.fspath(path):  # Path("") is ".": an unset shell variable would scatter results into the cwd
        here = f"{name} ." if name.startswith("--") else "."
        raise InvalidArgumentError(f"{name} is empty: name a directory ({here} for the current one)")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"{name} {out} exists and is a file, not a directory")
    if created is not None:
        target = out.absolute()
        created.extend(directory for directory in (target, *target.parents) if not directory.exists())
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InvalidArgumentError(f"{name} {out}: cannot create output directory: {err.strerror}") from None
    if not os.access(out, os.W_OK):
        raise InvalidArgumentError(f"{name} {out}: output directory is not writable")
    return out


def remove_empty(directories: list[Path]) -> None:
    """Remove each directory in turn (deepest first) while it is empty; stop at the first that is not."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file beside ``path`` and rename it into place; nothing half-written remains."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _naming(err, path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result file should get the usual mode
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _naming(err, path) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def refuse_directories(directory: Path, names: Iterable[str]) -> None:
    """Refuse, naming it, a directory where a result file ``directory / name`` is to go: no file can replace it, and
    the command would otherwise fail only once its results were computed, with a bare "Is a directory"."""
    for name in names:
        if (directory / name).is_dir():
            raise InvalidArgumentError(
                f"{directory / name} is a directory, where this command writes a file: move it away or choose "
                "another --out"
            )


_PREVIOUS = ".previous"  # in the staging directory: the files replaced, kept until every new one is in place


@contextmanager
def staged(directory: Path, names: Collection[str]) -> Iterator[Path]:
    """Write a set of result files all or none.

    Yields a hidden staging directory inside ``directory``, into which the caller writes those of ``names`` (paths
    relative to ``directory``) that this run makes. When the block ends without error they replace the files of
    ``directory`` together, and a name the block did not write is removed from ``directory``: an earlier run's file
    would pass for this run's. If the block or any replacement fails, ``directory`` keeps the files it had, exactly,
    and the error names the file in ``directory``, not its staged copy.

    Raises:
        InvalidArgumentError: a directory stands where one of ``names`` goes (before anything is written).
    """
    refuse_directories(directory, names)
    try:
        staging = Path(tempfile.mkdtemp(dir=directory, prefix=".staged.", suffix=".tmp"))
    except OSError as err:
        raise _naming(err, directory) from None
    previous = staging / _PREVIOUS
    done = False
    try:
        yield staging
        _replace_all(staging, previous, directory, names)
        done = True
    except OSError as err:
        raise _unstaged(err, staging, directory) from None
    finally:
        # a restore that failed left the earlier files there, their only copy: keep them rather than delete them
        if done or not any(path.is_file() or path.is_symlink() for path in previous.rglob("*")):
            shutil.rmtree(staging, ignore_errors=True)


def _replace_all(staging: Path, previous: Path, directory: Path, names: Collection[str]) -> None:
    """Move the files of ``names`` in ``directory`` aside into ``previous``, then the staged ones into place; undo
    both if anything fails (a full disk, a file the user may not replace, Ctrl-C)."""
    moved: list[str] = []
    placed: list[str] = []
    try:
        for name in names:
            if os.path.lexists(directory / name):
                (previous / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(directory / name, previous / name)
                moved.append(name)
        for name in names:
            if (staging / name).exists():
                (directory / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / name, directory / name)
                placed.append(name)
    except BaseException:
        for name in placed:
            (directory / name).unlink()
        for name in moved:
            os.replace(previous / name, directory / name)
        raise


def _unstaged(err: OSError, staging: Path, directory: Path) -> OSError:
    """``err`` about the file in ``directory`` that a staged file (or an earlier one moved aside) stands for."""
    path = Path(os.fsdecode(err.filename)) if isinstance(err.filename, (str, bytes, os.PathLike)) else None
    if path is None or not path.is_relative_to(staging):
        return err
    relative = path.relative_to(staging)
    if relative.parts[:1] == (_PREVIOUS,):
        relative = relative.relative_to(_PREVIOUS)
    return _naming(err, directory / relative)


def _naming(err: OSError, path: Path) -> OSError:
    """``err`` about the file being written rather than its temporary name, which would mean nothing to a user
    (the disk filled up: "No space left on device: out/trace.json", not ".trace.json.k3j_x9.tmp")."""
    return OSError(err.errno, err.strerror, str(path)) if err.errno is not None else err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    """JSON with non-finite floats written as null (JSON has no Infinity/NaN); see :func:`finite_or_none`."""
    text = json.dumps(finite_or_none(data), indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))


def finite_or_none(data: Any) -> Any:
    """Replace every non-finite float in nested lists/dicts by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(value) for value in data]
    return data


def versions() -> dict[str, str]:
    """The versions a result depends on, for the metadata written beside it."""
    import numpy as np
    import torch

    import rnnstab

    return {
        "rnnstab": rnnstab.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def size(nbytes: float) -> str:
    """A byte count for a person: ``"512 KiB"``, ``"12.3 MiB"``, ``"1.20 GiB"``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            value = nbytes / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{nbytes:.0f} B"


def plural(number: int, noun: str) -> str:
    """``"1 seed"``, ``"3 seeds"``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
