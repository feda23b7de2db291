"""The main job on the shipped sample data and models, through qgis_process (what a user would run).

    python3 tools/demo.py --out out          (called by `make demo` after installing the plugin)

Writes the restored GeoTIFFs and PNG side-by-side quicklooks (input | output) under ``out/``, checks that
each output kept the input's CRS, geotransform, band count and data type, and prints a summary.
Runs with QGIS's own Python (no torch).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[1]
QGIS_PROCESS = ROOT / "tools" / "qgis_process"


@dataclass(frozen=True)
class DemoJob:
    """One qgis_process run of the demo."""

    name: str
    algorithm: str
    input: Path
    params: dict[str, str]
    rgb_bands: tuple[int, int, int]  # 1-based red, green, blue bands for the quicklook


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


def quicklook(inp: Path, outp: Path, bands: tuple[int, int, int], png: Path) -> None:
    # each panel with its own stretch: a dehazed output is much darker than its hazy input
    a, _ = stretch(gdal.Open(str(inp)), bands, None)
    b, _ = stretch(gdal.Open(str(outp)), bands, None)
    gap = np.full((3, a.shape[1], 8), 255, np.uint8)
    img = np.concatenate([a, gap, b], axis=2)
    mem = gdal.GetDriverByName("MEM").Create("", img.shape[2], img.shape[1], 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(img[i])
    gdal.GetDriverByName("PNG").CreateCopy(str(png), mem)
    aux = Path(str(png) + ".aux.xml")
    if aux.exists():
        aux.unlink()


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
    checks = {
        "CRS": src.GetProjection() == dst.GetProjection(),
        "geotransform": src.GetGeoTransform() == dst.GetGeoTransform(),
        "bands": src.RasterCount == dst.RasterCount,
        "dtype": src.GetRasterBand(1).DataType == dst.GetRasterBand(1).DataType,
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise SystemExit(f"demo job {job.name}: output changed {bad}")
    png = out_dir / f"{job.name}.png"
    quicklook(job.input, out, job.rgb_bands, png)
    return (f"{job.name}: {job.algorithm} {dst.RasterXSize}x{dst.RasterYSize}x{dst.RasterCount} in {seconds:.1f} s "
            f"-> {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} (+ {png.name}); "
            "CRS, geotransform, bands, dtype preserved")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "out")
    args = ap.parse_args(argv)
    out_dir = args.out if args.out.is_absolute() else ROOT / args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    for job in JOBS:
        print(run_job(job, out_dir))


if __name__ == "__main__":
    main()
