"""Installed models (issue 15): the catalog of bundle folders, installing a verified .zip, the MODEL choice of
the task algorithms, and rsrestore:models / rsrestore:install_model through Processing and qgis_process."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from rscore.bundle.catalog import find_bundles, install_zip
from rscore.bundle.manifest import BundleError
from tests.conftest import run_qgis_process

ROOT = Path(__file__).resolve().parents[1]


def _bundle_zip(tmp: Path, src: Path, name: str, task: str, top_folder: bool = True) -> Path:
    """A zip of a copy of ``src`` renamed ``name`` for ``task`` (the manifest only: stage checksums still hold)."""
    d = tmp / "src" / name
    shutil.copytree(src, d)
    m = json.loads((d / "manifest.json").read_text())
    m.update(name=name, task=task)
    (d / "manifest.json").write_text(json.dumps(m))
    zp = tmp / f"{name}.zip"
    with zipfile.ZipFile(zp, "w") as zf:
        for f in d.iterdir():
            zf.write(f, f"{name}/{f.name}" if top_folder else f.name)
    return zp


def test_find_bundles_orders_roots_and_filters_by_task(tmp_path, bundles):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(bundles["toy-ldcsr"], a / "toy-ldcsr")
    shutil.copytree(bundles["toy-ldcsr"], b / "toy-ldcsr")  # the same name in a later root is hidden
    shutil.copytree(bundles["identity"], b / "identity")
    (b / "broken").mkdir()
    (b / "broken" / "manifest.json").write_text("{not json")
    found = find_bundles([("shipped", a), ("user", b), ("missing", tmp_path / "none")])
    assert [(e.name, e.origin) for e in found] == [("toy-ldcsr", "shipped"), ("broken", "user"), ("identity", "user")]
    assert found[1].manifest is None and "cannot read" in found[1].error
    assert found[0].checksum_status() == "ok" and found[0].size_bytes > 0
    assert find_bundles([("user", b)], task="super_resolve") == []


def test_install_zip_verifies_before_moving_into_place(tmp_path, bundles):
    dest = tmp_path / "models"
    zp = _bundle_zip(tmp_path, bundles["toy-ldcsr"], "my-sr", "super_resolve")
    folder = install_zip(zp, dest)
    assert folder == dest / "my-sr" and (folder / "manifest.json").is_file()
    with pytest.raises(BundleError, match="already installed .* OVERWRITE"):
        install_zip(zp, dest)
    assert install_zip(zp, dest, overwrite=True) == folder
    flat = _bundle_zip(tmp_path / "flat", bundles["toy-ldcsr"], "flat-sr", "super_resolve", top_folder=False)
    assert install_zip(flat, dest).name == "flat-sr"
    with pytest.raises(BundleError, match="shipped model is called 'my-sr'"):
        install_zip(zp, tmp_path / "other", reserved={"my-sr"})
    # a corrupt network file, a path outside the folder, not a zip: refused, nothing left behind
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(zp) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data + b"x" if info.filename.endswith(".onnx") else data)
    with pytest.raises(BundleError, match="fails its checksum"):
        install_zip(bad, tmp_path / "m2")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(BundleError, match="outside the bundle folder"):
        install_zip(evil, tmp_path / "m3")
    assert not (tmp_path / "escape.txt").exists()
    (tmp_path / "text.zip").write_text("hello")
    with pytest.raises(BundleError, match="not a zip file"):
        install_zip(tmp_path / "text.zip", tmp_path / "m4")
    for d in (tmp_path / "m2", tmp_path / "m3", tmp_path / "m4"):
        assert not d.exists() or list(d.iterdir()) == []


@pytest.mark.qgis
def test_install_then_choose_the_model_in_its_algorithm(qgis_app, bundles, tmp_path, monkeypatch):
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

    monkeypatch.setenv("RSRESTORE_MODELS_DIR", str(tmp_path / "user"))
    reg = QgsApplication.processingRegistry()
    zp = _bundle_zip(tmp_path, bundles["toy-ldcsr"], "my-sr", "super_resolve")
    ctx, fb = QgsProcessingContext(), QgsProcessingFeedback()
    res, ok = reg.algorithmById("rsrestore:install_model").run({"INPUT": str(zp)}, ctx, fb, {}, False)
    assert ok and Path(res["FOLDER"]) == tmp_path / "user" / "my-sr"
    with pytest.raises(QgsProcessingException, match="already installed"):
        reg.algorithmById("rsrestore:install_model").run({"INPUT": str(zp)}, ctx, fb, {}, False)
    reg.providerById("rsrestore").refreshAlgorithms()  # what the algorithm does after a run in QGIS
    sr = reg.algorithmById("rsrestore:super_resolve")
    assert "my-sr" in sr.parameterDefinition("MODEL").options()
    assert "my-sr" not in reg.algorithmById("rsrestore:dehaze").parameterDefinition("MODEL").options()
    from tests.fixtures import rasters

    lr = rasters.reflectance_uint16(tmp_path / "lr.tif", rows=20, cols=24)
    out = tmp_path / "sr.tif"
    _, ok = sr.run({"INPUT": str(lr), "MODEL": "my-sr", "SCALE": 2.0, "OUTPUT": str(out)}, ctx, fb, {}, False)
    assert ok and out.is_file()
    from osgeo import gdal

    assert gdal.Open(str(out)).GetMetadata("RSRESTORE")["BUNDLE"] == "my-sr"
    csv_path = tmp_path / "models.csv"
    res, ok = reg.algorithmById("rsrestore:models").run({"OUTPUT": str(csv_path)}, ctx, fb, {}, False)
    rows = {r["name"]: r for r in csv.DictReader(open(csv_path, encoding="utf-8"))}
    assert ok and res["COUNT"] == len(rows) >= 6
    assert rows["my-sr"]["origin"] == "user" and rows["my-sr"]["checksums"] == "ok"
    assert rows["dehaze-bgrn"]["origin"] == "shipped" and rows["dehaze-bgrn"]["algorithm"] == "rsrestore:dehaze"
    assert "dB" in rows["dehaze-bgrn"]["quality"] and rows["dehaze-bgrn"]["bands"] == "blue, green, red, nir"
    monkeypatch.delenv("RSRESTORE_MODELS_DIR")
    reg.providerById("rsrestore").refreshAlgorithms()


@pytest.mark.qgis
def test_models_and_model_choice_through_qgis_process(qgis_env, tmp_path):
    assert run_qgis_process(qgis_env, "plugins", "enable", "rsrestore").returncode == 0
    env = dict(qgis_env, RSRESTORE_MODELS_DIR=str(tmp_path / "user"))
    r = run_qgis_process(env, "run", "rsrestore:models", "--", "VERIFY=false")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "dehaze-bgrn (shipped): rsrestore:dehaze" in r.stdout + r.stderr
    r = run_qgis_process(env, "help", "rsrestore:dehaze")
    assert r.returncode == 0 and "dehaze-bgrn" in r.stdout and "dehaze-rgb" in r.stdout and "auto" in r.stdout
