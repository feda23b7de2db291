"""rsrestore QGIS plugin: a Processing provider for diffusion-based raster restoration.

In the packaged plugin the torch-free part of ``rscore`` sits beside this file; in a source checkout it
is importable from the repository root.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.isdir(os.path.join(_HERE, "rscore")) and _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def classFactory(iface):  # noqa: N802 - QGIS entry point name
    """QGIS plugin entry point."""
    from .plugin import RsRestorePlugin

    return RsRestorePlugin(iface)
