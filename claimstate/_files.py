"""Files claimstate writes (diagrams, pages, the demo's): whole or not at all, and only where asked.

Each file is written under a temporary name in its folder and renamed into place, so a reader never
sees half a file. Only a regular file (or a name that holds nothing yet) is replaced: never a folder, a
device such as /dev/null, a pipe, a socket, or a symlink (neither followed nor replaced: /dev/stdout is
one). A new file has the permissions the umask leaves (the kernel applies it), like any file a program
creates: under `umask 077`, pages with buyers' words are the owner's alone.
Every failure is a StorageError naming the path; a path that names no file, or names something that is
not one, is InvalidInput.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from claimstate._errors import InvalidInput, StorageError


def _failed(path: Path, error: OSError) -> StorageError:
    return StorageError(f"cannot write {path}: {error.strerror or error}", path=str(path))


def make_folder(folder: Path) -> Path:
    """`folder`, created with its parents if needed."""
    if not str(folder):
        raise InvalidInput("a folder is needed, not an empty path", field="folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _failed(folder, error) from None
    if not folder.is_dir():
        raise StorageError(f"cannot write into {folder}: it is not a folder", path=str(folder))
    return folder


def _kind(mode: int) -> str:
    """What a file that is not a regular one is, in words."""
    kinds = ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a pipe"), (stat.S_ISSOCK, "a socket"))  # fmt: skip
    return next((words for test, words in kinds if test(mode)), "not a regular file")


def _replaceable(path: Path) -> None:
    """InvalidInput unless `path` names nothing yet or a regular file."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return  # nothing there: a new name
    if not stat.S_ISREG(mode):
        raise InvalidInput(f"{path} is {_kind(mode)}: only a regular file is replaced", field="path")


def write_file(path: Path, content: str | bytes) -> Path:
    """Write `content` (text as UTF-8) to `path` through a temporary file renamed into place."""
    if not str(path) or path.name in {"", ".", ".."}:
        raise InvalidInput(f"a file name is needed, not {str(path)!r}", field="path")
    _replaceable(path)
    data = content.encode() if isinstance(content, str) else content
    temporary = None
    try:
        temporary, handle = _created(path)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except OSError as error:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        raise _failed(path, error) from None
    return path


def _created(path: Path) -> tuple[Path, int]:
    """A new temporary file beside `path`, open for writing, with the mode the umask leaves of 0o666."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    while True:
        temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return temporary, os.open(temporary, flags, 0o666)
        except FileExistsError:
            continue
