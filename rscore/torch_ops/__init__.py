"""Torch adapters onto :mod:`rscore.diffusion` (training and evaluation; needs PyTorch)."""
