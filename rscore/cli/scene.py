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
from rscore.runtime.api import RequestError, RestoreRequest, backend_for, provenance_of, resolve_run, restore
from rscore.runtime.engine import Feedback
from rscore.runtime.predictor import RuntimeMissing

#: provenance keys that differ between two runs of the same request (when, on which device, which file)
VOLATILE_PROVENANCE = frozenset({"CREATED_UTC", "EXECUTION", "DEVICE", "OUTPUT"})
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
            seed and input name).
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
    """The provenance keys in which the existing output differs from what ``request`` would write ([] when it
    matches: the output is this request's result)."""
    existing = read_provenance(request.output_path)
    if not existing:
        return ["(no rsrestore provenance)"]
    expected = provenance_of(request, resolve_run(request), "", backend_for(request.device).precision)
    return sorted(k for k, v in expected.items() if k not in VOLATILE_PROVENANCE and existing.get(k) != v)


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
            if Path(request.output_path).exists():
                if job.resume:
                    differ = provenance_mismatch(request)
                    if not differ:
                        return result("skipped", summary="the output exists with this request's provenance")
                    if not job.overwrite:
                        return result("failed", f"the output {request.output_path} exists but was made with other "
                                                f"settings ({', '.join(differ)} differ); pass --overwrite to replace "
                                                "it, or choose another output folder")
                elif not job.overwrite:
                    return result("failed", f"the output {request.output_path} exists; pass --overwrite to replace "
                                            "it, or choose another output file")
            report = restore(request, feedback)
            return result("done", summary=report.summary, notices=notices)
    except Cancelled:
        raise
    except SCENE_ERRORS as exc:
        return result("failed", str(exc) or type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - onnxruntime and GDAL raise their own types; a batch goes on
        first = (str(exc).splitlines() or [""])[0][:300]
        return result("failed", f"{type(exc).__module__}.{type(exc).__name__}: {first}")
