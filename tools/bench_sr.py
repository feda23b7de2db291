"""Super-resolution speed: output megapixels per second and peak memory for one input at one scale.

    .venv/bin/python tools/bench_sr.py --bundle models/sr-bgrn --size 1000 --scale 4
    .venv/bin/python tools/bench_sr.py --size 250 --width 8 --denoiser-width 32      # untrained, architecture only
    .venv/bin/python tools/bench_sr.py --bundle models/refsr-bgrn --size 128 --scale 4 --reference   # one 512 px tile
    .venv/bin/python tools/bench_sr.py --bundle models/decoded-bgrn --size 1024 --scale 1      # codec enhancement
    .venv/bin/python tools/bench_sr.py --bundle models/decoded-rgb --size 1024 --scale 1 --rgb

``--rgb`` writes a 3-band 8-bit input instead of the 4-band uint16 one. ``--reference`` (reference-based
bundles) adds a reference raster on the output grid (in a fresh process, so that the peak memory is the run's
own; with ``--size 128 --scale 4`` the output is exactly one 512 px tile).

The target of issue 11: a 1000 x 1000 x 4 uint16 input at x4 (16 Mpx of output) at default settings, at least
0.2 Mpx of output per second on this 2-core CPU. Without ``--bundle`` an untrained bundle of the given widths is
exported first (the same networks and ONNX graphs as a trained one, so the same speed). Each case runs in a
fresh process, so the peak resident memory (``ru_maxrss``) is that case's own. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _untrained_bundle(out: Path, width: int, denoiser_width: int) -> Path:
    import torch

    from export.bundle_writer import build_bundle
    from export.onnx_export import StageExport
    from rscore.bundle.manifest import BandSpec, LatentSpec, Manifest, ScaleRange, StageSpec, TensorSpec, TilingDefaults
    from rscore.diffusion.plan import SamplerConfig
    from rscore.models.ldcsr import SIZE_MULTIPLE, CondEncoder, LatentDenoiser, LdcsrConfig, SrDecoder

    torch.manual_seed(0)
    cfg = LdcsrConfig(4, width=width, denoiser_width=denoiser_width)
    stages = {"cond": StageExport(CondEncoder(cfg), ("y", "scale"), ("c",), "cond.onnx"),
              "denoiser": StageExport(LatentDenoiser(cfg), ("x_t", "c", "t", "scale"), ("eps",), "denoiser.onnx"),
              "decoder": StageExport(SrDecoder(cfg), ("x0", "y", "scale"), ("x",), "decoder.onnx")}
    lat = TensorSpec("latent", cfg.latent_channels)
    tensors = {"cond": {"c": lat}, "denoiser": {"x_t": lat, "c": lat, "eps": lat}, "decoder": {"x0": lat}}
    spec = BandSpec(("blue", "green", "red", "nir"), (0.1,) * 4, (0.1,) * 4)
    m = Manifest(name="sr-untrained", task="super_resolve", title="untrained LDCSR (benchmark)", pipeline="ldcsr",
                 input=spec, output=spec, value_scale={"UInt16": 1e-4},
                 stages={k: StageSpec(v.file, "", v.inputs, v.outputs, tensors.get(k, {})) for k, v in stages.items()},
                 tiling=TilingDefaults(512, 32, 64, SIZE_MULTIPLE),
                 sampler=SamplerConfig("ddim", num_timesteps=4, default_steps=4, eta=1.0, ddpm_schedule="sqrt_linear"),
                 latent=LatentSpec(cfg.latent_channels, 8), scale=ScaleRange(1.0, 8.0, 4.0))
    return build_bundle(out / "sr-untrained", m, stages, parity_rows=64, parity_cols=64)[0].root


def _one_case(bundle: str, raster: str, out: str, scale: float, steps: int | None, threads: int | None,
              reference: str | None = None) -> dict:
    from rscore.runtime import RestoreRequest, restore

    kw: dict = {"options": {"one_pass": True}} if steps == 0 else {"steps": steps}
    if reference:
        kw["aux_path"] = reference
    restore(RestoreRequest(raster, bundle, out, scale_factor=scale, device="cpu", threads=threads, **kw))
    t0 = time.perf_counter()
    rep = restore(RestoreRequest(raster, bundle, out, scale_factor=scale, device="cpu", threads=threads, **kw))
    wall = time.perf_counter() - t0
    from osgeo import gdal

    ds = gdal.Open(out)
    mpx = ds.RasterXSize * ds.RasterYSize / 1e6
    return {"wall_s": wall, "out_mpx": mpx, "mpx_per_s": mpx / wall, "tiles": rep.tiles_total,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="a trained LDCSR bundle (default: export an untrained one)")
    ap.add_argument("--size", type=int, default=1000, help="input side in pixels (4-band uint16)")
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--denoiser-width", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reference", action="store_true", help="give a reference raster (reference-based bundles)")
    ap.add_argument("--rgb", action="store_true", help="a 3-band 8-bit input (RGB bundles)")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case as JSON, in a child process
    args = ap.parse_args(argv)
    if args.case:
        print(json.dumps(_one_case(**json.loads(args.case))))
        return
    from tests.fixtures import rasters

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bundle = args.bundle or _untrained_bundle(tmp, args.width, args.denoiser_width)
        if args.rgb:
            rgb = np.clip(rasters.scene(3, args.size, args.size, seed=0) * 2.5, 0, 1)
            raster = rasters.write(tmp / "in.tif", np.round(rgb * 255), "Byte")
        else:
            raster = rasters.reflectance_uint16(tmp / "in.tif", 4, args.size, args.size, seed=0)
        reference = None
        if args.reference:
            hr = round(args.size * args.scale)
            px = rasters.GEOTRANSFORM[1] / args.scale
            reference = str(rasters.write(tmp / "ref.tif", np.round(rasters.scene(4, hr, hr, seed=1) * 1e4), "UInt16",
                                          geotransform=(rasters.GEOTRANSFORM[0], px, 0.0, rasters.GEOTRANSFORM[3], 0.0,
                                                        -px)))
        rows = []
        for label, steps in (("default steps", None), ("one pass", 0)):
            case = {"bundle": str(bundle), "raster": str(raster), "out": str(tmp / "out.tif"), "scale": args.scale,
                    "steps": steps, "threads": args.threads, "reference": reference}
            done = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], check=True,
                                  capture_output=True, text=True)
            rows.append((label, json.loads(done.stdout.strip().splitlines()[-1])))
    kind = "3 uint8" if args.rgb else "4 uint16"
    print(f"{platform.processor() or platform.machine()}, input {args.size} x {args.size} x {kind}, scale "
          f"{args.scale:g}, bundle {bundle.name}{', with a reference' if reference else ''}\n")
    print("| case | output Mpx | wall s | Mpx/s | tiles | peak RSS MB |\n|---|---|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['out_mpx']:.1f} | {r['wall_s']:.1f} | {r['mpx_per_s']:.3f} | {r['tiles']} | "
              f"{r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
