"""Files claimstate writes (diagrams, pages, the demo's): whole or not at all, and only where asked.

Each file is written under a temporary name in its folder and renamed into place, so a reader never
sees half a file and a symlink planted under the final name is replaced, never followed. Every
failure is a StorageError naming the path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
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


def write_file(path: Path, content: str | bytes) -> Path:
    """Write `content` (text as UTF-8) to `path` through a temporary file renamed into place."""
    if not str(path) or path.name in {"", ".", ".."}:
        raise InvalidInput(f"a file name is needed, not {str(path)!r}", field="path")
    data = content.encode() if isinstance(content, str) else content
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as error:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        raise _failed(path, error) from None
    return path
