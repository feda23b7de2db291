"""Cloud-removal speed: the full rsrestore:remove_clouds path on a 2000 x 2000 4-band raster.

    .venv/bin/python tools/bench_clouds.py [--size 2000] [--bundle models/clouds-bgrn] [--steps 5 10 20]

Rows: default settings without a mask; the same with a cloud mask (only tiles holding a masked pixel run);
and other step counts without a mask. Prints wall time, pixels per second, network evaluations and the time
per evaluation inside onnxruntime.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from rscore.bundle import load_bundle  # noqa: E402
from rscore.degradations.clouds import CloudParams, add_clouds  # noqa: E402
from rscore.runtime import RestoreRequest, restore  # noqa: E402
from rscore.runtime.predictor import default_threads  # noqa: E402
from tests.fixtures import rasters  # noqa: E402
from tools.bench_engine import StageTimer  # noqa: E402

#: a scene-sized cumulus field: about a quarter of the pixels cloudy, in large connected cells
CLOUDS = CloudParams("thick", coverage=0.25, edge_softness=0.5, feature_scale_px=600.0, shadow_strength=0.5,
                     shadow_offset_px=(30.0, 20.0))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--bundle", type=Path, default=ROOT / "models" / "clouds-bgrn")
    ap.add_argument("--steps", type=int, nargs="*", default=[5, 20])
    args = ap.parse_args(argv)
    b = load_bundle(args.bundle)
    m = b.manifest
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clean = rasters.scene(4, args.size, args.size, seed=5).astype(np.float32)
        res, _ = add_clouds(clean, (490.0, 560.0, 665.0, 842.0), np.random.default_rng(0), params=CLOUDS)
        src = rasters.write(tmp / "cloudy.tif", np.round(np.clip(res.image, 0, 6.5) * 1e4), "UInt16")
        cloud = res.mask > 0.01
        mask = rasters.write(tmp / "mask.tif", cloud[None].astype(np.uint8), "Byte")
        warm = rasters.write(tmp / "warm.tif", np.round(np.clip(res.image[:, :96, :96], 0, 6.5) * 1e4), "UInt16")
        restore(RestoreRequest(str(warm), str(args.bundle), str(tmp / "warm_out.tif"), device="cpu"))  # sessions
        cases = [("default", {}), ("default + mask", {"mask_path": str(mask)})]
        cases += [(f"{k} steps", {"steps": k}) for k in args.steps if k != m.sampler.default_steps]
        for label, kw in cases:
            with StageTimer() as timer:
                t0 = time.perf_counter()
                rep = restore(RestoreRequest(str(src), str(args.bundle), str(tmp / f"out_{len(rows)}.tif"),
                                             device="cpu", **kw))
                wall = time.perf_counter() - t0
            rows.append((label, rep, wall, timer.seconds / max(timer.calls, 1), timer.calls))
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = m.tiling
    print(f"bundle {m.name}, {args.size} x {args.size} x 4 uint16, {t.tile_size_px} px tiles, margin "
          f"{t.margin_px} px, default {m.sampler.default_steps} steps, {default_threads()} threads; cloud mask "
          f"covers {cloud.mean() * 100:.1f} % of the pixels; peak RSS {rss_mb:,.0f} MB")
    print()
    print("| run | steps | tiles run / total | network evals | wall s | px/s | s per network eval |")
    print("|---|---|---|---|---|---|---|")
    for label, rep, wall, per_eval, calls in rows:
        run = rep.tiles_total - rep.tiles_clear - rep.tiles_skipped
        print(f"| {label} | {rep.steps} | {run} / {rep.tiles_total} | {calls} | {wall:.1f} | "
              f"{args.size ** 2 / wall:,.0f} | {per_eval:.3f} |")


if __name__ == "__main__":
    main()
