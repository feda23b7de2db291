"""What every output carries (issue 15): red/green/blue colour interpretation, provenance in the RSRESTORE
metadata domain (readable with gdalinfo), internal overviews; and, in QGIS, a layer named after the input and
the operation with a true-colour renderer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from rscore.bundle.store import sha256_file
from rscore.raster.io import overview_factors
from rscore.runtime import RestoreRequest, restore
from tests.fixtures import rasters

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "models" / "demo-smooth-bgrn"


@pytest.fixture(scope="module")
def big_tif(tmp_path_factory) -> Path:
    """4-band uint16 reflectance, 600 x 520 px: one overview level (x2)."""
    return rasters.reflectance_uint16(tmp_path_factory.mktemp("outputs") / "scene.tif", rows=600, cols=520)


def test_overview_factors():
    assert overview_factors(255, 255) == [] and overview_factors(512, 300) == [2]
    assert overview_factors(10980, 10980) == [2, 4, 8, 16, 32]


def test_colour_interpretation_provenance_and_overviews(big_tif, tmp_path):
    out = tmp_path / "restored.tif"
    restore(RestoreRequest(str(big_tif), str(DEMO), str(out), seed=7, tile_size_px=256,
                           provenance={"ALGORITHM": "rsrestore:restore"}))
    ds = gdal.Open(str(out))
    ci = [gdal.GetColorInterpretationName(ds.GetRasterBand(b + 1).GetColorInterpretation()) for b in range(4)]
    assert ci == ["Blue", "Green", "Red", "Undefined"] and ds.GetRasterBand(4).GetDescription() == "nir"
    assert [ds.GetRasterBand(b + 1).GetOverviewCount() for b in range(4)] == [1] * 4
    assert ds.GetRasterBand(1).GetOverview(0).YSize == 300
    meta = ds.GetMetadata("RSRESTORE")
    assert meta["ALGORITHM"] == "rsrestore:restore" and meta["BUNDLE"] == "demo-smooth-bgrn"
    assert meta["BUNDLE_SHA256"] == sha256_file(DEMO / "manifest.json")
    assert meta["SEED"] == "7" and meta["TILE_SIZE_PX"] == "256" and meta["INPUT"] == "scene.tif"
    assert meta["INPUT_BANDS"] == "1,2,3,4" and meta["SCALE_FACTOR"] == "1" and meta["MASK"] == "none"
    assert meta["OUTPUT"] == "image" and meta["RSRESTORE_VERSION"] and meta["CREATED_UTC"].endswith("Z")
    json.loads(meta["OPTIONS"])
    assert not Path(str(out) + ".aux.xml").exists()  # everything inside the GeoTIFF
    info = subprocess.run(["gdalinfo", "-mdd", "RSRESTORE", str(out)], capture_output=True, text=True, check=True)
    assert "BUNDLE=demo-smooth-bgrn" in info.stdout and "ColorInterp=Red" in info.stdout
    assert "Overviews: 260x300" in info.stdout


@pytest.mark.parametrize("cog", [False, True])
def test_compression_threads_follow_the_run_and_change_no_pixel(big_tif, tmp_path, cog, monkeypatch):
    """A run on two threads compresses its outputs (and overviews) on two: the same pixels as one thread."""
    from rscore.raster import io

    seen = []
    real = io._creation_options

    def spy(data_type, compress_threads=1):  # noqa: ANN001, ANN202 - records what each output asked for
        seen.append(compress_threads)
        return real(data_type, compress_threads)

    monkeypatch.setattr(io, "_creation_options", spy)
    outs = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}.tif"
        restore(RestoreRequest(str(big_tif), str(DEMO), str(out), seed=7, tile_size_px=256, threads=threads, cog=cog))
        outs.append(gdal.Open(str(out)))
    assert set(seen[: len(seen) // 2]) == {1} and set(seen[len(seen) // 2 :]) == {2}
    assert "NUM_THREADS=2" in real("UInt16", 2) and not any("NUM_THREADS" in o for o in real("UInt16", 1))
    a, b = outs
    assert np.array_equal(a.ReadAsArray(), b.ReadAsArray())
    ov_a, ov_b = a.GetRasterBand(1).GetOverview(0), b.GetRasterBand(1).GetOverview(0)
    assert np.array_equal(ov_a.ReadAsArray(), ov_b.ReadAsArray())


def test_cloud_optimised_layout_keeps_pixels_provenance_and_atomicity(big_tif, tmp_path):
    """cog=True: a valid COG (checked with GDAL's own validator), the same pixels and overviews as the plain
    tiled output, the provenance as RSRESTORE_* default-domain items, and no temporary file left behind."""
    from osgeo_utils.samples.validate_cloud_optimized_geotiff import validate

    from rscore.raster.io import read_provenance

    plain, cog = tmp_path / "plain.tif", tmp_path / "cog.tif"
    restore(RestoreRequest(str(big_tif), str(DEMO), str(plain), seed=3))
    restore(RestoreRequest(str(big_tif), str(DEMO), str(cog), seed=3, cog=True))
    errors, warnings, _ = validate(str(cog), full_check=True)
    assert errors == [] and warnings == []
    a, b = gdal.Open(str(plain)), gdal.Open(str(cog))
    np.testing.assert_array_equal(a.ReadAsArray(), b.ReadAsArray())
    np.testing.assert_array_equal(a.GetRasterBand(1).GetOverview(0).ReadAsArray(),
                                  b.GetRasterBand(1).GetOverview(0).ReadAsArray())
    assert b.GetRasterBand(1).GetBlockSize() == [512, 512]
    assert gdal.GetColorInterpretationName(b.GetRasterBand(3).GetColorInterpretation()) == "Red"
    p_plain, p_cog = read_provenance(plain), read_provenance(cog)
    assert p_cog["BUNDLE"] == "demo-smooth-bgrn" and b.GetMetadataItem("RSRESTORE_SEED") == "3"
    assert (p_cog["COG"], p_plain["COG"]) == ("yes", "no")
    assert {k: v for k, v in p_cog.items() if k not in ("CREATED_UTC", "COG")} == {
        k: v for k, v in p_plain.items() if k not in ("CREATED_UTC", "COG")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cog.tif", "plain.tif"]


def test_qgis_layer_name_and_true_colour_renderer(qgis_app, big_tif, tmp_path):
    pytest.importorskip("qgis.core")
    from qgis.core import (
        QgsApplication,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProject,
        QgsRasterLayer,
    )

    from qgis_plugin.algorithms.layers import apply_true_colour, true_colour_bands

    out = tmp_path / "restored.tif"
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    context.setProject(QgsProject.instance())
    context.addLayerToLoadOnCompletion(str(out), QgsProcessingContext.LayerDetails("x", QgsProject.instance(),
                                                                                   "OUTPUT"))
    alg = QgsApplication.processingRegistry().algorithmById("rsrestore:restore")
    layer_in = QgsRasterLayer(str(big_tif), "Sentinel scene")
    QgsProject.instance().addMapLayer(layer_in)
    try:
        _, ok = alg.run({"INPUT": layer_in.id(), "MODEL": str(DEMO), "OUTPUT": str(out)}, context, feedback, {},
                        False)
        assert ok
        details = context.layerToLoadOnCompletionDetails(str(out))
        assert details.name == "Sentinel scene - restored"
        loaded = QgsRasterLayer(str(out), "as loaded")
        details.postProcessor().postProcessLayer(loaded, context, feedback)
        r = loaded.renderer()
        assert loaded.name() == "Sentinel scene - restored"
        assert (r.redBand(), r.greenBand(), r.blueBand()) == (3, 2, 1) == true_colour_bands(loaded)
        ce = r.redContrastEnhancement()
        ds = gdal.Open(str(out))  # keep the dataset alive while its band is read
        red = ds.GetRasterBand(3).ReadAsArray()
        assert np.percentile(red, 1) <= ce.minimumValue() < ce.maximumValue() <= np.percentile(red, 99.5)
    finally:
        QgsProject.instance().removeMapLayer(layer_in.id())
    plain = rasters.write(tmp_path / "plain.tif", np.round(rasters.scene(4, 20, 20) * 1e4))
    assert not apply_true_colour(QgsRasterLayer(str(plain), "plain"))  # no colour interpretation: left alone


def test_window_for_area_snaps_outwards_and_clips():
    from rscore.raster.extent import window_for_area
    from rscore.raster.io import RasterError

    gt = (500000.0, 10.0, 0.0, 4600000.0, 0.0, -10.0)
    aw = window_for_area("POLYGON((500015 4599985, 500100 4599985, 500100 4599900, 500015 4599900, 500015 4599985))",
                         gt, 100, 120)
    assert (aw.window.row_off, aw.window.col_off, aw.window.rows, aw.window.cols) == (1, 1, 9, 9)
    assert aw.covered_fraction == pytest.approx(1.0)
    edges = window_for_area("POLYGON((500000 4600000, 500100 4600000, 500100 4599900, 500000 4599900, 500000 "
                            "4600000))", gt, 100, 120)  # exactly on pixel edges: no extra pixel
    assert (edges.window.rows, edges.window.cols) == (10, 10)
    half = window_for_area("POLYGON((499900 4600000, 500100 4600000, 500100 4599900, 499900 4599900, 499900 "
                           "4600000))", gt, 100, 120)
    assert half.window.col_off == 0 and half.window.cols == 10 and half.covered_fraction == pytest.approx(0.5)
    with pytest.raises(RasterError, match="does not overlap"):
        window_for_area("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))", gt, 100, 120)
    with pytest.raises(RasterError, match="north-up"):
        window_for_area("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))", (0, 1, 0.1, 0, 0, -1), 10, 10)


def test_extent_in_another_crs_restores_only_that_window(qgis_app, big_tif, tmp_path):
    from osgeo import osr
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

    # the input's pixels (rows 100-149, cols 200-259) as a lon/lat extent, slightly inside the pixel edges
    utm, wgs = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32633)
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs = osr.CoordinateTransformation(utm, wgs)
    x0, y1 = 500000.0 + 200 * 10 + 3, 4600000.0 - 100 * 10 - 3
    x1, y0 = 500000.0 + 260 * 10 - 3, 4600000.0 - 150 * 10 + 3
    lons, lats = zip(*[to_wgs.TransformPoint(x, y)[:2] for x in (x0, x1) for y in (y0, y1)])
    # a lon/lat box around the UTM rectangle is a little larger than it: allow one pixel of growth per side
    extent = f"{min(lons)},{max(lons)},{min(lats)},{max(lats)} [EPSG:4326]"
    alg = QgsApplication.processingRegistry().algorithmById("rsrestore:restore")
    out = tmp_path / "window.tif"
    _, ok = alg.run({"INPUT": str(big_tif), "MODEL": str(DEMO), "EXTENT": extent, "OUTPUT": str(out)},
                    QgsProcessingContext(), QgsProcessingFeedback(), {}, False)
    assert ok
    ds = gdal.Open(str(out))
    gt = ds.GetGeoTransform()
    col0, row0 = round((gt[0] - 500000.0) / 10), round((4600000.0 - gt[3]) / 10)
    assert 199 <= col0 <= 200 and 99 <= row0 <= 100 and gt[1] == 10.0 and gt[5] == -10.0
    assert 60 <= ds.RasterXSize <= 62 and 50 <= ds.RasterYSize <= 52
    meta = ds.GetMetadata("RSRESTORE")
    assert meta["INPUT"] == "scene.tif" and meta["WINDOW"].startswith(f"col {col0}, row {row0}")
    full = tmp_path / "full.tif"
    restore(RestoreRequest(str(big_tif), str(DEMO), str(full)))
    inner = gdal.Open(str(full)).ReadAsArray(col0 + 16, row0 + 16, 20, 10)
    # away from the window's edges the pixels are the full run's (to a rounding step: tiles lie elsewhere)
    assert np.abs(ds.ReadAsArray(16, 16, 20, 10).astype(int) - inner).max() <= 1
    with pytest.raises(QgsProcessingException, match="does not overlap the input raster"):
        alg.run({"INPUT": str(big_tif), "MODEL": str(DEMO), "EXTENT": "10,11,10,11 [EPSG:4326]",
                 "OUTPUT": str(tmp_path / "none.tif")}, QgsProcessingContext(), QgsProcessingFeedback(), {}, False)
    assert not (tmp_path / "none.tif").exists()
