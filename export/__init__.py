"""Export torch stage networks to ONNX, write bundles, and check ONNX/PyTorch parity."""
