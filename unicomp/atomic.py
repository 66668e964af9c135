"""Writing outputs so that a failure or Ctrl-C never leaves a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from unicomp.errors import InputError, OutputExistsError, UnicompError


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse before any work is done if ``path`` cannot or must not be written."""
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an output file")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists (use --force to overwrite)")
    folder = path.parent
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise InputError(f"output folder {folder} {problem}")
    if not os.access(folder, os.W_OK | os.X_OK):  # read-only, immutable, not ours
        raise InputError(f"output folder {folder} is not writable")


@contextlib.contextmanager
def atomic_output(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only on success.

    The temporary name ends in ``path``'s suffix, so writers that pick the format from
    the extension (Pillow, soundfile) write the right one.
    """
    check_output(path, overwrite)
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent
        )
    except OSError as error:
        raise InputError(f"cannot write in {path.parent}: {error.strerror}") from None
    os.close(handle)
    temporary_path = Path(temporary)
    os.chmod(temporary_path, 0o666 & ~_umask())  # mkstemp's 0600 is not what users expect
    try:
        yield temporary_path
        if path.exists() and not overwrite:  # appeared while we worked
            raise OutputExistsError(f"{path} already exists (use --force to overwrite)")
        os.replace(temporary_path, path)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None
    except UnicompError as error:
        if str(temporary_path) not in str(error):
            raise
        # The writer named our temporary file; the user knows only the output.
        raise type(error)(str(error).replace(str(temporary_path), str(path))) from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary_path.unlink()


def write_bytes_atomic(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_output`."""
    with atomic_output(path, overwrite) as temporary:
        temporary.write_bytes(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
