"""A full Sentinel-2 tile: ``rsrestore:dehaze`` at its defaults on 10980 x 10980 x 4 uint16, per backend.

    .venv/bin/python tools/bench_full.py [--size 10980] [--devices cpu openvino] [--threads 2]   (make bench-full)

The raster is a VRT mosaic of the shipped hazy Sentinel-2 sample (tests/fixtures/rasters.py: mosaic_vrt), made
in a temporary folder: nothing large is stored but the output, which is deleted after it is measured. Each
backend runs in a fresh process. The network time is summed over every stage call (a wrapper around the
stages' ``__call__``); the engine time is the rest of the wall time (reading, normalising, padding, noise,
sampler arithmetic, and whatever of the blending, writing and overviews the main thread waits for: they run on
the engine's writer thread beside the networks, which they slow a little). Peak memory is the process's maximum
resident set.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "data" / "samples" / "s2_hazy_bgrn_512.tif"
BUNDLE = ROOT / "models" / "dehaze-bgrn"


def child(src: str, out: str, device: str, threads: int) -> None:
    """(fresh process) one run; prints a JSON line."""
    from rscore.runtime import RestoreRequest, restore
    from rscore.runtime import openvino_backend as ovb
    from rscore.runtime.predictor import OnnxStage

    spent = {"network_s": 0.0, "calls": 0}

    def timed(cls: type) -> None:
        inner = cls.__call__

        def call(self, feeds):  # noqa: ANN001, ANN202 - a benchmark wrapper
            t = time.perf_counter()
            try:
                return inner(self, feeds)
            finally:
                spent["network_s"] += time.perf_counter() - t
                spent["calls"] += 1

        cls.__call__ = call

    timed(OnnxStage)
    timed(ovb.OpenVinoStage)
    t0 = time.perf_counter()
    report = restore(RestoreRequest(src, str(BUNDLE), out, device=device, threads=threads))
    wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": wall, **spent, "tiles": report.tiles_total, "message": report.provider_message,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "out_mb": Path(out).stat().st_size / 1e6}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10980)
    ap.add_argument("--devices", nargs="*", default=["cpu", "openvino"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tmp", default=None, help="folder for the mosaic and the output (default: the system's)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child[:3], args.threads)
        return
    from tests.fixtures.rasters import mosaic_vrt
    from tools.bench_backends import run_child

    rows = []
    with tempfile.TemporaryDirectory(prefix="rsrestore-bench-full-", dir=args.tmp) as tmp:
        src = mosaic_vrt(Path(tmp) / "s2_tile.vrt", SAMPLE, args.size, args.size)
        for device in args.devices:
            out = Path(tmp) / f"dehazed-{device}.tif"
            res = run_child([sys.executable, __file__, "--threads", str(args.threads), "--child", str(src), str(out),
                             device], device)
            out.unlink()
            rows.append((device, res))
            print(f"{device}: {res['wall_s']:.0f} s", file=sys.stderr, flush=True)
    mpx = args.size * args.size / 1e6
    print(f"dehaze-bgrn at defaults on {args.size} x {args.size} x 4 uint16 ({mpx:.1f} Mpx), {args.threads} threads\n")
    print("| backend | wall | Mpx/s | network s | engine s | engine share | network calls | tiles | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for device, r in rows:
        engine = r["wall_s"] - r["network_s"]
        print(f"| {device} ({r['message']}) | {r['wall_s'] / 60:.1f} min | {mpx / r['wall_s']:.3f} | "
              f"{r['network_s']:.0f} | {engine:.0f} | {engine / r['wall_s']:.0%} | {r['calls']} | {r['tiles']} | "
              f"{r['rss_mb']:,.0f} |")


if __name__ == "__main__":
    main()
