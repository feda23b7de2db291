"""The main job on the shipped sample data and models, through qgis_process (what a user would run).

    python3 tools/demo.py --out out          (called by `make demo` after installing the plugin)

Writes the restored GeoTIFFs and PNG side-by-side quicklooks (input | output) under ``out/``, checks that
each output kept the input's CRS, geotransform, band count and data type (super-resolution: the exact finer
grid), and prints a summary. The super-resolution example starts from the Sentinel-2 sample averaged to 40 m,
so its picture shows bicubic | super-resolved | the 10 m truth; the reference-based one super-resolves a 40 m
rendering of a November scene with the July acquisition of the same place as its reference; the codec examples
compress an 8-bit true-colour rendering of the Sentinel-2 sample (JPEG q20 in a GeoTIFF) and the sample itself
(JPEG 2000 at 1:64) with ``rsrestore:compress_raster`` and enhance them. Last, the ``rsrestore batch`` command
dehazes the two Sentinel-2 samples on a Dask LocalCluster into ``out/batch/``. Runs with QGIS's own Python (no
torch).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
QGIS_PROCESS = ROOT / "tools" / "qgis_process"


@dataclass(frozen=True)
class DemoJob:
    """One qgis_process run of the demo."""

    name: str
    algorithm: str
    input: Path
    params: dict[str, str]
    rgb_bands: tuple[int, int, int]  # 1-based red, green, blue bands for the quicklook
    scale: float = 1.0  # output pixels per input pixel (super-resolution)
    truth: Path | None = None  # for a super-resolution example: the high-resolution raster the input came from


JOBS = (
    DemoJob(
        name="s2_dehazed",
        algorithm="rsrestore:dehaze",
        input=ROOT / "data" / "samples" / "s2_hazy_bgrn_512.tif",
        params={"SEED": "0"},
        rgb_bands=(3, 2, 1),
    ),
    DemoJob(
        name="l8_clouds_removed",
        algorithm="rsrestore:remove_clouds",
        input=ROOT / "data" / "samples" / "l8_cloudy_refl_bgrn.tif",
        params={"MASK": str(ROOT / "data" / "samples" / "l8_cloud_mask.tif"), "SEED": "0"},
        rgb_bands=(3, 2, 1),
    ),
    DemoJob(
        name="l8_clouds_auto_mask",
        algorithm="rsrestore:remove_clouds",
        input=ROOT / "data" / "samples" / "l8_cloudy_refl_bgrn.tif",
        params={"SEED": "0"},  # no MASK: the model finds the cloudy pixels itself (AUTO_MASK, the default)
        rgb_bands=(3, 2, 1),
    ),
    DemoJob(
        name="s2_demo_smooth",
        algorithm="rsrestore:restore",
        input=ROOT / "data" / "samples" / "s2_l1c_bgrn_512.tif",
        params={"MODEL": str(ROOT / "models" / "demo-smooth-bgrn"), "SEED": "0"},
        rgb_bands=(3, 2, 1),
    ),
)


def stretch(ds: gdal.Dataset, bands: tuple[int, int, int], lo_hi: list[tuple[float, float]] | None
            ) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """8-bit RGB with a 2-98 % stretch per band (``lo_hi`` reuses a given stretch instead)."""
    arr = np.stack([ds.GetRasterBand(b).ReadAsArray().astype(np.float64) for b in bands])
    if lo_hi is None:
        lo_hi = [tuple(np.percentile(a, (2, 98))) for a in arr]
    out = np.stack([np.clip((a - lo) / max(hi - lo, 1e-9), 0, 1) for a, (lo, hi) in zip(arr, lo_hi)])
    return (out * 255).round().astype(np.uint8), lo_hi


def save_panels(panels: list[np.ndarray], png: Path, gap_px: int = 8) -> None:
    """8-bit RGB panels of equal height side by side, white gaps between them, as a PNG."""
    gap = np.full((3, panels[0].shape[1], gap_px), 255, np.uint8)
    img = np.concatenate([part for i, p in enumerate(panels) for part in ([gap, p] if i else [p])], axis=2)
    mem = gdal.GetDriverByName("MEM").Create("", img.shape[2], img.shape[1], 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(img[i])
    gdal.GetDriverByName("PNG").CreateCopy(str(png), mem)
    Path(str(png) + ".aux.xml").unlink(missing_ok=True)


def quicklook(inp: Path, outp: Path, bands: tuple[int, int, int], png: Path) -> None:
    # each panel with its own stretch: a dehazed output is much darker than its hazy input
    save_panels([stretch(gdal.Open(str(p)), bands, None)[0] for p in (inp, outp)], png)


def _coarse(truth: Path, out_dir: Path, stem: str, factor: int) -> tuple[Path, Path]:
    """(``truth`` cropped to a multiple of ``factor`` pixels, that crop area-averaged by ``factor``), under
    ``out_dir``: a coarser sensor's view of the same ground, and the truth on its exact finer grid."""
    src = gdal.Open(str(truth))
    cols, rows = src.RasterXSize // factor * factor, src.RasterYSize // factor * factor
    hr = truth
    if (cols, rows) != (src.RasterXSize, src.RasterYSize):
        hr = out_dir / f"{stem}_truth.tif"
        gdal.Translate(str(hr), src, srcWin=[0, 0, cols, rows], creationOptions=["COMPRESS=DEFLATE"])
    lr = out_dir / f"{stem}_x{factor}_coarse.tif"
    gdal.Translate(str(lr), gdal.Open(str(hr)), width=cols // factor, height=rows // factor, resampleAlg="average",
                   creationOptions=["COMPRESS=DEFLATE"])
    for p in (lr, hr):
        Path(str(p) + ".aux.xml").unlink(missing_ok=True)
    return hr, lr


