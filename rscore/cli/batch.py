"""``rsrestore batch``: many rasters on a Dask cluster, one task per scene.

- By default a ``dask.distributed.LocalCluster`` sized to the machine; with a scheduler address it joins an
  existing cluster (whose workers must have rsrestore and its models installed: docs/scale-out.md).
- Each worker runs one scene at a time (one Dask thread) with an explicit number of onnxruntime threads; its
  onnxruntime sessions are cached in the worker process and reused by every scene that uses the same bundle.
- Outputs are published atomically by the engine; a worker that dies mid-scene leaves only a hidden partial
  file, which the rescheduled scene (or the end of the batch) sweeps away.
- A re-run skips every output whose provenance matches (same bundle checksum, parameters, seed): an
  interrupted batch resumes where it stopped.
- A failing scene is reported and the others go on; the report (JSON and CSV) lists every scene.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from rscore.cli.scene import SceneJob, SceneResult, run_scene
from rscore.raster.io import read_provenance, sweep_stale_partials
from rscore.runtime.api import RequestError

#: the file that lists rasters, one per line (``#`` starts a comment), when ``--inputs`` names one
LIST_SUFFIXES = (".txt", ".lst")


def _is_vsi(name: str) -> bool:
    """A GDAL virtual path (``/vsis3/…``, ``/vsicurl/https://…``): passed to the workers as it is."""
    return name.startswith("/vsi")


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Rasters named by globs (``scenes/*.tif``, ``**`` recursive) and list files (``@list.txt``, or a file
    ending in .txt/.lst; lines starting with ``#`` are comments; relative paths are relative to the list), in
    order, each once, as absolute paths (GDAL virtual paths ``/vsi…`` unchanged); a pattern or list that names
    nothing is an error."""
    found: list[str] = []
    for pattern in patterns:
        listed = pattern[1:] if pattern.startswith("@") else pattern if pattern.endswith(LIST_SUFFIXES) else None
        if listed is not None:
            lf = Path(listed)
            if not lf.is_file():
                raise RequestError(f"the list file {listed} does not exist")
            base = lf.resolve().parent
            names = [ln.strip() for ln in lf.read_text(encoding="utf-8").splitlines()]
            names = [n for n in names if n and not n.startswith("#")]
            if not names:
                raise RequestError(f"the list file {listed} names no raster (one path per line)")
            paths = [n if _is_vsi(n) else os.path.abspath(n if os.path.isabs(n) else base / n) for n in names]
            missing = [p for p in paths if not _is_vsi(p) and not os.path.exists(p)]
            if missing:
                raise RequestError(f"{len(missing)} raster(s) in {listed} do not exist: {', '.join(missing[:5])}")
        else:
            paths = sorted(os.path.abspath(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
            if not paths:
                raise RequestError(f"--inputs {pattern!r} matches no file; quote the pattern so that the shell "
                                   "does not expand it, and check the folder")
        found += paths
    seen: set[str] = set()
    unique = []
    for p in found:
        key = p if _is_vsi(p) else os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _stem(name: str) -> str:
    return PurePosixPath(name).stem


def without_own_outputs(inputs: Sequence[str], output_dir: Path, suffix: str) -> tuple[list[str], list[str]]:
    """(inputs, left out): rasters inside ``output_dir`` that are rsrestore outputs named like this batch's
    (``*<suffix>.tif`` with an ``RSRESTORE`` provenance) are an earlier run's results, not scenes."""
    out_real = os.path.realpath(output_dir)
    keep, dropped = [], []
    for p in inputs:
        mine = (not _is_vsi(p) and os.path.dirname(os.path.realpath(p)) == out_real and p.endswith(f"{suffix}.tif")
                and bool(read_provenance(p)))
        (dropped if mine else keep).append(p)
    return keep, dropped


def output_paths(inputs: Sequence[str], output_dir: Path, suffix: str) -> list[str]:
    """``<output_dir>/<input stem><suffix>.tif`` (absolute) for every input; two inputs with one name, or an
    output that would replace an input, are refused."""
    out_dir = Path(os.path.abspath(output_dir))
    outs = [str(out_dir / f"{_stem(p)}{suffix}.tif") for p in inputs]
    by_name: dict[str, str] = {}
    for src, out in zip(inputs, outs):
        if out in by_name:
            raise RequestError(f"{by_name[out]} and {src} would both write {out}; give them different file "
                               "names, or run them as two batches into two output folders")
        by_name[out] = src
    inputs_real = {os.path.realpath(p) for p in inputs if not _is_vsi(p)}
    clash = [o for o in outs if os.path.realpath(o) in inputs_real]
    if clash:
        raise RequestError(f"output(s) {', '.join(clash)} would replace input(s); choose another --output-dir or "
                           "a --suffix")
    return outs


def check_parameters(spec: Any, values: dict[str, Any]) -> None:
    """Problems of the batch's parameters, found before any scene runs (a RequestError names the fix): the
    values' ranges and required ones, the chosen model, and the shared rasters (MASK, REFERENCE)."""
    from rscore.bundle.manifest import BundleError
    from rscore.bundle.store import load_bundle
    from rscore.runtime.algorithms import AUTO, bundle_path, model_roots

    v = spec.checked({**values, "INPUT": "-", "OUTPUT": "-"})
    if not spec.task or v.get("MODEL_FOLDER") or (v.get("MODEL") or AUTO) != AUTO:
        try:
            load_bundle(bundle_path(spec, v, model_roots()))
        except BundleError as exc:
            raise RequestError(str(exc)) from None
    for p in spec.params:
        value = v.get(p.name)
        if p.kind == "raster" and p.name != "INPUT" and value and not _is_vsi(str(value)):
            if not os.path.isfile(str(value)):
                raise RequestError(f"{p.name} {value} does not exist; give an existing raster")
            values[p.name] = os.path.abspath(str(value))
        if p.kind == "folder" and value:
            values[p.name] = os.path.abspath(str(value))


@dataclass(frozen=True)
class ClusterSpec:
    """Where the scenes run: a LocalCluster of ``workers`` processes x ``threads`` onnxruntime threads, or the
    cluster at ``scheduler`` (``tcp://host:8786``)."""

    workers: int | None = None
    threads: int | None = None
    scheduler: str | None = None

    def local_shape(self) -> tuple[int, int]:
        """(workers, onnxruntime threads per worker) of a LocalCluster: by default one worker per core, each
        with one thread (docs/performance.md: parallel efficiency); the threads default to cores / workers."""
        cores = os.cpu_count() or 1
        workers = self.workers or max(1, cores // (self.threads or 1))
        threads = self.threads or max(1, cores // workers)
        return workers, threads


def open_client(spec: ClusterSpec) -> tuple[Any, Callable[[], None], str]:
    """A Dask client, the function that closes it (and its LocalCluster), and a line describing it."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise RequestError("rsrestore batch needs Dask: install it with `make install` (or pip install "
                           "'dask[distributed]' into this Python)") from None
    if spec.scheduler:
        try:
            client = Client(spec.scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise RequestError(f"cannot reach the Dask scheduler {spec.scheduler} ({exc}); check the address and "
                               "that the scheduler runs") from None
        n = len(client.scheduler_info().get("workers", {}))
        return client, client.close, f"cluster {spec.scheduler} ({n} worker(s))"
    workers, threads = spec.local_shape()
    try:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
    except (RuntimeError, OSError) as exc:
        raise RequestError(f"cannot start a Dask LocalCluster of {workers} worker(s) ({exc}); try fewer --workers"
                           ) from None
    client = Client(cluster)

    def close() -> None:
        client.close()
        cluster.close()

    return client, close, f"LocalCluster of {workers} worker(s) x {threads} thread(s)"


class _Progress:
    """A one-line text progress bar on stderr (and a line per finished scene)."""

    def __init__(self, total: int, stream: io.TextIOBase | None = None) -> None:
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.stream = stream or sys.stderr

    def step(self, r: SceneResult) -> None:
        self.done += 1
        width = 30
        fill = int(width * self.done / max(1, self.total))
        line = (f"[{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} "
                f"{time.perf_counter() - self.t0:7.1f} s  {Path(r.scene).name}: {r.status}")
        if r.error:
            line += f" ({r.error.splitlines()[0][:160]})"
        print(line, file=self.stream, flush=True)


def run_batch(jobs: Sequence[SceneJob], cluster: ClusterSpec, progress: bool = True,
              log: Callable[[str], None] = print) -> list[SceneResult]:
    """Every job on the cluster, one Dask task each; results in the order of ``jobs``."""
    client, close, described = open_client(cluster)
    from dask.distributed import as_completed

    try:
        log(f"{len(jobs)} scene(s) on a {described}")
        batch_id = uuid.uuid4().hex[:12]  # task keys unique to this batch, on a shared scheduler too
        futures = {client.submit(run_scene, job, key=f"rsrestore-{batch_id}-{i}-{_stem(job.scene)}", pure=False,
                                 retries=0): i for i, job in enumerate(jobs)}
        bar = _Progress(len(jobs)) if progress else None
        results: list[SceneResult | None] = [None] * len(jobs)
        for fut in as_completed(list(futures)):
            i = futures[fut]
            job = jobs[i]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker that kept dying (KilledWorker) or a lost task
                hint = (" (the worker process died every time it ran this scene, often for lack of memory: try fewer "
                        "--workers or a smaller TILE_SIZE)" if type(exc).__name__ == "KilledWorker" else "")
                res = SceneResult(job.scene, "failed", 0.0, job.output,
                                  f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}{hint}")
            results[i] = res
            if bar is not None:
                bar.step(res)
    finally:
        close()
    for job in jobs:  # hidden partial files of workers that died (their scenes were rescheduled or failed)
        sweep_stale_partials(Path(job.output), time.time())
    return [r for r in results if r is not None]


REPORT_FIELDS = ("scene", "status", "seconds", "output", "error")


def status_counts(results: Sequence[SceneResult]) -> dict[str, int]:
    """How many scenes were done, skipped (already there) and failed."""
    return {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}


def _write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` through a hidden sibling renamed into place (never a half-written report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_report(results: Sequence[SceneResult], json_path: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """The batch report as JSON (with ``meta``: algorithm, parameters, cluster, totals) and CSV beside it."""
    rows = [{k: asdict(r)[k] for k in REPORT_FIELDS} for r in results]
    scenes = [{**row, "notices": r.notices} for row, r in zip(rows, results)]
    doc = {**meta, "counts": status_counts(results), "scenes": scenes}
    _write_atomic(json_path, json.dumps(doc, indent=2) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=REPORT_FIELDS)
    w.writeheader()
    w.writerows(rows)
    csv_path = json_path.with_suffix(".csv")
    _write_atomic(csv_path, buf.getvalue())
    return json_path, csv_path


def summary_table(results: Sequence[SceneResult]) -> str:
    """A plain-text table: scene, status, seconds, output or error."""
    rows = [(Path(r.scene).name, r.status, f"{r.seconds:.1f}", r.error.splitlines()[0][:100] if r.error else
             Path(r.output).name) for r in results]
    head = ("scene", "status", "seconds", "output / error")
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(3)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head[:3], widths)) + "  " + head[3]]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3] for row in rows]
    failed = [r for r in results if r.status == "failed"]
    if failed:
        lines += ["", "failed:"] + [f"  {Path(r.scene).name}: {r.error}" for r in failed]
    counts = status_counts(results)
    lines.append(f"{counts['done']} done, {counts['skipped']} skipped (already there), {counts['failed']} failed")
    return "\n".join(lines)
