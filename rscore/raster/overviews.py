"""Internal overviews computed while an output is written, instead of by GDAL once it is finished.

GDAL's ``BuildOverviews("AVERAGE")`` runs after the last row, on one thread, and reads the whole output back:
from its block cache when the output fits, from disk when it does not (a full Sentinel-2 tile on a machine with
16 GB of memory or less; docs/performance.md). The engine writes its outputs in full-width rows from top to
bottom, so every overview level can be averaged from those rows as they pass. :class:`OverviewBuilder` does that,
into the levels GDAL created empty (resampling "NONE"), on the grid GDAL itself would use:

* level k has ceil(size / 2^k) pixels along each axis, and is averaged from level k - 1 (the full-resolution image
  for k = 1), as GDAL does for power-of-two factors;
* a pixel j of a level covers the source interval [j s, (j + 1) s) of the level above, s = source size / level
  size (s = 2 for an even source size, slightly less for an odd one); a source pixel that the interval covers
  only in part counts with the fraction covered (GDAL's weighted AVERAGE);
* nodata pixels are left out of the mean, and a pixel with no valid source is nodata;
* integer types are rounded half up; floating-point types keep the mean.

Against GDAL 3.6 (tests/test_overviews.py): bit for bit for Byte and UInt16 outputs on even sizes, and on odd sizes
with nodata. Elsewhere the two differ by rounding only (at most 1 for integer types): GDAL averages Int16 and
floating-point types in float32, and where a window of an odd-sized level spans two rows (without nodata) it
leaves out the fractional weight of the second, which this module keeps.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from osgeo import gdal


class _Axis:
    """Gather indices and weights of one level along one axis: dst pixel j = sum_k src[idx[k][j]] * w[k][j]."""

    def __init__(self, src: int, dst: int) -> None:
        self.src, self.dst = src, dst
        self.halves = src == 2 * dst  # every interval is exactly two whole pixels: plain pair sums
        s = src / dst
        j = np.arange(dst)
        a, b = j * s, (j + 1) * s
        first = np.floor(a + 1e-8).astype(np.int64)  # the epsilon keeps exact boundaries exact
        last = np.minimum(np.ceil(b - 1e-8).astype(np.int64) - 1, src - 1)
        self.idx, self.w = [], []
        for k in range(3):  # s <= 2: an interval touches at most three pixels
            i = first + k
            lo, hi = np.maximum(a, i), np.minimum(b, i + 1)
            w = np.where(i <= last, np.clip(hi - lo, 0.0, 1.0), 0.0)
            self.idx.append(np.minimum(i, src - 1))
            self.w.append(w)
        #: the last source pixel each dst pixel needs
        self.last = last
        #: the weight each dst pixel sums (without nodata): w[0] + w[1] + w[2], the order reduce() adds them in
        self.total = self.w[0] + self.w[1] + self.w[2]

    def reduce(self, x: np.ndarray, axis: int, offset: int = 0, rows: slice | None = None) -> np.ndarray:
        """Weighted sums along ``axis`` of ``x``, whose index 0 is source pixel ``offset``; dst pixels ``rows``."""
        sel = slice(None) if rows is None else rows
        if self.halves:
            j0 = 0 if rows is None else rows.start
            j1 = self.dst if rows is None else rows.stop
            start = 2 * j0 - offset
            return _take(x, axis, slice(start, start + 2 * (j1 - j0), 2)) + _take(
                x, axis, slice(start + 1, start + 2 * (j1 - j0), 2))
        out = None
        for idx, w in zip(self.idx, self.w):
            i, wt = idx[sel] - offset, w[sel]
            i = np.clip(i, 0, x.shape[axis] - 1)  # weight 0 where clipped
            shape = [1] * x.ndim
            shape[axis] = -1
            term = np.take(x, i, axis=axis) * wt.reshape(shape)
            out = term if out is None else out + term
        assert out is not None
        return out


def _take(x: np.ndarray, axis: int, sl: slice) -> np.ndarray:
    idx = [slice(None)] * x.ndim
    idx[axis] = sl
    return x[tuple(idx)]


class BlockRowSink:
    """Full-width rows of one image (the full resolution or one overview level), written in order from the top,
    given to GDAL in whole rows of its blocks: once a block row is complete it is written and ``flush`` compresses
    it at once, on the thread that writes, instead of with the rest of the file when it is closed. The rows of a
    block row that is not complete yet wait here (at most one block row), so no block is compressed twice and the
    file is the one a single write would make.

    Args:
        rows: the image's height.
        block_rows: the height of its blocks.
        write: ``write(row_off, values)`` gives GDAL the rows (bands, n, cols) at ``row_off``.
        flush: compresses and writes the complete blocks GDAL holds.
    """

    def __init__(self, rows: int, block_rows: int, write: Callable[[int, np.ndarray], None],
                 flush: Callable[[], None]) -> None:
        self.rows, self.block_rows = rows, max(1, block_rows)
        self._write, self._flush = write, flush
        #: rows received so far
        self.next_row = 0
        #: the rows received since the last cut (a multiple of block_rows), not given to GDAL yet
        self._held: list[np.ndarray] = []

    def push(self, row_off: int, values: np.ndarray) -> None:
        """Rows ``[row_off, row_off + n)``; ``row_off`` must be :attr:`next_row`."""
        if row_off != self.next_row:
            raise ValueError(f"rows must arrive in order: got row {row_off}, expected {self.next_row}")
        start = row_off - sum(h.shape[1] for h in self._held)  # the previous cut
        end = self.next_row = row_off + values.shape[1]
        cut = end if end >= self.rows else end // self.block_rows * self.block_rows
        if cut <= start:  # the block row is still filling: keep the rows (a copy: the caller may reuse its array)
            self._held.append(values.copy())
            return
        rows = np.concatenate([*self._held, values], axis=1) if self._held else values
        self._held = [rows[:, cut - start :].copy()] if cut < end else []
        self._write(start, rows[:, : cut - start])
        self._flush()

    def release(self) -> None:
        """Give GDAL the rows still waiting (the image ends early, or the writes stop being in order)."""
        if self._held:
            rows = np.concatenate(self._held, axis=1)
            self._held = []
            self._write(self.next_row - rows.shape[1], rows)


class _Level:
    """One overview level: the rows of the level above wait in a buffer until a row of this level has all of its
    source rows."""

    def __init__(self, src_shape: tuple[int, int], dst_shape: tuple[int, int]) -> None:
        self.rows = _Axis(src_shape[0], dst_shape[0])
        self.cols = _Axis(src_shape[1], dst_shape[1])
        self.buf: np.ndarray | None = None  # column-reduced sums of the waiting source rows
        self.wbuf: np.ndarray | None = None  # their column-reduced weights (None without nodata)
        self.buf_start = 0  # source row of buf[:, 0]
        self.next = 0  # next row of this level to produce


class OverviewBuilder:
    """Averages full-width rows, pushed in order, into the overview levels ``factors`` (2, 4, 8, ...) of ``ds``.

    :meth:`push` takes the rows of the full-resolution image as written. After the last row every level is
    written. :attr:`complete` is False once a write did not continue where the previous one ended (see
    :meth:`abandon`): the caller then builds the overviews with GDAL instead.
    """

    def __init__(self, ds: gdal.Dataset, factors: list[int], nodata: float | None, dtype: np.dtype) -> None:
        if any(f != 2 ** (i + 1) for i, f in enumerate(factors)):
            raise ValueError(f"overview factors must be 2, 4, 8, ...; got {factors}")
        self.ds = ds
        self.bands = ds.RasterCount
        self.nodata = nodata
        self.dtype = np.dtype(dtype)
        self.integer = np.issubdtype(self.dtype, np.integer)
        if self.integer:
            info = np.iinfo(self.dtype)
            self.lo, self.hi = float(info.min), float(info.max)
        shape = (ds.RasterYSize, ds.RasterXSize)
        sizes = [(math.ceil(shape[0] / f), math.ceil(shape[1] / f)) for f in factors]
        ds.BuildOverviews("NONE", factors)  # empty levels, filled by push
        band = ds.GetRasterBand(1)
        got = [(band.GetOverview(i).YSize, band.GetOverview(i).XSize) for i in range(band.GetOverviewCount())]
        if got != sizes:
            raise RuntimeError(f"GDAL made overview levels of sizes {got}, expected {sizes}")
        self.levels = [_Level(src, dst) for src, dst in zip([shape, *sizes[:-1]], sizes)]
        #: each level's rows reach GDAL in whole block rows, compressed as each completes
        self.sinks = [self._sink(k, rows) for k, (rows, _) in enumerate(sizes)]
        self.next_row = 0
        self.complete = True

    def _sink(self, k: int, rows: int) -> BlockRowSink:
        bands = [self.ds.GetRasterBand(b + 1).GetOverview(k) for b in range(self.bands)]

        def write(row: int, out: np.ndarray) -> None:
            for b, band in enumerate(bands):
                if band.WriteArray(out[b], 0, row) != 0:
                    raise RuntimeError(f"writing overview level {k + 1}, band {b + 1} at row {row} failed")

        def flush() -> None:
            for band in bands:
                band.FlushCache()

        return BlockRowSink(rows, bands[0].GetBlockSize()[1], write, flush)

    def abandon(self) -> None:
        """Stop averaging (a write that is not the next full-width rows): the caller builds the overviews."""
        self.complete = False
        self.levels = []
        self.sinks = []

    def push(self, row_off: int, values: np.ndarray) -> None:
        """Rows ``[row_off, row_off + n)`` of the full-resolution image, (bands, n, cols), of the output type."""
        if not self.complete:
            return
        if row_off != self.next_row or values.shape[2] != self.ds.RasterXSize:
            self.abandon()
            return
        self.next_row += values.shape[1]
        self._feed(0, values)

    def finish(self) -> None:
        """Check that every level got all of its rows; otherwise :attr:`complete` turns False."""
        if self.next_row != self.ds.RasterYSize or any(lv.next != lv.rows.dst for lv in self.levels):
            self.abandon()
        for sink in self.sinks:
            sink.release()

    # ---- internals ----------------------------------------------------------------------------------------
    def _valid(self, values: np.ndarray) -> np.ndarray | None:
        if self.nodata is None:
            return None
        return ~np.isnan(values) if math.isnan(self.nodata) else values != self.nodata

    def _feed(self, k: int, values: np.ndarray) -> None:
        """Source rows (of level k - 1, as written) for level k: produce every row of level k they complete."""
        if k >= len(self.levels):
            return
        lv = self.levels[k]
        if lv.rows.halves and lv.cols.halves and self.integer and self.nodata is None:
            self._feed_pairs(k, lv, values)
            return
        valid = self._valid(values)
        x = values.astype(np.float64)
        if valid is not None:
            x[~valid] = 0.0
        sums = lv.cols.reduce(x, axis=2)
        wts = None if valid is None else lv.cols.reduce(valid.astype(np.float64), axis=2)
        if lv.buf is None:
            lv.buf, lv.wbuf = sums, wts
        else:
            lv.buf = np.concatenate([lv.buf, sums], axis=1)
            lv.wbuf = None if wts is None else np.concatenate([lv.wbuf, wts], axis=1)  # type: ignore[list-item]
        have = lv.buf_start + lv.buf.shape[1]  # source rows received so far
        stop = lv.next
        while stop < lv.rows.dst and lv.rows.last[stop] < have:
            stop += 1
        if stop == lv.next:
            return
        rows = slice(lv.next, stop)
        s = lv.rows.reduce(lv.buf, axis=1, offset=lv.buf_start, rows=rows)
        if lv.wbuf is None:
            w = lv.rows.total[rows][None, :, None] * lv.cols.total[None, None, :]
        else:
            w = lv.rows.reduce(lv.wbuf, axis=1, offset=lv.buf_start, rows=rows)
        out = self._write(k, lv.next, s, w)
        lv.next = stop
        # keep the source rows that the next row of this level still needs
        keep_from = have if stop >= lv.rows.dst else int(np.floor(stop * lv.rows.src / lv.rows.dst + 1e-8))
        drop = max(0, min(keep_from, have) - lv.buf_start)
        lv.buf = lv.buf[:, drop:]
        lv.wbuf = None if lv.wbuf is None else lv.wbuf[:, drop:]
        lv.buf_start += drop
        self._feed(k + 1, out)

    def _feed_pairs(self, k: int, lv: _Level, values: np.ndarray) -> None:
        """Even sizes, an integer type and no nodata: each pixel is (a + b + c + d + 2) // 4 of its 2 x 2 block
        in integer arithmetic (GDAL's own shortcut), an odd row waiting for its partner in ``lv.buf``."""
        if lv.buf is not None:
            values = np.concatenate([lv.buf, values], axis=1)
            lv.buf = None
        if values.shape[1] % 2:
            lv.buf = values[:, -1:].copy()
            values = values[:, :-1]
        if values.shape[1] == 0:
            return
        wide = np.int64 if self.dtype.itemsize >= 4 else np.int32
        pairs = np.add(values[:, 0::2], values[:, 1::2], dtype=wide)
        total = np.add(pairs[:, :, 0::2], pairs[:, :, 1::2])
        total += 2
        total //= 4  # half up (floor division)
        out = total.astype(self.dtype)
        self._store(k, lv.next, out)
        lv.next += out.shape[1]
        self._feed(k + 1, out)

    def _store(self, k: int, row: int, out: np.ndarray) -> None:
        self.sinks[k].push(row, out)

    def _write(self, k: int, row: int, sums: np.ndarray, wts: np.ndarray) -> np.ndarray:
        ok = wts > 0
        mean = sums / np.where(ok, wts, 1.0)
        if self.integer:
            mean = np.floor(mean + 0.5)  # half up
            np.clip(mean, self.lo, self.hi, out=mean)
        if self.nodata is not None and not ok.all():
            mean = np.where(ok, mean, self.nodata)
        out = mean.astype(self.dtype)
        self._store(k, row, out)
        return out
