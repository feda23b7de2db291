"""The ``rsrestore`` command line: parameters shared with the plugin, ``run``, and ``batch`` on a real Dask
LocalCluster (a corrupt scene, a killed worker, a resumed batch)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from rscore.cli.batch import expand_inputs, output_paths
from rscore.cli.main import main, parse_params
from rscore.raster.io import read_provenance
from rscore.runtime.algorithms import SPECS, RequestError, build_request
from tests.fixtures import rasters

ROOT = Path(__file__).resolve().parents[1]
#: provenance keys that legitimately differ between two runs (time, execution provider message)
VOLATILE = {"CREATED_UTC", "EXECUTION"}


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python3 -m rscore.cli ARGS`` in a subprocess, as a user types it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "rscore.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


def _scenes(folder: Path, n: int, rows: int = 96, cols: int = 112) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [rasters.reflectance_uint16(folder / f"scene{i}.tif", rows=rows, cols=cols, seed=i) for i in range(n)]


def _same_raster(a: Path, b: Path) -> None:
    da, db = gdal.Open(str(a)), gdal.Open(str(b))
    np.testing.assert_array_equal(da.ReadAsArray(), db.ReadAsArray())
    assert da.GetGeoTransform() == db.GetGeoTransform() and da.GetProjection() == db.GetProjection()
    assert [da.GetRasterBand(i + 1).DataType for i in range(da.RasterCount)] == \
        [db.GetRasterBand(i + 1).DataType for i in range(db.RasterCount)]


# ---- parameters ----------------------------------------------------------------------------------------------
def test_params_parse_by_kind_and_refuse_unknown_names():
    spec = SPECS["remove_clouds"]
    values, extent = parse_params(spec, ["steps=3", "ETA=0.5", "auto_mask=no", "BANDS=3,2,1,4",
                                         "EXTENT=1,2,3,4 [EPSG:32633]"])
    assert values == {"STEPS": 3, "ETA": 0.5, "AUTO_MASK": False, "BANDS": [3, 2, 1, 4]}
    assert extent == "1,2,3,4 [EPSG:32633]"
    for bad, why in ((["STEPS=0"], "between 1 and 1000"), (["ETA=high"], "not a number"),
                     (["SCALE=2"], "no parameter SCALE"), (["DEVICE=tpu"], "one of auto, cpu, cuda"),
                     (["COG=maybe"], "true or false"), (["INPUT=a.tif"], "--input"), (["STEPS"], "NAME=VALUE")):
        with pytest.raises(RequestError, match=why):
            parse_params(spec, bad)


def test_build_request_follows_the_task_rules(tmp_path, bgrn_tif):
    """The rules the plugin applies (model by band count, scale from a target resolution, ETA as an option)."""
    r = build_request(SPECS["super_resolve"], {"INPUT": str(bgrn_tif), "OUTPUT": str(tmp_path / "o.tif"),
                                               "TARGET_RESOLUTION": 5.0}).request
    px = abs(gdal.Open(str(bgrn_tif)).GetGeoTransform()[1])
    assert r.scale_factor == pytest.approx(px / 5.0) and Path(r.bundle_path).name == "sr-bgrn"
    assert r.provenance == {"ALGORITHM": "rsrestore:super_resolve"}
    res = build_request(SPECS["remove_clouds"], {"INPUT": str(bgrn_tif), "OUTPUT": str(tmp_path / "o.tif"),
                                                 "ETA": 0.4, "SAMPLES": 2})
    assert res.request.options == {"weight_floor": 0.4} and res.request.auto_mask and res.request.samples == 2
    with pytest.raises(RequestError, match="needs 4 bands"):
        build_request(SPECS["dehaze"], {"INPUT": str(bgrn_tif), "OUTPUT": "o.tif", "BANDS": [1, 2]})


def test_building_a_request_reads_the_manifest_without_hashing_the_networks(tmp_path, bgrn_tif, monkeypatch):
    """The task hooks read the bundle's manifest only: the run verifies every file's checksum before it computes
    anything, so hashing the networks while building the request read each of them once more."""
    import rscore.bundle.store as store

    hashed = []
    real = store.sha256_file
    monkeypatch.setattr(store, "sha256_file", lambda path: hashed.append(Path(path).name) or real(path))
    res = build_request(SPECS["remove_clouds"], {"INPUT": str(bgrn_tif), "OUTPUT": str(tmp_path / "o.tif")})
    assert Path(res.request.bundle_path).name == "clouds-bgrn" and hashed == []


def test_cli_lists_algorithms_and_reports_bad_input(tmp_path, capsys):
    assert main(["algorithms"]) == 0
    listed = capsys.readouterr().out
    assert all(f"rsrestore:{name}" in listed for name in SPECS)
    assert main(["run", "sharpen", "--input", "a.tif", "--output", "b.tif"]) == 2
    assert "unknown algorithm 'sharpen'" in capsys.readouterr().err
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a raster")
    assert main(["run", "dehaze", "--input", str(bad), "--output", str(tmp_path / "o.tif"), "-q"]) == 1
    assert "not a raster GDAL can read" in capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()


def test_run_refuses_to_replace_an_output_without_overwrite(tmp_path, bgrn_tif, capsys):
    out = tmp_path / "o.tif"
    out.write_bytes(b"precious")
    args = ["run", "dehaze", "--input", str(bgrn_tif), "--output", str(out), "-p", "STEPS=1", "-q"]
    assert main(args) == 1 and "pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert main([*args, "--overwrite"]) == 0
    assert read_provenance(out)["ALGORITHM"] == "rsrestore:dehaze"


def test_batch_inputs_and_output_names(tmp_path, monkeypatch):
    a, b = (str(p) for p in _scenes(tmp_path / "a", 2))
    lst = tmp_path / "list.txt"
    lst.write_text(f"# scenes\n{a}\n{Path(b).relative_to(tmp_path)}\n/vsicurl/https://example.org/c.tif\n")
    assert expand_inputs([str(lst)]) == [a, b, "/vsicurl/https://example.org/c.tif"]
    monkeypatch.chdir(tmp_path)
    assert expand_inputs(["a/*.tif", f"@{lst}"]) == [a, b, "/vsicurl/https://example.org/c.tif"]  # absolute
    with pytest.raises(RequestError, match="matches no file"):
        expand_inputs([str(tmp_path / "none" / "*.tif")])
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(RequestError, match="names no raster"):
        expand_inputs([str(tmp_path / "empty.txt")])
    (tmp_path / "c").mkdir()
    twin = str(rasters.reflectance_uint16(tmp_path / "c" / Path(a).name))
    with pytest.raises(RequestError, match="would both write"):
        output_paths([a, twin], tmp_path / "out", "")
    with pytest.raises(RequestError, match="would replace input"):
        output_paths([a], Path(a).parent, "")
    assert output_paths([a], Path("out"), "_x") == [str(tmp_path / "out" / "scene0_x.tif")]


def test_batch_refuses_bad_parameters_before_starting_a_cluster(tmp_path):
    _scenes(tmp_path / "in", 1)
    for extra, why in ((["-p", "MODEL=no-such-model"], "not installed"),
                       (["-p", "MASK=/nonexistent/mask.tif"], "MASK /nonexistent/mask.tif does not exist"),
                       (["--report", str(tmp_path / "r.csv")], "must end in .json"),
                       (["-p", "ETA=nan"], "finite number")):
        r = _cli("batch", "remove_clouds", "--inputs", str(tmp_path / "in" / "*.tif"), "--output-dir",
                 str(tmp_path / "out"), *extra, timeout=60)
        assert r.returncode == 2 and why in r.stderr, (extra, r.stderr)
    assert not (tmp_path / "out").exists()


def test_resume_compares_provenance_both_ways(tmp_path, bgrn_tif):
    """An output made over an EXTENT, or as a plain GeoTIFF, is not what a whole-raster or COG run makes."""
    from rscore.cli.scene import SceneJob, run_scene

    out = tmp_path / "o.tif"
    gt = gdal.Open(str(bgrn_tif)).GetGeoTransform()
    extent = f"{gt[0] + 200},{gt[0] + 800},{gt[3] - 800},{gt[3] - 200}"
    base = {"INPUT": str(bgrn_tif), "OUTPUT": str(out), "STEPS": 1}
    assert run_scene(SceneJob("dehaze", base, extent, resume=True)).status == "done"
    again = run_scene(SceneJob("dehaze", base, extent, resume=True))
    assert again.status == "skipped"
    whole = run_scene(SceneJob("dehaze", base, None, resume=True))
    assert whole.status == "failed" and "WINDOW" in whole.error
    cog = run_scene(SceneJob("dehaze", {**base, "COG": True}, extent, resume=True))
    assert cog.status == "failed" and "COG" in cog.error
    assert run_scene(SceneJob("dehaze", base, None, overwrite=True, resume=True)).status == "done"
    assert "WINDOW" not in read_provenance(out)


def test_run_never_replaces_an_existing_uncertainty_output(tmp_path, bgrn_tif, capsys):
    unc = tmp_path / "std.tif"
    unc.write_bytes(b"keep me")
    args = ["run", "remove_clouds", "--input", str(bgrn_tif), "--output", str(tmp_path / "o.tif"), "-q",
            "-p", "SAMPLES=2", "-p", f"UNCERTAINTY_OUTPUT={unc}", "-p", "STEPS=1"]
    assert main(args) == 1 and "pass --overwrite" in capsys.readouterr().err
    assert unc.read_bytes() == b"keep me" and not (tmp_path / "o.tif").exists()


# ---- the CLI and the Processing algorithm ---------------------------------------------------------------------
@pytest.mark.qgis
@pytest.mark.parametrize(("algorithm", "params"), [("dehaze", {"STEPS": 2, "SEED": 7}),
                                                   ("super_resolve", {"SCALE": 2.0, "STEPS": 1})])
def test_cli_output_equals_processing_output(qgis_app, tmp_path, bgrn_tif, algorithm, params):
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback

    alg = QgsApplication.processingRegistry().algorithmById(f"rsrestore:{algorithm}")
    q_out, c_out = tmp_path / "qgis.tif", tmp_path / "cli.tif"
    res, ok = alg.run({"INPUT": str(bgrn_tif), **params, "OUTPUT": str(q_out)}, QgsProcessingContext(),
                      QgsProcessingFeedback())
    assert ok and Path(res["OUTPUT"]) == q_out
    assert main(["run", algorithm, "--input", str(bgrn_tif), "--output", str(c_out), "-q",
                 *[f"--param={k}={v}" for k, v in params.items()]]) == 0
    _same_raster(q_out, c_out)
    pq, pc = read_provenance(q_out), read_provenance(c_out)
    assert {k: v for k, v in pq.items() if k not in VOLATILE} == {k: v for k, v in pc.items() if k not in VOLATILE}


@pytest.mark.qgis
def test_validation_registers_no_extra_temporary_output(qgis_app, bgrn_tif):
    """checkParameterValues must not resolve a temporary output (each resolution registers a layer to load)."""
    from qgis.core import (
        QgsApplication,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingOutputLayerDefinition,
        QgsProject,
    )

    alg = QgsApplication.processingRegistry().algorithmById("rsrestore:dehaze")
    ctx = QgsProcessingContext()
    ctx.setProject(QgsProject.instance())
    # what the dialog passes with "Open output file after running algorithm" ticked
    params = {"INPUT": str(bgrn_tif), "STEPS": 1,
              "OUTPUT": QgsProcessingOutputLayerDefinition("TEMPORARY_OUTPUT", QgsProject.instance())}
    ok, msg = alg.checkParameterValues(params, ctx)
    assert ok, msg
    res, ok = alg.run(params, ctx, QgsProcessingFeedback())
    assert ok
    loads = list(ctx.layersToLoadOnCompletion())
    assert loads == [res["OUTPUT"]] and Path(loads[0]).exists()


@pytest.mark.qgis
def test_plugin_parameters_are_the_specs(qgis_app):
    """Every restoration algorithm in the Toolbox has exactly its spec's parameters, defaults and ranges."""
    from qgis.core import QgsApplication

    for name, spec in SPECS.items():
        alg = QgsApplication.processingRegistry().algorithmById(spec.id)
        assert alg is not None, name
        defs = {d.name(): d for d in alg.parameterDefinitions()}
        assert list(defs) == [p.name for p in spec.params], name
        for p in spec.params:
            d = defs[p.name]
            assert bool(d.flags() & d.FlagOptional) == p.optional, (name, p.name)
            assert bool(d.flags() & d.FlagAdvanced) == p.advanced, (name, p.name)
            if p.kind in ("int", "float"):
                assert d.defaultValue() == p.default, (name, p.name)
                if p.minimum is not None:
                    assert d.minimum() == p.minimum, (name, p.name)
                if p.maximum is not None:
                    assert d.maximum() == p.maximum, (name, p.name)
            if p.kind == "enum":
                assert list(d.options()) == list(p.choices), (name, p.name)


