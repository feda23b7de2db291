"""rsrestore core library.

The runtime sub-packages (``diffusion``, ``pipelines``, ``tiling``, ``raster``, ``bundle``, ``runtime``) import only
numpy, GDAL (``osgeo``) and onnxruntime and are what the QGIS plugin ships. ``models`` and
``torch_ops`` need PyTorch and are used for training and export only.
"""

__version__ = "0.1.0"

RUNTIME_SUBPACKAGES = ("diffusion", "pipelines", "tiling", "raster", "bundle", "runtime", "cli")
