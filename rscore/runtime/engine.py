"""The tiled restoration engine.

Reads the input by windows, runs a pipeline per tile, blends overlapping tiles with smooth weights into a
strip accumulator that holds at most one tile row of the output, writes finished rows, and commits the
outputs atomically. Peak memory therefore grows with the raster *width* times the tile size, never with
the raster area.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
from osgeo import gdal

from rscore.bundle.manifest import BandSpec, BundleError, Manifest
from rscore.diffusion.loop import Cancelled
from rscore.pipelines import Pipeline, TileContext
from rscore.raster.io import (
    InputRaster,
    OutputRaster,
    OutputSpec,
    RasterError,
    dtype_range,
    numpy_dtype,
    publish_all,
    sweep_stale_partials,
)
from rscore.tiling.blend import blend_weights
from rscore.tiling.grid import OutputGrid, TilePlan, Window, plan_tiles
from rscore.tiling.resample import SUPPORT_PX, resample_window

#: GDAL block cache cap while a run writes (its default, 5 % of RAM, would dominate the engine's memory)
GDAL_CACHE_BYTES = 256 * 1024 * 1024


_CACHE_LOCK = threading.Lock()
_CACHE_USERS = 0
_CACHE_SAVED = 0


def _cache_cap_enter() -> None:
    """Cap GDAL's (process-global) block cache while at least one run is active; QGIS may run several
    algorithms in parallel threads, so the first run saves the user's value and the last one restores it."""
    global _CACHE_USERS, _CACHE_SAVED
    with _CACHE_LOCK:
        if _CACHE_USERS == 0:
            _CACHE_SAVED = gdal.GetCacheMax()
            gdal.SetCacheMax(min(_CACHE_SAVED, GDAL_CACHE_BYTES))
        _CACHE_USERS += 1


def _cache_cap_exit() -> None:
    global _CACHE_USERS
    with _CACHE_LOCK:
        _CACHE_USERS -= 1
        if _CACHE_USERS == 0:
            gdal.SetCacheMax(_CACHE_SAVED)


def _radiometry(src: InputRaster, manifest: Manifest, what: str = "input") -> tuple[np.ndarray, np.ndarray]:
    """Per-band (scale, offset), float32 (bands, 1, 1), from raster values to the model's physical units.

    A raster that declares its own scaling (GDAL band scale/offset, e.g. Landsat Collection 2 surface
    reflectance: 2.75e-5, -0.2) is converted with it; otherwise the bundle's ``value_scale`` for the data type
    applies, and a type the bundle does not list is refused.
    """
    info = src.info
    n = len(src.bands)
    if info.scale_offset is not None:
        sc = np.array([p[0] for p in info.scale_offset], np.float32)
        off = np.array([p[1] for p in info.scale_offset], np.float32)
    elif info.data_type in manifest.value_scale:
        sc = np.full(n, manifest.value_scale[info.data_type], np.float32)
        off = np.zeros(n, np.float32)
    else:
        raise RasterError(
            f"{what} data type {info.data_type} is not supported by model {manifest.name!r} "
            f"(supported: {', '.join(sorted(manifest.value_scale))}); convert the raster first"
        )
    return sc[:, None, None], off[:, None, None]


class Feedback(Protocol):
    """Progress and cancellation, as the QGIS adapter or a CLI provides them."""

    def set_progress(self, fraction: float) -> None: ...
    def is_canceled(self) -> bool: ...
    def info(self, message: str) -> None: ...


class NullFeedback:
    """Feedback that reports nothing and never cancels."""

    def set_progress(self, fraction: float) -> None:
        pass

    def is_canceled(self) -> bool:
        return False

    def info(self, message: str) -> None:
        pass


@dataclass(frozen=True)
class EngineSettings:
    """Resolved run settings (units in names; all sizes in output-grid pixels)."""

    tile_size_px: int
    overlap_px: int
    margin_px: int
    size_multiple: int
    scale_factor: float
    seed: int
    samples: int = 1


@dataclass
class _Target:
    """One output raster being assembled."""

    name: str
    writer: OutputRaster
    bands: int


@dataclass
class EngineReport:
    """What a run did."""

    tiles_total: int = 0
    tiles_skipped: int = 0
    tiles_clear: int = 0
    network_evals: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    clipped_pixels: int = 0


