"""``rsrestore``: the Processing provider's restoration algorithms from a shell, without QGIS.

    rsrestore algorithms [ALGORITHM]
    rsrestore run dehaze --input hazy.tif --output clear.tif [--param STEPS=3 ...]
    rsrestore batch dehaze --inputs 'scenes/*.tif' --output-dir restored/ [--workers 2 | --scheduler tcp://host:8786]

Parameter names and values are those of ``qgis_process run rsrestore:<algorithm>`` (``--param NAME=VALUE``;
names are case-insensitive): both read :mod:`rscore.runtime.algorithms`.
Exit status: 0 done, 1 a scene failed, 2 the command or a parameter is wrong, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rscore import __version__
from rscore.bundle.manifest import BundleError
from rscore.diffusion.loop import Cancelled
from rscore.raster.io import RasterError
from rscore.runtime.algorithms import SPECS, AlgorithmSpec, spec_of
from rscore.runtime.api import RequestError

#: parameters given by their own options rather than ``--param``
OWN_OPTIONS = {"INPUT": "--input", "OUTPUT": "--output"}
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def parse_params(spec: AlgorithmSpec, items: Sequence[str]) -> tuple[dict[str, Any], str | None]:
    """``NAME=VALUE`` strings -> (values, EXTENT text); names are case-insensitive, values parsed by kind."""
    values: dict[str, Any] = {}
    extent = None
    names = {p.name for p in spec.params}
    for item in items:
        if "=" not in item:
            raise RequestError(f"--param {item!r} is not NAME=VALUE (e.g. --param STEPS=3)")
        name, text = item.split("=", 1)
        name = name.strip().upper()
        if name in OWN_OPTIONS:
            raise RequestError(f"give {name} with {OWN_OPTIONS[name]}, not --param")
        if name not in names:
            raise RequestError(f"{spec.id} has no parameter {name}; its parameters are "
                               f"{', '.join(n for n in (p.name for p in spec.params) if n not in OWN_OPTIONS)}")
        if name in values or (name == "EXTENT" and extent is not None):
            raise RequestError(f"--param {name} is given twice")
        p = spec.param(name)
        if p.kind == "extent":
            extent = text.strip() or None
        elif p.kind in ("raster", "folder", "output", "model"):
            values[name] = text.strip() or None
        else:
            values[name] = p.parse(text)
    return values, extent


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else f"{x:g}"


def describe(spec: AlgorithmSpec) -> str:
    """The algorithm's parameters: name, kind, default, range or choices."""
    lines = [f"{spec.id} - {spec.title}"]
    if spec.default_bundles:
        lines.append("  MODEL auto: " + ", ".join(f"{k} bands -> {v}" for k, v in sorted(spec.default_bundles.items(),
                                                                                            reverse=True)))
    for p in spec.params:
        how = OWN_OPTIONS.get(p.name, f"--param {p.name}=")
        extra = []
        if p.default is not None:
            extra.append(f"default {p.default}")
        elif p.optional:
            extra.append("optional")
        if p.minimum is not None or p.maximum is not None:
            extra.append(f"range {_num(p.minimum)}..{_num(p.maximum)}" if p.maximum is not None else
                         f">= {_num(p.minimum)}")
        if p.choices:
            extra.append("one of " + "/".join(p.choices))
        lines.append(f"  {p.name:<20} {p.kind:<7} {how:<28} {', '.join(extra)}")
    return "\n".join(lines)


