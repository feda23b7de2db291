"""Held-out quality figures per bundle (``quality_summary.json``, written by ``make eval``) and their wording,
shared by the plugin's model list and the model cards."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

QUALITY_FILE = "quality_summary.json"


def load_quality_summaries(candidates: Iterable[Path]) -> dict[str, Any]:
    """Bundle name -> figures from the first readable ``quality_summary.json`` among ``candidates``; {} if none
    (an unreadable file counts as none: the figures are informative, never required to run)."""
    for path in candidates:
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
    return {}


def quality_text(summary: dict[str, Any], detailed: bool = False) -> str:
    """One bundle's figures in words (without their date, ``summary["date"]``): a short line for the model list
    or the full sentence for the model card."""
    if "summary" in summary:  # suites whose headline is not a gain over a degraded input (super-resolution)
        return str(summary["summary"])
    if not detailed:
        return (f"{summary['gain_db']:+.2f} dB on degraded held-out crops, clean inputs "
                f"{summary['clean_worst_db']:.2f} dB in the worst crop")
    return (f"on {summary['scenes']} held-out test scenes, the default ({summary['default']}) "
            f"changes the mean PSNR of degraded inputs by **{summary['gain_db']:+.2f} dB** (input "
            f"{summary['input_db']:.2f} dB); clean inputs come back at {summary['clean_mean_db']:.2f} dB on average "
            f"and **{summary['clean_worst_db']:.2f} dB** in the worst crop. Step choice: {summary['step_choice']}")
