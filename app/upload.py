"""Validation and extraction of uploaded patient data (a zip, or the files of a folder).

Everything is checked *before* a byte is written: the total size, the number of files, every
member name (no ``..``, no absolute path, no drive letter, no symlink, no device name) and, for
zip archives, the declared uncompressed size and the compression ratio (zip bombs). Extraction
then streams each member with a byte counter, because a zip header can lie about its size, and
opens every output file with mode ``"xb"``, so nothing that already exists is ever overwritten.

Every refusal raises :class:`~rtplan_assist.errors.UploadError` with a message meant for the
person who uploaded the data; the app shows it as is.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rtplan_assist.errors import UploadError

__all__ = [
    "UploadLimits",
    "check_zip",
    "decode_data_url",
    "decoded_size",
    "extract_zip",
    "safe_relative_path",
    "save_upload",
]

MB = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                    *(f"lpt{i}" for i in range(10))}
_CHUNK = 1 * MB


@dataclass(frozen=True)
class UploadLimits:
    """Caps on one upload (a single patient).

    Attributes
    ----------
    max_upload_bytes : int
        Total size of the uploaded files as sent (zip archives counted compressed).
    max_files : int
        Number of files after extraction (zip members plus plain files).
    max_uncompressed_bytes : int
        Total size after extraction.
    max_ratio : float
        Largest uncompressed/compressed ratio accepted for a zip member of at least
        ``ratio_floor_bytes`` (DICOM compresses 2-20x; a zip bomb 1000x and more).
    ratio_floor_bytes : int
        Members smaller than this are not ratio-checked (tiny files compress arbitrarily well).
    max_stored_bytes : int
        All uploads the server holds at once, over every session (disk use of the upload
        folders): a new upload that would pass it is refused until sessions end.
    """

    max_upload_bytes: int = 200 * MB
    max_files: int = 5000
    max_uncompressed_bytes: int = 1024 * MB
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1 * MB
    max_stored_bytes: int = 4096 * MB


def _mb(n: int) -> str:
    return f"{n / MB:.1f} MB"


def decoded_size(data_url: str) -> int:
    """Size in bytes of the payload of a base64 data URL, without decoding it."""
    payload = data_url.split(",", 1)[1] if "," in data_url else data_url
    payload = payload.rstrip()
    padding = len(payload) - len(payload.rstrip("="))
    return max(0, len(payload) * 3 // 4 - padding)


def decode_data_url(data_url: str, filename: str) -> bytes:
    """Bytes of a ``data:<mime>;base64,<payload>`` string as ``dcc.Upload`` sends them."""
    if not isinstance(data_url, str) or "," not in data_url:
        raise UploadError(f"'{filename}' did not arrive as a file (no data); upload it again.")
    header, payload = data_url.split(",", 1)
    if ";base64" not in header:
        raise UploadError(f"'{filename}' is not base64-encoded; upload it again.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UploadError(f"'{filename}' arrived corrupted ({exc}); upload it again.") from None


def safe_relative_path(name: str) -> PurePosixPath:
    """A member or file name as a safe relative path, or :class:`UploadError`.

    Refused: empty names, NUL bytes, absolute paths (``/x``, ``\\\\x``), drive letters
    (``C:x``), ``..`` components and Windows device names. Backslashes count as separators.
    """
    if not name or "\x00" in name:
        raise UploadError(f"refused: a file name is empty or contains a NUL byte ({name!r}).")
    text = name.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise UploadError(f"refused: '{name}' is an absolute path; upload relative paths only.")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts:
        raise UploadError(f"refused: '{name}' names no file.")
    for part in parts:
        if part == "..":
            raise UploadError(
                f"refused: '{name}' points outside the upload folder ('..' in the path)."
            )
        if part.split(".")[0].lower() in _WINDOWS_DEVICES or ":" in part:
            raise UploadError(f"refused: '{name}' is not a valid file name.")
    return PurePosixPath(*parts)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def check_zip(archive: zipfile.ZipFile, limits: UploadLimits, *, label: str = "archive",
              files_before: int = 0, bytes_before: int = 0) -> tuple[int, int]:
    """Check every member of a zip before extraction.

    Parameters
    ----------
    archive : ZipFile
    limits : UploadLimits
    label : str
        Name of the archive for messages.
    files_before, bytes_before : int
        Files and bytes already accepted from the same upload (the caps are totals).

    Returns
    -------
    (n_files, n_bytes) : tuple of int
        Totals including this archive's regular files (declared sizes).

    Raises
    ------
    UploadError
        Encrypted member, symlink, unsafe name, too many files, total or ratio over the cap.
    """
    n_files, n_bytes = files_before, bytes_before
    for info in archive.infolist():
        safe_relative_path(info.filename)
        if _is_symlink(info):
            raise UploadError(f"refused: '{info.filename}' in {label} is a symbolic link.")
        if info.flag_bits & 0x1:
            raise UploadError(f"refused: '{info.filename}' in {label} is encrypted.")
        if info.is_dir():
            continue
        n_files += 1
        n_bytes += info.file_size
        if n_files > limits.max_files:
            raise UploadError(
                f"refused: {label} holds more than {limits.max_files} files "
                "(one patient at a time, please)."
            )
        if n_bytes > limits.max_uncompressed_bytes:
            raise UploadError(
                f"refused: {label} unpacks to more than {_mb(limits.max_uncompressed_bytes)} "
                "(the cap for one patient)."
            )
        if info.file_size >= limits.ratio_floor_bytes:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise UploadError(
                    f"refused: '{info.filename}' in {label} expands {ratio:.0f}-fold "
                    f"(more than {limits.max_ratio:.0f}x: a zip bomb, not DICOM)."
                )
    return n_files, n_bytes


def _write_new(path: Path, chunks, budget: int, what: str) -> int:
    """Write ``chunks`` to a file that must not exist; returns the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with open(path, "xb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > budget:
                    raise UploadError(
                        f"refused: {what} is larger than its header says; extraction stopped."
                    )
                out.write(chunk)
    except FileExistsError:
        raise UploadError(
            f"refused: '{what}' appears twice in the upload; nothing is overwritten."
        ) from None
    return written


def extract_zip(data: bytes, dest: Path, limits: UploadLimits, *, label: str = "archive",
                files_before: int = 0, bytes_before: int = 0) -> tuple[int, int]:
    """Check, then extract a zip archive (bytes) into ``dest``; returns updated totals."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UploadError(f"refused: {label} is not a readable zip archive.") from None
    with archive:
        totals = check_zip(archive, limits, label=label, files_before=files_before,
                           bytes_before=bytes_before)
        dest = Path(dest)
        for info in archive.infolist():
            if info.is_dir():
                continue
            target = dest / safe_relative_path(info.filename)

            def chunks(info=info):
                with archive.open(info) as member:
                    while block := member.read(_CHUNK):
                        yield block

            try:
                _write_new(target, chunks(), info.file_size, f"'{info.filename}' in {label}")
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
                raise UploadError(
                    f"refused: '{info.filename}' in {label} cannot be extracted ({exc})."
                ) from None
    return totals


def save_upload(contents: Sequence[str], filenames: Sequence[str], dest: str | Path,
                limits: UploadLimits = UploadLimits()) -> list[Path]:
    """Store the files of one ``dcc.Upload`` event (data URLs) in the empty folder ``dest``.

    ``.zip`` files are checked and extracted into a sub-folder named after the archive; other
    files (a folder upload keeps its relative paths in ``filenames``) are written under their
    checked relative path. Caps are applied to the whole upload before anything is written.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    UploadError
        Nothing was uploaded, a cap is exceeded, a name is unsafe, or an archive is refused.
        Files written before the error stay in ``dest``; the caller removes the folder.
    """
    if isinstance(contents, str):
        contents, filenames = [contents], [filenames]
    if not contents:
        raise UploadError("nothing was uploaded.")
    if len(contents) != len(filenames):
        raise UploadError("the upload is incomplete (file names and contents differ).")
    total = sum(decoded_size(c) for c in contents)
    if total > limits.max_upload_bytes:
        raise UploadError(
            f"refused: the upload is {_mb(total)}, more than the {_mb(limits.max_upload_bytes)} "
            "cap; upload one patient (CT, RTSTRUCT, RTPLAN, RTDOSE) as a zip."
        )
    if len(contents) > limits.max_files:
        raise UploadError(f"refused: more than {limits.max_files} files in one upload.")
    relpaths = [safe_relative_path(name) for name in filenames]
    dest = Path(dest)
    written: list[Path] = []
    n_files = n_bytes = 0
    for data_url, name, rel in zip(contents, filenames, relpaths):
        data = decode_data_url(data_url, name)
        if rel.suffix.lower() == ".zip":
            before = set(dest.rglob("*"))
            sub = dest / rel.with_suffix("")
            n_files, n_bytes = extract_zip(data, sub, limits, label=f"'{name}'",
                                           files_before=n_files, bytes_before=n_bytes)
            written += sorted(p for p in set(dest.rglob("*")) - before if p.is_file())
        else:
            n_files += 1
            n_bytes += len(data)
            if n_files > limits.max_files:
                raise UploadError(f"refused: more than {limits.max_files} files in one upload.")
            if n_bytes > limits.max_uncompressed_bytes:
                raise UploadError(
                    f"refused: the upload unpacks to more than "
                    f"{_mb(limits.max_uncompressed_bytes)}."
                )
            target = dest / rel
            _write_new(target, [data], len(data), f"'{name}'")
            written.append(target)
    return written
