"""``rsrestore:models`` lists the installed model bundles; ``rsrestore:install_model`` installs one from a .zip
into the user's models folder after verifying it."""

from __future__ import annotations

import csv
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
)

from rscore.bundle.catalog import CatalogEntry, find_bundles, install_zip
from rscore.bundle.manifest import BundleError
from rscore.bundle.quality import QUALITY_FILE, load_quality_summaries, quality_text

from .base import _PLUGIN_DIR, AlgorithmBase, _help, model_roots, shipped_models_dirs, user_models_dir

#: the columns of the model list
COLUMNS = ("name", "task", "algorithm", "bands", "resolution", "scales", "origin", "size_mb", "checksums", "quality",
           "folder")


def quality_summaries() -> dict[str, Any]:
    """Held-out quality figures per bundle (shipped beside the models, or the source checkout's docs/)."""
    return load_quality_summaries([d / QUALITY_FILE for d in shipped_models_dirs()]
                                  + [_PLUGIN_DIR.parent / "docs" / QUALITY_FILE])


def _quality(summary: dict[str, Any] | None) -> str:
    return f"{summary['date']}: {quality_text(summary)}" if summary else "not evaluated"


def describe(entry: CatalogEntry, summaries: dict[str, Any], verify: bool) -> dict[str, str]:
    m = entry.manifest
    row = {"name": entry.name, "origin": entry.origin, "folder": str(entry.path),
           "size_mb": f"{entry.size_bytes / 2**20:.1f}"}
    if m is None:
        return {**row, "task": "?", "algorithm": "?", "bands": "?", "resolution": "?", "scales": "?",
                "checksums": f"FAILED: {entry.error}", "quality": ""}
    scales = "1" if m.scale.min == m.scale.max == 1 else f"{m.scale.min:g}-{m.scale.max:g}"
    return {**row, "task": m.task, "algorithm": f"rsrestore:{m.task}", "bands": ", ".join(m.input.names),
            "resolution": f"{m.native_resolution_m:g} m" if m.native_resolution_m else "any", "scales": scales,
            "checksums": entry.checksum_status() if verify else "not checked",
            "quality": _quality(summaries.get(entry.name))}


class _ModelsBase(AlgorithmBase):
    def group(self) -> str:
        return self.tr("Models")

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return "models"


class ListModelsAlgorithm(_ModelsBase):
    """Every installed bundle: task, bands, resolution, scale range, quality summary, size, checksum status."""

    VERIFY = "VERIFY"
    OUTPUT = "OUTPUT"
    COUNT = "COUNT"

    def name(self) -> str:
        return "models"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("List installed models")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Lists the model bundles the rsrestore algorithms can use: the shipped ones (in the plugin) and those "
            f"installed with 'Install a model bundle' (the user folder, {USER_HELP}). For each: its task and "
            "algorithm, bands in order, native resolution, scale range, where it is, its size, whether every file "
            "passes its SHA-256 checksum, and its measured quality on held-out scenes. The list is written to the "
            "log and, optionally, to a CSV file.")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(_help(QgsProcessingParameterBoolean(self.VERIFY, self.tr("Verify checksums"), True),
                                self.tr("Read every network file and compare its SHA-256 with the manifest.")))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, self.tr("Model list (CSV)"), "CSV files (*.csv)", optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, self.tr("Number of models")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        verify = self.parameterAsBool(parameters, self.VERIFY, context)
        summaries = quality_summaries()
        rows = [describe(e, summaries, verify) for e in find_bundles(model_roots())]
        for r in rows:
            feedback.pushInfo(f"{r['name']} ({r['origin']}): {r['algorithm']}, bands {r['bands']}, resolution "
                              f"{r['resolution']}, scales {r['scales']}, {r['size_mb']} MB, checksums {r['checksums']}"
                              f"; quality: {r['quality']}; {r['folder']}")
        if not rows:
            feedback.pushInfo(f"no model installed (searched {', '.join(str(p) for _, p in model_roots())})")
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        res: dict[str, Any] = {self.COUNT: len(rows)}
        if out:
            with open(out, "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=COLUMNS)
                w.writeheader()
                w.writerows(rows)
            res[self.OUTPUT] = out
        return res


USER_HELP = "<QGIS profile>/rsrestore/models, or the folder in the RSRESTORE_MODELS_DIR environment variable"


class InstallModelAlgorithm(_ModelsBase):
    """Verify a bundle .zip (schema, every checksum) and install it into the user's models folder."""

    INPUT = "INPUT"
    OVERWRITE = "OVERWRITE"
    FOLDER = "FOLDER"

    def name(self) -> str:
        return "install_model"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Install a model bundle")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Installs an rsrestore model bundle from a .zip of its folder (manifest.json and .onnx files) into "
            f"the user's models folder ({USER_HELP}). The bundle is unpacked beside that folder, checked (schema, "
            "SHA-256 of every file, no path outside the bundle) and only then moved into place; nothing is left "
            "behind when a check fails. A shipped model's name cannot be reused; an installed model of the same "
            "name is replaced only with OVERWRITE. The model then appears in the Model choice of its algorithm.")

    def flags(self):  # noqa: ANN201 - QGIS API
        # the provider is refreshed afterwards (new Model choices): keep the run on the main thread
        return super().flags() | QgsProcessingAlgorithm.FlagNoThreading

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(_help(QgsProcessingParameterFile(self.INPUT, self.tr("Model bundle (.zip)"),
                                                           extension="zip"),
                                self.tr("A .zip holding one bundle folder, or the bundle's files at its top.")))
        self.addParameter(_help(QgsProcessingParameterBoolean(self.OVERWRITE, self.tr("Replace an installed model "
                                                                                      "of the same name"), False),
                                self.tr("Off: installing a name that is already installed is refused.")))
        self.addOutput(QgsProcessingOutputFolder(self.FOLDER, self.tr("Installed bundle folder")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        zip_path = self.parameterAsFile(parameters, self.INPUT, context)
        shipped = {e.name for e in find_bundles([("shipped", d) for d in shipped_models_dirs()])}
        dest = user_models_dir()
        try:
            folder = install_zip(zip_path, dest, reserved=shipped,
                                 overwrite=self.parameterAsBool(parameters, self.OVERWRITE, context))
        except (BundleError, OSError) as exc:
            raise QgsProcessingException(f"{exc}; nothing was installed") from None
        feedback.pushInfo(f"installed {folder.name} into {dest} (every checksum verified)")
        self._results = {self.FOLDER: str(folder)}
        return self._results

    def postProcessAlgorithm(self, context: QgsProcessingContext,  # noqa: N802 - QGIS API
                             feedback: QgsProcessingFeedback) -> dict[str, Any]:
        provider = QgsApplication.processingRegistry().providerById("rsrestore")
        if provider is not None:
            provider.refreshAlgorithms()  # the new model appears in its algorithm's Model choice
        return dict(getattr(self, "_results", {}))


__all__ = ["InstallModelAlgorithm", "ListModelsAlgorithm"]