class _Writer:
    """Blends the tiles into the strip, converts finished rows to raster units and writes them, on one
    background thread when the run has more than one thread, so that this work, GDAL's compression and the
    overviews overlap the networks of the next tiles (GDAL and numpy release the GIL while they work).

    Jobs run one at a time in the order they were submitted, so the outputs are the same bytes as when they run
    inline. Only this thread touches the strip and the output datasets while the tiles run; the main thread keeps
    the input, the mask and the networks. At most ``max_pending`` jobs wait: the engine allows one row of tiles
    and its flush (the main thread goes on to the next row at once rather than wait for the writer to digest
    the last one), which bounds the memory they hold to about one more strip. The first job that fails stops
    the run: its error is raised in the main thread by the next :meth:`submit` or by :meth:`close`.
    """

    def __init__(self, background: bool, max_pending: int) -> None:
        self.max_pending = max(1, max_pending)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rsrestore-writer") if background else None
        self._pending: deque[Future[None]] = deque()
        #: set by the first job that fails: the jobs queued behind it do nothing
        self._failed = threading.Event()

    def submit(self, job: Callable[[], None]) -> None:
        if self._pool is None:
            job()
            return
        while self._pending and (self._pending[0].done() or len(self._pending) >= self.max_pending):
            self._pending.popleft().result()  # raises the job's error here
        self._pending.append(self._pool.submit(self._guarded, job))

    def _guarded(self, job: Callable[[], None]) -> None:
        if self._failed.is_set():
            return
        try:
            job()
        except BaseException:
            self._failed.set()
            raise

    def close(self) -> None:
        """Wait for every job (raising the first error) and stop the thread."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Drop the jobs not started, wait for the running one and stop the thread, without raising the jobs'
        errors (the run is failing or cancelled already, and its outputs are deleted next). A Ctrl-C during the
        wait is raised only once the running write has ended: its output must not be deleted under it."""
        self._failed.set()  # a queued job that was not cancelled in time does nothing
        interrupted: BaseException | None = None
        while self._pool is not None:
            try:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
            except KeyboardInterrupt as exc:
                interrupted = exc
        self._pending.clear()
        if interrupted is not None:
            raise interrupted


