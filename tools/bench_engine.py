"""Engine benchmark: pixels per second with a fixed small network, and the engine's overhead.

    make bench        (or: .venv/bin/python tools/bench_engine.py [--size 1024] [--repeat 3])

Overhead = everything that is not inside onnxruntime's ``session.run`` (GDAL reads/writes, normalisation,
padding, noise generation, the sampling arithmetic, blending), as a fraction of the wall time. Network time
is measured inside the same run by timing every stage call, so both figures come from one execution.
Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from export.build_bundles import identity, tiny_conv  # noqa: E402
from rscore.runtime import RestoreRequest, restore  # noqa: E402
from rscore.runtime import predictor  # noqa: E402
from tests.fixtures import rasters  # noqa: E402


class StageTimer:
    """Accumulates wall time spent inside OnnxStage.__call__ (i.e. onnxruntime)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._orig = predictor.OnnxStage.__call__

    def __enter__(self) -> StageTimer:
        orig = self._orig
        timer = self

        def timed(stage, feeds):  # noqa: ANN001
            t0 = time.perf_counter()
            try:
                return orig(stage, feeds)
            finally:
                timer.seconds += time.perf_counter() - t0
                timer.calls += 1

        predictor.OnnxStage.__call__ = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        predictor.OnnxStage.__call__ = self._orig  # type: ignore[method-assign]


def bench(bundle: Path, raster: Path, out: Path, repeat: int, **kw: object) -> dict[str, float]:
    best: dict[str, float] | None = None
    for _ in range(repeat):
        with StageTimer() as t:
            t0 = time.perf_counter()
            rep = restore(RestoreRequest(str(raster), str(bundle), str(out), device="cpu", **kw))  # type: ignore[arg-type]
            wall = time.perf_counter() - t0
        row = {"wall_s": wall, "net_s": t.seconds, "calls": t.calls, "tiles": rep.tiles_total, "steps": rep.steps}
        if best is None or wall < best["wall_s"]:
            best = row
    assert best is not None
    return best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024, help="raster side in pixels (4-band uint16)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case; the fastest is reported")
    ap.add_argument("--only", choices=["tiny-conv", "identity"], help="run one case only")
    ap.add_argument("--gdal-overviews", action="store_true",
                    help="build the outputs' overviews with GDAL once each output is finished (as before "
                         "rscore/raster/overviews.py) instead of while it is written")
    args = ap.parse_args(argv)
    if args.gdal_overviews:
        from rscore.raster import io

        class _Off:
            def __init__(self, *a: object, **k: object) -> None:
                raise RuntimeError("incremental overviews off (--gdal-overviews)")

        io.OverviewBuilder = _Off  # type: ignore[assignment,misc]  # OutputRaster then falls back to GDAL
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        raster = rasters.reflectance_uint16(tmp / "in.tif", 4, args.size, args.size, seed=0)
        cases = [
            ("tiny-conv RDDM, 5 steps (4x32 ch 3x3 conv, 29k params)", tiny_conv(tmp), {}),
            ("identity (IO + blending only)", identity(tmp), {"tile_size_px": 256, "overlap_px": 32}),
        ]
        px = args.size * args.size
        print(f"machine: {platform.processor() or platform.machine()}, {predictor.default_threads()} threads; "
              f"raster {args.size} x {args.size} x 4 uint16; best of {args.repeat}"
              f"{'; overviews by GDAL at the end' if args.gdal_overviews else ''}")
        print()
        print("| case | tiles | network calls | wall s | Mpx/s | network s | engine overhead |")
        print("|---|---|---|---|---|---|---|")
        for name, b, kw in cases:
            if args.only and not name.startswith(args.only):
                continue
            r = bench(b.root, raster, tmp / "out.tif", args.repeat, **kw)
            over = (r["wall_s"] - r["net_s"]) / r["wall_s"]
            print(f"| {name} | {r['tiles']} | {r['calls']} | {r['wall_s']:.2f} | {px / r['wall_s'] / 1e6:.3f} | "
                  f"{r['net_s']:.2f} | {100 * over:.1f} % |")


if __name__ == "__main__":
    main()
