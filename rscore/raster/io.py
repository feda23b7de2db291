"""Windowed GDAL IO.

Reads and writes go by window, never the whole raster. Outputs are written to a temporary file beside the
requested path and moved into place only by :meth:`OutputRaster.commit`; :meth:`OutputRaster.abort` (on
error or cancel) deletes it, so nothing is ever left under the requested name half-written.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from osgeo import gdal

from rscore.raster.overviews import BlockRowSink, OverviewBuilder
from rscore.tiling.grid import Window


class RasterError(Exception):
    """A raster cannot be read or written as asked. The message names the problem and the fix."""


#: GDAL data type name -> numpy dtype, for the types we read and write
_NUMPY = {
    "Byte": np.uint8,
    "UInt16": np.uint16,
    "Int16": np.int16,
    "UInt32": np.uint32,
    "Int32": np.int32,
    "Float32": np.float32,
    "Float64": np.float64,
}


def numpy_dtype(gdal_type: str) -> np.dtype:
    """numpy dtype of a supported GDAL data type name."""
    return np.dtype(_NUMPY[gdal_type])


def dtype_range(gdal_type: str) -> tuple[float, float]:
    """Representable (min, max) of a GDAL data type."""
    dt = numpy_dtype(gdal_type)
    if dt.kind == "f":
        info = np.finfo(dt)
        return float(info.min), float(info.max)
    ii = np.iinfo(dt)
    return float(ii.min), float(ii.max)


def _last_error(default: str) -> str:
    return gdal.GetLastErrorMsg() or default


def _failed() -> bool:
    """True if GDAL reported a failure since the last ``gdal.ErrorReset()`` (works with and without
    ``gdal.UseExceptions()``, which other code in the same process may have turned on)."""
    return gdal.GetLastErrorType() >= gdal.CE_Failure


def _open(path: str) -> tuple[gdal.Dataset | None, str]:
    gdal.ErrorReset()
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:  # gdal.UseExceptions() is on
        return None, str(exc)
    return ds, _last_error("unknown GDAL error")


@dataclass(frozen=True)
class RasterInfo:
    """What the engine needs to know about an input raster."""

    path: str
    rows: int
    cols: int
    band_count: int
    data_type: str
    nodata: tuple[float | None, ...]
    geotransform: tuple[float, ...]
    crs_wkt: str
    band_descriptions: tuple[str, ...]
    scale_offset: tuple[tuple[float, float], ...] | None = None


def _scale_offset(ds: gdal.Dataset, bands: Sequence[int]) -> tuple[tuple[float, float], ...] | None:
    """Per-band (scale, offset) when the raster declares a radiometric scaling other than (1, 0)."""
    pairs = tuple((ds.GetRasterBand(b).GetScale() or 1.0, ds.GetRasterBand(b).GetOffset() or 0.0) for b in bands)
    return None if all(sc == 1.0 and off == 0.0 for sc, off in pairs) else pairs


def _type_name(band: gdal.Band) -> str:
    """GDAL data type name of a band; a Byte band flagged ``PIXELTYPE=SIGNEDBYTE`` (GDAL < 3.7's signed bytes)
    is reported as ``Int8``, which it is."""
    name = gdal.GetDataTypeName(band.DataType)
    if name == "Byte" and band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE":
        return "Int8"
    return name


def _representable(value: float, dtype: np.dtype) -> bool:
    """Whether a nodata value exists in an integer type (a UInt16 raster may declare nodata -1)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(value).is_integer() and info.min <= value <= info.max
    return True


class InputRaster:
    """A raster opened for windowed reading of selected bands.

    Args:
        path: any GDAL-readable raster.
        bands: 1-based band numbers to read, in the order the model expects; None = all.
        require_crs: refuse a raster without a CRS (georeferencing would be lost).
    """

    def __init__(self, path: str | os.PathLike[str], bands: Sequence[int] | None = None,
                 require_crs: bool = True) -> None:
        p = str(path)
        ds, err = _open(p)  # first: GDAL also opens "DRIVER:file:subdataset" names that are not paths
        if ds is None:
            if not os.path.exists(p) and ":" not in Path(p).name and not p.startswith("/vsi"):
                raise RasterError(f"input raster {p!r} does not exist")
            raise RasterError(f"cannot open {p!r} as a raster: {err}")
        self._ds = ds
        n = ds.RasterCount
        if n == 0:
            raise RasterError(f"{p!r} has no raster bands")
        self.bands = tuple(range(1, n + 1)) if bands is None else tuple(int(b) for b in bands)
        bad = [b for b in self.bands if not 1 <= b <= n]
        if bad:
            raise RasterError(f"band(s) {bad} do not exist in {Path(p).name}, which has {n} band(s) (1..{n})")
        types = {_type_name(ds.GetRasterBand(b)) for b in self.bands}
        if len(types) != 1:
            raise RasterError(f"selected bands mix data types {sorted(types)}; choose bands of one type")
        data_type = types.pop()
        if data_type == "Int8":
            raise RasterError(
                f"{Path(p).name} is a signed 8-bit raster (Int8, values -128..127), which rsrestore does not read "
                "(it would be taken for unsigned Byte); convert it first, e.g. gdal_translate -ot Int16 in.tif out.tif")
        if data_type not in _NUMPY:
            raise RasterError(f"data type {data_type} is not supported; convert to one of {sorted(_NUMPY)}")
        crs = ds.GetProjection() or ""
        if require_crs and not crs:
            raise RasterError(
                f"{Path(p).name} has no coordinate reference system, so the output could not be georeferenced; "
                "assign one first (QGIS: Raster > Projections > Assign Projection, or gdal_edit.py -a_srs EPSG:XXXX)"
            )
        self.info = RasterInfo(
            path=p,
            rows=ds.RasterYSize,
            cols=ds.RasterXSize,
            band_count=n,
            data_type=data_type,
            nodata=tuple(ds.GetRasterBand(b).GetNoDataValue() for b in self.bands),
            geotransform=tuple(ds.GetGeoTransform(can_return_null=False)),
            crs_wkt=crs,
            band_descriptions=tuple(ds.GetRasterBand(b).GetDescription() for b in self.bands),
            scale_offset=_scale_offset(ds, self.bands),
        )

    @property
    def nodata_value(self) -> float | None:
        """The nodata value of the selected bands (first one set), or None."""
        return next((v for v in self.info.nodata if v is not None), None)

    def read(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        """Read a window of the selected bands.

        Returns:
            (values float32 (bands, rows, cols) in raster units, valid bool (rows, cols)). A pixel is valid
            when no selected band is nodata or non-finite.
        """
        native = self.read_native(win)
        return native.astype(np.float32), self.valid_of(native)

    def valid_of(self, native: np.ndarray) -> np.ndarray:
        """bool (rows, cols): no selected band is nodata or non-finite, compared in the raster's own type."""
        valid = np.all(np.isfinite(native), axis=0) if native.dtype.kind == "f" else np.ones(native.shape[1:], bool)
        for b, nd in enumerate(self.info.nodata):
            if nd is not None:
                valid &= native[b] != native.dtype.type(nd) if _representable(nd, native.dtype) else True
        return valid

    def read_native(self, win: Window) -> np.ndarray:
        """A window of the selected bands in the raster's own data type, (bands, rows, cols) (exact copies)."""
        gdal.ErrorReset()
        try:
            arr = self._ds.ReadAsArray(win.col_off, win.row_off, win.cols, win.rows, band_list=list(self.bands))
        except RuntimeError:
            arr = None
        if arr is None:
            raise RasterError(
                f"{Path(self.info.path).name} is damaged or incomplete: reading rows {win.row_off}-"
                f"{win.row_off + win.rows - 1}, columns {win.col_off}-{win.col_off + win.cols - 1} failed "
                f"(GDAL: {_last_error('unknown error')}); check the file (gdalinfo -checksum) or export it again")
        return np.asarray(arr).reshape(len(self.bands), win.rows, win.cols)

    def close(self) -> None:
        self._ds = None


def check_output_path(final: Path) -> None:
    """Refuse an output that would replace something other than a file, or go into a folder that is not one."""
    parent = final.parent
    if parent.exists() and not parent.is_dir():
        raise RasterError(f"the output's folder {str(parent)!r} is a file, not a folder; choose an output path "
                          "inside an existing folder")
    if not parent.is_dir():
        raise RasterError(f"output folder {str(parent)!r} does not exist; create it or choose another")
    if final.exists() and not final.is_file():
        kind = "a folder" if final.is_dir() else "not a regular file"
        raise RasterError(f"the output {str(final)!r} is {kind}; rsrestore only replaces files: choose a file name "
                          "(e.g. restored.tif)")


#: temporary outputs are ``.<stem>.partial-<pid>-<random><suffix>`` beside the requested file
_PARTIAL = re.compile(r"^\.(?P<stem>.+)\.partial-(?P<pid>\d+)-[0-9a-f]{8}(?P<suffix>\.[^.]+)$")


#: the automatic mask's working folder (``rscore.runtime.api``): ``.<stem>.automask-<pid>-<random>``
_AUTOMASK = re.compile(r"^\.(?P<stem>.+)\.automask-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def partial_path(final: Path) -> Path:
    """Where an output is written before it is published: a hidden sibling naming this process."""
    return final.with_name(f".{final.stem}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}{final.suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_partials(final: Path, older_than: float) -> list[Path]:
    """Delete this tool's temporary outputs (and automatic-mask folders) for ``final`` left by a process that no
    longer runs (killed with SIGKILL, power loss) and last written before ``older_than`` (a time.time() value).
    Returns what was deleted; files of live processes and anything else are left alone. Liveness is judged on
    this host: on a folder shared by several machines, do not run two jobs with the same output name."""
    removed: list[Path] = []
    if os.name == "nt":  # no cheap, side-effect-free liveness test of a pid there: leave the files alone
        return removed
    try:
        entries = list(final.parent.iterdir())
    except OSError:
        return removed
    for f in entries:
        m = _PARTIAL.match(f.name) or _AUTOMASK.match(f.name)
        if not m or m["stem"] != final.stem or ("suffix" in m.groupdict() and m["suffix"] != final.suffix):
            continue
        try:
            pid = int(m["pid"])
            if pid == os.getpid() or _alive(pid) or f.stat().st_mtime >= older_than:
                continue
            if f.is_dir():
                shutil.rmtree(f)
            else:
                f.unlink()
                Path(str(f) + ".aux.xml").unlink(missing_ok=True)
            removed.append(f)
        except (OSError, OverflowError, ValueError):
            continue
    return removed


@dataclass(frozen=True)
class OutputSpec:
    """What to create: grid, bands, type, nodata, georeference."""

    rows: int
    cols: int
    bands: int
    data_type: str
    nodata: float | None
    geotransform: tuple[float, ...]
    crs_wkt: str
    band_descriptions: tuple[str, ...] = ()
    scale_offset: tuple[tuple[float, float], ...] | None = None
    #: per band, a band name of :data:`COLOR_INTERP` ("red", "green", "blue"; others are written as undefined)
    color_interp: tuple[str, ...] = ()
    #: provenance keys written to the ``RSRESTORE`` metadata domain (``gdalinfo -mdd RSRESTORE``)
    metadata: tuple[tuple[str, str], ...] = ()
    #: build internal overviews (x2, x4, ... down to about OVERVIEW_MIN_PX) when the file is finished
    overviews: bool = True
    #: cloud-optimised layout (COG: 512 px tiles, overviews after the headers, the image last), made by a copy
    #: when the file is finished. GDAL's copy keeps only the default metadata domain, so the provenance keys are
    #: then written there as ``RSRESTORE_<key>`` (:func:`read_provenance` reads either form)
    cog: bool = False
    #: threads GDAL may compress with (GTiff ``NUM_THREADS``): the run's own thread count, so that a batch worker
    #: with one thread stays on one core. Most of the compression happens when the file is finished, when the
    #: networks are idle (docs/performance.md, a full Sentinel-2 tile)
    compress_threads: int = 1


#: band names that GDAL has a colour interpretation for: QGIS then shows red, green, blue as such by default
COLOR_INTERP = {"red": gdal.GCI_RedBand, "green": gdal.GCI_GreenBand, "blue": gdal.GCI_BlueBand,
                "alpha": gdal.GCI_AlphaBand}
#: metadata domain of the provenance keys
METADATA_DOMAIN = "RSRESTORE"
#: overviews are built down to the last level whose larger side is at least this many pixels
OVERVIEW_MIN_PX = 256
#: tile size of the cloud-optimised layout
COG_BLOCK_PX = 512


def read_provenance(path: str | os.PathLike[str]) -> dict[str, str]:
    """The provenance keys of an rsrestore output: the ``RSRESTORE`` metadata domain, or the ``RSRESTORE_``
    items of the default domain (cloud-optimised outputs); {} for any other raster."""
    ds, _ = _open(str(path))
    if ds is None:
        return {}
    found = dict(ds.GetMetadata(METADATA_DOMAIN) or {})
    if not found:
        prefix = METADATA_DOMAIN + "_"
        found = {k[len(prefix):]: v for k, v in (ds.GetMetadata() or {}).items() if k.startswith(prefix)}
    return found


def overview_factors(rows: int, cols: int, min_px: int = OVERVIEW_MIN_PX) -> list[int]:
    """Decimation factors 2, 4, 8, ... while the overview's larger side stays >= ``min_px`` (none for a
    small raster)."""
    factors, f = [], 2
    while max(rows, cols) // f >= min_px:
        factors.append(f)
        f *= 2
    return factors


def _creation_options(data_type: str, compress_threads: int = 1) -> list[str]:
    """GTiff options of every output: tiled, DEFLATE at level 1 (with the horizontal predictor for integer
    types), compressed on ``compress_threads`` threads. Level 1 compresses 2.5 times faster than the default
    level 6, for files about 1 % larger (docs/performance.md, a full Sentinel-2 tile)."""
    opts = ["TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1", "BIGTIFF=IF_SAFER"]
    if data_type not in ("Float32", "Float64"):
        opts.append("PREDICTOR=2")
    if compress_threads > 1:
        opts.append(f"NUM_THREADS={int(compress_threads)}")
    return opts


class OutputRaster:
    """A GeoTIFF written by windows into a temporary file.

    :meth:`finish` flushes, closes and verifies it (a full disk or a write error raises here, before anything
    is moved); :meth:`publish` then moves it to the requested path; :meth:`abort` deletes it.
    """

    def __init__(self, path: str | os.PathLike[str], spec: OutputSpec) -> None:
        final = Path(path)
        if final.suffix.lower() not in (".tif", ".tiff"):
            raise RasterError(f"output {final.name!r} must be a GeoTIFF (.tif or .tiff)")
        check_output_path(final)
        self.final = final
        self.tmp = partial_path(final)
        self.spec = spec
        opts = _creation_options(spec.data_type, spec.compress_threads)
        gdal.ErrorReset()
        try:
            ds = gdal.GetDriverByName("GTiff").Create(
                str(self.tmp), spec.cols, spec.rows, spec.bands, gdal.GetDataTypeByName(spec.data_type), opts
            )
        except RuntimeError:
            ds = None
        if ds is None:
            raise RasterError(f"cannot create {self.tmp} (is the folder writable?): {_last_error('unknown error')}")
        ds.SetGeoTransform(spec.geotransform)
        if spec.crs_wkt:
            ds.SetProjection(spec.crs_wkt)
        for b in range(spec.bands):
            band = ds.GetRasterBand(b + 1)
            if spec.nodata is not None:
                band.SetNoDataValue(spec.nodata)
            if b < len(spec.band_descriptions) and spec.band_descriptions[b]:
                band.SetDescription(spec.band_descriptions[b])
            if spec.scale_offset is not None:
                band.SetScale(spec.scale_offset[b][0])
                band.SetOffset(spec.scale_offset[b][1])
            if b < len(spec.color_interp):
                band.SetColorInterpretation(COLOR_INTERP.get(spec.color_interp[b].lower(), gdal.GCI_Undefined))
        if spec.metadata:
            ds.SetMetadata({k: str(v) for k, v in spec.metadata}, METADATA_DOMAIN)
        self._ds: gdal.Dataset | None = ds
        self._factors = overview_factors(spec.rows, spec.cols) if spec.overviews else []
        # averaged from the rows as they are written (rscore/raster/overviews.py); GDAL builds them at finish
        # instead if the writes were not full-width rows in order
        self._overviews: OverviewBuilder | None = None
        #: full-width rows written in order from the top, given to GDAL by whole block rows (None once a write is
        #: not the next full-width rows)
        self._rows: BlockRowSink | None = BlockRowSink(
            spec.rows, ds.GetRasterBand(1).GetBlockSize()[1],
            lambda row, v: self._write_now(Window(row, 0, v.shape[1], spec.cols), v), self._flush_bands)
        if self._factors:
            try:
                self._overviews = OverviewBuilder(ds, self._factors, spec.nodata, numpy_dtype(spec.data_type))
            except RuntimeError:
                self._overviews = None

    def write(self, win: Window, values: np.ndarray) -> None:
        """Write (bands, rows, cols) values, already of the output type, at ``win``.

        Full-width rows written in order from the top (the engine's strips) reach GDAL in whole rows of blocks,
        each compressed as soon as it is complete (on the thread that writes, instead of all at once when the
        file is finished); the rows of a block row not yet complete wait here, at most one block row."""
        if self._rows is not None and win.col_off == 0 and win.cols == self.spec.cols \
                and win.row_off == self._rows.next_row:
            self._rows.push(win.row_off, values)
            return
        if self._rows is not None:  # no longer full-width rows in order: write as they come
            rows, self._rows = self._rows, None
            rows.release()
        self._write_now(win, values)

    def _flush_bands(self) -> None:
        """Compress and write the complete blocks of the full-resolution bands (not the overview levels, whose
        block rows are still filling)."""
        assert self._ds is not None
        gdal.ErrorReset()
        try:
            for b in range(self.spec.bands):
                self._ds.GetRasterBand(b + 1).FlushCache()
            failed = _failed()
        except RuntimeError:
            failed = True
        if failed:
            raise RasterError(f"writing {self.final.name} failed ({_last_error('unknown write error')}); is the disk "
                              "full or the folder writable?")

    def _write_now(self, win: Window, values: np.ndarray) -> None:
        assert self._ds is not None
        gdal.ErrorReset()
        for b in range(self.spec.bands):
            try:
                err = self._ds.GetRasterBand(b + 1).WriteArray(values[b], win.col_off, win.row_off)
            except RuntimeError:
                err = 1
            if err != 0 or _failed():
                raise RasterError(f"writing {self.final.name} failed at {win}: {_last_error('disk full?')}")
        if self._overviews is not None:
            try:
                self._overviews.push(win.row_off, values)  # a window short of the full width abandons
                failed = _failed()  # a block row compressed and written as it completed
            except RuntimeError as exc:
                raise RasterError(f"writing the overviews of {self.final.name} failed at {win}: "
                                  f"{_last_error(str(exc))}; is the disk full?") from None
            if failed:
                raise RasterError(f"writing the overviews of {self.final.name} failed at {win}: "
                                  f"{_last_error('unknown write error')}; is the disk full?")

    def finish(self) -> None:
        """Flush and close the temporary file, then reopen it and read its last pixel of every band: GDAL
        reports most write errors of compressed tiles only here (disk full, quota, network share)."""
        if self._ds is None:
            return
        if self._rows is not None:
            self._rows.release()
        gdal.ErrorReset()
        try:
            if self._overviews is not None:
                self._overviews.finish()
            if self._factors and (self._overviews is None or not self._overviews.complete):
                # AVERAGE honours nodata; a GDAL error here is a write error like any other
                self._ds.BuildOverviews("AVERAGE", self._factors)
            self._ds.FlushCache()
            flushed_ok = not _failed()
        except RuntimeError:
            flushed_ok = False
        msg = _last_error("unknown write error")
        self._overviews = None  # it holds the dataset too
        self._ds = None  # closes the file
        if not flushed_ok or _failed():
            raise RasterError(f"writing {self.final.name} failed ({msg}); is the disk full or the folder writable?")
        ds, err = _open(str(self.tmp))
        ok = ds is not None and (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (
            self.spec.cols, self.spec.rows, self.spec.bands)
        if ok:
            gdal.ErrorReset()
            try:
                ok = all(ds.GetRasterBand(b + 1).ReadRaster(self.spec.cols - 1, self.spec.rows - 1, 1, 1) is not None
                         for b in range(self.spec.bands)) and not _failed()
            except RuntimeError:
                ok = False
        ds = None
        if not ok:
            raise RasterError(f"the written {self.final.name} cannot be read back ({err}); is the disk full?")
        if self.spec.cog:
            self._to_cog()

    def _to_cog(self) -> None:
        """Rewrite the finished temporary file in the cloud-optimised layout (its overviews copied, not rebuilt),
        through a second temporary file that replaces the first."""
        src = gdal.Open(str(self.tmp), gdal.GA_Update)
        if self.spec.metadata:
            src.SetMetadata({f"{METADATA_DOMAIN}_{k}": str(v) for k, v in self.spec.metadata})
        opts = [*_creation_options(self.spec.data_type, self.spec.compress_threads), "COPY_SRC_OVERVIEWS=YES",
                f"BLOCKXSIZE={COG_BLOCK_PX}", f"BLOCKYSIZE={COG_BLOCK_PX}"]
        cog = partial_path(self.final)  # a second hidden sibling, swept like the first if the process dies
        gdal.ErrorReset()
        try:
            out = gdal.GetDriverByName("GTiff").CreateCopy(str(cog), src, options=opts)
            ok = out is not None and not _failed()
            out = None
        except RuntimeError:
            ok = False
        src = None
        if not ok:
            msg = _last_error("unknown write error")
            cog.unlink(missing_ok=True)
            raise RasterError(f"writing the cloud-optimised {self.final.name} failed ({msg}); is the disk full?")
        Path(str(self.tmp) + ".aux.xml").unlink(missing_ok=True)
        os.replace(cog, self.tmp)

    def publish(self) -> Path:
        """Move the finished file to the requested path (replacing an older file and its stale .aux.xml)."""
        os.replace(self.tmp, self.final)
        stale = Path(str(self.final) + ".aux.xml")
        if stale.exists():
            stale.unlink()
        return self.final

    def commit(self) -> Path:
        """:meth:`finish` then :meth:`publish` (a single output)."""
        self.finish()
        return self.publish()

    def abort(self) -> None:
        """Close and delete the temporary file. Safe to call twice; never raises."""
        self._rows = None
        self._overviews = None
        self._ds = None
        for f in (self.tmp, Path(str(self.tmp) + ".aux.xml")):
            try:
                f.unlink()
            except OSError:
                pass


def publish_all(outputs: Sequence[OutputRaster]) -> list[Path]:
    """Finish every output, then move them all into place; if a move fails, undo the moves already made
    (older files under the requested names are restored) and delete every temporary file."""
    for o in outputs:
        o.finish()
    for o in outputs:  # something other than a file may have appeared under the name while the run went on
        if o.final.exists() and not o.final.is_file():
            for x in outputs:
                x.abort()
            check_output_path(o.final)
    backups: list[tuple[Path, Path]] = []
    done: list[OutputRaster] = []
    try:
        for o in outputs:
            if o.final.exists():
                bak = o.final.with_name(f".{o.final.name}.backup-{uuid.uuid4().hex[:8]}")
                os.replace(o.final, bak)
                backups.append((bak, o.final))
        for o in outputs:
            o.publish()
            done.append(o)
    except BaseException:
        for o in done:
            try:
                o.final.unlink()
            except OSError:
                pass
        for bak, final in backups:
            try:
                os.replace(bak, final)
            except OSError:
                pass
        for o in outputs:
            o.abort()
        raise
    for bak, _ in backups:
        try:
            bak.unlink()
        except OSError:
            pass
    return [o.final for o in outputs]
