"""What every evaluation suite shares: settings, raster helpers, metrics rows, PNG strips and the
evaluation-only degradation generators (haze and clouds that no training generator makes).

Torch is only needed for LPIPS (loaded lazily).
"""

from __future__ import annotations

import functools
import math
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from osgeo import gdal, osr

from rscore.metrics.fidelity import psnr, sam_deg, ssim
from tools.demo import stretch
from training.tasks.imagery import DEFAULT_CACHE

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"
SAMPLES = ROOT / "data" / "samples"
METRIC_COLUMNS = ("PSNR (dB) ↑", "SSIM ↑", "SAM (°) ↓", "LPIPS ↓", "s / Mpx")
#: Real-scene strips are decimated to at most this many pixels per panel side.
REAL_STRIP_MAX_PX = 384


# ---- settings and reports shared by every suite ----------------------------------------------------------
@dataclass(frozen=True)
class EvalSettings:
    """Where a run reads and writes.

    Attributes:
        out_dir: report directory (``quality.md`` and ``images/``).
        models_dir: root holding one folder per bundle.
        data_cache: imagery cache written by ``training/fetch_data.py``.
        quick: fewer crops per condition (smoke test).
        device: onnxruntime device for every restore() call.
        only: evaluate only these bundles (empty: every bundle of a suite).
    """

    out_dir: Path
    models_dir: Path = ROOT / "models"
    data_cache: Path = DEFAULT_CACHE
    quick: bool = False
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    only: tuple[str, ...] = ()

    @property
    def images_dir(self) -> Path:
        return self.out_dir / "images"


def mean_where(rows: Sequence[dict[str, object]], key: str, **where: object) -> float:
    """Mean of ``key`` over the rows whose fields equal ``where`` (nan when none does)."""
    vals = [float(r[key]) for r in rows if all(r[k] == v for k, v in where.items())]  # type: ignore[arg-type]
    return float(np.mean(vals)) if vals else math.nan


@dataclass(frozen=True)
class SuiteReport:
    """A suite's markdown section and the image files it wrote."""

    markdown: str
    images: tuple[Path, ...] = ()


def evaluate_available(settings: EvalSettings, specs: Sequence[object], label: str,
                       evaluate: Callable[[object], object]) -> tuple[list[object], list[str]]:
    """``evaluate(spec)`` for every spec (with a ``name``) whose bundle is in ``settings.models_dir`` (and in
    ``settings.only`` when given); returns the results and the names of the bundles that are missing."""
    results, skipped = [], []
    for spec in specs:
        name = spec.name  # type: ignore[attr-defined]
        if settings.only and name not in settings.only:
            continue
        if not (settings.models_dir / name / "manifest.json").is_file():
            print(f"{label}: bundle {name} not found under {settings.models_dir}; skipped", flush=True)
            skipped.append(name)
            continue
        print(f"{label}: evaluating {name}", flush=True)
        results.append(evaluate(spec))
    return results, skipped


def merge_summary(settings: EvalSettings, entries: dict[str, dict[str, object]]) -> Path:
    """Merge bundle name -> headline figures into ``quality_summary.json`` (read by the model cards and
    ``rsrestore:models``), each stamped with today's date (UTC); other bundles' entries are kept."""
    import datetime as dt
    import json

    path = settings.out_dir / "quality_summary.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    data.update({name: {"date": date, **figures} for name, figures in entries.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Suite:
    """One task's evaluation: ``run(settings)`` returns its section of quality.md."""

    title: str
    run: Callable[[EvalSettings], SuiteReport]


# ---- small raster helpers -------------------------------------------------------------------------------
_GDAL_TYPES = {"Byte": gdal.GDT_Byte, "UInt16": gdal.GDT_UInt16}


@dataclass(frozen=True)
class RasterType:
    """How a physical-unit array is stored: GDAL type name and raster value = round(physical x scale)."""

    gdal_name: Literal["Byte", "UInt16"]
    per_unit: float  # 255 for 8-bit display values, 1e4 for reflectance

    @property
    def max_value(self) -> int:
        return 255 if self.gdal_name == "Byte" else 65535

    def quantise(self, phys: np.ndarray) -> np.ndarray:
        """Physical units -> raster integers (rounded, clipped to the type's range)."""
        return np.clip(np.round(phys.astype(np.float64) * self.per_unit), 0, self.max_value)

    def physical(self, raster: np.ndarray) -> np.ndarray:
        return (raster.astype(np.float64) / self.per_unit).astype(np.float32)