# ---- batch on a LocalCluster ---------------------------------------------------------------------------------
def test_batch_survives_a_corrupt_scene_and_resumes_without_repeating_work(tmp_path):
    scenes = _scenes(tmp_path / "in", 5)
    (tmp_path / "in" / "scene5.tif").write_bytes(b"II*\x00 truncated")  # a corrupt sixth scene
    out = tmp_path / "out"
    # an interrupted first batch: only three scenes got done
    first = _cli("batch", "dehaze", "--inputs", str(tmp_path / "in" / "scene[0-2].tif"), "--output-dir", str(out),
                 "--workers", "2", "-p", "STEPS=2", "-q")
    assert first.returncode == 0, first.stderr
    done_first = {p.name: p.stat().st_mtime_ns for p in out.glob("scene*.tif")}
    assert sorted(done_first) == ["scene0.tif", "scene1.tif", "scene2.tif"]

    r = _cli("batch", "dehaze", "--inputs", str(tmp_path / "in" / "*.tif"), "--output-dir", str(out),
             "--workers", "2", "-p", "STEPS=2")
    assert r.returncode == 1, r.stderr  # one scene failed
    report = json.loads((out / "rsrestore-batch.json").read_text())
    status = {Path(s["scene"]).name: s["status"] for s in report["scenes"]}
    assert status == {"scene0.tif": "skipped", "scene1.tif": "skipped", "scene2.tif": "skipped",
                      "scene3.tif": "done", "scene4.tif": "done", "scene5.tif": "failed"}
    bad = next(s for s in report["scenes"] if s["status"] == "failed")
    assert "scene5.tif" in bad["error"] and "GDAL" in bad["error"]
    assert report["counts"] == {"done": 2, "skipped": 3, "failed": 1} and report["workers"] == 2
    assert (out / "rsrestore-batch.csv").read_text().count("\n") == 7
    assert "3 skipped" in r.stdout and "1 failed" in r.stdout
    # the skipped outputs were not rewritten, the new ones match a single run
    assert all((out / n).stat().st_mtime_ns == t for n, t in done_first.items())
    assert main(["run", "dehaze", "--input", str(scenes[3]), "--output", str(tmp_path / "one.tif"), "-q",
                 "-p", "STEPS=2", "--threads", "1"]) == 0
    _same_raster(out / "scene3.tif", tmp_path / "one.tif")
    assert not list(out.glob(".*partial*"))
    # other settings on existing outputs: refused (not silently replaced), unless --overwrite
    r = _cli("batch", "dehaze", "--inputs", str(scenes[0]), "--output-dir", str(out), "-p", "STEPS=3", "-q",
             "--workers", "1")
    assert r.returncode == 1 and "STEPS differ" in r.stdout


