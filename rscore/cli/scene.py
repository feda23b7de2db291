"""One scene of the command line: parameter values -> request -> output, with the batch's resume rule (an
existing output whose provenance matches the request is skipped, not recomputed)."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rscore.bundle.manifest import BundleError
from rscore.diffusion.loop import Cancelled
from rscore.raster.io import RasterError, read_provenance
from rscore.runtime.algorithms import build_request, on_window, spec_of, window_of_extent
from rscore.runtime.api import RequestError, RestoreRequest, provenance_of, resolve_run, restore
from rscore.runtime.engine import Feedback
from rscore.runtime.predictor import RuntimeMissing

#: provenance keys that differ between two runs of the same request (when, on which device and backend, which
#: file): on a cluster of mixed CPUs, DEVICE auto computes in bf16 on some workers and fp32 on others
VOLATILE_PROVENANCE = frozenset({"CREATED_UTC", "EXECUTION", "DEVICE", "PRECISION", "OUTPUT"})
#: the value of a provenance key that outputs of earlier versions do not have
PROVENANCE_DEFAULTS = {"COG": "no"}
#: errors that are the scene's problem (bad raster, bad parameters, full disk), reported without a traceback
SCENE_ERRORS = (RequestError, RasterError, BundleError, RuntimeMissing, ValueError, OSError, MemoryError)


@dataclass(frozen=True)
class SceneJob:
    """One raster to restore.

    Attributes:
        algorithm: the algorithm's id (``dehaze`` or ``rsrestore:dehaze``).
        values: parameter values as :func:`rscore.runtime.algorithms.build_request` takes them (INPUT and OUTPUT
            included); EXTENT, when given, is in ``extent``.
        extent: an area, ``xmin,xmax,ymin,ymax [EPSG:code]`` (None: the whole raster).
        threads: onnxruntime threads (None: every core).
        overwrite: replace an existing output.
        resume: skip an existing output whose provenance matches this job (same bundle checksum, parameters,
            seed and input name); with ``overwrite`` every output is recomputed.
    """

    algorithm: str
    values: dict[str, Any]
    extent: str | None = None
    threads: int | None = None
    overwrite: bool = False
    resume: bool = False

    @property
    def scene(self) -> str:
        return str(self.values.get("INPUT", ""))

    @property
    def output(self) -> str:
        return str(self.values.get("OUTPUT", ""))


@dataclass
class SceneResult:
    """What happened to one scene: ``done``, ``skipped`` (its output was already there) or ``failed``."""

    scene: str
    status: str
    seconds: float
    output: str
    error: str = ""
    summary: str = ""
    notices: list[str] = field(default_factory=list)
    #: the failure is a parameter that does not fit (exit status 2 for ``rsrestore run``)
    usage: bool = False


def prepare(job: SceneJob, tmp_dir: str) -> tuple[RestoreRequest, list[str], list[str]]:
    """The job's request (on a VRT of its EXTENT window in ``tmp_dir``), info lines and notices."""
    spec = spec_of(job.algorithm)
    resolved = build_request(spec, job.values)
    request = dataclasses.replace(resolved.request, threads=job.threads)
    infos, notices = list(resolved.infos), list(resolved.notices)
    if job.extent:
        area = window_of_extent(job.extent, request.input_path)
        from osgeo import gdal

        ds = gdal.Open(request.input_path)
        request, message = on_window(request, spec, area, (ds.RasterYSize, ds.RasterXSize), tmp_dir)
        infos.append(message)
    return request, infos, notices


def provenance_mismatch(request: RestoreRequest) -> list[str]:
    """The provenance keys in which the existing output differs from what ``request`` would write, on either
    side ([] when it matches: the output is this request's result)."""
    existing = read_provenance(request.output_path)
    if not existing:
        return ["(no rsrestore provenance)"]
    expected = provenance_of(request, resolve_run(request), "")
    keys = (set(expected) | set(existing)) - VOLATILE_PROVENANCE
    return sorted(k for k in keys if existing.get(k, PROVENANCE_DEFAULTS.get(k)) != expected.get(k))


def output_files(request: RestoreRequest) -> list[str]:
    """Every file the request writes."""
    return [p for p in (request.output_path, request.uncertainty_path, *request.extra_outputs.values()) if p]


def run_scene(job: SceneJob, feedback: Feedback | None = None) -> SceneResult:
    """Restore one scene; every problem becomes a ``failed`` result naming it (nothing is raised but
    ``Cancelled``), so that one bad scene does not stop a batch."""
    t0 = time.perf_counter()

    def result(status: str, error: str = "", **kw: Any) -> SceneResult:
        return SceneResult(job.scene, status, round(time.perf_counter() - t0, 3), job.output, error, **kw)

    try:
        with tempfile.TemporaryDirectory(prefix="rsrestore-extent-") as tmp:
            request, infos, notices = prepare(job, tmp)
            if feedback is not None:
                for line in infos:
                    feedback.info(line)
                for line in notices:
                    feedback.info(f"warning: {line}")
            existing = [p for p in output_files(request) if Path(p).exists()]
            if existing and not job.overwrite:
                if job.resume and existing == [request.output_path]:
                    differ = provenance_mismatch(request)
                    if not differ:
                        return result("skipped", summary="the output exists with this request's provenance",
                                      notices=notices)
                    return result("failed", f"the output {request.output_path} exists but was made with other "
                                            f"settings ({', '.join(differ)} differ); pass --overwrite to replace "
                                            "it, or choose another output folder")
                return result("failed", f"the output(s) {', '.join(existing)} exist; pass --overwrite to replace "
                                        "them, or choose other output files")
            report = restore(request, feedback)
            return result("done", summary=report.summary, notices=notices)
    except Cancelled:
        raise
    except RequestError as exc:
        return result("failed", str(exc), usage=True)
    except SCENE_ERRORS as exc:
        return result("failed", str(exc) or type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - onnxruntime and GDAL raise their own types; a batch goes on
        first = (str(exc).splitlines() or [""])[0][:300]
        return result("failed", f"{type(exc).__module__}.{type(exc).__name__}: {first}")