RASTER_TYPES: dict[str, RasterType] = {"reflectance": RasterType("UInt16", 1e4), "rgb8": RasterType("Byte", 255.0)}


def write_geotiff(path: Path, values: np.ndarray, gdal_name: str, epsg: int, geotransform: Sequence[float],
                  nodata: float | None = None) -> Path:
    """Write ``values`` (bands, rows, cols) as a GeoTIFF with a CRS (the runtime refuses rasters without)."""
    bands, rows, cols = values.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, _GDAL_TYPES[gdal_name])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    ds.SetGeoTransform(tuple(geotransform))
    for b in range(bands):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(values[b])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds = None
    return path


def read_raster(path: Path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return np.stack([ds.GetRasterBand(b + 1).ReadAsArray() for b in range(ds.RasterCount)])


def _mem(values: np.ndarray) -> gdal.Dataset:
    """Float MEM dataset for ``tools.demo.stretch``."""
    bands, rows, cols = values.shape
    ds = gdal.GetDriverByName("MEM").Create("", cols, rows, bands, gdal.GDT_Float32)
    for b in range(bands):
        ds.GetRasterBand(b + 1).WriteArray(values[b].astype(np.float32))
    return ds


def write_strip(panels: Sequence[np.ndarray], rgb: Sequence[int], png: Path,
                lo_hi: list[tuple[float, float]] | None = None, gap_px: int = 6) -> Path:
    """PNG row of panels (each (bands, rows, cols), physical units) with one stretch for the row.

    Panels may differ in size (a low-resolution input next to its super-resolved output): each is drawn at its
    own pixel size, top-aligned on a white background. ``lo_hi`` per RGB band; None = 2-98 % of the *last*
    panel (the reference, when there is one).
    """
    bands = tuple(int(i) + 1 for i in rgb)
    if lo_hi is None:
        _, lo_hi = stretch(_mem(panels[-1]), bands, None)
    rows = max(p.shape[1] for p in panels)
    gap = np.full((3, rows, gap_px), 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, p in enumerate(panels):
        shown = np.full((3, rows, p.shape[2]), 255, np.uint8)
        shown[:, :p.shape[1]] = stretch(_mem(np.nan_to_num(p)), bands, lo_hi)[0]
        parts += ([gap] if i else []) + [shown]
    img = np.concatenate(parts, axis=2)
    mem = gdal.GetDriverByName("MEM").Create("", img.shape[2], img.shape[1], 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(img[i])
    png.parent.mkdir(parents=True, exist_ok=True)
    gdal.GetDriverByName("PNG").CreateCopy(str(png), mem)
    Path(str(png) + ".aux.xml").unlink(missing_ok=True)
    return png


@functools.lru_cache(maxsize=1)
def lpips_model():  # noqa: ANN201 - torch type imported lazily
    """One LPIPS(alex) instance for the whole run (weights from the offline cache, see docs/metrics.md)."""
    from rscore.metrics.lpips import LPIPS

    return LPIPS("alex")


#: PSNR reported for an estimate identical to its reference (infinite PSNR), so that means over crops count
#: identical outputs instead of dropping them; no real difference comes near it (1e-5 RMS at data range 1).
PSNR_CAP_DB = 100.0


def fidelity_row(ref: np.ndarray, est: np.ndarray, rgb: Sequence[int]) -> dict[str, float]:
    """PSNR (capped at ``PSNR_CAP_DB``), SSIM, SAM and LPIPS of ``est`` against ``ref`` (data range 1.0)."""
    from rscore.metrics.lpips import lpips_rgb

    return {
        "psnr": min(psnr(ref, est, 1.0), PSNR_CAP_DB),
        "ssim": ssim(ref, est, 1.0),
        "sam": sam_deg(ref, est),
        "lpips": lpips_rgb(ref, est, tuple(rgb), 1.0, model=lpips_model(), clip=True),
    }


def machine_note() -> str:
    import onnxruntime

    load = os.getloadavg()
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} logical CPU(s), Python "
            f"{platform.python_version()}, onnxruntime {onnxruntime.__version__} (CPU execution provider); "
            f"1-min load average at start {load[0]:.2f} (timings grow with background load)")


def fmt(v: float, digits: int) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def met(ok: bool) -> str:
    """How a report says whether a target is reached."""
    return "met" if ok else "**not met**"


def rel(path: Path, out_dir: Path) -> str:
    return os.path.relpath(path, out_dir)


def mean_of(rows: Sequence[dict[str, object]], condition: str, method: str, key: str) -> float:
    """Mean of a metric over the finite per-crop values of one condition and method (NaN if none)."""
    vals = [float(r[key]) for r in rows if r["condition"] == condition and r["method"] == method]  # type: ignore[arg-type]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan



def unseen_haze(clean: np.ndarray, wavelengths: tuple[float, ...], domain: str,
                rng: np.random.Generator) -> np.ndarray:
    """An evaluation-only haze model that no training generator uses: attenuation and path radiance drawn
    independently (``I = J * t_b + L_b * g(x)``), Rayleigh-like ``t_b`` (lambda^-4 optical depth), path
    radiance ``L_b`` falling as lambda^-2, and a smooth multiplicative gradient g in [0.6, 1.4]."""
    bands, rows, cols = clean.shape
    lam = np.asarray(wavelengths, np.float64) / 550.0
    t = np.exp(-rng.uniform(0.1, 0.5) * lam ** -4.0)
    top = 0.9 if domain == "rgb8" else 0.35
    path = rng.uniform(0.3, 1.0) * top * lam ** -2.0
    yy, xx = np.mgrid[0:rows, 0:cols]
    ang = rng.uniform(0, 2 * np.pi)
    g = 1.0 + 0.4 * (np.cos(ang) * (2 * xx / cols - 1) + np.sin(ang) * (2 * yy / rows - 1)) / np.sqrt(2)
    return (clean * t[:, None, None] + path[:, None, None] * g[None]).astype(np.float32)



def unseen_clouds(clean: np.ndarray, rng: np.random.Generator, domain: str,
                  wavelengths: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An evaluation-only cloud model no training generator uses: cirrus-like streaks (a sum of sinusoids
    along one random direction, modulated across it) over a patchy opaque cumulus layer made from a coarse
    random grid upsampled with nearest neighbour and box-smoothed, with a bluish-white colour."""
    bands, rows, cols = clean.shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    ang = rng.uniform(0, np.pi)
    u = np.cos(ang) * xx + np.sin(ang) * yy
    v = -np.sin(ang) * xx + np.cos(ang) * yy
    streak = sum(np.sin(u / rng.uniform(3.0, 12.0) + rng.uniform(0, 6.3)) for _ in range(3)) / 3.0
    streak = np.clip(0.5 + 0.5 * streak, 0, 1) * (0.5 + 0.5 * np.sin(v / rng.uniform(20.0, 60.0)))
    cirrus = rng.uniform(0.2, 0.5) * streak
    cell = int(rng.integers(16, 48))
    grid = rng.random((rows // cell + 2, cols // cell + 2)) < rng.uniform(0.15, 0.4)
    core = grid[(yy // cell).astype(int), (xx // cell).astype(int)].astype(np.float64)
    k = max(3, cell // 3)
    pad = np.pad(core, k, mode="edge")
    cs = np.cumsum(np.cumsum(pad, 0), 1)
    cs = np.pad(cs, ((1, 0), (1, 0)))
    box = (cs[2 * k + 1:, 2 * k + 1:] - cs[:-2 * k - 1, 2 * k + 1:] - cs[2 * k + 1:, :-2 * k - 1]
           + cs[:-2 * k - 1, :-2 * k - 1])[:rows, :cols] / (2 * k + 1) ** 2
    m = np.clip(1 - (1 - cirrus) * (1 - np.clip(box * 1.5, 0, 1)), 0, 1)
    top = 1.0 if domain == "rgb8" else 0.85
    lam = np.asarray(wavelengths if wavelengths is not None else np.linspace(490.0, 842.0, bands), np.float64)
    tint = 1.05 - 0.1 * (lam - lam.min()) / max(float(np.ptp(lam)), 1e-9)  # bluish: brighter at short wavelengths
    colour = rng.uniform(0.7, 1.0) * top * tint
    return (clean * (1 - m[None]) + colour[:, None, None] * m[None]).astype(np.float32), m.astype(np.float32)