class ConsoleFeedback:
    """Progress and messages on stderr (every 10 %), for ``rsrestore run``."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.last = -1

    def set_progress(self, fraction: float) -> None:
        step = int(fraction * 10)
        if not self.quiet and step > self.last:
            self.last = step
            print(f"  {10 * step:3d} %", file=sys.stderr, flush=True)

    def is_canceled(self) -> bool:
        return False

    def info(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)


def cmd_algorithms(args: argparse.Namespace) -> int:
    specs = [spec_of(args.algorithm)] if args.algorithm else list(SPECS.values())
    print("\n\n".join(describe(s) for s in specs))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from rscore.cli.scene import SceneJob, run_scene

    spec = spec_of(args.algorithm)
    values, extent = parse_params(spec, args.param)
    values.update(INPUT=args.input, OUTPUT=args.output)
    job = SceneJob(spec.name, values, extent, args.threads, args.overwrite, resume=False)
    fb = ConsoleFeedback(args.quiet)
    res = run_scene(job, fb)
    if res.status != "done":
        print(f"error: {res.error}", file=sys.stderr)
        return EXIT_USAGE if res.usage else EXIT_FAILED
    print(f"{res.output} ({res.seconds:.1f} s)")
    return EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    from rscore.cli.batch import (
        ClusterSpec,
        check_parameters,
        expand_inputs,
        output_paths,
        run_batch,
        summary_table,
        without_own_outputs,
        write_report,
    )
    from rscore.cli.scene import SceneJob

    spec = spec_of(args.algorithm)
    values, extent = parse_params(spec, args.param)
    extra_outputs = [p.name for p, _ in spec.outputs if p.name != "OUTPUT" and values.get(p.name)]
    if extra_outputs:
        raise RequestError(f"{', '.join(extra_outputs)} names one file, but a batch writes one output per scene; "
                           "run those scenes with `rsrestore run`")
    check_parameters(spec, values)
    out_dir = Path(os.path.abspath(args.output_dir))
    if out_dir.exists() and not out_dir.is_dir():
        raise RequestError(f"--output-dir {out_dir} is a file; choose a folder")
    report = Path(os.path.abspath(args.report)) if args.report else out_dir / "rsrestore-batch.json"
    if report.suffix.lower() != ".json":
        raise RequestError(f"--report {args.report} must end in .json (the CSV report is written beside it)")
    inputs, earlier = without_own_outputs(expand_inputs(args.inputs), out_dir, args.suffix)
    if earlier and not args.quiet:
        print(f"left out {len(earlier)} raster(s) in the output folder that are this batch's earlier outputs",
              file=sys.stderr)
    if not inputs:
        raise RequestError("--inputs names no scene to restore (only earlier outputs of this batch)")
    outs = output_paths(inputs, out_dir, args.suffix)
    if report.resolve() in {Path(p).resolve() for p in [*inputs, *outs] if not p.startswith("/vsi")}:
        raise RequestError(f"--report {report} is an input or an output of the batch; choose another file")
    out_dir.mkdir(parents=True, exist_ok=True)
    cluster = ClusterSpec(args.workers, args.threads_per_worker, args.scheduler)
    threads = args.threads_per_worker if args.scheduler else cluster.local_shape()[1]
    jobs = [SceneJob(spec.name, {**values, "INPUT": str(src), "OUTPUT": str(out)}, extent, threads,
                     args.overwrite, resume=True) for src, out in zip(inputs, outs)]
    t0 = time.perf_counter()
    results = run_batch(jobs, cluster, progress=not args.quiet,
                        log=(lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr)))
    wall = time.perf_counter() - t0
    meta = {"algorithm": spec.id, "rsrestore_version": __version__, "parameters": {k: str(v) for k, v in
                                                                                  values.items()},
            "extent": extent, "cluster": args.scheduler or "local", "workers": cluster.local_shape()[0]
            if not args.scheduler else None, "threads_per_worker": threads, "wall_seconds": round(wall, 3)}
    json_path, csv_path = write_report(results, report, meta)
    print(summary_table(results))
    print(f"report: {json_path} and {csv_path} ({wall:.1f} s)")
    return EXIT_FAILED if any(r.status == "failed" for r in results) else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rsrestore", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"rsrestore {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    names = ", ".join(SPECS)

    a = sub.add_parser("algorithms", help="list the algorithms and their parameters")
    a.add_argument("algorithm", nargs="?", help=f"one of {names}")
    a.set_defaults(func=cmd_algorithms)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("algorithm", help=f"one of {names} (or rsrestore:<name>)")
        p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                       help="a parameter as in qgis_process (repeat it); `rsrestore algorithms NAME` lists them")
        p.add_argument("--overwrite", action="store_true",
                       help="replace existing outputs (batch: recompute every scene, even finished ones)")
        p.add_argument("-q", "--quiet", action="store_true", help="print only the result")

    r = sub.add_parser("run", help="restore one raster")
    common(r)
    r.add_argument("--input", required=True, help="the raster to restore (any GDAL format)")
    r.add_argument("--output", required=True, help="the GeoTIFF to write")
    r.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: every core)")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("batch", help="restore many rasters on Dask (one task per scene)")
    common(b)
    b.add_argument("--inputs", action="append", required=True,
                   help="a glob ('scenes/*.tif', '**' recursive) or a list file (@scenes.txt or *.txt, one path per "
                        "line); repeat for more")
    b.add_argument("--output-dir", required=True, help="the folder of the outputs, <input name><suffix>.tif")
    b.add_argument("--suffix", default="", help="appended to each output's name (default: none)")
    b.add_argument("--workers", type=int, default=None,
                   help=f"LocalCluster worker processes (default: one per core, {os.cpu_count()} here)")
    b.add_argument("--threads-per-worker", type=int, default=None,
                   help="onnxruntime threads of each worker (default: cores / workers; on a --scheduler cluster, "
                        "every core of the worker's machine)")
    b.add_argument("--scheduler", default=None, help="join an existing Dask cluster, e.g. tcp://host:8786")
    b.add_argument("--report", default=None,
                   help="the JSON report (a CSV is written beside it; default <output-dir>/rsrestore-batch.json)")
    b.set_defaults(func=cmd_batch)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("workers", "threads_per_worker", "threads"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            print(f"error: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return EXIT_USAGE
    try:
        return int(args.func(args))
    except (RequestError, RasterError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (Cancelled, KeyboardInterrupt):
        print("interrupted: no partial output was published; run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
