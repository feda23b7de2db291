"""The plugin ZIP that QGIS's "Install from ZIP" accepts."""

from __future__ import annotations

import configparser
import re
import zipfile

from tools.build_plugin import _SKIP, build_folder, build_zip

REQUIRED = ("name", "qgisMinimumVersion", "description", "version", "author", "email", "about", "repository",
            "tracker")


def test_zip_layout_metadata_and_no_torch(tmp_path):
    folder = build_folder(tmp_path / "build")
    (folder / "__pycache__").mkdir(exist_ok=True)  # a cache created by a previous import must not ship
    (folder / "__pycache__" / "x.pyc").write_bytes(b"")
    zpath = build_zip(build_folder(tmp_path / "build"), tmp_path / "rsrestore.zip")
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
        assert {n.split("/")[0] for n in names} == {"rsrestore"}
        assert "rsrestore/__init__.py" in names and "rsrestore/metadata.txt" in names
        assert "rsrestore/LICENSE" in names
        assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
        for sub in ("diffusion", "tiling", "raster", "bundle", "runtime"):
            assert f"rsrestore/rscore/{sub}/__init__.py" in names
        assert not [n for n in names if n.startswith(("rsrestore/rscore/models", "rsrestore/rscore/torch_ops"))]
        assert "rsrestore/models/demo-smooth-bgrn/manifest.json" in names
        for n in names:
            if n.endswith(".py"):
                src = zf.read(n).decode()
                assert not re.search(r"^\s*(import|from)\s+torch\b", src, re.M), f"{n} imports torch"
        meta = configparser.ConfigParser()
        meta.read_string(zf.read("rsrestore/metadata.txt").decode())
    g = meta["general"]
    for key in REQUIRED:
        assert g.get(key), f"metadata.txt lacks {key}"
    assert g["name"] == "rsrestore"
    assert g["qgisMinimumVersion"] == "3.22"
    assert g["hasProcessingProvider"] == "yes"
    assert re.fullmatch(r"\d+\.\d+\.\d+", g["version"])


def test_training_only_weights_stay_out_of_the_plugin(tmp_path):
    """A bundle's training_only.npz (weights only a training continuation reads) is not copied into the plugin."""
    assert _SKIP(str(tmp_path), ["manifest.json", "cond.onnx", "training_only.npz"]) == {"training_only.npz"}
