"""How an output looks when QGIS loads it: a name after the input and the operation, and a true-colour renderer
from the bands' colour interpretation (QGIS 3.22 would show bands 1-2-3, i.e. blue-green-red of a BGRN raster)."""

from __future__ import annotations

from qgis.core import (
    QgsContrastEnhancement,
    QgsMapLayer,
    QgsMultiBandColorRenderer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsRaster,
    QgsRasterLayer,
)

#: cumulative-count cut of the stretch (QGIS's own default for multiband layers)
CUT_LOW, CUT_HIGH = 0.02, 0.98
#: pixels sampled for the stretch statistics
SAMPLE_PX = 250_000


def true_colour_bands(layer: QgsRasterLayer) -> tuple[int, int, int] | None:
    """(red, green, blue) band numbers from the bands' colour interpretation; None when one is missing."""
    provider = layer.dataProvider()
    found: dict[int, int] = {}
    for b in range(1, layer.bandCount() + 1):
        found.setdefault(provider.colorInterpretation(b), b)
    wanted = (QgsRaster.RedBand, QgsRaster.GreenBand, QgsRaster.BlueBand)
    if not all(w in found for w in wanted):
        return None
    return found[wanted[0]], found[wanted[1]], found[wanted[2]]


def apply_true_colour(layer: QgsRasterLayer) -> bool:
    """Give the layer a red/green/blue renderer with a 2-98 % cumulative-count stretch per band (from its own
    statistics, nodata excluded). False when the bands carry no red/green/blue colour interpretation."""
    bands = true_colour_bands(layer)
    if bands is None:
        return False
    provider = layer.dataProvider()
    renderer = QgsMultiBandColorRenderer(provider, *bands)
    setters = (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
               renderer.setBlueContrastEnhancement)
    for band, setter in zip(bands, setters):
        lo, hi = provider.cumulativeCut(band, CUT_LOW, CUT_HIGH, layer.extent(), SAMPLE_PX)
        ce = QgsContrastEnhancement(provider.dataType(band))
        ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum, False)
        ce.setMinimumValue(lo)
        ce.setMaximumValue(hi)
        setter(ce)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return True


class TrueColourPostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Names the loaded output and gives it the true-colour renderer."""

    #: QGIS keeps only a raw pointer: the instances must outlive processAlgorithm
    _alive: list[TrueColourPostProcessor] = []

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    @classmethod
    def create(cls, name: str) -> TrueColourPostProcessor:
        pp = cls(name)
        cls._alive = [*cls._alive[-15:], pp]
        return pp

    def postProcessLayer(self, layer: QgsMapLayer, context: QgsProcessingContext,  # noqa: N802 - QGIS API
                         feedback: QgsProcessingFeedback) -> None:
        if isinstance(layer, QgsRasterLayer):
            layer.setName(self.name)
            apply_true_colour(layer)


def style_on_load(context: QgsProcessingContext, output_path: str, name: str) -> None:
    """When QGIS will load ``output_path`` after the run, name it ``name`` and give it the true-colour renderer."""
    if not context.willLoadLayerOnCompletion(output_path):
        return
    details = context.layerToLoadOnCompletionDetails(output_path)
    details.name = name
    details.setPostProcessor(TrueColourPostProcessor.create(name))
