"""Classical restoration baselines (numpy only), evaluated beside the model bundles by ``training/evaluate.py``.

``dark_channel``: dark-channel prior dehazing (He, Sun and Tang 2009/2011) with a guided-filter refinement.
``deblock``: a self-guided filter against compression artefacts (codec-decoded enhancement).
"""

from rscore.baselines.dark_channel import (
    DarkChannelParams,
    DarkChannelResult,
    box_mean,
    dark_channel,
    dehaze_dcp,
    guided_filter,
    visible_band_indices,
)
from rscore.baselines.deblock import deblock_guided

__all__ = ["DarkChannelParams", "DarkChannelResult", "box_mean", "dark_channel", "deblock_guided", "dehaze_dcp",
           "guided_filter", "visible_band_indices"]