def sr_example(out_dir: Path, factor: int = 4) -> DemoJob:
    """The super-resolution job: the Sentinel-2 sample area-averaged by ``factor`` (a coarser sensor), written
    under ``out_dir``, to be super-resolved back to 10 m and compared with the sample itself."""
    truth, lr = _coarse(ROOT / "data" / "samples" / "s2_l1c_bgrn_512.tif", out_dir, "s2", factor)
    return DemoJob(name=f"s2_super_resolved_x{factor}", algorithm="rsrestore:super_resolve", input=lr,
                   params={"SCALE": str(factor), "SEED": "0"}, rgb_bands=(3, 2, 1), scale=float(factor), truth=truth)


def refsr_example(out_dir: Path, factor: int = 4) -> DemoJob:
    """The reference-based job: Bouconne forest in November 2018 averaged by ``factor``, super-resolved back to
    10 m with the July 2018 acquisition of the same place as the reference (a real pair of dates)."""
    samples = ROOT / "data" / "samples"
    truth, lr = _coarse(samples / "s2_bouconne_20181115_bgrn.tif", out_dir, "bouconne_nov", factor)
    return DemoJob(name=f"bouconne_reference_sr_x{factor}", algorithm="rsrestore:reference_super_resolve",
                   input=lr, params={"REFERENCE": str(samples / "s2_bouconne_20180708_bgrn.tif"), "SCALE": str(factor),
                                     "SEED": "0"}, rgb_bands=(3, 2, 1), scale=float(factor), truth=truth)


def rgb8_rendering(out_dir: Path) -> Path:
    """The Sentinel-2 sample as an 8-bit true-colour product (red, green, blue; reflectance 0-0.35 -> 0-255), with
    its georeferencing: what a map-tile or orthophoto service would serve."""
    dst = out_dir / "s2_rgb8.tif"
    gdal.Translate(str(dst), str(ROOT / "data" / "samples" / "s2_l1c_bgrn_512.tif"), bandList=[3, 2, 1],
                   outputType=gdal.GDT_Byte, scaleParams=[[0, 3500, 0, 255]], creationOptions=["COMPRESS=DEFLATE"])
    Path(str(dst) + ".aux.xml").unlink(missing_ok=True)
    return dst