class _Strip:
    """Fixed-height accumulator for the output rows [row0, row0 + height) of every target.

    Per target it keeps the first tile's value ``ref`` and the weighted sum of departures from it,
    sum_i w_i (v_i - ref); the blend is ref + sum / sum_i w_i. Where overlapping tiles agree this is exactly
    ref (a plain weighted mean can move by an ulp and flip integer rounding), so results stay bit-identical
    across tilings. Height = one tile: memory is width x tile size, whatever the raster height.

    The strip belongs to the run's :class:`_Writer`: :meth:`add` and :meth:`flush` run as its jobs, in order. The
    input rows a flush needs (with a mask) are read first by the main thread (:meth:`inputs`), the only thread
    that reads the input.
    """

    FLUSH_ROWS = 64  # rows converted and written at once (bounds the temporaries)

    def __init__(self, runner: TiledRunner, targets: list[_Target], height: int, cols: int) -> None:
        self.runner = runner
        self.targets = targets
        self.height = height
        self.cols = cols
        self.row0 = 0
        ftype = runner._ftype
        self.ref = {t.name: np.zeros((t.bands, height, cols), ftype) for t in targets}
        self.acc = {t.name: np.zeros((t.bands, height, cols), ftype) for t in targets}
        self.wsum = np.zeros((height, cols), ftype)
        self.valid = np.zeros((height, cols), bool)

    def add(self, core: Window, values: dict[str, np.ndarray], w: np.ndarray, valid: np.ndarray) -> None:
        if not (self.row0 <= core.row_off and core.row_end <= self.row0 + self.height):
            raise AssertionError(f"tile {core} outside the strip at row {self.row0} (engine bug)")
        rs = slice(core.row_off - self.row0, core.row_end - self.row0)
        cs = slice(core.col_off, core.col_end)
        first = self.wsum[rs, cs] == 0
        for t in self.targets:
            v = values.get(t.name)
            if v is None:  # a constant 0 (the uncertainty of one sample): ref and acc stay 0
                continue
            ref = self.ref[t.name][:, rs, cs]
            np.copyto(ref, v, where=first)  # a masked copy, without gathering and scattering
            d = v - ref
            d *= w
            self.acc[t.name][:, rs, cs] += d
        self.wsum[rs, cs] += w
        self.valid[rs, cs] |= valid

    def inputs(self, row0: int, upto: int) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """(main thread, which alone reads the input) What :meth:`flush` of rows [row0, upto) needs from the
        input, per chunk of :attr:`FLUSH_ROWS` rows: with a mask, the input's raw values and the pixels the mask
        leaves alone (copied from the input); None without a mask."""
        chunks = range(row0, upto, self.FLUSH_ROWS)
        if self.runner.mask is None:
            return [None for _ in chunks]
        found = []
        for r in chunks:
            win = Window(r, 0, min(upto, r + self.FLUSH_ROWS) - r, self.cols)
            found.append((self.runner.src.read_native(win), ~self.runner.cloud_mask(win)))
        return found

    def flush(self, upto: int, inputs: list[tuple[np.ndarray, np.ndarray] | None]) -> None:
        """Write the finished rows [row0, upto) and move the rest of the strip up; ``inputs``: :meth:`inputs`."""
        n = upto - self.row0
        if n <= 0:
            return
        for i, a in enumerate(range(0, n, self.FLUSH_ROWS)):
            b = min(n, a + self.FLUSH_ROWS)
            self._write_rows(a, b, inputs[i])
        keep = self.height - n
        arrays = [*self.ref.values(), *self.acc.values()]
        for arr in arrays:
            if keep > 0:
                arr[:, :keep] = arr[:, n:].copy()
            arr[:, max(keep, 0):] = 0
        for arr in (self.wsum, self.valid):
            if keep > 0:
                arr[:keep] = arr[n:].copy()
            arr[max(keep, 0):] = 0
        self.row0 = upto

    def _write_rows(self, a: int, b: int, inp: tuple[np.ndarray, np.ndarray] | None) -> None:
        win = Window(self.row0 + a, 0, b - a, self.cols)
        w = self.wsum[a:b]
        ok = self.valid[a:b] & (w > 0)
        keep: np.ndarray | None = None
        if inp is not None:
            # Pixels outside the mask are copied from the input bit for bit, whatever their values
            # (partial nodata, NaN included); their uncertainty is 0 where valid, nodata elsewhere.
            raw, keep = inp
            ok = (ok & ~keep) | (keep & self.runner.src.valid_of(raw))
        safe_w = np.where(w > 0, w, 1)
        for t in self.targets:
            vals = self.ref[t.name][:, a:b] + self.acc[t.name][:, a:b] / safe_w
            spec = t.writer.spec
            if t.name == "image":
                out = self.runner._to_raster_units(vals, ok, spec.data_type, spec.nodata,
                                                   None if keep is None else ok & ~keep)
                if keep is not None:
                    out[:, keep] = raw[:, keep]
            else:
                if keep is not None:
                    vals = np.where(keep[None], 0.0, vals)
                out = np.where(ok[None], vals, spec.nodata).astype(np.float32)
            t.writer.write(win, out)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _pad_reflect(a: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = pads
    if not any(pads):
        return a
    mode = "reflect" if min(a.shape[-2:]) > 1 else "edge"
    return np.pad(a, ((0, 0), (top, bottom), (left, right)), mode=mode)


class TiledRunner:
    """Runs one pipeline over one input raster into one or more outputs.

    Args:
        source: opened input raster (bands already selected and checked).
        manifest: the bundle manifest (band statistics, value scales, extra outputs).
        pipeline: the per-tile pipeline.
        settings: resolved tiling, scale and seed.
        aux: optional co-registered auxiliary input, already on the output grid (see :mod:`rscore.runtime.api`).
        aux_bands: the manifest's band spec for ``aux``.
        mask: optional one-band raster on the output grid (scale factor 1): non-zero, non-nodata pixels are
            restored; every other valid pixel is copied from the input unchanged, and tiles without a masked
            pixel are not run at all.
    """

    def __init__(self, source: InputRaster, manifest: Manifest, pipeline: Pipeline, settings: EngineSettings,
                 aux: InputRaster | None = None, aux_bands: BandSpec | None = None,
                 mask: InputRaster | None = None) -> None:
        if mask is not None:
            if settings.scale_factor != 1.0:
                raise ValueError("a mask keeps pixels unchanged, which needs scale factor 1")
            if len(mask.bands) != 1 or (mask.info.rows, mask.info.cols) != (source.info.rows, source.info.cols):
                raise ValueError("the mask must be one band on the input's grid (engine bug: warp it first)")
        self.mask = mask
        self.src = source
        self.m = manifest
        self.pipeline = pipeline
        self.s = settings
        self.aux = aux
        self.aux_bands = aux_bands
        info = source.info
        self._scale, self._offset = _radiometry(source, manifest)
        self._aux_radiometry = _radiometry(aux, manifest, "auxiliary raster") if aux is not None else None
        self.grid = OutputGrid(info.rows, info.cols, settings.scale_factor)
        #: the networks read the input on its own grid (resample "none" and a scale factor other than 1)
        self.native_input = manifest.resample == "none" and settings.scale_factor != 1.0
        self.support = SUPPORT_PX[manifest.resample] if settings.scale_factor != 1.0 and not self.native_input else 0
        #: padded windows start and end on multiples of this, in global output-grid pixels: the networks' size
        #: multiple and the latent factor, so strided layers and latent pixels see the same grid whatever the tiling
        self.latent_factor = manifest.latent.factor if manifest.latent else 1
        self.multiple = math.lcm(settings.size_multiple, self.latent_factor)
        tile = min(settings.tile_size_px, max(self.grid.rows, self.grid.cols))
        overlap = min(settings.overlap_px, tile - 1)
        #: as many tiles as TILE_SIZE needs, spread evenly and each as small as that allows (fewer pixels
        #: through the networks for the same output), on the networks' size multiple
        self.tiles: TilePlan = plan_tiles(self.grid, tile, overlap, balanced=True, align_px=self.multiple)
        #: output pixels whose value fell outside the output type's range and were clipped (e.g. a restored
        #: reflectance above 6.5535 or below 0 in UInt16)
        self.clipped_pixels = 0
        #: the engine's working type after the networks (blending, output scaling): float32, or float64 for a
        #: Float64 raster (the strip's type)
        self._ftype = np.float64 if info.data_type == "Float64" else np.float32
        self._out_mean = np.asarray(manifest.output.mean, self._ftype)[:, None, None]
        self._out_std = np.asarray(manifest.output.std, self._ftype)[:, None, None]

    # ---- geometry -------------------------------------------------------------------------------
    def _model_units(self, raw: np.ndarray, valid: np.ndarray, spec: BandSpec, scale: np.ndarray,
                     offset: np.ndarray) -> np.ndarray:
        mean = np.asarray(spec.mean, np.float32)[:, None, None]
        std = np.asarray(spec.std, np.float32)[:, None, None]
        # (raw * scale + offset - mean) / std, in place after the first product: the same arithmetic and the
        # same values as the expression, without four temporaries of the tile's size
        m = raw * scale
        m += offset
        m -= mean
        m /= std
        # Nodata pixels become the band mean (0 in model units): a constant that does not depend on the raw
        # nodata value or on the tiling, so nodata never leaks into valid pixels and tiles stay consistent.
        if not valid.all():
            m[:, ~valid] = 0.0
        return m.astype(np.float32, copy=False)

    def _read_work(self, work: Window) -> tuple[np.ndarray, np.ndarray]:
        """Model-unit input and validity on the output-grid window ``work``."""
        in_win = self.grid.input_window_for(work, self.support)
        raw, valid = self.src.read(in_win)
        y = self._model_units(raw, valid, self.m.input, self._scale, self._offset)
        if self.s.scale_factor == 1.0:
            return y, valid
        info = self.src.info
        y = resample_window(y, in_win, info.rows, info.cols, self.s.scale_factor, work, self.m.resample)
        v = resample_window(valid[None].astype(np.float32), in_win, info.rows, info.cols, self.s.scale_factor,
                            work, "nearest")[0] > 0.5
        return y, v

    def _read_native(self, work: Window, padded: tuple[int, int, int, int]
                     ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """Resample "none": the model-unit input on its own grid covering the padded output window ``padded``
        (r0, r1, c0, c1, global output pixels; reflect-padded beyond the raster), the validity on the output
        window ``work``, and the input-grid position of the returned array."""
        info, s = self.src.info, self.s.scale_factor
        in_win = self.grid.input_window_for(work, 0)
        raw, valid = self.src.read(in_win)
        y = self._model_units(raw, valid, self.m.input, self._scale, self._offset)
        v = resample_window(valid[None].astype(np.float32), in_win, info.rows, info.cols, s, work, "nearest")[0] > 0.5
        r0, r1, c0, c1 = padded
        lr0, lc0 = math.floor(r0 / s), math.floor(c0 / s)
        lr1, lc1 = math.ceil(r1 / s), math.ceil(c1 / s)
        pads = (in_win.row_off - lr0, lr1 - in_win.row_end, in_win.col_off - lc0, lc1 - in_win.col_end)
        return _pad_reflect(y, tuple(max(0, p) for p in pads)), v, (lr0, lc0)

    def cloud_mask(self, win: Window) -> np.ndarray:
        """bool (rows, cols): pixels of ``win`` the mask marks for restoration (all True without a mask)."""
        if self.mask is None:
            return np.ones((win.rows, win.cols), bool)
        raw, valid = self.mask.read(win)
        return valid & (raw[0] != 0)

    def _read_aux(self, work: Window) -> tuple[np.ndarray, np.ndarray] | None:
        """Model-unit auxiliary input and its validity (float32 (1, rows, cols)) on ``work``, or None."""
        if self.aux is None or self.aux_bands is None:
            return None
        raw, valid = self.aux.read(work)
        assert self._aux_radiometry is not None
        return self._model_units(raw, valid, self.aux_bands, *self._aux_radiometry), valid[None].astype(np.float32)

    # ---- value conversion -----------------------------------------------------------------------
    def _to_raster_units(self, phys: np.ndarray, valid: np.ndarray, data_type: str,
                         nodata: float | None, restored: np.ndarray | None = None) -> np.ndarray:
        """Physical values -> raster values; ``restored`` (default: ``valid``) marks the pixels whose clipping
        is counted (pixels a mask copies from the input are not)."""
        np_type = numpy_dtype(data_type)
        raw = (phys - self._offset) / self._scale
        if np_type.kind in "iu":
            lo, hi = dtype_range(data_type)
            raw = np.rint(raw)
            out_of_range = (valid if restored is None else restored) & np.any((raw < lo) | (raw > hi), axis=0)
            self.clipped_pixels += int(out_of_range.sum())
            raw = np.clip(raw, lo, hi)
            if nodata is not None:
                # a valid pixel must never read back as nodata: move it one step towards the data range
                clash = valid[None] & (raw == nodata)
                raw = np.where(clash, nodata + 1 if nodata < hi else nodata - 1, raw)
        out = raw.astype(np_type)
        if np_type.kind == "f" and nodata is not None:
            clash = valid[None] & (out == np_type.type(nodata))
            out = np.where(clash, np.nextafter(np_type.type(nodata), np_type.type(np.inf)), out).astype(np_type)
        if nodata is not None:
            out[:, ~valid] = np.asarray(nodata).astype(np_type)
        elif np_type.kind == "f":
            out[:, ~valid] = np.nan
        return out

    # ---- main loop ------------------------------------------------------------------------------
    def run(self, image_path: str | None, uncertainty_path: str | None = None,
            extra_paths: dict[str, str] | None = None, feedback: Feedback | None = None,
            provenance: dict[str, str] | None = None, overviews: bool = True, cog: bool = False,
            compress_threads: int = 1) -> EngineReport:
        """Run every tile and commit the outputs (or delete them on error/cancel).

        Args:
            image_path: restored raster, input dtype and value scale, output-grid geotransform (None: only the
                extra outputs are written, e.g. the degradation map of an automatic mask).
            uncertainty_path: per-pixel, per-band standard deviation over samples (Float32, physical units).
            extra_paths: manifest extra outputs -> paths (Float32).
            feedback: progress/cancel/info.
            provenance: keys recorded in every output's ``RSRESTORE`` metadata domain (with ``OUTPUT``, the
                output's role: image, uncertainty or an extra output's name).
            overviews: build internal overviews in every output when it is finished.
            cog: write every output in the cloud-optimised layout (:class:`OutputSpec`).
            compress_threads: threads GDAL compresses the outputs with (the run's thread count).

        Raises:
            Cancelled: when feedback asks to stop (no output left behind).
        """
        fb = feedback or NullFeedback()
        info = self.src.info
        gt = self.grid.geotransform(info.geotransform)
        nodata = self.src.nodata_value
        out_bands = self.m.output.count
        names = self.m.output.names
        specs: list[tuple[str, str, int, str, float | None, tuple[str, ...]]] = []
        if image_path is not None:
            specs.append(("image", image_path, out_bands, info.data_type, nodata, names))
        if uncertainty_path:
            specs.append(("uncertainty", uncertainty_path, out_bands, "Float32", -9999.0,
                          tuple(f"{n} std" for n in names)))
        for name, path in (extra_paths or {}).items():
            if name not in self.m.extra_outputs:
                raise ValueError(f"model {self.m.name!r} has no extra output {name!r}; it has {self.m.extra_outputs}")
            specs.append((name, path, 1, "Float32", -9999.0, (name,)))
        targets: list[_Target] = []
        started = time.time()
        for _, path, *_rest in specs:
            stale = sweep_stale_partials(Path(path), started)
            if stale:
                fb.info(f"removed {len(stale)} temporary file(s) left beside {Path(path).name} by an interrupted "
                        f"earlier run: {', '.join(f.name for f in stale)}")
        _cache_cap_enter()
        try:
            for name, path, nb, dt, nd, desc in specs:
                so = info.scale_offset if name == "image" else None
                meta = tuple(sorted({**(provenance or {}), "OUTPUT": name}.items()))
                spec = OutputSpec(self.grid.rows, self.grid.cols, nb, dt, nd, gt, info.crs_wkt, desc, so,
                                  color_interp=names if name == "image" else (), metadata=meta,
                                  overviews=overviews, cog=cog, compress_threads=compress_threads)
                targets.append(_Target(name, OutputRaster(path, spec), nb))
            # a second thread only when the run may use more than one core (a batch worker with one thread keeps
            # to one); a job per tile and one flush per row of tiles: a whole row may wait (see _Writer)
            per_row = len(self.tiles.rows_of_tiles()[0]) + 2
            writer = _Writer(background=compress_threads > 1, max_pending=per_row)
            try:
                report = self._run_tiles(targets, fb, writer)
                writer.close()
            except BaseException:
                writer.abandon()  # before the outputs are deleted: no job may still write to them
                raise
            if report.tiles_skipped == report.tiles_total:
                raise RasterError(
                    f"every pixel of {info.path} is nodata (in the selected bands), so there is nothing to "
                    "restore; check the band selection and the raster's nodata value"
                )
            finals = publish_all([t.writer for t in targets])
            report.outputs.update({t.name: str(f) for t, f in zip(targets, finals)})
            report.clipped_pixels = self.clipped_pixels
            return report
        except BaseException:
            for t in targets:
                t.writer.abort()
            raise
        finally:
            _cache_cap_exit()

    def _run_tiles(self, targets: list[_Target], fb: Feedback, writer: _Writer) -> EngineReport:
        tp = self.tiles
        s = self.s
        cols = self.grid.cols
        report = EngineReport(tiles_total=tp.num_tiles)
        evals_per_tile = max(1, self.pipeline.evals_per_tile(s.samples))
        total_units = tp.num_tiles * evals_per_tile
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            report.network_evals += 1
            fb.set_progress(min(1.0, done / total_units))

        strip = _Strip(self, targets, tp.core(0, 0).rows, cols)
        row0 = 0  # the strip's first row once the writer has run the jobs submitted so far
        rows_of_tiles = tp.rows_of_tiles()
        timed = False
        for i, tile_row in enumerate(rows_of_tiles):
            for core in tile_row:
                if fb.is_canceled():
                    raise Cancelled("cancelled by user")
                if self.mask is not None and not self.cloud_mask(core).any():
                    report.tiles_clear += 1  # nothing to restore: the input is copied at write time
                    done += evals_per_tile
                    fb.set_progress(min(1.0, done / total_units))
                    continue
                t_tile = time.perf_counter()
                result = self._run_tile(core, fb, tick)
                if result is not None and not timed:
                    timed = True
                    left = tp.num_tiles - (report.tiles_clear + report.tiles_skipped + 1)
                    secs = time.perf_counter() - t_tile
                    if left > 0:
                        fb.info(f"first tile took {secs:.1f} s; {left} more tile(s) to run: about "
                                f"{_duration(secs * left)} left at most (cloud-free or empty tiles are faster)")
                if result is None:
                    report.tiles_skipped += 1
                    done += evals_per_tile
                    fb.set_progress(min(1.0, done / total_units))
                    continue
                writer.submit(lambda core=core, result=result: self._blend(strip, core, *result))
            nxt = rows_of_tiles[i + 1][0].row_off if i + 1 < len(rows_of_tiles) else self.grid.rows
            inputs = strip.inputs(row0, nxt)
            writer.submit(lambda nxt=nxt, inputs=inputs: strip.flush(nxt, inputs))
            row0 = nxt
        return report

    def _blend(self, strip: _Strip, core: Window, values: dict[str, np.ndarray], valid: np.ndarray) -> None:
        tp = self.tiles
        w = blend_weights(core, self.grid.rows, self.grid.cols, tp.row_starts, tp.col_starts, tp.tile_px)
        strip.add(core, values, w.astype(self._ftype), valid)

    def _run_tile(self, core: Window, fb: Feedback, tick: Callable[[], None]
                  ) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
        # The padded window is the core grown by the margin, snapped outwards to multiples of the network's
        # size multiple in *global* coordinates: strided layers then see the same pixel grid whatever the
        # tiling. Outside the raster it is filled by reflection.
        m, mult = self.s.margin_px, self.multiple
        r0 = (core.row_off - m) // mult * mult
        c0 = (core.col_off - m) // mult * mult
        r1 = -(-(core.row_end + m) // mult) * mult
        c1 = -(-(core.col_end + m) // mult) * mult
        work = Window(max(0, r0), max(0, c0), min(self.grid.rows, r1) - max(0, r0),
                      min(self.grid.cols, c1) - max(0, c0))
        pads = (work.row_off - r0, r1 - work.row_end, work.col_off - c0, c1 - work.col_end)
        in_off: tuple[int | None, int | None] = (None, None)
        if self.native_input:
            y, valid, in_off = self._read_native(work, (r0, r1, c0, c1))
        else:
            y, valid = self._read_work(work)
        core_valid = valid[core.slices(work)]
        if not core_valid.any():
            return None
        aux_read = self._read_aux(work)
        if not self.native_input:
            y = _pad_reflect(y, pads)
        aux = aux_valid = None
        if aux_read is not None:
            aux, aux_valid = (_pad_reflect(a, pads) for a in aux_read)
        row_off, col_off = r0, c0
        crop = (slice(None), slice(core.row_off - row_off, core.row_end - row_off),
                slice(core.col_off - col_off, core.col_end - col_off))
        samples = []
        extras: dict[str, np.ndarray] = {}
        for k in range(self.s.samples):
            ctx = TileContext(y=y, aux=aux, aux_valid=aux_valid, row_off=row_off, col_off=col_off, seed=self.s.seed,
                              sample_index=k,
                              should_stop=fb.is_canceled, on_eval=tick, scale=self.s.scale_factor,
                              out_shape=(r1 - r0, c1 - c0), in_row_off=in_off[0], in_col_off=in_off[1],
                              latent_factor=self.latent_factor)
            out = self.pipeline.run(ctx)
            if out["image"].shape[1:] != (r1 - r0, c1 - c0):
                raise BundleError(f"model {self.m.name!r} returned a {out['image'].shape[1]} x {out['image'].shape[2]} "
                                  f"tile for a {r1 - r0} x {c1 - c0} window at scale {self.s.scale_factor:g}; its "
                                  "networks do not produce the output grid they declare (re-export the bundle)")
            img = out["image"][crop].astype(self._ftype)  # a copy: the pipeline's array is left alone
            img *= self._out_std
            img += self._out_mean
            samples.append(img)
            for name in self.m.extra_outputs:
                if name in out:
                    extras[name] = extras.get(name, 0.0) + out[name][crop].astype(self._ftype) / self.s.samples
        if len(samples) == 1:
            values = {"image": samples[0], **extras}  # the uncertainty of one sample is 0 (see _Strip.add)
        else:
            stack = np.stack(samples)
            values = {"image": stack.mean(axis=0), "uncertainty": stack.std(axis=0), **extras}
        return values, core_valid
