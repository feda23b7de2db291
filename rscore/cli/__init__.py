"""The ``rsrestore`` command line: the Processing algorithms without QGIS, one raster (``run``) or many on Dask
(``batch``). Parameters and their rules come from :mod:`rscore.runtime.algorithms`, as in the plugin."""
