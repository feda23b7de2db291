"""PyTorch networks (training and export only; the runtime never imports this package).

Networks are listed explicitly in :data:`rscore.models.registry.MODELS`.
"""
