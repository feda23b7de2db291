"""Evaluation metrics.

``fidelity`` (PSNR, SSIM, SAM, ERGAS) is numpy-only and safe for the QGIS runtime. ``weights``
fetches and verifies the offline LPIPS weights without torch; ``lpips`` needs PyTorch and is
imported lazily by the caller (``from rscore.metrics.lpips import LPIPS``).
"""

from rscore.metrics.fidelity import ergas, psnr, sam_deg, ssim

__all__ = ["ergas", "psnr", "sam_deg", "ssim"]
