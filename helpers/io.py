"""Errors that point at the offending input, atomic writes, and strict JSONL reading.

Every loader in the package raises :class:`DataError` for bad input so users see the file, the line
and the field at fault, and every writer goes through :func:`atomic_write_text` /
:func:`atomic_dir` so a crash never leaves a half-written file that looks complete. Output paths
are checked before any work (:func:`check_output_dir`, :func:`check_output_file`): the toolkit
never deletes or replaces what it did not create unless told to (``--overwrite``). A folder's
marker (:data:`OUTPUT_MARKER`) lists the files the tool wrote there, so a later run replaces or
removes only those, in any subfolder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


class DataError(ValueError):
    """Bad user input: names the file, the line (1-based) and the field when known."""

    def __init__(self, message: str, file: str | os.PathLike | None = None,
                 line: int | None = None, field: str | None = None):
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.reason = message
        where = ""
        if self.file:
            where = self.file
            if line is not None:
                where += f":{line}"
        if field:
            where += f" (field '{field}')" if where else f"field '{field}'"
        super().__init__(f"{where}: {message}" if where else message)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the result the mode a plain open() would have.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text (``\\n`` line endings, byte-stable across platforms)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Atomically write JSON with sorted keys, so equal objects give byte-identical files."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + "\n")


# A folder holding this file was created by the toolkit, so a later run may replace what it wrote
# there. Without it, a non-empty folder is the user's and is never written into unless they say so.
# The marker lists, file by file, what the tool wrote ("entries"): only those are ever replaced or
# removed by a later run; any other file in the folder is the user's and is kept.
OUTPUT_MARKER = ".created-by-helpers"


def is_toolkit_output(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder the toolkit created (it holds :data:`OUTPUT_MARKER`)."""
    return (Path(path) / OUTPUT_MARKER).is_file()


def write_output_marker(folder: str | os.PathLike, creator: str, entries=None) -> Path:
    """Mark ``folder`` as created by ``creator``; ``entries``: the relative paths of the files it wrote
    there (deterministic content: datasets stay byte-identical)."""
    obj: dict = {"created_by": creator}
    if entries is not None:
        obj["entries"] = sorted(set(entries))
    return atomic_write_json(Path(folder) / OUTPUT_MARKER, obj)