def test_batch_reschedules_the_scene_of_a_killed_worker(tmp_path):
    scenes = _scenes(tmp_path / "in", 6, rows=448, cols=448)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "rscore.cli", "batch", "dehaze", "--inputs",
                             str(tmp_path / "in" / "*.tif"), "--output-dir", str(out), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    killed, victim = None, None
    deadline = time.time() + 240
    while proc.poll() is None and killed is None and time.time() < deadline:
        for f in out.glob(".scene*.partial-*") if out.is_dir() else ():
            m = re.match(r"^\.(scene\d+)\.partial-(\d+)-", f.name)
            if m:
                victim, killed = m[1], int(m[2])
                os.kill(killed, signal.SIGKILL)  # a worker dies while it writes a scene
                break
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=300)
    assert killed is not None, "no scene was caught mid-write: " + stderr
    assert proc.returncode == 0, stdout + stderr
    report = json.loads((out / "rsrestore-batch.json").read_text())
    assert [s["status"] for s in report["scenes"]] == ["done"] * 6
    assert not list(out.glob(".*partial*")), "a half-written file was left behind"
    ref = tmp_path / "ref.tif"
    src = scenes[int(victim.removeprefix("scene"))]
    assert main(["run", "dehaze", "--input", str(src), "--output", str(ref), "-q", "--threads", "1"]) == 0
    _same_raster(out / f"{victim}.tif", ref)