def codec_example(out_dir: Path, src: Path, codec: str, setting: str) -> DemoJob:
    """The codec job: ``src`` compressed with ``rsrestore:compress_raster`` (the companion tool) at a strong
    setting, then enhanced by ``rsrestore:enhance_decoded`` with CODEC auto (read from the compressed file)."""
    key = "QUALITY" if codec != "jpeg2000" else "COMPRESSION_RATIO"
    dst = out_dir / f"{src.stem}_{codec}_{setting}{'.jp2' if codec == 'jpeg2000' else '.tif'}"
    cmd = [str(QGIS_PROCESS), "run", "rsrestore:compress_raster", "--", f"INPUT={src}",
           f"CODEC={codec}", f"{key}={setting}", f"OUTPUT={dst}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"demo: compressing {src.name} failed (exit {r.returncode}): {' '.join(cmd)}")
    rgb = (1, 2, 3) if gdal.Open(str(dst)).RasterCount == 3 else (3, 2, 1)
    return DemoJob(name=f"{dst.stem}_enhanced", algorithm="rsrestore:enhance_decoded", input=dst,
                   params={"SEED": "0"}, rgb_bands=rgb)


def sr_quicklook(job: DemoJob, out: Path, png: Path) -> None:
    """bicubic (the engine's own resampler) | super-resolved | (the reference) | truth, one stretch (the
    truth's) for all."""
    from rscore.tiling.grid import Window
    from rscore.tiling.resample import resample_window

    lr = gdal.Open(str(job.input)).ReadAsArray().astype(np.float32)
    rows, cols = lr.shape[1:]
    sr_ds = gdal.Open(str(out))
    bic = resample_window(lr, Window(0, 0, rows, cols), rows, cols, job.scale,
                          Window(0, 0, sr_ds.RasterYSize, sr_ds.RasterXSize), "bicubic")
    _, lo_hi = stretch(gdal.Open(str(job.truth)), job.rgb_bands, None)
    mem = gdal.GetDriverByName("MEM").Create("", bic.shape[2], bic.shape[1], bic.shape[0], gdal.GDT_Float32)
    for b in range(bic.shape[0]):
        mem.GetRasterBand(b + 1).WriteArray(bic[b])
    ref = []
    if "REFERENCE" in job.params:  # the reference as the engine sees it: warped onto the output grid
        t = gdal.Open(str(job.truth))
        g = t.GetGeoTransform()
        ref = [gdal.Warp("", job.params["REFERENCE"], format="MEM", dstSRS=t.GetProjection(), width=t.RasterXSize,
                         height=t.RasterYSize, outputBounds=(g[0], g[3] + t.RasterYSize * g[5],
                                                             g[0] + t.RasterXSize * g[1], g[3]))]
    save_panels([stretch(ds, job.rgb_bands, lo_hi)[0] for ds in (mem, sr_ds, *ref, gdal.Open(str(job.truth)))],
                png)


def run_job(job: DemoJob, out_dir: Path) -> str:
    out = out_dir / f"{job.name}.tif"
    cmd = [str(QGIS_PROCESS), "run", job.algorithm, "--", f"INPUT={job.input}",
           *(f"{k}={v}" for k, v in job.params.items()), f"OUTPUT={out}"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"demo job {job.name} failed (exit {r.returncode}): {' '.join(cmd)}")
    src, dst = gdal.Open(str(job.input)), gdal.Open(str(out))
    gt = src.GetGeoTransform()
    want_gt = (gt[0], gt[1] / job.scale, gt[2] / job.scale, gt[3], gt[4] / job.scale, gt[5] / job.scale)
    checks = {
        "CRS": src.GetProjection() == dst.GetProjection(),
        "geotransform": np.allclose(dst.GetGeoTransform(), want_gt, rtol=0, atol=1e-9 * max(map(abs, gt))),
        "size": (dst.RasterYSize, dst.RasterXSize) == (round(src.RasterYSize * job.scale),
                                                       round(src.RasterXSize * job.scale)),
        "bands": src.RasterCount == dst.RasterCount,
        "dtype": src.GetRasterBand(1).DataType == dst.GetRasterBand(1).DataType,
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise SystemExit(f"demo job {job.name}: output changed {bad}")
    png = out_dir / f"{job.name}.png"
    if job.truth is None:
        quicklook(job.input, out, job.rgb_bands, png)
    else:
        sr_quicklook(job, out, png)
    return (f"{job.name}: {job.algorithm} {dst.RasterXSize}x{dst.RasterYSize}x{dst.RasterCount} in {seconds:.1f} s "
            f"-> {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} (+ {png.name}); "
            + ("CRS, geotransform, bands, dtype preserved" if job.scale == 1 else
               f"CRS, bands, dtype preserved, exact x{job.scale:g} grid; picture: bicubic | super-resolved | "
               + ("reference | " if "REFERENCE" in job.params else "") + "truth"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "out")
    args = ap.parse_args(argv)
    out_dir = args.out if args.out.is_absolute() else ROOT / args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    for job in (*JOBS, sr_example(out_dir), refsr_example(out_dir),
                codec_example(out_dir, rgb8_rendering(out_dir), "jpeg", "20"),
                codec_example(out_dir, ROOT / "data" / "samples" / "s2_l1c_bgrn_512.tif", "jpeg2000", "64")):
        print(run_job(job, out_dir))
    print(batch_example(out_dir))


def batch_example(out_dir: Path) -> str:
    """The same dehazing as a batch of the two Sentinel-2 samples with the ``rsrestore`` command on a Dask
    LocalCluster (a second `make demo` finds the outputs made and skips them)."""
    batch_dir = out_dir / "batch"
    cmd = [sys.executable, "-m", "rscore.cli", "batch", "dehaze", "--inputs",
           str(ROOT / "data" / "samples" / "s2_*_bgrn_512.tif"), "--output-dir", str(batch_dir), "--workers", "2",
           "--quiet"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    if r.returncode != 0:
        raise SystemExit(f"rsrestore batch failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    report = batch_dir / "rsrestore-batch.json"
    counts = json.loads(report.read_text(encoding="utf-8"))["counts"]
    return (f"batch: rsrestore batch dehaze on {sum(counts.values())} Sentinel-2 samples, 2 Dask workers, "
            f"{time.perf_counter() - t0:.1f} s -> {batch_dir} ({counts['done']} done, {counts['skipped']} skipped as "
            f"already made; report {report})")


if __name__ == "__main__":
    main()