def output_entries(folder: str | os.PathLike) -> set[str] | None:
    """The files the marker of ``folder`` says the toolkit wrote (relative POSIX paths); None when
    there is no marker or it predates the list (then no file of the folder may be removed)."""
    try:
        obj = json.loads((Path(folder) / OUTPUT_MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    entries = obj.get("entries") if isinstance(obj, dict) else None
    return {e for e in entries if isinstance(e, str)} if isinstance(entries, list) else None


def check_writable(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Fail now, not after hours of work, if ``path`` (a file or folder to be) cannot be written.

    Probes the nearest existing folder with a real temporary file: permission bits alone say
    nothing for root or for read-only file systems.
    """
    path = Path(path)
    probe_dir = path if path.is_dir() else path.parent
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise DataError(f"{flag}: {probe_dir} is a file, so this path cannot be created", file=path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=probe_dir)
    except OSError as e:
        raise DataError(f"{flag} is not writable ({e.strerror} in {probe_dir})", file=path) from None
    os.close(fd)
    os.unlink(tmp)
    return path


def check_output_dir(path: str | os.PathLike, *, overwrite: bool = False, flag: str = "--out") -> Path:
    """Refuse an output folder the toolkit must not write into; call it before any work starts.

    Refused: a file where a folder is wanted (always), a non-empty folder without
    :data:`OUTPUT_MARKER` (unless ``overwrite``), a path that cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataError(f"{flag} must be a folder, but this is a file; choose another path", file=path)
    if path.is_dir() and not overwrite and not is_toolkit_output(path) and any(path.iterdir()):
        raise DataError(f"{flag} is a non-empty folder the toolkit did not create; choose a new or empty "
                        "folder, or pass --overwrite to write into it (its other files are kept)", file=path)
    return check_writable(path, flag)


def check_output_file(path: str | os.PathLike, *, overwrite: bool = False, creator: str | None = None,
                      flag: str = "--out", ours: Callable[[Path], bool] | None = None) -> Path:
    """Refuse an output file path the toolkit must not write; call it before any work starts.

    Refused: a folder (always), an existing file the tool did not write unless ``overwrite``, a
    path that cannot be written. The tool wrote a file if it is a JSON object with ``"created_by":
    creator`` or, for formats without that field, if ``ours(path)`` says so.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{flag} must be a file path, but this is a folder; name a file inside it", file=path)
    if (path.exists() or path.is_symlink()) and not overwrite and not written_by(path, creator, ours):
        raise DataError(f"{flag} exists and was not written by this tool; choose another path, or pass "
                        "--overwrite to replace it", file=path)
    return check_writable(path, flag)


def written_by(path: str | os.PathLike, creator: str | None, ours: Callable[[Path], bool] | None = None) -> bool:
    """Whether the file ``path`` was written by ``creator`` (``"created_by"`` in a JSON object) or
    ``ours(path)`` recognises it."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    if ours is not None and ours(path):
        return True
    if creator is None:
        return False
    obj = read_json_object(path)
    return obj is not None and obj.get("created_by") == creator


def has_json_keys(*keys: str) -> Callable[[Path], bool]:
    """An ``ours`` test for :func:`check_output_file`: a JSON object holding every one of ``keys`` (how
    to recognise a tool's files written before it recorded ``created_by``)."""
    def ours(path: Path) -> bool:
        obj = read_json_object(path)
        return obj is not None and all(k in obj for k in keys)

    return ours


def read_json_object(path: str | os.PathLike) -> dict | None:
    """The JSON object in ``path``, or None if it cannot be read as one."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False, creator: str | None = None) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place when the block succeeds.

    Yields the temporary directory to write into. If the block raises, the temporary directory is
    removed and ``path`` is left as it was. A new or empty ``path`` is replaced by one rename. An
    existing non-empty ``path`` must be toolkit output (:data:`OUTPUT_MARKER`) or ``overwrite``
    must be given (checked before the block runs); then the files are merged one by one
    (:func:`_merge_into`): each file the block wrote replaces the file of the same path, files an
    earlier run of the tool wrote and this one did not are removed, and every other file (a user's,
    in any subfolder) is kept. ``creator`` marks the result as toolkit output, with its files listed.
    """
    path = Path(path)
    check_output_dir(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp creates 0700 folders
    try:
        yield tmp
        files = _files(tmp)
        if creator:
            write_output_marker(tmp, creator, files)
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        if not path.exists():
            os.replace(tmp, path)
            return
        check_output_dir(path, overwrite=overwrite)  # the folder may have changed while the block ran
        _merge_into(tmp, path, files, creator, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _files(folder: Path) -> list[str]:
    """Relative POSIX paths of the files under ``folder`` (its marker excepted), sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if not p.is_dir() and p.relative_to(folder).as_posix() != OUTPUT_MARKER)


def _merge_into(src: Path, dst: Path, files: list[str], creator: str | None, overwrite: bool) -> None:
    """Move the ``files`` of ``src`` into ``dst`` one by one; remove the files ``dst``'s marker lists
    that this build did not write; keep everything else.

    Every clash is found before anything moves (:func:`_check_merge`). The marker first lists both
    builds' files, so an interruption never leaves a file of ours unlisted; top-level files
    (summaries such as ``stats.json``) leave first and arrive last, so an interrupted merge leaves a
    folder without them (rebuilt next time), never one that looks complete while mixing two builds.
    """
    old = output_entries(dst)
    stale = sorted((old or set()) - set(files))
    _check_merge(dst, files, old, overwrite)
    if creator:
        write_output_marker(dst, creator, set(files) | (old or set()))
    top = [f for f in files if "/" not in f]
    for name in top + [f for f in stale if "/" not in f]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dst / name)
    for rel in stale:
        _remove_own_file(dst, rel)
    for rel in [f for f in files if "/" in f] + top:
        target = dst / rel
        for parent in reversed(target.relative_to(dst).parents[:-1]):
            if (dst / parent).is_file() or (dst / parent).is_symlink():
                os.unlink(dst / parent)   # a file of ours where this build writes a folder (_check_merge)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src / rel, target)
    if creator:
        write_output_marker(dst, creator, files)


def _check_merge(dst: Path, files: list[str], old: set[str] | None, overwrite: bool) -> None:
    """Refuse a merge that would replace or remove something that is not the tool's own."""
    own = old or set()
    for rel in files:
        target = dst / rel
        for parent in reversed(target.relative_to(dst).parents[:-1]):
            p = dst / parent
            if (p.is_symlink() or p.exists() and not p.is_dir()) and parent.as_posix() not in own:
                raise DataError("is a file (or link) where this tool writes a folder; move it away", file=p)
        if target.is_dir() and not target.is_symlink():
            raise DataError("is a folder where this tool writes a file; move it away", file=target)
        if old is not None and rel not in old and (target.exists() or target.is_symlink()) and not overwrite:
            raise DataError("exists and was not written by this tool; move it away, or pass --overwrite to "
                            "replace it", file=target)


def _remove_own_file(root: Path, rel: str) -> None:
    """Remove ``root/rel`` (a file the tool wrote) and the folders it leaves empty, up to ``root``."""
    target = root / rel
    if target.is_dir() and not target.is_symlink():
        return  # the user put a folder where our file was: theirs now
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)
    for parent in target.relative_to(root).parents[:-1]:
        with contextlib.suppress(OSError):
            (root / parent).rmdir()   # only if empty


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` of a UTF-8 file, raising :class:`DataError` with the line on bad bytes."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", file=path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"not valid UTF-8 ({e.reason} at byte {e.start})", file=path, line=lineno) from None


def read_jsonl(path: str | os.PathLike, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for each non-blank line of a JSONL file.

    Raises :class:`DataError` naming the file and line for invalid UTF-8, invalid JSON, a line that
    is not an object, or a missing/empty required field.
    """
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON: {e.msg} (column {e.colno})", file=path, line=lineno) from None
        if not isinstance(rec, dict):
            raise DataError(f"expected a JSON object, got {type(rec).__name__}", file=path, line=lineno)
        for key in required:
            if key not in rec:
                raise DataError("missing required field", file=path, line=lineno, field=key)
            if rec[key] is None or (isinstance(rec[key], str) and not rec[key].strip()):
                raise DataError("empty value", file=path, line=lineno, field=key)
        yield lineno, rec


def write_jsonl(path: str | os.PathLike, records) -> Path:
    """Atomically write records as JSONL (one compact, key-ordered object per line)."""
    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records]
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
