"""Plugin object: registers the Processing provider (no GUI of its own)."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import RsRestoreProvider


class RsRestorePlugin:
    """Adds the ``rsrestore`` provider to the Processing registry (desktop and qgis_process)."""

    def __init__(self, iface=None) -> None:
        self.iface = iface
        self.provider: RsRestoreProvider | None = None

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API
        self.provider = RsRestoreProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
