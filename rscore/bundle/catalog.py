"""Installed model bundles: find them in a list of folders, describe them, install one from a ``.zip``.

A *models root* holds one folder per bundle (``<root>/<name>/manifest.json``). The plugin searches its own
``models/`` (the shipped bundles) and a user folder; the first root that has a name wins, so a user bundle
cannot shadow a shipped one (:func:`install_zip` refuses such names).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rscore.bundle.manifest import BundleError, Manifest
from rscore.bundle.store import MANIFEST_NAME, load_bundle

#: a zip whose members would expand beyond this is refused (a bundle is a few MB)
MAX_UNPACKED_BYTES = 2 << 30


@dataclass(frozen=True)
class CatalogEntry:
    """One bundle folder found under a models root.

    Attributes:
        name: the bundle's name (its manifest's, which is also its folder name for installed bundles).
        path: the bundle folder.
        origin: the label of the root it was found in (e.g. "shipped", "user").
        manifest: its manifest, or None when it cannot be read (``error`` says why).
        error: why the manifest cannot be read ("" when it can).
    """

    name: str
    path: Path
    origin: str
    manifest: Manifest | None
    error: str = ""

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def checksum_status(self) -> str:
        """"ok", or the reason the bundle fails its checksums (reads every file: call it when listing)."""
        try:
            load_bundle(self.path, verify=True)
        except BundleError as exc:
            return f"FAILED: {exc}"
        return "ok"


def find_bundles(roots: list[tuple[str, Path]], task: str | None = None) -> list[CatalogEntry]:
    """Bundles under each ``(origin, root)`` in order, sorted by name within a root; a name already found in an
    earlier root is skipped. ``task``: only bundles of that task (unreadable bundles are then left out)."""
    seen: set[str] = set()
    out: list[CatalogEntry] = []
    for origin, root in roots:
        if not root.is_dir():
            continue
        for d in sorted(p for p in root.iterdir() if (p / MANIFEST_NAME).is_file()):
            try:
                m: Manifest | None = load_bundle(d, verify=False).manifest
                err = ""
            except BundleError as exc:
                m, err = None, str(exc)
            name = m.name if m is not None else d.name
            if name in seen or (task is not None and (m is None or m.task != task)):
                continue
            seen.add(name)
            out.append(CatalogEntry(name, d, origin, m, err))
    return out


def _bundle_root_in(folder: Path) -> Path:
    """The folder holding manifest.json: ``folder`` itself or its single subfolder."""
    if (folder / MANIFEST_NAME).is_file():
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir()]
    if len(subs) == 1 and (subs[0] / MANIFEST_NAME).is_file():
        return subs[0]
    raise BundleError(f"the zip holds no {MANIFEST_NAME} at its top or in one top folder: it is not an rsrestore "
                      "model bundle")


def _safe_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    total = 0
    for info in members:
        p = PurePosixPath(info.filename)
        if p.is_absolute() or ".." in p.parts or info.filename.startswith("\\") or ":" in p.parts[0]:
            raise BundleError(f"the zip member {info.filename!r} points outside the bundle folder; refusing to "
                              "unpack it (the zip is damaged or malicious)")
        total += info.file_size
    if total > MAX_UNPACKED_BYTES:
        raise BundleError(f"the zip would unpack to {total / 2**30:.1f} GiB, more than any model bundle; refusing it")
    return members


def install_zip(zip_path: str | os.PathLike[str], dest_root: Path, reserved: set[str] = frozenset(),
                overwrite: bool = False) -> Path:
    """Verify a bundle ``.zip`` and install it as ``dest_root/<name>``; returns that folder.

    The zip is unpacked next to the destination, the bundle is loaded with every checksum verified, and only
    then moved into place (an existing bundle of that name is replaced only with ``overwrite``, and only once
    the new one is verified). ``reserved``: names that may not be installed (the shipped bundles').

    Raises:
        BundleError: not a zip, unsafe members, no manifest, failed checksums, a reserved or existing name.
    """
    zp = Path(zip_path)
    if not zp.is_file():
        raise BundleError(f"{zp} does not exist; choose a model bundle .zip file")
    if not zipfile.is_zipfile(zp):
        raise BundleError(f"{zp.name} is not a zip file; a model bundle is installed from a .zip of its folder")
    dest_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".install-", dir=dest_root))
    try:
        with zipfile.ZipFile(zp) as zf:
            zf.extractall(staging, _safe_members(zf))
        src = _bundle_root_in(staging)
        name = load_bundle(src, verify=True).manifest.name
        if not name or PurePosixPath(name).name != name or name.startswith("."):
            raise BundleError(f"the bundle's name {name!r} cannot be a folder name; re-export it with a plain name")
        if name in reserved:
            raise BundleError(f"a shipped model is called {name!r}; the bundle in {zp.name} cannot replace it: "
                              "re-export it under another name")
        final = dest_root / name
        if final.exists() and not overwrite:
            raise BundleError(f"a model {name!r} is already installed in {dest_root}; tick OVERWRITE to replace it")
        old = None
        if final.exists():
            old = dest_root / f".{name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        try:
            os.replace(src, final)
        except OSError:
            if old is not None:
                os.replace(old, final)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)
