"""Assemble the QGIS plugin folder and its ZIP.

    python3 tools/build_plugin.py            # -> build/rsrestore/ and dist/rsrestore.zip

The plugin is ``qgis_plugin/`` + ``metadata.txt`` + ``LICENSE`` + the torch-free runtime part of ``rscore``
+ the shipped model bundles in ``models/``. QGIS's "Install from ZIP" needs one top folder whose name is
the plugin's module name, holding ``__init__.py`` and ``metadata.txt``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rscore import RUNTIME_SUBPACKAGES  # noqa: E402

PLUGIN_NAME = "rsrestore"
# training_only.npz: weights only a training continuation reads (training/warm_start.py), not the runtime
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", "*.partial-*", "training_only.npz")


def build_folder(out_root: Path) -> Path:
    """Write ``out_root/rsrestore/`` afresh and return it."""
    dest = out_root / PLUGIN_NAME
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(ROOT / "qgis_plugin", dest, ignore=_SKIP)
    shutil.copy2(ROOT / "metadata.txt", dest / "metadata.txt")
    shutil.copy2(ROOT / "LICENSE", dest / "LICENSE")
    core = dest / "rscore"
    core.mkdir()
    shutil.copy2(ROOT / "rscore" / "__init__.py", core / "__init__.py")
    for sub in RUNTIME_SUBPACKAGES:
        shutil.copytree(ROOT / "rscore" / sub, core / sub, ignore=_SKIP)
    models = ROOT / "models"
    if models.is_dir():
        shutil.copytree(models, dest / "models", ignore=_SKIP)
        summary = ROOT / "docs" / "quality_summary.json"  # held-out figures for rsrestore:models
        if summary.is_file():
            shutil.copy2(summary, dest / "models" / "quality_summary.json")
    return dest


def build_zip(folder: Path, zip_path: Path) -> Path:
    """Zip ``folder`` with its name as the single top-level directory."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder.parent).as_posix())
    return zip_path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build")
    ap.add_argument("--zip", type=Path, default=ROOT / "dist" / f"{PLUGIN_NAME}.zip")
    ap.add_argument("--no-zip", action="store_true")
    args = ap.parse_args(argv)
    folder = build_folder(args.build_dir)
    print(f"plugin folder: {folder}")
    if not args.no_zip:
        print(f"plugin zip: {build_zip(folder, args.zip)}")


if __name__ == "__main__":
    main()
