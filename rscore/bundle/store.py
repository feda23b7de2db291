"""Reading and writing bundle directories (``manifest.json`` + ONNX files), with SHA-256 checks."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from rscore.bundle.manifest import BundleError, Manifest

MANIFEST_NAME = "manifest.json"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk."""

    root: Path
    manifest: Manifest

    def stage_path(self, stage: str) -> Path:
        return self.root / self.manifest.stages[stage].file


def load_bundle(path: str | os.PathLike[str], verify: bool = True) -> Bundle:
    """Load a bundle directory (or its ``manifest.json``) and verify every file's checksum.

    Raises:
        BundleError: missing directory/manifest/file, malformed manifest, or checksum mismatch.
    """
    p = Path(path)
    if p.name == MANIFEST_NAME:
        p = p.parent
    manifest_path = p / MANIFEST_NAME
    if not p.exists():
        raise BundleError(f"model bundle {str(p)!r} does not exist; choose a bundle directory containing {MANIFEST_NAME}")
    if not manifest_path.is_file():
        raise BundleError(f"{str(p)!r} is not a model bundle: it has no {MANIFEST_NAME}")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read {manifest_path}: {exc}; the bundle is corrupt, reinstall or re-export it") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{manifest_path} is not a JSON object; the bundle is corrupt")
    manifest = Manifest.from_dict(data)
    if verify:
        for name, stage in manifest.stages.items():
            f = p / stage.file  # a plain file name: checked by Manifest
            if not f.is_file():
                raise BundleError(f"bundle {p.name!r} is incomplete: stage {name!r} file {stage.file!r} is missing")
            digest = sha256_file(f)
            if digest != stage.sha256:
                raise BundleError(
                    f"bundle {p.name!r}: {stage.file} fails its checksum (expected {stage.sha256[:12]}..., "
                    f"got {digest[:12]}...); the file is corrupt or was modified, reinstall or re-export the bundle"
                )
    return Bundle(root=p, manifest=manifest)


def write_bundle(root: str | os.PathLike[str], manifest: Manifest) -> Bundle:
    """Write ``manifest.json`` for stage files already in ``root``, filling in their checksums."""
    r = Path(root)
    stages = {k: replace(v, sha256=sha256_file(r / v.file)) for k, v in manifest.stages.items()}
    m = replace(manifest, stages=stages)
    (r / MANIFEST_NAME).write_text(json.dumps(m.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return load_bundle(r)
