"""Errors that point at the offending input, atomic writes, and strict JSONL reading.

Every loader in the package raises :class:`DataError` for bad input so users see the file, the line
and the field at fault, and every writer goes through :func:`atomic_write_text` /
:func:`atomic_dir` so a crash never leaves a half-written file that looks complete. Output paths
are checked before any work (:func:`check_output_dir`, :func:`check_output_file`): the toolkit
never deletes or replaces what it did not create unless told to (``--overwrite``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


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
OUTPUT_MARKER = ".created-by-helpers"


def is_toolkit_output(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder the toolkit created (it holds :data:`OUTPUT_MARKER`)."""
    return (Path(path) / OUTPUT_MARKER).is_file()


def write_output_marker(folder: str | os.PathLike, creator: str) -> Path:
    """Mark ``folder`` as created by ``creator`` (deterministic content: datasets stay byte-identical)."""
    return atomic_write_json(Path(folder) / OUTPUT_MARKER, {"created_by": creator})


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
                      flag: str = "--out") -> Path:
    """Refuse an output file path the toolkit must not write; call it before any work starts.

    Refused: a folder (always), an existing file not written by ``creator`` (a JSON object with
    ``"created_by": creator``) unless ``overwrite``, a path that cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{flag} must be a file path, but this is a folder; name a file inside it", file=path)
    if path.exists() and not overwrite and not _created_by(path, creator):
        raise DataError(f"{flag} exists and was not written by this tool; choose another path, or pass "
                        "--overwrite to replace it", file=path)
    return check_writable(path, flag)


def _created_by(path: Path, creator: str | None) -> bool:
    if creator is None:
        return False
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(obj, dict) and obj.get("created_by") == creator


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False, creator: str | None = None) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place when the block succeeds.

    Yields the temporary directory to write into. If the block raises, the temporary directory is
    removed and ``path`` is left as it was. A new or empty ``path`` is replaced by one rename. An
    existing non-empty ``path`` must be toolkit output (:data:`OUTPUT_MARKER`) or ``overwrite``
    must be given (checked before the block runs); then each entry the block wrote replaces the
    entry of the same name and every other entry is kept: a user's files are never deleted.
    ``creator`` marks the result as toolkit output.
    """
    path = Path(path)
    check_output_dir(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp creates 0700 folders
    try:
        yield tmp
        if creator:
            write_output_marker(tmp, creator)
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        if not path.exists():
            os.replace(tmp, path)
            return
        check_output_dir(path, overwrite=overwrite)  # the folder may have changed while the block ran
        _merge_into(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _merge_into(src: Path, dst: Path) -> None:
    """Move every entry of ``src`` into ``dst``, replacing same-named entries; the replaced ones end
    up in ``src`` (removed by the caller).

    Old copies leave first and the marker and other files arrive last, so an interruption leaves a
    folder without the marker or summary files (refused or rebuilt next time), never a folder that
    looks complete while mixing two builds.
    """
    # folders first, then files (summaries such as stats.json), the marker last
    order = sorted((p.name for p in src.iterdir()), key=lambda n: (n == OUTPUT_MARKER, not (src / n).is_dir(), n))
    trash = src / f".replaced-{os.getpid()}"
    trash.mkdir()
    for name in sorted(order, key=lambda n: n != OUTPUT_MARKER):  # the old marker leaves first
        if (dst / name).exists() or (dst / name).is_symlink():
            os.replace(dst / name, trash / name)
    for name in order:
        os.replace(src / name, dst / name)


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
