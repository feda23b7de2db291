"""Scale-out of ``rsrestore batch`` on this machine: the same scenes on LocalClusters of different shapes.

    .venv/bin/python tools/bench_batch.py [--scenes 6] [--size 1024] [--algorithm dehaze]

The scenes are VRT mosaics of the shipped hazy Sentinel-2 sample (``size`` x ``size`` px, 4 bands), written to a
temporary folder, so nothing large is stored. Each shape restores every scene at the algorithm's defaults into a
fresh output folder. Prints a Markdown table (wall time, scenes/min, Mpx/s, parallel efficiency against one worker
with one thread) and what a season of Sentinel-2 over a country would need, from the measured cost per Mpx.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rscore.cli.batch import ClusterSpec, run_batch  # noqa: E402
from rscore.cli.scene import SceneJob  # noqa: E402
from tests.fixtures.rasters import mosaic_vrt  # noqa: E402

SAMPLE = ROOT / "data" / "samples" / "s2_hazy_bgrn_512.tif"
#: (workers, onnxruntime threads per worker)
SHAPES = ((1, 1), (1, 2), (2, 1))
#: a Sentinel-2 L2A tile at 10 m: 10980 x 10980 px
S2_TILE_MPX = 10980 * 10980 / 1e6


def measure(jobs_dir: Path, scenes: list[Path], algorithm: str, workers: int, threads: int) -> float:
    """Wall seconds of one batch (cluster start included) into a fresh output folder."""
    out = jobs_dir / f"out-{workers}x{threads}"
    jobs = [SceneJob(algorithm, {"INPUT": str(s), "OUTPUT": str(out / f"{s.stem}.tif")}, threads=threads,
                     resume=True) for s in scenes]
    out.mkdir()
    t0 = time.perf_counter()
    results = run_batch(jobs, ClusterSpec(workers, threads), progress=False, log=lambda m: None)
    wall = time.perf_counter() - t0
    bad = [r for r in results if r.status != "done"]
    if bad:
        raise SystemExit(f"{len(bad)} scene(s) did not finish: {bad[0].error}")
    return wall


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--size", type=int, default=1024, help="scene side in pixels")
    ap.add_argument("--algorithm", default="dehaze")
    args = ap.parse_args(argv)
    mpx_scene = args.size * args.size / 1e6
    with tempfile.TemporaryDirectory(prefix="rsrestore-bench-batch-") as tmp:
        d = Path(tmp)
        scenes = [mosaic_vrt(d / f"scene{i}.vrt", SAMPLE, args.size, args.size) for i in range(args.scenes)]
        walls = {shape: measure(d, scenes, args.algorithm, *shape) for shape in SHAPES}
    base = walls[(1, 1)]
    print(f"rsrestore batch {args.algorithm} at defaults: {args.scenes} scenes of {args.size} x {args.size} px x 4 "
          f"bands ({mpx_scene * args.scenes:.1f} Mpx), {os.cpu_count()} CPU core(s)\n")
    print("| workers x threads | wall (s) | scenes/min | Mpx/s | speed-up vs 1 x 1 | parallel efficiency |")
    print("|---|---|---|---|---|---|")
    for (w, t), wall in walls.items():
        speed = base / wall
        print(f"| {w} x {t} | {wall:.1f} | {60 * args.scenes / wall:.2f} | {mpx_scene * args.scenes / wall:.3f} | "
              f"{speed:.2f} | {speed / (w * t):.0%} |")
    best_shape, best = min(walls.items(), key=lambda kv: kv[1])
    s_per_mpx_core = best * best_shape[0] * best_shape[1] / (mpx_scene * args.scenes)
    print(f"\nbest shape {best_shape[0]} x {best_shape[1]}: {s_per_mpx_core:.2f} core-seconds per Mpx "
          f"(cluster start included)")
    # a season over a country, on paper: Germany is covered by about 60 Sentinel-2 tiles (MGRS, 110 km), each
    # seen every 5 days by the two satellites: 18 dates in 90 days
    tiles, dates = 60, 18
    mpx = tiles * dates * S2_TILE_MPX
    core_hours = mpx * s_per_mpx_core / 3600
    print(f"season of Sentinel-2 over Germany (~{tiles} tiles x {dates} dates x {S2_TILE_MPX:.0f} Mpx = "
          f"{mpx / 1e3:.0f} Gpx): {core_hours:,.0f} core-hours; in 24 h: {math.ceil(core_hours / 24):,} single-core workers "
          f"(or {math.ceil(core_hours / 24 / 2):,} 2-core machines like this one); in 7 days: "
          f"{math.ceil(core_hours / 168):,}")


if __name__ == "__main__":
    main()
