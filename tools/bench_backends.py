"""Every shipped bundle at its defaults on onnxruntime fp32 and on OpenVINO, side by side, per Mpx of output.

    .venv/bin/python tools/bench_backends.py [--size 1024] [--threads 2] [--bundles dehaze-bgrn ...]

Inputs are VRT mosaics of the shipped hazy Sentinel-2 sample (4-band uint16), or its 8-bit true-colour
rendering for RGB bundles, sized so that the output is ``size`` x ``size`` px (super-resolution reads
size / scale). Reference-based bundles get the mosaic at output size as their reference. Each (bundle,
backend) runs in a fresh process, twice: the s/Mpx columns are the second run (networks loaded and compiled,
as for every scene after the first in a batch worker); "speed-up, first run" includes loading and
OpenVINO's compilation. The peak RSS is that process's. The parity column is the PSNR of the OpenVINO output
against the onnxruntime output (peak 10000 for reflectance x 1e4, 255 for 8-bit).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "data" / "samples" / "s2_hazy_bgrn_512.tif"
BACKENDS = ("cpu", "openvino")


def make_inputs(folder: Path, size: int) -> dict[str, Path]:
    """4-band and 8-bit RGB mosaics of the sample at ``size`` px, and the RGB tile they repeat."""
    from osgeo import gdal

    from tests.fixtures.rasters import mosaic_vrt

    rgb_tile = folder / "s2_rgb8_512.tif"
    gdal.Translate(str(rgb_tile), str(SAMPLE), bandList=[3, 2, 1], outputType=gdal.GDT_Byte,
                   scaleParams=[[0, 3500, 0, 255]])
    out = {}
    for kind, tile in (("bgrn", SAMPLE), ("rgb", rgb_tile)):
        for s in sorted({size, size // 4}):
            out[f"{kind}{s}"] = mosaic_vrt(folder / f"{kind}{s}.vrt", tile, s, s)
    return out


def run_one(bundle: str, device: str, src: str, out: str, aux: str | None, threads: int) -> None:
    """(child process) one restore; prints a JSON line with the wall time and the peak RSS."""
    from rscore.runtime import RestoreRequest, restore

    walls = []
    for k in range(2):  # cold (loading and compiling included), then warm (the process's cached networks)
        target = out if k == 1 else out.replace(".tif", "-cold.tif")
        t0 = time.perf_counter()
        report = restore(RestoreRequest(src, bundle, target, aux_path=aux, device=device, threads=threads))
        walls.append(time.perf_counter() - t0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"cold": walls[0], "wall": walls[1], "rss_mb": rss_mb, "evals": report.network_evals,
                      "message": report.provider_message}))


def run_child(cmd: list[str], what: str) -> dict:
    """Run a benchmark child process and return the JSON object of its last ``{...}`` line; a failure stops
    the benchmark with the child's error output."""
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not line:
        raise SystemExit(f"{what} failed:\n{p.stderr[-3000:]}")
    return json.loads(line[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024, help="output side in pixels")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bundles", nargs="*", default=None, help="bundle names under models/ (default: all)")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        bundle, device, src, out, aux = args.child
        run_one(bundle, device, src, out, aux or None, args.threads)
        return
    from osgeo import gdal

    from rscore.metrics.fidelity import psnr

    names = args.bundles or sorted(p.parent.name for p in (ROOT / "models").glob("*/manifest.json"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="rsrestore-bench-backends-") as tmp:
        d = Path(tmp)
        inputs = make_inputs(d, args.size)
        for name in names:
            bundle = ROOT / "models" / name
            m = json.loads((bundle / "manifest.json").read_text())
            kind = "bgrn" if len(m["input"]["names"]) == 4 else "rgb"
            scale = float(m["scale"]["default"])
            src = inputs[f"{kind}{args.size // 4}" if scale == 4 else f"{kind}{args.size}"]
            has_aux = bool(m.get("aux")) or any("aux" in s["inputs"] for s in m["stages"].values())
            aux = str(inputs[f"{kind}{args.size}"]) if has_aux else ""
            res, arrays = {}, {}
            for device in BACKENDS:
                out = d / f"{name}-{device}.tif"
                cmd = [sys.executable, __file__, "--threads", str(args.threads), "--child", str(bundle), device,
                       str(src), str(out), aux]
                res[device] = run_child(cmd, f"{name} on {device}")
                ds = gdal.Open(str(out))
                arrays[device] = ds.ReadAsArray()
                mpx = ds.RasterXSize * ds.RasterYSize / 1e6
                out.unlink()
                Path(str(out).replace(".tif", "-cold.tif")).unlink()
            peak = 255.0 if arrays["cpu"].dtype == np.uint8 else 10000.0
            rows.append((name, m["task"], (m.get("sampler") or {}).get("default_steps", 0), mpx, res,
                         psnr(arrays["cpu"], arrays["openvino"], peak)))
            print(f"{name}: ort {res['cpu']['wall']:.1f} s, openvino {res['openvino']['wall']:.1f} s", file=sys.stderr)
    print(f"Every shipped bundle at its defaults, {args.size} x {args.size} px of output, {args.threads} threads; "
          f"OpenVINO: {res['openvino']['message']}\n")
    print("| bundle | task | default steps | output Mpx | ORT fp32 s/Mpx | OpenVINO s/Mpx | speed-up | speed-up, first "
          "run | parity dB | peak RSS ORT / OpenVINO MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, task, steps, mpx, res, db in rows:
        o, v = res["cpu"]["wall"] / mpx, res["openvino"]["wall"] / mpx
        cold = res["cpu"]["cold"] / res["openvino"]["cold"]
        print(f"| {name} | {task} | {steps or 'one pass'} | {mpx:.2f} | {o:.2f} | {v:.2f} | {o / v:.2f} | "
              f"{cold:.2f} | {db:.1f} | {res['cpu']['rss_mb']:,.0f} / {res['openvino']['rss_mb']:,.0f} |")


if __name__ == "__main__":
    main()
