"""The ``rsrestore`` Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider

from .algorithms import ALGORITHMS


class RsRestoreProvider(QgsProcessingProvider):
    """Restoration algorithms backed by diffusion model bundles."""

    def id(self) -> str:
        return "rsrestore"

    def name(self) -> str:
        return "rsrestore"

    def longName(self) -> str:  # noqa: N802 - QGIS API
        return "rsrestore - remote-sensing raster restoration"

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API
        for cls in ALGORITHMS:
            self.addAlgorithm(cls())
